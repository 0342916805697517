"""OpenAI chat shapes <-> Ollama native shapes (`/api/chat`, `/api/generate`, `/api/embed`).

Forward (toolmux -> an Ollama backend): `request_to_ollama`, `response_from_ollama`, `chunk_from_ollama`.
Reverse (an Ollama-only client -> toolmux's facade): `request_from_ollama`, `response_to_ollama`,
`chunk_to_ollama`.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from servers.models.errors import UpstreamProtocolError

_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "stop": "stop",
}
_OPTIONS_TO_OPENAI = {"temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty", "stop"}


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _arguments_dict(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _split_content(content: Any) -> tuple[str, list[str]]:
    """OpenAI message content -> (text, base64 images) as Ollama wants them."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    text: list[str] = []
    images: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            text.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            if url.startswith("data:"):
                images.append(url.partition(",")[2])
    return "".join(text), images


def request_to_ollama(model: str, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for message in request.get("messages", []):
        role = message.get("role")
        text, images = _split_content(message.get("content"))
        out: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": text}
        if images:
            out["images"] = images
        if role == "assistant" and message.get("tool_calls"):
            out["tool_calls"] = [
                {
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": _arguments_dict(c["function"].get("arguments")),
                    }
                }
                for c in message["tool_calls"]
            ]
        if role == "tool" and message.get("name"):
            out["tool_name"] = message["name"]
        messages.append(out)
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    options = {_OPTION_NAMES[k]: v for k, v in request.items() if k in _OPTION_NAMES and v is not None}
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    if options:
        body["options"] = options
    if request.get("tools"):
        body["tools"] = request["tools"]
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_object":
        body["format"] = "json"
    elif fmt.get("type") == "json_schema":
        body["format"] = (fmt.get("json_schema") or {}).get("schema") or "json"
    if request.get("keep_alive") is not None:
        body["keep_alive"] = request["keep_alive"]
    return body


def _tool_calls_from_ollama(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or _call_id(),
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode(),
                },
            }
        )
    return out


def _finish(done_reason: str | None, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def usage_from_ollama(data: dict[str, Any]) -> dict[str, Any]:
    prompt = int(data.get("prompt_eval_count") or 0)
    completion = int(data.get("eval_count") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def response_from_ollama(data: Any, created: int) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise UpstreamProtocolError("Ollama answer has no 'message' object")
    message = data["message"]
    calls = _tool_calls_from_ollama(message.get("tool_calls"))
    out: dict[str, Any] = {
        "role": "assistant",
        "content": message.get("content", "") if message.get("content") or not calls else None,
    }
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    if calls:
        out["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": created,
        "model": data.get("model", ""),
        "choices": [{"index": 0, "message": out, "finish_reason": _finish(data.get("done_reason"), bool(calls))}],
        "usage": usage_from_ollama(data),
    }


class ChunkTranslator:
    """Ollama NDJSON stream lines -> OpenAI chat.completion.chunk dicts."""

    def __init__(self, model: str, created: int) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.model = model
        self.created = created
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._started = False
        self._tool_count = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def feed(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in line:
            raise UpstreamProtocolError(f"Ollama stream error: {line['error']}")
        message = line.get("message") or {}
        delta: dict[str, Any] = {}
        if not self._started:
            delta["role"] = "assistant"
            self._started = True
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        calls = _tool_calls_from_ollama(message.get("tool_calls"))
        if calls:
            delta["tool_calls"] = [{"index": self._tool_count + i, **c} for i, c in enumerate(calls)]
            self._tool_count += len(calls)
        chunks = [self._chunk(delta)] if delta else []
        if line.get("done"):
            self.done = True
            self.usage = usage_from_ollama(line)
            chunks.append(self._chunk({}, _finish(line.get("done_reason"), self._tool_count > 0)))
        return chunks


# --- reverse direction: Ollama-only clients calling toolmux ---------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def request_from_ollama(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama /api/chat body as `models-chat` arguments (OpenAI shape)."""
    messages = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        out: dict[str, Any] = {"role": message.get("role", "user")}
        images = message.get("images") or []
        if images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.get("content", "")}]
            parts += [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{img}"}} for img in images]
            out["content"] = parts
        else:
            out["content"] = message.get("content", "")
        if message.get("tool_calls"):
            out["tool_calls"] = _tool_calls_from_ollama(message["tool_calls"])
        if out["role"] == "tool":
            out["tool_call_id"] = message.get("tool_call_id", "")
            if message.get("tool_name"):
                out["name"] = message["tool_name"]
        messages.append(out)
    args: dict[str, Any] = {"messages": messages}
    options = body.get("options") or {}
    for name in _OPTIONS_TO_OPENAI:
        if options.get(name) is not None:
            args[name] = options[name]
    if options.get("num_predict") is not None:
        args["max_tokens"] = options["num_predict"]
    if body.get("tools"):
        args["tools"] = body["tools"]
    fmt = body.get("format")
    if fmt == "json":
        args["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        args["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    return args


def _ollama_tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"function": {"name": c["function"]["name"], "arguments": _arguments_dict(c["function"].get("arguments"))}}
        for c in calls or []
    ]


def response_to_ollama(response: dict[str, Any], model: str, started: float) -> dict[str, Any]:
    """A chat.completion as the final (non-stream) Ollama /api/chat answer."""
    choice = response["choices"][0]
    message = choice.get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        out["tool_calls"] = _ollama_tool_calls(message["tool_calls"])
    usage = response.get("usage") or {}
    return {
        "model": model,
        "created_at": _now_iso(),
        "message": out,
        "done": True,
        "done_reason": "length" if choice.get("finish_reason") == "length" else "stop",
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "prompt_eval_count": usage.get("prompt_tokens", 0),
        "eval_count": usage.get("completion_tokens", 0),
    }


def chunk_to_ollama(chunk: dict[str, Any], model: str) -> dict[str, Any] | None:
    """One OpenAI chunk as an Ollama NDJSON stream line (None when it carries nothing to show).

    Tool-call deltas are not forwarded piecemeal: Ollama clients expect whole calls, which the
    final line carries (see `final_ollama_chunk`)."""
    choices = chunk.get("choices") or []
    if not choices:
        return None
    content = (choices[0].get("delta") or {}).get("content")
    if not content:
        return None
    return {
        "model": model,
        "created_at": _now_iso(),
        "message": {"role": "assistant", "content": content},
        "done": False,
    }


def final_ollama_chunk(response: dict[str, Any], model: str, started: float) -> dict[str, Any]:
    final = response_to_ollama(response, model, started)
    final["message"]["content"] = ""  # already streamed
    return final
