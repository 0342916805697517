"""`/v1/chat/completions` with a model named `workspace:<alias>`: a workspace run as a chat answer.

    POST /v1/chat/completions   {"model": "workspace:main", "messages": [...], "stream": false}
    X-Toolmux-Workspace: clients/acme     (required) the workspace the agent works in
    X-Toolmux-Continue: true              continue the workspace's latest session; a session id
                                          resumes that session; absent/false starts a new one

`<alias>` is a models alias for the built-in agent (empty: the server's default model);
`workspace:agent:<name>` runs the external agent `<name>` instead. The last user message is the
prompt (earlier turns live in the session, not in the request); system messages are appended
to the agent's system prompt; `response_format` json_schema and `reasoning_effort` pass through.
The answer is a chat.completion whose content is the run's result; headers carry the run id,
session id, turns and cost. Streaming sends the agent's activity (assistant notes, tool calls)
as `delta.reasoning_content` while it works, then the result as `delta.content`. A client that
disconnects cancels the run. The openai facade delegates here; this module owns nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aggregator.facade.kit import CLIENT_GONE, Call
from aggregator.facade.llm_support import ToolStream
from aggregator.facade.workspaces import until_disconnect
from aggregator.protocol.errors import RequestError, ToolmuxError, as_code

WORKSPACE_MODEL_PREFIX = "workspace:"
RUN_TOOL = "workspaces-run"
WORKSPACE_HEADER = "x-toolmux-workspace"
CONTINUE_HEADER = "x-toolmux-continue"

ErrorChunk = Callable[[ToolmuxError], bytes]


def is_workspace_model(body: dict[str, Any]) -> bool:
    model = body.get("model")
    return isinstance(model, str) and model.startswith(WORKSPACE_MODEL_PREFIX)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def run_arguments(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The `workspaces-run` arguments for a chat request."""
    workspace = request.headers.get(WORKSPACE_HEADER)
    if not workspace:
        raise RequestError(
            "a workspace model needs the X-Toolmux-Workspace header naming the workspace",
            field=WORKSPACE_HEADER,
            reason="missing_required_parameter",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "missing required parameter: 'messages'", field="messages", reason="missing_required_parameter"
        )
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    prompt = _text(users[-1].get("content")) if users else ""
    if not prompt.strip():
        raise RequestError("the last user message must have text: it is the task", field="messages")
    args: dict[str, Any] = {"prompt": prompt, "workspace": workspace}
    target = str(body["model"])[len(WORKSPACE_MODEL_PREFIX) :]
    if target.startswith("agent:"):
        args["agent"] = target[len("agent:") :]
    elif target:
        args["model"] = target
    system = "\n\n".join(
        _text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )
    if system.strip():
        args["append_system_prompt"] = system
    follow = (request.headers.get(CONTINUE_HEADER) or "").strip()
    if follow.lower() in ("", "0", "false", "no"):
        args["no_continue"] = True
    elif follow.lower() not in ("1", "true", "yes"):
        args["resume"] = follow
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            args["json_schema"] = schema
    if isinstance(body.get("reasoning_effort"), str):
        args["effort"] = body["reasoning_effort"]
    return args


def _headers(answer: dict[str, Any], request_id: str) -> dict[str, str]:
    return {
        "x-request-id": request_id,
        "x-toolmux-run-id": str(answer.get("run_id", "")),
        "x-toolmux-session-id": str(answer.get("session_id", "")),
        "x-toolmux-run-status": str(answer.get("status", "")),
        "x-toolmux-turns": str(answer.get("num_turns", 0)),
        "x-toolmux-cost": f"{float(answer.get('total_cost') or 0.0):.8f}",
    }


def _run_error(answer: dict[str, Any]) -> ToolmuxError:
    return ToolmuxError(
        f"the workspace run {answer.get('run_id')} ended with {answer.get('status')}: {answer.get('result')}",
        code=as_code(str(answer.get("error_code") or "upstream_error")),
    )


def _completion(answer: dict[str, Any], model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{answer.get('run_id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer.get("result", "")}, "finish_reason": "stop"}
        ],
        "usage": answer.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def chat_completion(call: Call, body: dict[str, Any], *, error_chunk: ErrorChunk) -> Any:
    """Answer a `workspace:` chat request (errors raised for the endpoint to render)."""
    args = run_arguments(call.request, body)
    model = str(body["model"])
    if body.get("stream"):
        return _stream(call, args, model, body, error_chunk)

    async def run() -> dict[str, Any]:
        return await call.structured(RUN_TOOL, args)

    call.extend(call.ctx.facades.workspaces_runs.timeout)  # the server's run_timeout is the real bound
    finished, answer = await until_disconnect(call.request, run)
    if not finished:
        return Response(status_code=CLIENT_GONE)
    if answer.get("is_error"):
        response = call.spec.render(_run_error(answer), call.request_id)
        response.headers.update(_headers(answer, call.request_id))
        return response
    return Response(
        orjson.dumps(_completion(answer, model)),
        media_type="application/json",
        headers=_headers(answer, call.request_id),
    )


def _stream(call: Call, args: dict[str, Any], model: str, body: dict[str, Any], error_chunk: ErrorChunk) -> ToolStream:
    completion_id = f"chatcmpl-{call.request_id}"
    created = int(time.time())
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    started = False

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        nonlocal started
        if not started:
            delta = {"role": "assistant", **delta}
            started = True
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        data["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        data.update(extra)
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def on_event(message: str) -> bytes | None:
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        kind = event.get("event")
        if kind == "run_started":
            note = f"[run {event.get('run_id')} in session {event.get('session_id')}]\n"
        elif kind == "assistant" and event.get("tool_calls"):
            text = str(event.get("text") or "").strip()
            note = (text + "\n" if text else "") + f"-> {', '.join(event['tool_calls'])}\n"
        elif kind == "tool_result":
            note = f"   {event.get('name')}: {'error' if event.get('is_error') else 'done'}\n"
        else:
            return None
        return chunk({"content": "", "reasoning_content": note})

    def end(answer: dict[str, Any]) -> bytes:
        if answer.get("is_error"):
            error = _run_error(answer)
            return error_chunk(error) + b"data: [DONE]\n\n"
        out = chunk({"content": answer.get("result", "")}) + chunk({}, "stop")
        if include_usage:
            usage = answer.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
            out += b"data: " + orjson.dumps({**data, "choices": [], "usage": usage}) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    return ToolStream(
        call,
        RUN_TOOL,
        args,
        media_type="text/event-stream",
        encode_chunk=on_event,
        encode_end=end,
        encode_error=error_chunk,
        timeout=call.ctx.facades.workspaces_runs.timeout,  # the server's run_timeout is the real bound
    )
