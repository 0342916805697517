"""The hub's tool loop on `/v1/chat/completions`, opted into with the `toolmux_tools` field.

    {"model": "main", "messages": [...], "toolmux_tools": {"allowed_tools": ["storage-*"]}}

(`true` offers every tool the key may call). The hub offers those tools to the model next to the
request's own `tools`, runs each call the model makes of them as the caller (hub_tools), sends
the results back, and answers with the model's last turn; usage is summed over the rounds.
Calls of the request's own functions end the loop and go to the client as usual. Approvals have
no place in a chat completion: `require_approval` must be "never" (the default here). Streamed,
the client sees each round's text as it comes, without the hub's own tool calls.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.responses import Response

from aggregator.facade import hub_tools
from aggregator.facade.event_stream import Emit, EventStream
from aggregator.facade.kit import Call
from aggregator.facade.llm_support import meta_headers
from aggregator.facade.responses_translate import answer_message
from aggregator.protocol.errors import RequestError, ToolmuxError, openai_body
from servers.kit.errors import structured_of

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


Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Loop:
    """Model rounds and hub tool calls until the model answers (or a bound is reached)."""

    def __init__(self, call: Call, body: dict[str, Any], args: dict[str, Any]) -> None:
        hub = hub_tools.hub_tool_set(call, [_entry(body.get(FIELD))], field=FIELD)
        assert hub is not None
        self.call = call
        self.hub = hub
        self.limits = call.ctx.facades.hub_tools
        self.own = frozenset(t["function"]["name"] for t in args.get("tools") or [])
        self.args = {k: v for k, v in args.items() if k not in ("stream", "stream_options")}
        self.args["tools"] = [*(args.get("tools") or []), *hub.chat_tools()]
        self.messages = list(args["messages"])
        self.answers: list[dict[str, Any]] = []
        self.exhausted = False

    def is_hub(self, name: str) -> bool:
        return name not in self.own and self.hub.owns(name)

    async def run(self, ask: Ask) -> None:
        with anyio.fail_after(self.limits.max_seconds):
            for _ in range(self.limits.max_rounds):
                answer = await ask({**self.args, "messages": self.messages})
                self.answers.append(answer)
                message = answer_message(answer)
                calls = message.get("tool_calls") or []
                held = [c for c in calls if self.is_hub(c["function"]["name"])]
                if not held or len(held) != len(calls):
                    return
                await self._run_calls(message, held)
            self.exhausted = True

    async def _run_calls(self, message: dict[str, Any], held: list[dict[str, Any]]) -> None:
        self.messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": held})
        for chat_call in held:
            function = chat_call["function"]
            item = hub_tools.call_item(function["name"], function.get("arguments") or "")
            done = await hub_tools.run_call(self.call, item, self.limits.max_output_chars)
            text = done["output"] if done["error"] is None else f"error: {done['error']}"
            self.messages.append({"role": "tool", "tool_call_id": chat_call["id"], "content": text})

    def final(self) -> dict[str, Any]:
        return {k: v for k, v in self.answers[-1].items() if k != "toolmux"} | {"usage": _summed_usage(self.answers)}


async def chat_completion(call: Call, body: dict[str, Any], args: dict[str, Any]) -> Any:
    """Run the loop for a chat request whose `models-chat` arguments are `args`."""
    started = time.perf_counter()
    loop = Loop(call, body, args)
    if body.get("stream"):
        return EventStream(call, lambda emit: _stream(loop, body, emit), encode_error=_sse_error)
    await loop.run(lambda arguments: call.structured(CHAT_TOOL, arguments))
    headers = meta_headers(loop.answers[-1], started, call.request_id)
    headers["x-toolmux-hub-tool-rounds"] = str(len(loop.answers) - 1)
    return Response(orjson.dumps(loop.final()), media_type="application/json", headers=headers)


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _sse_error(error: ToolmuxError) -> bytes:
    return _sse(openai_body(error, ""))


async def _stream(loop: Loop, body: dict[str, Any], emit: Emit) -> None:
    """Each round's chunks as they come, less the hub's tool calls (and the finish that ends a round
    of them, since the loop goes on); then the usage of every round when asked, and [DONE]."""

    async def ask(arguments: dict[str, Any]) -> dict[str, Any]:
        hidden: set[int] = set()
        shown: set[int] = set()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            visible = _visible(orjson.loads(message), hidden, shown, loop.is_hub) if message else None
            if visible is not None:
                await emit(_sse(visible))

        result = await loop.call.tool(CHAT_TOOL, {**arguments, "stream": True}, progress=on_progress)
        return structured_of(result, CHAT_TOOL)

    await loop.run(ask)
    final = loop.final()
    head = {k: final.get(k) for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    tail = b""
    if loop.exhausted:  # the model was still calling tools: say it was cut short
        tail += _sse(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        tail += _sse(head | {"choices": [], "usage": final["usage"]})
    await emit(tail + b"data: [DONE]\n\n")


def _visible(
    chunk: dict[str, Any], hidden: set[int], shown: set[int], is_hub: Callable[[str], bool]
) -> dict[str, Any] | None:
    """`chunk` without the hub's tool calls (`hidden` / `shown`: the round's call slots so far);
    None when nothing is left for the client."""
    choices = chunk.get("choices") or []
    if not choices:
        return None  # a usage chunk: the sum of every round is sent at the end
    choice = dict(choices[0])
    delta = dict(choice.get("delta") or {})
    pieces = []
    for piece in delta.get("tool_calls") or []:
        name = (piece.get("function") or {}).get("name")
        if name and is_hub(name):
            hidden.add(int(piece.get("index") or 0))
        if int(piece.get("index") or 0) not in hidden:
            shown.add(int(piece.get("index") or 0))
            pieces.append(piece)
    if "tool_calls" in delta:
        delta["tool_calls"] = pieces
        if not pieces:
            del delta["tool_calls"]
    if choice.get("finish_reason") == "tool_calls" and hidden and not shown:
        choice["finish_reason"] = None  # a round of hub calls: the loop goes on
    if not delta and choice.get("finish_reason") is None:
        return None
    return {**chunk, "choices": [{**choice, "delta": delta}]}
