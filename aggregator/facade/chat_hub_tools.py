"""The hub's tool loop on `/v1/chat/completions`, opted into with the `toolmux_tools` field.

    {"model": "main", "messages": [...], "toolmux_tools": {"allowed_tools": ["storage-*"]}}

(`true` offers every tool the key may call). The hub offers those tools to the model next to the
request's own `tools`, runs each call the model makes of them as the caller (hub_tools), sends
the results back, and answers with the model's last turn; usage is summed over the rounds.
Calls of the request's own functions end the loop and go to the client as usual. Approvals have
no place in a chat completion: `require_approval` must be "never" (the default here). With
`stream: true` the answer is sent as chunks once the loop is done.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import orjson
from starlette.responses import Response

from aggregator.facade import hub_tools
from aggregator.facade.kit import Call
from aggregator.facade.llm_support import meta_headers
from aggregator.facade.responses_translate import answer_message
from aggregator.protocol.errors import RequestError

CHAT_TOOL = "models-chat"
FIELD = "toolmux_tools"


def _entry(spec: Any) -> dict[str, Any]:
    if spec is True:
        return {"require_approval": "never"}
    if isinstance(spec, dict):
        if spec.get("require_approval", "never") != "never":
            raise RequestError(
                f"{FIELD}.require_approval must be 'never' on chat completions (use /v1/responses for approvals)",
                field=f"{FIELD}.require_approval",
                reason="invalid_value",
            )
        return {**spec, "require_approval": "never"}
    raise RequestError(f"'{FIELD}' must be true or an object", field=FIELD, reason="invalid_type")


def _summed_usage(answers: list[dict[str, Any]]) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for answer in answers:
        for name in total:
            total[name] += int((answer.get("usage") or {}).get(name) or 0)
    return total


async def chat_completion(call: Call, body: dict[str, Any], args: dict[str, Any]) -> Response:
    """Run the loop for a chat request whose `models-chat` arguments are `args`."""
    started = time.perf_counter()
    hub = hub_tools.hub_tool_set(call, [_entry(body.get(FIELD))], field=FIELD)
    assert hub is not None
    limits = call.ctx.facades.hub_tools
    own = {t["function"]["name"] for t in args.get("tools") or []}
    args = {**args, "stream": False, "tools": [*(args.get("tools") or []), *hub.chat_tools()]}
    args.pop("stream_options", None)
    messages = list(args["messages"])
    answers: list[dict[str, Any]] = []
    with anyio.fail_after(limits.max_seconds):
        for _ in range(limits.max_rounds):
            answer = await call.structured(CHAT_TOOL, {**args, "messages": messages})
            answers.append(answer)
            message = answer_message(answer)
            calls = message.get("tool_calls") or []
            held = [c for c in calls if (name := c["function"]["name"]) not in own and hub.owns(name)]
            if not held or len(held) != len(calls):
                break
            messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": held})
            for chat_call in held:
                item = hub_tools.call_item(chat_call["function"]["name"], chat_call["function"].get("arguments") or "")
                done = await hub_tools.run_call(call, item, limits.max_output_chars)
                answer_text = done["output"] if done["error"] is None else f"error: {done['error']}"
                messages.append({"role": "tool", "tool_call_id": chat_call["id"], "content": answer_text})
    final = {k: v for k, v in answers[-1].items() if k != "toolmux"} | {"usage": _summed_usage(answers)}
    headers = meta_headers(answers[-1], started, call.request_id)
    headers["x-toolmux-hub-tool-rounds"] = str(len(answers) - 1)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Response(_as_sse(final, include_usage), media_type="text/event-stream", headers=headers)
    return Response(orjson.dumps(final), media_type="application/json", headers=headers)


def _as_sse(answer: dict[str, Any], include_usage: bool) -> bytes:
    """A finished chat completion as the chunks a streaming client expects."""
    base = {"id": answer.get("id", ""), "object": "chat.completion.chunk", "created": answer.get("created", 0)}
    base["model"] = answer.get("model", "")
    message = answer_message(answer)
    choice = (answer.get("choices") or [{}])[0]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
    chunks = [
        base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]},
    ]
    if include_usage:
        chunks.append(base | {"choices": [], "usage": answer["usage"]})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
