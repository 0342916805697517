"""OpenAI Responses shapes <-> the chat shapes of `models-chat` (plain functions, no I/O).

A Responses request becomes chat arguments: `instructions` and the stored conversation
(`previous_response_id`) come first, then the input items (a string is one user message);
`function_call` / `function_call_output` items become assistant tool calls and tool messages,
and so do `mcp_call` items, so the model sees what the hub's tools answered before. A chat
answer becomes output items: a `message` with `output_text`, one `function_call` per tool call.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from aggregator.protocol.errors import RequestError

# Request fields passed to models-chat under another name (or the same one).
_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_tokens", "user": "user"}
HUB_SERVER_LABEL = "toolmux"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def invalid(message: str, field: str) -> RequestError:
    return RequestError(message, field=field, reason="invalid_value")


# ---- input ---------------------------------------------------------------------------------------


def input_items(raw: Any) -> list[dict[str, Any]]:
    """The request's `input` as a list of items, each with an id (what `input_items` lists later)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list):
        raise RequestError("'input' must be a string or a list of items", field="input", reason="invalid_type")
    items: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestError(f"input[{index}] must be an object", field=f"input[{index}]", reason="invalid_type")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind is None:
            raise invalid(f"input[{index}] has no 'type'", f"input[{index}].type")
        _check_item(item, kind, f"input[{index}]")
        normal = {**item, "type": kind}
        if kind == "message" and isinstance(normal.get("content"), str):
            text_type = "output_text" if normal.get("role") == "assistant" else "input_text"
            normal["content"] = [{"type": text_type, "text": normal["content"]}]
        normal.setdefault("id", new_id(_ID_PREFIX.get(kind, "item")))
        items.append(normal)
    return items


# Fields each item type must carry as strings (what the translation reads).
_REQUIRED = {
    "function_call": ("name", "call_id"),
    "function_call_output": ("call_id",),
    "mcp_call": ("name",),
    "mcp_approval_response": ("approval_request_id",),
}
_ROLES = ("user", "assistant", "system", "developer")


def _check_item(item: dict[str, Any], kind: str, where: str) -> None:
    for name in _REQUIRED.get(kind, ()):
        if not isinstance(item.get(name), str):
            raise RequestError(
                f"{where}.{name} is required", field=f"{where}.{name}", reason="missing_required_parameter"
            )
    if kind == "message":
        if item.get("role", "user") not in _ROLES:
            raise invalid(f"{where}.role must be one of {', '.join(_ROLES)}", f"{where}.role")
        if not isinstance(item.get("content"), str | list):
            raise RequestError(
                f"{where}.content must be a string or a list", field=f"{where}.content", reason="invalid_type"
            )


_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "mcp_approval_response": "mcpr"}


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        str(p.get("text") or p.get("refusal") or "")
        for p in content
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text", "refusal")
    )


def _user_content(content: Any) -> Any:
    """User content as chat content: a string, or parts when there are images."""
    if isinstance(content, str) or not isinstance(content, list):
        return _parts_text(content)
    images = [p for p in content if isinstance(p, dict) and p.get("type") == "input_image"]
    if not images:
        return _parts_text(content)
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
    return parts


def _tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else orjson_text(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def orjson_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _append_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and last.get("_open"):
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call], "_open": True})


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversation items as chat messages (items the model need not see are left out)."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role", "user")
            if role == "assistant":
                messages.append({"role": "assistant", "content": _parts_text(item.get("content")), "_open": True})
            elif role in ("system", "developer"):
                messages.append({"role": role, "content": _parts_text(item.get("content"))})
            else:
                messages.append({"role": "user", "content": _user_content(item.get("content"))})
        elif kind == "function_call":
            _append_call(messages, _tool_call(item.get("call_id") or item["id"], item["name"], item.get("arguments")))
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id", ""),
                    "content": output if isinstance(output, str) else _parts_text(output),
                }
            )
        elif kind == "mcp_call":
            _append_call(messages, _tool_call(item["id"], item["name"], item.get("arguments") or "{}"))
            answer = item.get("output") if item.get("error") is None else f"error: {item['error']}"
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": str(answer or "")})
    for message in messages:
        message.pop("_open", None)
    return messages


# ---- tools and options ---------------------------------------------------------------------------


def function_tools(tools: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(chat tools for the caller's functions, the hub's mcp tool entries)`; other kinds are a 400."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise RequestError("'tools' must be a list", field="tools", reason="invalid_type")
    chat: list[dict[str, Any]] = []
    hub: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        field = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise RequestError(f"{field} must be an object", field=field, reason="invalid_type")
        kind = tool.get("type")
        if kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise invalid(f"{field}.name is required", f"{field}.name")
            function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
            if tool.get("description"):
                function["description"] = tool["description"]
            chat.append({"type": "function", "function": function})
        elif kind == "mcp" and tool.get("server_label") == HUB_SERVER_LABEL and not tool.get("server_url"):
            hub.append(tool)
        elif kind == "mcp":
            raise RequestError(
                f"{field}: only the hub's own tools are served (server_label {HUB_SERVER_LABEL!r}, no server_url)",
                field=f"{field}.server_label",
                reason="invalid_value",
            )
        else:
            raise RequestError(
                f"{field}: tool type {kind!r} is not supported here (use 'function', or 'mcp' for the hub's tools)",
                field=f"{field}.type",
                reason="invalid_value",
            )
    return chat, hub


def chat_tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") in ("function", "mcp") and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict) and choice.get("type") in ("auto", "none", "required"):
        return choice["type"]
    raise invalid("'tool_choice' must be auto, none, required or {type: function, name}", "tool_choice")


def chat_arguments(body: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """models-chat arguments for a Responses request over `messages`."""
    args: dict[str, Any] = {"model": body["model"], "messages": messages}
    for source, target in _SAMPLING.items():
        if body.get(source) is not None:
            args[target] = body[source]
    if tools:
        args["tools"] = tools
        if body.get("tool_choice") is not None:
            args["tool_choice"] = chat_tool_choice(body["tool_choice"])
        if body.get("parallel_tool_calls") is not None:
            args["parallel_tool_calls"] = body["parallel_tool_calls"]
    response_format = _response_format((body.get("text") or {}).get("format"))
    if response_format is not None:
        args["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort")
    if isinstance(effort, str):
        args["reasoning_effort"] = effort
    return args


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise invalid("text.format.type must be text, json_object or json_schema", "text.format.type")


def instructions_message(body: dict[str, Any]) -> list[dict[str, Any]]:
    instructions = body.get("instructions")
    if instructions is None:
        return []
    if not isinstance(instructions, str):
        raise RequestError("'instructions' must be a string", field="instructions", reason="invalid_type")
    return [{"role": "system", "content": instructions}]


# ---- output --------------------------------------------------------------------------------------


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else [],
    }


def function_call_item(call: dict[str, Any], item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id or new_id("fc"),
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name", ""),
        "arguments": function.get("arguments") or "",
        "status": status,
    }


def answer_message(answer: dict[str, Any]) -> dict[str, Any]:
    choices = answer.get("choices") or [{}]
    message = choices[0].get("message") or {}
    return message if isinstance(message, dict) else {}


def finish_reason(answer: dict[str, Any]) -> str | None:
    choices = answer.get("choices") or [{}]
    reason = choices[0].get("finish_reason")
    return reason if isinstance(reason, str) else None


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat answer's message as output items (text first, then each tool call)."""
    items: list[dict[str, Any]] = []
    text = message.get("content") or ""
    if text or not message.get("tool_calls"):
        items.append(message_item(text))
    items.extend(function_call_item(call) for call in message.get("tool_calls") or [])
    return items


def usage_of(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Responses usage summed over the model calls of one response."""
    prompt = completion = cached = 0
    for answer in answers:
        usage = answer.get("usage") or {}
        prompt += int(usage.get("prompt_tokens") or 0)
        completion += int(usage.get("completion_tokens") or 0)
        cached += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(
    body: dict[str, Any],
    response_id: str,
    *,
    output: list[dict[str, Any]],
    status: str,
    usage: dict[str, Any] | None,
    created_at: int | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The `response` object, echoing the request's settings as OpenAI does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
