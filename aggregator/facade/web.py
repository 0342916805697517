"""HTTP face of the web server, routed onto its tools through the hub's dispatch path.

    POST /web/search   body = `web-search` arguments, e.g. {"query": "sqlite wal mode"}
    POST /web/fetch    body = `web-fetch` arguments, e.g. {"url": "https://example.org/", "max_chars": 5000}

The tools' input schemas follow OpenAI's strict rules (every field required, null for the
default); over HTTP a field left out means null, so a body needs only what it sets. Answers are
the tools' structured results as JSON; errors are `{"error": {code, message, field?,
request_id}}` with the status the error code maps to (400 bad input, 403 refused address, 415
unreadable document, 429 rate limited, 504 timeout).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import schemas
from aggregator.facade.base import FacadeContext, request_id_of
from aggregator.facade.common import call_structured, guarded_endpoint, json_object, json_response, read_capped
from aggregator.principal import Principal

SERVER = "web"
MAX_BODY_BYTES = 64 * 1024
# The server bounds each fetch (fetch.timeout_s, render.timeout_s); this bounds the HTTP request.
REQUEST_TIMEOUT_S = 660.0


@cache
def _fields(tool: str) -> tuple[str, ...]:
    return tuple(schemas.tool(SERVER, tool)["inputSchema"].get("properties", {}))


def _with_nulls(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` with every field of the tool's contract that the body left out set to null."""
    return {**dict.fromkeys(_fields(tool)), **arguments}


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    def endpoint(tool: str) -> Callable[[Request], Awaitable[Response]]:
        async def answer(principal: Principal, request: Request) -> Response:
            body = json_object(
                await read_capped(request, MAX_BODY_BYTES),
                not_object=f"body must be a JSON object of {SERVER}-{tool} arguments",
            )
            result = await call_structured(ctx, principal, request, f"{SERVER}-{tool}", _with_nulls(tool, body))
            return json_response(result, request_id_of(request))

        return guarded_endpoint(ctx, answer, REQUEST_TIMEOUT_S)

    return [
        Route("/web/search", endpoint("search"), methods=["POST"]),
        Route("/web/fetch", endpoint("fetch"), methods=["POST"]),
    ]
