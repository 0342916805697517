"""Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

For Claude Code (`ANTHROPIC_BASE_URL`) and the Anthropic SDKs: the hub's aliases answer in
Anthropic's shapes, by translation onto `models-chat` (messages_translate), so routing,
failover, cache, budgets and usage are those of chat. The key may come as `x-api-key` (what
Anthropic clients send) or a Bearer token; `anthropic-version` is accepted whatever its value.
Errors are Anthropic's `{"type": "error", "error": {type, message}}`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade import messages_translate as tr
from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_anthropic
from aggregator.facade.llm_support import ToolStream, meta_headers, no_store
from aggregator.protocol.errors import RequestError

CHAT_TOOL = "models-chat"


@endpoint(limit="llm", body="json", render=render_anthropic)
async def create(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    args = tr.chat_arguments(body)
    if no_store(call.request):
        args["cache"] = "no-store"
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be a boolean", field="stream", reason="invalid_request_error")
    if stream:
        events = tr.MessageStream(body["model"])
        return ToolStream(
            call,
            CHAT_TOOL,
            {**args, "stream": True},
            media_type="text/event-stream",
            encode_chunk=events.chunk,
            encode_end=events.end,
            encode_error=tr.error_event,
        )
    answer = await call.structured(CHAT_TOOL, args)
    return Response(
        orjson.dumps(tr.message_of(answer, body["model"])),
        media_type="application/json",
        headers=meta_headers(answer, started, call.request_id),
    )


@endpoint(limit="llm", body="json", render=render_anthropic)
async def count_tokens(call: Call) -> Response:
    body = await call.json()
    tr.chat_arguments(body)  # the same checks as a real request
    return call.json_response({"input_tokens": tr.estimate_tokens(body)})


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(ctx, [("POST", "/v1/messages", create), ("POST", "/v1/messages/count_tokens", count_tokens)])
