"""OpenAI Responses API: `POST /v1/responses`, `GET|DELETE /v1/responses/{id}`, `GET .../input_items`.

Served by translation onto `models-chat` (responses_translate), so routing, failover, cache
rules, budgets and usage are those of chat. Responses are stored (responses_store) unless the
request says `store: false`, for `previous_response_id`, retrieval and input items. A `tools`
entry `{"type": "mcp", "server_label": "toolmux", ...}` makes the hub run its own tools for the
model (hub_tools): the run loops model call -> tool calls -> model call within the bounds of
`facades.hub_tools`, and reports each as `mcp_list_tools` / `mcp_call` / `mcp_approval_request`
output items. Streaming sends OpenAI's typed events (responses_stream).
"""

from __future__ import annotations

import time
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade import hub_tools
from aggregator.facade import responses_translate as tr
from aggregator.facade.base import FacadeContext
from aggregator.facade.event_stream import Emit, EventStream
from aggregator.facade.hub_tools import HubToolSet
from aggregator.facade.kit import Call, endpoint, mount, render_openai
from aggregator.facade.llm_support import ToolStream, meta_headers, no_store
from aggregator.facade.responses_store import ResponseStore, StoredResponse, open_store
from aggregator.facade.responses_stream import ResponseEvents
from aggregator.protocol.errors import ErrorCode, RequestError
from servers.kit.errors import structured_of

CHAT_TOOL = "models-chat"

_stores: weakref.WeakKeyDictionary[FacadeContext, ResponseStore] = weakref.WeakKeyDictionary()


def store_of(ctx: FacadeContext) -> ResponseStore:
    """The store of this hub (one per facade context, opened when its routes are mounted)."""
    store = _stores.get(ctx)
    if store is None:
        store = _stores[ctx] = open_store(ctx.data_dir)
    return store


@dataclass
class Plan:
    """A validated request: what the run needs, decided before any model call."""

    body: dict[str, Any]
    response_id: str
    created_at: int
    conversation: list[dict[str, Any]]  # the stored turns before this one
    input_items: list[dict[str, Any]]
    chat_tools: list[dict[str, Any]]
    hub: HubToolSet | None
    approvals: list[tuple[dict[str, Any], bool, str | None]]  # (request item, approved, reason)
    no_store: bool

    def is_hub_call(self, name: str) -> bool:
        """A call the hub runs: not one of the client's functions, and owned by the hub's tools."""
        return self.hub is not None and name not in self.client_functions and self.hub.owns(name)

    @property
    def client_functions(self) -> frozenset[str]:
        hub = self.hub.names if self.hub is not None else frozenset()
        return frozenset(t["function"]["name"] for t in self.chat_tools) - hub


def _not_found(response_id: str, field: str | None = None) -> RequestError:
    return RequestError(f"no response with id {response_id!r}", code=ErrorCode.NOT_FOUND, field=field)


def plan(call: Call, body: dict[str, Any]) -> Plan:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise RequestError("missing required parameter: 'model'", field="model", reason="missing_required_parameter")
    if body.get("background"):
        raise RequestError("background responses are not supported", field="background", reason="invalid_value")
    conversation: list[dict[str, Any]] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        stored = store_of(call.ctx).get(call.caller.name, str(previous))
        if stored is None:
            raise _not_found(str(previous), "previous_response_id")
        conversation = stored.conversation
    items = tr.input_items(body.get("input"))
    if not items and not conversation:
        raise RequestError("missing required parameter: 'input'", field="input", reason="missing_required_parameter")
    chat_tools, hub_entries = tr.function_tools(body.get("tools"))
    hub = hub_tools.hub_tool_set(call, hub_entries)
    return Plan(
        body=body,
        response_id=tr.new_id("resp"),
        created_at=int(time.time()),
        conversation=conversation,
        input_items=items,
        chat_tools=chat_tools + (hub.chat_tools() if hub else []),
        hub=hub,
        approvals=_approvals(items, conversation),
        no_store=no_store(call.request),
    )


def _approvals(
    items: list[dict[str, Any]], conversation: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], bool, str | None]]:
    requests = {i["id"]: i for i in conversation if i.get("type") == "mcp_approval_request"}
    answered = {i.get("approval_request_id") for i in conversation if i.get("type") == "mcp_call"}
    found: list[tuple[dict[str, Any], bool, str | None]] = []
    for index, item in enumerate(items):
        if item["type"] != "mcp_approval_response":
            continue
        request = requests.get(item.get("approval_request_id"))
        if request is None or request["id"] in answered:
            raise RequestError(
                "approval_request_id names no pending approval request of the previous response",
                field=f"input[{index}].approval_request_id",
                reason="invalid_value",
            )
        found.append((request, item.get("approve") is True, item.get("reason")))
    return found


class Run:
    """One response being produced: model rounds, hub tool calls, output items."""

    def __init__(self, call: Call, plan: Plan, events: ResponseEvents | None, emit: Emit | None = None) -> None:
        self.call = call
        self.plan = plan
        self.events = events
        self.emit = emit
        self.output: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.limits = call.ctx.facades.hub_tools

    async def execute(self) -> dict[str, Any]:
        plan = self.plan
        if plan.hub is not None and not any(i.get("type") == "mcp_list_tools" for i in plan.conversation):
            await self._whole(plan.hub.list_item())
        for request, approved, reason in plan.approvals:
            if approved:
                await self._hub_call(
                    hub_tools.call_item(request["name"], request["arguments"], approval_request_id=request["id"])
                )
            else:
                await self._whole(hub_tools.denied_item(request, reason))
        status, incomplete = "completed", None
        bound = anyio.fail_after(self.limits.max_seconds) if plan.hub is not None else nullcontext()
        with bound:
            for _ in range(self.limits.max_rounds if plan.hub is not None else 1):
                answer, items, held = await self._model_round()
                self.output.extend(items)
                if tr.finish_reason(answer) == "length":
                    status, incomplete = "incomplete", "max_output_tokens"
                if not held or not await self._hub_calls(held, any(i["type"] == "function_call" for i in items)):
                    break
            else:
                status, incomplete = "incomplete", "max_tool_calls"
        return self._finish(status, incomplete)

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of this run so far: instructions, earlier turns, the input, this output."""
        plan = self.plan
        items = plan.conversation + plan.input_items + self.output
        return tr.instructions_message(plan.body) + tr.chat_messages(items)

    async def _model_round(self) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        plan = self.plan
        args = tr.chat_arguments(plan.body, self.messages(), plan.chat_tools)
        if plan.no_store:
            args["cache"] = "no-store"
        if self.events is None:
            answer = await self.call.structured(CHAT_TOOL, args)
            self.answers.append(answer)
            message = tr.answer_message(answer)
            calls = message.get("tool_calls") or []
            held = [c for c in calls if plan.is_hub_call((c.get("function") or {}).get("name", ""))]
            own = {**message, "tool_calls": [c for c in calls if c not in held]}
            items = tr.output_items(own) if own.get("content") or own["tool_calls"] or not held else []
            return answer, items, held
        events = self.events

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message:
                events.feed(message)
                await self._flush()

        result = await self.call.tool(CHAT_TOOL, {**args, "stream": True}, progress=on_progress)
        answer = structured_of(result, CHAT_TOOL)
        self.answers.append(answer)
        items, held = events.finish_round(answer)
        await self._flush()
        return answer, items, held

    async def _flush(self) -> None:
        if self.events is not None and self.emit is not None:
            await self.events.flush(self.emit)

    async def _hub_calls(self, held: list[dict[str, Any]], client_has_calls: bool) -> bool:
        """Run (or ask approval for) the hub tool calls of a round; whether the model goes on."""
        assert self.plan.hub is not None
        asked = False
        for chat_call in held:
            function = chat_call.get("function") or {}
            name, arguments = function.get("name", ""), function.get("arguments") or "{}"
            if self.plan.hub.needs_approval(name):
                await self._whole(hub_tools.approval_request_item(name, arguments))
                asked = True
            else:
                await self._hub_call(hub_tools.call_item(name, arguments))
        return not asked and not client_has_calls

    async def _whole(self, item: dict[str, Any]) -> None:
        self.output.append(item)
        if self.events is not None:
            self.events.whole_item(item)
            await self._flush()

    async def _hub_call(self, item: dict[str, Any]) -> None:
        index = self.events.call_started(item) if self.events is not None else 0
        await self._flush()
        done = await hub_tools.run_call(self.call, item, self.limits.max_output_chars)
        self.output.append(done)
        if self.events is not None:
            self.events.call_done(done, index)
            await self._flush()

    def end_of_one_round(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The finished response of a run with no hub tools (one model call), streamed by ToolStream."""
        assert self.events is not None
        self.answers.append(answer)
        items, _ = self.events.finish_round(answer)
        self.output.extend(items)
        cut = tr.finish_reason(answer) == "length"
        return self._finish("incomplete" if cut else "completed", "max_output_tokens" if cut else None)

    def _finish(self, status: str, incomplete: str | None) -> dict[str, Any]:
        plan = self.plan
        response = tr.response_object(
            plan.body,
            plan.response_id,
            output=self.output,
            status=status,
            usage=tr.usage_of(self.answers),
            created_at=plan.created_at,
            incomplete=incomplete,
        )
        if plan.body.get("store", True) is not False:
            conversation = plan.conversation + plan.input_items + self.output
            stored = StoredResponse(response, plan.input_items, conversation)
            store_of(self.call.ctx).put(self.call.caller.name, stored)
        return response


@endpoint(limit="llm", body="json", render=render_openai)
async def create(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", field="stream", reason="invalid_type")
    prepared = plan(call, body)
    if not stream:
        run = Run(call, prepared, None)
        response = await run.execute()
        return call.json_response(response, headers=meta_headers(run.answers[-1], started, call.request_id))
    skeleton = tr.response_object(body, prepared.response_id, output=[], status="in_progress", usage=None)
    skeleton["created_at"] = prepared.created_at

    events = ResponseEvents(skeleton, prepared.is_hub_call)
    if prepared.hub is None and not prepared.approvals:  # one model call: the lean path of streamed chat
        return _one_call_stream(call, prepared, events)

    async def produce(emit: Emit) -> None:
        run = Run(call, prepared, events, emit)
        events.completed(await run.execute())
        await events.flush(emit)

    return EventStream(call, produce, encode_error=events.error_event)


def _one_call_stream(call: Call, prepared: Plan, events: ResponseEvents) -> ToolStream:
    run = Run(call, prepared, events)

    def chunk(message: str) -> bytes | None:
        events.feed(message)
        return events.take() or None

    def end(answer: dict[str, Any]) -> bytes:
        events.completed(run.end_of_one_round(answer))
        return events.take()

    args = tr.chat_arguments(prepared.body, run.messages(), prepared.chat_tools)
    if prepared.no_store:
        args["cache"] = "no-store"
    return ToolStream(
        call,
        CHAT_TOOL,
        {**args, "stream": True},
        media_type="text/event-stream",
        encode_chunk=chunk,
        encode_end=end,
        encode_error=events.error_event,
    )


@endpoint(limit="llm", render=render_openai)
async def retrieve(call: Call) -> Response:
    response_id = call.request.path_params["response_id"]
    stored = store_of(call.ctx).get(call.caller.name, response_id)
    if stored is None:
        raise _not_found(response_id)
    return call.json_response(stored.response)


@endpoint(limit="llm", render=render_openai)
async def delete(call: Call) -> Response:
    response_id = call.request.path_params["response_id"]
    if not store_of(call.ctx).delete(call.caller.name, response_id):
        raise _not_found(response_id)
    return call.json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@endpoint(limit="llm", render=render_openai)
async def input_items(call: Call) -> Response:
    response_id = call.request.path_params["response_id"]
    stored = store_of(call.ctx).get(call.caller.name, response_id)
    if stored is None:
        raise _not_found(response_id)
    query = call.request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise RequestError("'order' must be asc or desc", field="order", reason="invalid_value")
    limit = query.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise RequestError("'limit' must be between 1 and 100", field="limit", reason="invalid_value")
    items = stored.input_items if order == "asc" else list(reversed(stored.input_items))
    after = query.get("after")
    if after is not None:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[: int(limit)]
    return call.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > len(page),
        }
    )


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    store_of(ctx)
    return mount(
        ctx,
        [
            ("POST", "/v1/responses", create),
            ("GET", "/v1/responses/{response_id}", retrieve),
            ("DELETE", "/v1/responses/{response_id}", delete),
            ("GET", "/v1/responses/{response_id}/input_items", input_items),
        ],
    )
