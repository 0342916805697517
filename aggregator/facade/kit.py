"""The facade kit: what every HTTP facade endpoint needs, written once.

An endpoint is a plain module-level async function taking a `Call`, declared with what it needs:

    @endpoint(limit="forecast", body="json", render=render_plain)
    async def forecast(call: Call) -> Response:
        return call.json_response(await call.structured("forecast-univariate", await call.json()))

    def routes(ctx: FacadeContext) -> list[BaseRoute]:
        return mount(ctx, [("POST", "/forecast/v1/univariate/forecast", forecast)])

`mount` turns each into a Starlette route that does, in this order: request id; authentication
(`auth`: required, optional or admin); the content-type rule (`body="json"`: a body must be sent
as JSON, else 415: a browser can post `text/plain` cross-site without a CORS preflight); the
timeout and body limit of the endpoint's `limit` (a `facades:` entry of the config, read per
request so a reload applies); and one `except` that renders any error of the tree with the
endpoint's renderer (plain JSON, OpenAI, Ollama, Anthropic; storage plugs in S3 XML). An
unexpected exception is logged with the request id and answered as `internal`, never a traceback.

Why a `Call` object rather than closures per facade: the endpoint's needs are data (visible in
one place, testable), the function is importable and small, and what each request carries
(principal, request id, limits, the tool path) travels as one argument.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aggregator.config import FacadeLimit, FacadesConfig
from aggregator.facade.base import FacadeContext, ProgressFn, request_id_of
from aggregator.principal import Principal
from aggregator.protocol.errors import (
    ErrorCode,
    RequestError,
    ToolmuxError,
    anthropic_body,
    internal_error,
    ollama_body,
    openai_body,
    plain_body,
    retry_headers,
    timeout_error,
)
from servers.kit.errors import error_from_result, structured_of

_log = logging.getLogger("toolmux.facade")

CLIENT_GONE = 499  # nginx's status for "the client closed the connection first"
# Deeper JSON than this is refused (400): the hub re-encodes arguments with orjson, whose limit is 254.
MAX_JSON_DEPTH = 128

Auth = Literal["required", "optional", "admin"]
BodyKind = Literal["none", "json", "raw"]
Renderer = Callable[[ToolmuxError, str], Response]
Handler = Callable[["Call"], Awaitable[Any]]


# ---- error rendering ------------------------------------------------------------------------


def error_response(error: ToolmuxError, request_id: str, body: dict[str, Any]) -> Response:
    headers = {"x-request-id": request_id, **retry_headers(error)}
    if error.code is ErrorCode.UNAUTHENTICATED:
        headers["www-authenticate"] = 'Bearer realm="toolmux"'
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json", headers=headers)


def render_plain(error: ToolmuxError, request_id: str) -> Response:
    """toolmux's own body: `{"error": {code, message, field?, retryable, request_id}}`."""
    return error_response(error, request_id, plain_body(error, request_id))


def render_openai(error: ToolmuxError, request_id: str) -> Response:
    """OpenAI's body: `{"error": {message, type, param, code}}`."""
    return error_response(error, request_id, openai_body(error, request_id))


def render_ollama(error: ToolmuxError, request_id: str) -> Response:
    """Ollama's body: `{"error": message}`."""
    return error_response(error, request_id, ollama_body(error, request_id))


def render_anthropic(error: ToolmuxError, request_id: str) -> Response:
    """Anthropic's body: `{"type": "error", "error": {type, message}}`."""
    return error_response(error, request_id, anthropic_body(error, request_id))


# ---- endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A handler and what it needs. `limit` names a `facades:` entry of the config."""

    handler: Handler
    limit: str
    auth: Auth = "required"
    body: BodyKind = "none"
    render: Renderer = render_plain

    @property
    def name(self) -> str:
        return getattr(self.handler, "__name__", "endpoint")


def endpoint(
    *, limit: str, auth: Auth = "required", body: BodyKind = "none", render: Renderer = render_plain
) -> Callable[[Handler], Endpoint]:
    """Declare a module-level async function as an endpoint."""

    def declare(handler: Handler) -> Endpoint:
        return Endpoint(handler, limit, auth, body, render)

    return declare


def mount(ctx: FacadeContext, table: Sequence[tuple[str, str, Endpoint]]) -> list[BaseRoute]:
    """Starlette routes for `(method, path, endpoint)` rows; one route per path, methods merged."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for method, path, spec in table:
        if spec.limit not in FacadesConfig.model_fields:  # a typo fails at start-up, not per request
            raise ValueError(f"endpoint {spec.name}: no facades.{spec.limit} in the config")
        by_path.setdefault(path, {})[method] = spec
    routes: list[BaseRoute] = []
    for path, specs in by_path.items():
        routes.append(Route(path, _asgi(ctx, specs), methods=list(specs)))
    return routes


def _asgi(ctx: FacadeContext, specs: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    if len(specs) == 1:
        (only,) = specs.values()

        async def respond_one(request: Request) -> Response:
            return await run(ctx, only, request)

        return respond_one

    async def respond(request: Request) -> Response:
        return await run(ctx, specs[request.method if request.method in specs else "GET"], request)

    return respond


async def run(ctx: FacadeContext, spec: Endpoint, request: Request) -> Response:
    """One request through `spec`: the kit's whole life of a request (see the module docstring)."""
    request_id = request_id_of(request)
    limit = getattr(ctx.facades, spec.limit)
    try:
        principal = authenticate(ctx, request, spec.auth)
        call = Call(ctx, request, principal, request_id, limit, spec)
        if spec.body == "json":
            require_json_type(request)
        # A loop timer, not an anyio cancel scope: the same bound for a fraction of the cost per request.
        async with asyncio.timeout(limit.timeout) as call.scope:
            response: Response = await spec.handler(call)
    except ToolmuxError as exc:
        return spec.render(exc, request_id)
    except TimeoutError:
        return spec.render(timeout_error(limit.timeout), request_id)
    except ClientDisconnect:
        return Response(status_code=CLIENT_GONE)
    except Exception:
        _log.exception("facade %s failed (request id %s)", spec.name, request_id)
        return spec.render(internal_error(request_id), request_id)
    return response


def authenticate(ctx: FacadeContext, request: Request, auth: Auth) -> Principal | None:
    principal = ctx.authenticate(request, required=auth != "optional")
    if auth == "admin" and (principal is None or not principal.is_admin):
        raise RequestError("this route needs an admin key", code=ErrorCode.FORBIDDEN)
    return principal


def is_json_type(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def require_json_type(request: Request) -> None:
    """A body declared as anything but JSON is refused (415).

    A missing Content-Type is accepted (curl, SDKs and scripts often send none); a browser's
    cross-site POST always carries an Origin, which the app's Origin check refuses first.
    """
    declared = request.headers.get("content-type")
    if declared is not None and not is_json_type(declared):
        raise RequestError(
            f"send the body as application/json (got {declared.partition(';')[0]!r})",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            field="content-type",
        )


# ---- the request ----------------------------------------------------------------------------


class Call:
    """One request to an endpoint: who asks, its id and limits, its body, and the tool path."""

    __slots__ = ("ctx", "limit", "principal", "request", "request_id", "scope", "spec")

    def __init__(
        self,
        ctx: FacadeContext,
        request: Request,
        principal: Principal | None,
        request_id: str,
        limit: FacadeLimit,
        spec: Endpoint,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.principal = principal
        self.request_id = request_id
        self.limit = limit
        self.spec = spec
        self.scope: asyncio.Timeout | None = None

    def extend(self, timeout: float) -> None:
        """Bound the rest of this request by `timeout` seconds instead of the endpoint's limit
        (a chat request that turns out to be a workspace run)."""
        if self.scope is not None:
            self.scope.reschedule(asyncio.get_running_loop().time() + timeout)

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "an endpoint with auth='optional' has no caller"
        return self.principal

    async def body(self, limit: int | None = None) -> bytes:
        """The raw body, refused (413) as soon as it passes `limit` (the endpoint's by default)."""
        return await read_capped(self.request, limit or self.limit.max_body_bytes)

    async def json(
        self, *, empty: dict[str, Any] | None = None, loads: Callable[[bytes], Any] = orjson.loads
    ) -> dict[str, Any]:
        """The body's JSON object. An empty body is `empty` when given, else a 400."""
        raw = await self.body()
        if not raw.strip():
            if empty is not None:
                return dict(empty)
            raise RequestError("the body is empty; send a JSON object", reason="invalid_request")
        return parse_json_object(raw, loads)

    async def tool(self, name: str, arguments: dict[str, Any], *, progress: ProgressFn | None = None) -> dict[str, Any]:
        """The raw result of tool `name`; an `isError` result raised as its ToolError."""
        result = await self.ctx.call_tool(self.caller, name, arguments, progress=progress, request_id=self.request_id)
        error = error_from_result(result)
        if error is not None:
            raise error
        return result

    async def structured(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The structured answer of tool `name` (the one `call_structured` of the facades)."""
        return structured_of(await self.tool(name, arguments), name)

    def json_response(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            orjson.dumps(body),
            status_code=status,
            media_type="application/json",
            headers={"x-request-id": self.request_id, **(headers or {})},
        )


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes (or before reading,
    when Content-Length already says so)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError("invalid Content-Length", field="content-length", reason="invalid_request")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> RequestError:
    return RequestError(f"request body larger than {limit} bytes", code=ErrorCode.TOO_LARGE)


def parse_json_object(raw: bytes, loads: Callable[[bytes], Any] = orjson.loads) -> dict[str, Any]:
    """The JSON object `raw` holds; a 400 for anything else, deep nesting included (never a 500)."""
    try:
        data = loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError too
        raise RequestError(f"request body is not valid JSON: {exc}", reason="invalid_request") from None
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object", reason="invalid_request")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth_over(data, MAX_JSON_DEPTH):
        raise _too_deep()
    return data


def stdlib_loads(raw: bytes) -> Any:
    """The stdlib parser: it accepts NaN/Infinity, so a tool can name the offending field."""
    return json.loads(raw)


def _too_deep() -> RequestError:
    return RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels", reason="invalid_request")


def _depth_over(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False


def query_flag(request: Request, name: str, default: bool) -> bool:
    """A true/false query parameter (1/0, yes/no too); a 400 naming it otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", ""):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise RequestError(f"query parameter {name!r} must be true or false", field=name)
