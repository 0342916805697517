"""Anthropic Messages shapes <-> the chat shapes of `models-chat` (plain functions and one encoder).

The reverse of `servers/models/translate_anthropic.py` (which speaks Messages to a backend):
here a client speaks Messages to toolmux. `system` and content blocks become chat messages
(`tool_use` -> assistant tool calls, `tool_result` -> tool messages); a chat answer becomes a
`message` with text and `tool_use` blocks; `MessageStream` turns chat chunks into Anthropic's
events in Anthropic's order.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson

from aggregator.protocol.errors import RequestError, ToolmuxError, anthropic_body

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _invalid(message: str, field: str) -> RequestError:
    return RequestError(message, field=field, reason="invalid_request_error")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_turn(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """A user turn's blocks: its tool results first (tool messages), then its text and images."""
    messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise _invalid(f"{where}.content[{index}] must be an object", f"{where}.content[{index}]")
        kind = block.get("type")
        if kind == "tool_result":
            text = _text(block.get("content"))
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": f"error: {text}" if block.get("is_error") else text,
                }
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block))
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        content: Any = "".join(p["text"] for p in parts) if only_text else parts
        messages.append({"role": "user", "content": content})
    return messages


def _assistant_turn(blocks: list[Any]) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages: a non-empty list is required", "messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _invalid(f"{where}.role must be user or assistant", f"{where}.role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise _invalid(f"{where}.content must be a string or a list of blocks", f"{where}.content")
        if message["role"] == "user":
            messages.extend(_user_turn(blocks, where))
        else:
            messages.append(_assistant_turn(blocks))
    return messages


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind or "", "auto")


def chat_arguments(body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _invalid("model: field required", "model")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _invalid("max_tokens must be a positive integer", "max_tokens")
    args: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body)}
    if max_tokens is not None:
        args["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            args[name] = body[name]
    if body.get("stop_sequences"):
        args["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if tools:
        args["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description") or "",
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
        if body.get("tool_choice") is not None:
            args["tool_choice"] = _tool_choice(body["tool_choice"])
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        args["user"] = user
    return args


def _usage(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage") or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _arguments(raw: Any) -> Any:
    try:
        parsed = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def stop_reason(answer: dict[str, Any]) -> str:
    choice = (answer.get("choices") or [{}])[0]
    return STOP_REASON.get(choice.get("finish_reason") or "stop", "end_turn")


def message_of(answer: dict[str, Any], model: str, message_id: str | None = None) -> dict[str, Any]:
    """A chat answer as an Anthropic `message`."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_message_id("toolu"),
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(answer),
        "stop_sequence": None,
        "usage": _usage(answer),
    }


def new_message_id(prefix: str = "msg") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def estimate_tokens(body: dict[str, Any]) -> int:
    """A rough count (4 characters a token) of what the model would read: enough to budget a prompt."""
    text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])
    return max(1, math.ceil(len(text) / 4))


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def error_event(error: ToolmuxError) -> bytes:
    body = anthropic_body(error, "")
    return event("error", {"error": body["error"]})


class MessageStream:
    """Chat chunks -> Anthropic stream events, for one streamed answer."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.message_id = new_message_id()
        self.started = False
        self.index = -1
        self.block: str | None = None  # "text", or the chat tool-call slot of the open tool_use block
        self.slots: dict[int, int] = {}

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        usage = {"input_tokens": 0, "output_tokens": 0}
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [event("message_start", {"message": message}), event("ping", {})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.index += 1
        self.block = kind
        return [*events, event("content_block_start", {"index": self.index, "content_block": block})]

    def _close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [event("content_block_stop", {"index": self.index})]

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        text = delta.get("content")
        if text:
            if self.block != "text":
                events += self._open("text", {"type": "text", "text": ""})
            events.append(
                event("content_block_delta", {"index": self.index, "delta": {"type": "text_delta", "text": text}})
            )
        for piece in delta.get("tool_calls") or []:
            slot = int(piece.get("index") or 0)
            function = piece.get("function") or {}
            if self.block != f"tool{slot}":
                block = {
                    "type": "tool_use",
                    "id": piece.get("id") or new_message_id("toolu"),
                    "name": function.get("name", ""),
                    "input": {},
                }
                events += self._open(f"tool{slot}", block)
            if function.get("arguments"):
                json_delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
                events.append(event("content_block_delta", {"index": self.index, "delta": json_delta}))
        return events

    def chunk(self, message: str) -> bytes | None:
        data = orjson.loads(message)
        events = self._start()
        for choice in data.get("choices") or []:
            if choice.get("index", 0) == 0:
                events += self._delta(choice.get("delta") or {})
        return b"".join(events) or None

    def end(self, answer: dict[str, Any]) -> bytes:
        events: list[bytes] = []
        if not self.started:  # the answer came whole (a cached one): send it as deltas
            events += self._start()
            message = (answer.get("choices") or [{}])[0].get("message") or {}
            calls = [{"index": i, **c} for i, c in enumerate(message.get("tool_calls") or [])]
            events += self._delta({"content": message.get("content"), "tool_calls": calls})
        events += self._close()
        usage = _usage(answer)
        delta = {"delta": {"stop_reason": stop_reason(answer), "stop_sequence": None}, "usage": usage}
        events += [event("message_delta", delta), event("message_stop", {})]
        return b"".join(events)
