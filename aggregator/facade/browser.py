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
import json
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import schemas
from aggregator.facade.base import (
    FacadeContext,
    FacadeHTTPError,
    json_error,
    raise_for_result,
    request_id_of,
    status_for,
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


def _json(body: Any, request_id: str, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers={"x-request-id": request_id}
    )


async def _read_json(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise FacadeHTTPError(413, f"body larger than {MAX_BODY_BYTES} bytes", code="too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FacadeHTTPError(413, f"body larger than {MAX_BODY_BYTES} bytes", code="too_large")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks) or b"null")
    except ValueError as exc:
        raise FacadeHTTPError(400, f"body is not valid JSON: {exc}", code="invalid_request") from None
    if not isinstance(data, dict):
        raise FacadeHTTPError(400, 'body must be a JSON object: {"action": ..., ...arguments}', code="invalid_request")
    return data


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
        result = await ctx.call_tool(principal, f"{SERVER}-{tool}", arguments, request_id=request_id_of(request))
        return raise_for_result(result)

    async def guarded(request: Request, work: Any) -> Response:
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            with anyio.fail_after(REQUEST_TIMEOUT_S):
                return await work(principal)
        except FacadeHTTPError as exc:
            return json_error(
                exc.status, exc.message, code=exc.code, field=exc.param, request_id=request_id, headers=exc.headers
            )
        except ToolError as exc:
            headers = {"retry-after": f"{exc.retry_after:g}"} if exc.retry_after is not None else None
            return json_error(
                status_for(exc), exc.message, code=exc.code, field=exc.field, request_id=request_id, headers=headers
            )
        except TimeoutError:
            return json_error(504, f"no answer within {REQUEST_TIMEOUT_S:g} s", code="timeout", request_id=request_id)

    async def act(request: Request) -> Response:
        async def work(principal: Principal) -> Response:
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
            result = await call(principal, request, action, body)
            structured = result.get("structuredContent")
            if not isinstance(structured, dict):
                raise ToolError(f"{SERVER}-{action} returned no structured result", code="upstream_error")
            return _json(structured, request_id_of(request))

        return await guarded(request, work)

    async def screenshot(request: Request) -> Response:
        async def work(principal: Principal) -> Response:
            result = await call(principal, request, "screenshot", _screenshot_args(request))
            shot = (result.get("structuredContent") or {}).get("screenshot") or {}
            png = await _png_of(principal, request, result, shot)
            headers = {"x-request-id": request_id_of(request), "cache-control": "no-store"}
            if shot.get("url"):
                headers["x-screenshot-url"] = str(shot["url"])
            return Response(png, media_type="image/png", headers=headers)

        return await guarded(request, work)

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
        result = await ctx.call_tool(
            principal,
            "storage-get_object",
            {"bucket": shot["bucket"], "key": shot["key"]},
            request_id=request_id_of(request),
        )
        return raise_for_result(result).get("structuredContent") or {}

    return [
        Route("/browser/", act, methods=["POST"]),
        Route("/browser/screenshot", screenshot, methods=["GET"]),
    ]
