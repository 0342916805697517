"""HTTP face of the web server, routed onto its tools through the hub's dispatch path.

    POST /web/search   body = `web-search` arguments, e.g. {"query": "sqlite wal mode"}
    POST /web/fetch    body = `web-fetch` arguments, e.g. {"url": "https://example.org/", "max_chars": 5000}

The tools' input schemas follow OpenAI's strict rules (every field required, null for the
default); over HTTP a field left out means null, so a body needs only what it sets. Answers are
the tools' structured results as JSON; errors are `{"error": {code, message, field?,
request_id}}` with the status the error code maps to (400 bad input, 403 refused address, 415
unreadable document, 429 rate limited, 504 timeout). Limits: the `facades.web` config entry.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

import schemas
from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount

SERVER = "web"


@cache
def _fields(tool: str) -> tuple[str, ...]:
    return tuple(schemas.tool(SERVER, tool)["inputSchema"].get("properties", {}))


def _with_nulls(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` with every field of the tool's contract that the body left out set to null."""
    return {**dict.fromkeys(_fields(tool)), **arguments}


async def _answer(call: Call, tool: str) -> Response:
    arguments = _with_nulls(tool, await call.json())
    return call.json_response(await call.structured(f"{SERVER}-{tool}", arguments))


@endpoint(limit="web", body="json")
async def search(call: Call) -> Response:
    return await _answer(call, "search")


@endpoint(limit="web", body="json")
async def fetch(call: Call) -> Response:
    return await _answer(call, "fetch")


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(ctx, [("POST", "/web/search", search), ("POST", "/web/fetch", fetch)])
