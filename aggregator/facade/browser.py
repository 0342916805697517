"""HTTP face of the browser server, routed onto its tools through the hub's dispatch path.

    POST /browser/              {"action": "<tool>", ...that tool's arguments}  -> the tool's result as JSON
    GET  /browser/screenshot    ?session=&full_page=&selector=&width=&height=   -> image/png bytes

Every browser tool is an action (goto, snapshot, click, fill, run_script, close_session, ...).
Sessions belong to the API key: the same `session` name with the same key is the same browser
context. Errors are `{"error": {code, message, field?, request_id}}` with the status the error
code maps to (400 bad input, 403 refused by the navigation policy, 404 unknown action or lost
session, 504 timeout). The screenshot route fetches the PNG back from storage (where the tool
saved it) through `storage-get_object`, or takes it inline when the server runs without storage.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

import schemas
from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount
from aggregator.protocol.errors import ErrorCode, RequestError
from servers.kit import ToolError

SERVER = "browser"
SCREENSHOT_PARAMS = {"session": str, "selector": str, "ref": str, "full_page": bool, "width": int, "height": int}


def _actions() -> list[str]:
    return [tool["name"] for tool in schemas.load(SERVER)["tools"]]


def _screenshot_args(request: Request) -> dict[str, Any]:
    """The screenshot tool's arguments from the query string, typed."""
    args: dict[str, Any] = {}
    for name, value in request.query_params.items():
        kind = SCREENSHOT_PARAMS.get(name)
        if kind is None:
            if name == "api_key":
                continue
            raise RequestError(f"unknown query parameter {name!r}; known: {', '.join(SCREENSHOT_PARAMS)}", field=name)
        if kind is bool:
            args[name] = value.lower() in ("1", "true", "yes")
        elif kind is int:
            if not value.isdigit():
                raise RequestError(f"{name} must be a whole number", field=name)
            args[name] = int(value)
        else:
            args[name] = value
    return args


@endpoint(limit="browser", body="json")
async def act(call: Call) -> Response:
    body = await call.json()
    action = body.pop("action", None)
    if not isinstance(action, str) or not action:
        raise RequestError(f"'action' is required: one of {', '.join(_actions())}", field="action")
    if action not in _actions():
        raise RequestError(
            f"unknown action {action!r}; actions: {', '.join(_actions())}", code=ErrorCode.NOT_FOUND, field="action"
        )
    return call.json_response(await call.structured(f"{SERVER}-{action}", body))


@endpoint(limit="browser")
async def screenshot(call: Call) -> Response:
    result = await call.tool(f"{SERVER}-screenshot", _screenshot_args(call.request))
    shot = (result.get("structuredContent") or {}).get("screenshot") or {}
    png = await _png_of(call, result, shot)
    headers = {"x-request-id": call.request_id, "cache-control": "no-store"}
    if shot.get("url"):
        headers["x-screenshot-url"] = str(shot["url"])
    return Response(png, media_type="image/png", headers=headers)


async def _png_of(call: Call, result: dict[str, Any], shot: dict[str, Any]) -> bytes:
    """The PNG bytes: fetched back from storage where the tool saved them, or inline."""
    encoded: Any = None
    if shot.get("bucket") and shot.get("key"):
        stored = await call.tool("storage-get_object", {"bucket": shot["bucket"], "key": shot["key"]})
        encoded = (stored.get("structuredContent") or {}).get("base64")
    else:
        for block in result.get("content", []):
            if block.get("type") == "image" and block.get("mimeType") == "image/png":
                encoded = block.get("data")
    if not isinstance(encoded, str):
        raise ToolError("the screenshot came back without image data", code=ErrorCode.UPSTREAM_ERROR)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError("the screenshot came back garbled", code=ErrorCode.UPSTREAM_ERROR) from None


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(ctx, [("POST", "/browser/", act), ("GET", "/browser/screenshot", screenshot)])
