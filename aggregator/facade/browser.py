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
from starlette.routing import BaseRoute, Route

import schemas
from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.common import (
    call_structured,
    call_tool,
    guarded_endpoint,
    json_object,
    json_response,
    read_capped,
)
from aggregator.principal import Principal
from servers.kit import ToolError

SERVER = "browser"
MAX_BODY_BYTES = 32 * 1024 * 1024  # upload_file carries files inline as base64
# run_script may run for 600 s; the tools enforce their own limits, this bounds the HTTP request.
REQUEST_TIMEOUT_S = 660.0
SCREENSHOT_PARAMS = {"session": str, "selector": str, "ref": str, "full_page": bool, "width": int, "height": int}


def _actions() -> list[str]:
    return [tool["name"] for tool in schemas.load(SERVER)["tools"]]


async def _read_json(request: Request) -> dict[str, Any]:
    return json_object(
        await read_capped(request, MAX_BODY_BYTES),
        not_object='body must be a JSON object: {"action": ..., ...arguments}',
    )


def _screenshot_args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, value in request.query_params.items():
        kind = SCREENSHOT_PARAMS.get(name)
        if kind is None:
            if name == "api_key":
                continue
            raise FacadeHTTPError(
                400,
                f"unknown query parameter {name!r}; known: {', '.join(SCREENSHOT_PARAMS)}",
                code="invalid_argument",
                param=name,
            )
        if kind is bool:
            args[name] = value.lower() in ("1", "true", "yes")
        elif kind is int:
            if not value.isdigit():
                raise FacadeHTTPError(400, f"{name} must be a whole number", code="invalid_argument", param=name)
            args[name] = int(value)
        else:
            args[name] = value
    return args


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    async def call(principal: Principal, request: Request, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await call_tool(ctx, principal, request, f"{SERVER}-{tool}", arguments)

    async def act(principal: Principal, request: Request) -> Response:
        body = await _read_json(request)
        action = body.pop("action", None)
        if not isinstance(action, str) or not action:
            raise FacadeHTTPError(
                400,
                f"'action' is required: one of {', '.join(_actions())}",
                code="invalid_argument",
                param="action",
            )
        if action not in _actions():
            raise FacadeHTTPError(
                404,
                f"unknown action {action!r}; actions: {', '.join(_actions())}",
                code="not_found",
                param="action",
            )
        structured = await call_structured(ctx, principal, request, f"{SERVER}-{action}", body)
        return json_response(structured, request_id_of(request))

    async def screenshot(principal: Principal, request: Request) -> Response:
        result = await call(principal, request, "screenshot", _screenshot_args(request))
        shot = (result.get("structuredContent") or {}).get("screenshot") or {}
        png = await _png_of(principal, request, result, shot)
        headers = {"x-request-id": request_id_of(request), "cache-control": "no-store"}
        if shot.get("url"):
            headers["x-screenshot-url"] = str(shot["url"])
        return Response(png, media_type="image/png", headers=headers)

    async def _png_of(principal: Principal, request: Request, result: dict[str, Any], shot: dict[str, Any]) -> bytes:
        encoded: Any = None
        if shot.get("bucket") and shot.get("key"):
            stored = await _get_object(principal, request, shot)
            encoded = stored.get("base64")
        else:
            for block in result.get("content", []):
                if block.get("type") == "image" and block.get("mimeType") == "image/png":
                    encoded = block.get("data")
        if not isinstance(encoded, str):
            raise ToolError("the screenshot came back without image data", code="upstream_error")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("the screenshot came back garbled", code="upstream_error") from None

    async def _get_object(principal: Principal, request: Request, shot: dict[str, Any]) -> dict[str, Any]:
        result = await call_tool(
            ctx, principal, request, "storage-get_object", {"bucket": shot["bucket"], "key": shot["key"]}
        )
        return result.get("structuredContent") or {}

    return [
        Route("/browser/", guarded_endpoint(ctx, act, REQUEST_TIMEOUT_S), methods=["POST"]),
        Route("/browser/screenshot", guarded_endpoint(ctx, screenshot, REQUEST_TIMEOUT_S), methods=["GET"]),
    ]
