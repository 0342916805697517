"""Plumbing the tool-routing HTTP facades share (browser, forecast, mail, workspaces, audio).

`guarded` is the life of one request: authenticate, bound the work with a timeout, and answer
every failure as an error body with the status its code maps to. `read_capped` and
`json_object` read a request body without ever holding more than the facade's limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

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

CLIENT_GONE = 499  # nginx's status for "the client closed the connection first"

Handler = Callable[[Principal, Request], Awaitable[Response]]


class ErrorRender(Protocol):
    """Builds a facade's error body (toolmux's plain JSON, or OpenAI's shape)."""

    def __call__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        field: str | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response: ...


def json_response(body: Any, request_id: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"x-request-id": request_id, **(headers or {})},
    )


async def guarded(
    ctx: FacadeContext,
    request: Request,
    handler: Handler,
    timeout_s: float | None,
    *,
    render: ErrorRender = json_error,
) -> Response:
    """Run `handler` for the authenticated caller within `timeout_s` (None: unbounded here), and
    answer a FacadeHTTPError, ToolError or timeout as `render`'s error body."""
    request_id = request_id_of(request)
    try:
        principal = ctx.authenticate(request)
        assert principal is not None
        with anyio.fail_after(timeout_s):
            return await handler(principal, request)
    except FacadeHTTPError as exc:
        return render(
            exc.status, exc.message, code=exc.code, field=exc.param, request_id=request_id, headers=exc.headers
        )
    except ToolError as exc:
        headers = None
        if exc.retry_after is not None:
            headers = {"retry-after": f"{exc.retry_after:g}"}
        return render(
            status_for(exc), exc.message, code=exc.code, field=exc.field, request_id=request_id, headers=headers
        )
    except TimeoutError:
        if timeout_s is None:
            raise
        return render(504, f"no answer within {timeout_s:g} s", code="timeout", request_id=request_id)
    except ClientDisconnect:
        return Response(status_code=CLIENT_GONE)


def guarded_endpoint(
    ctx: FacadeContext,
    handler: Handler,
    timeout_s: float | None,
    *,
    render: ErrorRender = json_error,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint running `handler` through `guarded`."""

    async def respond(request: Request) -> Response:
        return await guarded(ctx, request, handler, timeout_s, render=render)

    return respond


async def call_tool(
    ctx: FacadeContext, principal: Principal, request: Request, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """The raw result of tool `name` called for this request; an `isError` result raised as its ToolError."""
    result = await ctx.call_tool(principal, name, arguments, request_id=request_id_of(request))
    return raise_for_result(result)


def structured_of(result: dict[str, Any], name: str) -> dict[str, Any]:
    """A successful result's structured content (an upstream_error when tool `name` sent none)."""
    structured = result.get("structuredContent")
    if not isinstance(structured, dict):
        raise ToolError(f"{name} returned no structured result", code="upstream_error")
    return structured


async def call_structured(
    ctx: FacadeContext, principal: Principal, request: Request, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    return structured_of(await call_tool(ctx, principal, request, name, arguments), name)


async def read_capped(request: Request, limit: int, *, too_large: str = "body larger than {limit} bytes") -> bytes:
    """The request body, refused with 413 (`too_large` formatted with `limit`) as soon as it
    passes `limit` bytes, or before reading when Content-Length already says so."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise FacadeHTTPError(400, "invalid Content-Length", code="invalid_request")
        if int(declared) > limit:
            raise FacadeHTTPError(413, too_large.format(limit=limit), code="too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FacadeHTTPError(413, too_large.format(limit=limit), code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(
    raw: bytes,
    *,
    not_object: str,
    code: str = "invalid_request",
    loads: Callable[[bytes], Any] = json.loads,
) -> dict[str, Any]:
    """The JSON object a body holds (an empty body is `null`); a 400 saying `not_object` otherwise.

    The stdlib parser (the default) accepts NaN/Infinity, so a tool can name the offending field.
    """
    try:
        data = loads(raw or b"null")
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
        raise FacadeHTTPError(400, f"body is not valid JSON: {exc}", code=code) from None
    if not isinstance(data, dict):
        raise FacadeHTTPError(400, not_object, code="invalid_request")
    return data
