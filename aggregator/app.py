"""The hub's HTTP app: `/mcp` (and `/mcp/`), health, metrics, and every facade.

Cross-cutting rules applied here once: a request id on every response, Origin/Host checks
against DNS rebinding, and API-key authentication for everything but the liveness probes.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import orjson
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from aggregator.facade import FACADE_MODULES
from aggregator.facade.base import request_id_of
from aggregator.facade.context import HubFacadeContext
from aggregator.facade.kit import render_plain
from aggregator.front.core import McpCore
from aggregator.front.http_face import McpHttpEndpoint
from aggregator.front.http_stream import Receive, Send, header_map, send_body, send_rpc_error
from aggregator.http_server import ABORT_SCOPE_KEY
from aggregator.hub import Hub
from aggregator.ids import new_id
from aggregator.oauth.gate import OAuthGate
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.errors import ErrorCode, ToolmuxError, code_for_status, internal_error
from aggregator.response_buffers import ResponseBuffers, is_stall
from aggregator.state import CHANNEL_CONFIG_RELOAD, StateUnavailable
from aggregator.upstreams.upstream import Upstream

_log = logging.getLogger("toolmux.app")

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SWEEP_SECONDS = 30.0


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]", maxsplit=1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class OriginPolicy:
    """Refuses foreign Origins, and foreign Host headers when the hub listens on loopback only."""

    def __init__(self, bind_host: str, allowed_origins: list[str], allowed_hosts: list[str]) -> None:
        self.loopback_only = bind_host in LOOPBACK_NAMES
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    def problem(self, headers: dict[str, str]) -> str | None:
        origin = headers.get("origin")
        if origin == "null":  # sandboxed iframes, file: pages, some redirects: a page of unknown origin
            return "Origin 'null' is not allowed"
        if origin:
            parsed = urlsplit(origin)
            host = (parsed.hostname or "").lower()
            if origin.rstrip("/").lower() not in self.allowed_origins and host not in LOOPBACK_NAMES:
                return f"Origin {origin!r} is not allowed"
        host_header = headers.get("host", "").lower()
        if host_header and (self.loopback_only or self.allowed_hosts):
            name = _hostname(host_header)
            if name not in LOOPBACK_NAMES and host_header not in self.allowed_hosts and name not in self.allowed_hosts:
                return f"Host {host_header!r} is not allowed"
        return None


async def send_error(send: Send, error: ToolmuxError, request_id: str) -> None:
    """toolmux's plain JSON error body (with the request id) for the app's own routes."""
    response = render_plain(error, request_id)
    # send_body writes the content headers; send_with_id adds the request id to every response.
    skip = {b"content-type", b"content-length", b"x-request-id"}
    extra = [(k, v) for k, v in response.headers.raw if k not in skip]
    await send_body(send, response.status_code, bytes(response.body), extra)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 for paths no facade serves, as JSON with the request id."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"no route for {request.method} {request.url.path}" if status == 404 else str(getattr(exc, "detail", ""))
    response = render_plain(ToolmuxError(message, code=code_for_status(status)), request_id_of(request))
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering: HubApp.__call__ logs it, with the request id.
    request_id = request_id_of(request)
    return render_plain(internal_error(request_id), request_id)


# What Starlette's ExceptionMiddleware hands a route: (by exception type, by status).
_FACADE_EXCEPTION_HANDLERS: tuple[dict[Any, Any], dict[int, Any]] = ({HTTPException: _http_exception}, {})


def _exact_routes(routes: list[BaseRoute]) -> dict[str, Route]:
    """Routes with a fixed path that no earlier route also matches: safe to pick by path alone."""
    exact: dict[str, Route] = {}
    for index, route in enumerate(routes):
        if not isinstance(route, Route) or route.param_convertors or not route.methods:
            continue
        probes = [{"type": "http", "path": route.path, "root_path": "", "method": m} for m in route.methods]
        try:
            shadowed = any(earlier.matches(p)[0] != Match.NONE for earlier in routes[:index] for p in probes)
        except Exception:
            shadowed = True
        if not shadowed and route.path not in exact:
            exact[route.path] = route
    return exact


class HubApp:
    def __init__(self, hub: Hub, *, bind_host: str = "127.0.0.1", config_path: str | None = None) -> None:
        self.hub = hub
        self.config_path = config_path
        http = hub.config.http
        self.policy = OriginPolicy(bind_host, http.allowed_origins, http.allowed_hosts)
        self.core = McpCore(hub)
        self.mcp = McpHttpEndpoint(
            self.core,
            self.authenticate,
            max_body=http.max_request_bytes,
            body_timeout=http.body_timeout,
            idle_timeout=http.session_idle_timeout,
            max_sessions=http.max_sessions,
        )
        self.buffers = ResponseBuffers(
            http.max_buffered_response_bytes, http.max_connection_response_bytes, http.send_timeout
        )
        self.buffers.register(hub.metrics.registry)
        self.facade_context = HubFacadeContext(hub)
        self.oauth = self._oauth_gate()
        if self.oauth is not None:  # the consent page posts to the hub from the hub's own origin
            self.policy.allowed_origins.add(self.oauth.resource.public_url.lower())
        self.facades = Starlette(
            routes=self._facade_routes() + (self.oauth.routes(self.facade_context) if self.oauth else []),
            exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
        )
        self._exact_facades = _exact_routes(self.facades.routes)
        self.ready = False
        self.started = anyio.Event()
        # Start-up progress for a person watching (`toolmux serve`): each server as it settles, then ready.
        self.on_join: Callable[[str, Upstream], None] | None = None
        self.on_ready: Callable[[], None] | None = None

    def _facade_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for module_name in FACADE_MODULES:
            try:
                module = importlib.import_module(module_name)
                routes.extend(module.routes(self.facade_context))
            except Exception:
                _log.exception("facade %s could not be loaded; its routes are missing", module_name)
        return routes

    def _oauth_gate(self) -> OAuthGate | None:
        """With `oauth:` on, bearer tokens that are no key are checked as OAuth access tokens."""
        config = self.hub.config
        if not config.oauth.enabled:
            return None
        public_url = config.server.public_url or self.hub.public_url or f"http://127.0.0.1:{config.server.port}"
        gate = OAuthGate(
            config.oauth,
            public_url,
            data_dir=config.data_dir,
            # Looked up per call: a reload replaces hub.keys.
            admin_key=lambda secret: self.hub.keys.principal_for(secret),  # noqa: PLW0108
            tools_for=lambda principal: [tool["name"] for tool in self.hub.catalog.tools_for(principal)],
        )
        self.hub.keys.token_verifier = gate.verify
        return gate

    def authenticate(self, headers: dict[str, str], scope: dict[str, Any]) -> Principal | None:
        auth = headers.get("authorization", "")
        key: str | None = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key")
        if key is None and b"api_key=" in scope.get("query_string", b""):
            values = parse_qs(scope["query_string"].decode("latin-1")).get("api_key")
            key = values[0] if values else None
        principal = self.hub.keys.principal_for(key)
        # /mcp/<toolset>/ (the route checked that it exists) or the key's default toolset narrows it.
        return self.hub.keys.mcp_view(principal, scope.get("toolmux.toolset")) if principal is not None else None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        errors: list[str] = []
        async with anyio.create_task_group() as tg:
            await tg.start(self.hub.run)
            if self.oauth is not None:
                await self.oauth.start(tg)
            if self.on_join is not None:
                for name, upstream in list(self.hub.upstreams.items()):
                    tg.start_soon(self._announce_join, name, upstream)
            await self._join_fleet(tg)
            await self.hub.wait_settled(self.hub.config.server.startup_timeout)
            # Name collisions are a load-time error: stop, then say why (outside the task group).
            errors = list(self.hub.catalog.snapshot.errors)
            if not errors:
                tg.start_soon(self._sweep)
                if self.config_path is not None:
                    tg.start_soon(self._reload_on_sighup)
                self.ready = True
                self.started.set()
                if self.on_ready is not None:
                    self.on_ready()
                try:
                    yield
                finally:
                    self.ready = False
            await self.hub.stop()
            if self.mcp.forwarder is not None:
                await self.mcp.forwarder.aclose()
            tg.cancel_scope.cancel()
        if errors:
            raise RuntimeError("name collisions in the catalog:\n  " + "\n  ".join(errors))

    async def _join_fleet(self, tg: TaskGroup) -> None:
        """With shared state: forward other replicas' sessions, sign requestState with the fleet's secret."""
        state = self.hub.state
        if state is None or not state.shared_fast:
            return
        from aggregator.front.forward import SessionForwarder

        forwarder = SessionForwarder(state, idle_timeout=self.hub.config.http.session_idle_timeout)
        self.mcp.forwarder = forwarder
        self.core.front.broker.use_secret(await state.sessions.shared_secret("request-state"))
        self.core.front.broker.announce = forwarder.claim_parked
        tg.start_soon(forwarder.keep_claims, lambda: list(self.mcp.sessions))
        if self.config_path is not None:
            tg.start_soon(self._reload_when_told)

    async def _announce_join(self, name: str, upstream: Upstream) -> None:
        await upstream.settled.wait()
        if self.on_join is not None:
            self.on_join(name, upstream)

    async def _reload_on_sighup(self) -> None:
        import signal

        assert self.config_path is not None
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                if await self._reload_config() and self.hub.state is not None and self.hub.state.shared_fast:
                    # The other replicas reload their own copy of the file (one ConfigMap, many pods).
                    try:
                        await self.hub.state.pubsub.publish(CHANNEL_CONFIG_RELOAD, {"from": self.hub.state.replica_id})
                    except StateUnavailable as exc:
                        _log.warning("the other replicas were not told to reload: %s", exc)

    async def _reload_config(self) -> bool:
        from aggregator import config as hub_config

        assert self.config_path is not None
        try:
            new = hub_config.load(self.config_path)
        except hub_config.ConfigError as exc:
            _log.error("config reload refused, keeping the running config:\n%s", exc)
            return False
        new.server = self.hub.config.server  # host, port and data dir need a restart
        new.state = self.hub.config.state  # so do the shared stores
        report = await self.hub.reload(new)
        _log.warning("config reloaded: %s", ", ".join(f"{k}={v}" for k, v in report.items() if v) or "no change")
        return True

    async def _reload_when_told(self) -> None:
        """Reload when another replica did (config-reload fan-out through the shared pub/sub)."""
        state = self.hub.state
        assert state is not None and self.config_path is not None
        while True:
            try:
                async with state.pubsub.subscribe(CHANNEL_CONFIG_RELOAD) as messages:
                    async for message in messages:
                        if message.get("from") != state.replica_id:
                            _log.warning("replica %s reloaded its config: reloading", message.get("from"))
                            await self._reload_config()
            except StateUnavailable as exc:
                _log.warning("config-reload fan-out paused: %s", exc)
            await anyio.sleep(state.config.heartbeat)  # the subscription ended (Redis went away): subscribe again

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(SWEEP_SECONDS)
            self.mcp.expire_idle()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = header_map(scope)
        scope["toolmux.headers"] = headers
        rid = headers.get("x-request-id", "")
        if not _REQUEST_ID_RE.match(rid):
            rid = new_id()
        scope["toolmux.request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        # Every response is held to the bounds on buffered response bytes (issue 19).
        bounded = self.buffers.wrap(send, rid, jsonrpc=scope["path"] in ("/mcp", "/mcp/"))
        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                if not any(name == b"x-request-id" for name, _ in headers):  # facades set their own
                    headers = [*headers, rid_header]
                if message["status"] == 401 and self.oauth is not None:
                    # MCP authorization: every 401 points to the protected resource metadata.
                    challenge = (b"www-authenticate", self.oauth.challenge(scope["path"]))
                    headers = [h for h in headers if h[0].lower() != b"www-authenticate"] + [challenge]
                message = {**message, "headers": headers}
            await bounded(message)

        try:
            await self._route(scope, receive, send_with_id, headers)
        except Exception as exc:
            if is_stall(exc):
                _log.warning("dropped a client that read nothing of its response (request id %s)", rid)
                abort = scope.get(ABORT_SCOPE_KEY)
                if abort is not None:
                    abort()
                return
            # One place turns an unexpected failure into a clean answer: logged with the request
            # id, never a traceback on the wire.
            _log.exception("unhandled error (request id %s)", rid)
            if not started or bounded.held_start is not None:
                bounded.held_start = None
                await send_error(send_with_id, internal_error(rid), rid)
        else:
            await bounded.close()

    async def _route(
        self, scope: dict[str, Any], receive: Receive, send_with_id: Send, headers: dict[str, str]
    ) -> None:

        path = scope["path"]
        if path == "/health/liveliness":
            await send_body(send_with_id, 200, b'{"status":"alive"}')
            return
        if path == "/health/readiness":
            ready = self.ready
            await send_body(
                send_with_id, 200 if ready else 503, b'{"status":"ready"}' if ready else b'{"status":"starting"}'
            )
            return
        problem = self.policy.problem(headers)
        if problem is not None:
            if path == "/mcp" or path.startswith("/mcp/"):  # MCP clients read a JSON-RPC error
                body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": f"Forbidden: {problem}"}}
                await send_body(send_with_id, 403, orjson.dumps(body))
            else:
                error = ToolmuxError(f"Forbidden: {problem}", code=ErrorCode.FORBIDDEN, field="origin")
                await send_error(send_with_id, error, scope["toolmux.request_id"])
            return
        if path in ("/mcp", "/mcp/"):
            await self.mcp(scope, receive, send_with_id)
        elif path.startswith("/mcp/"):
            await self._toolset_mcp(scope, receive, send_with_id, path[len("/mcp/") :].removesuffix("/"))
        elif path in ("/health", "/metrics"):
            await self._operator_view(path, scope, send_with_id, headers)
        else:
            route = self._exact_facades.get(path)
            if route is not None and route.methods is not None and scope["method"] in route.methods:
                # A fixed path: what Starlette's router and middleware would do, without walking
                # every route and two middleware layers per request (measured: ~0.1 ms of a chat).
                scope["app"] = self.facades
                scope["endpoint"], scope["path_params"] = route.endpoint, {}
                scope["starlette.exception_handlers"] = _FACADE_EXCEPTION_HANDLERS
                await route.app(scope, receive, send_with_id)  # type: ignore[arg-type]  # as below
            else:
                await self.facades(scope, receive, send_with_id)  # type: ignore[arg-type]  # front's Send is dict-typed

    async def _toolset_mcp(self, scope: dict[str, Any], receive: Receive, send: Send, name: str) -> None:
        """`/mcp/<toolset>` and `/mcp/<toolset>/`: the MCP endpoint seen through a toolset."""
        toolset = self.hub.keys.toolsets.get(name)
        if toolset is None:
            data = {"toolset": name, "requestId": scope["toolmux.request_id"]}
            await send_rpc_error(send, 404, None, jsonrpc.INVALID_REQUEST, f"unknown toolset {name!r}", data)
            return
        scope["toolmux.toolset"] = toolset
        await self.mcp(scope, receive, send)

    async def _operator_view(self, path: str, scope: dict[str, Any], send: Send, headers: dict[str, str]) -> None:
        """/health and /metrics. Both name every server and tool, so they need the `metrics` (or
        `admin`) scope; any other key gets the bare status of /health and a 403 from /metrics."""
        principal = self.authenticate(headers, scope)
        if principal is None:
            error = ToolmuxError("missing or invalid API key", code=ErrorCode.UNAUTHENTICATED)
            await send_error(send, error, scope["toolmux.request_id"])
        elif path == "/health":
            health = await self.hub.deep_health() if principal.may_see_metrics else self.hub.health(deep=False)
            status = 200 if health["status"] != "down" else 503
            if not principal.may_see_metrics:
                health = {"status": health["status"], "version": health["version"]}
            await send_body(send, status, orjson.dumps(health))
        elif not principal.may_see_metrics:
            error = ToolmuxError("/metrics needs a key with the metrics or admin scope", code=ErrorCode.FORBIDDEN)
            await send_error(send, error, scope["toolmux.request_id"])
        else:
            await send_body(send, 200, self.hub.metrics.render(), content_type=b"text/plain; version=0.0.4")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        started = False
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.lifespan():
                started = True
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
        except Exception as exc:
            _log.exception("toolmux failed")
            if not started:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})
