"""The contract between the hub and its HTTP facades, plus the helpers every facade shares.

`FacadeContext` is what the hub hands a facade: authenticate a request, call a tool through the
normal dispatch path, reach an in-process domain object where bytes must stream (storage).
`DirectFacadeContext` implements it over in-process `Domain` objects for unit tests; the hub's
own implementation adds upstream routing, timeouts and metrics behind the same methods.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import HTTPConnection

from aggregator.config import FacadesConfig
from aggregator.principal import MASTER, Principal
from aggregator.protocol.errors import ErrorCode, RequestError, code_for_status
from servers.kit import Domain, ToolContext, ToolError

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"


class FacadeHTTPError(RequestError):
    """A `RequestError` built status-first (the storage face's form; the kit's facades raise
    `RequestError` with a code). `code` here is the wire name the face shows (its `reason`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        known = {c.value for c in ErrorCode}
        super().__init__(
            message,
            code=code if code in known else code_for_status(status),
            field=param,
            reason=None if code in known or code == "error" else code,
        )
        self.param = param
        self.headers = headers or {}


class FacadeContext(Protocol):
    """What a facade may ask of the hub."""

    @property
    def public_url(self) -> str:
        """Base URL clients reach the hub at, e.g. http://127.0.0.1:4000 (no trailing slash)."""
        ...

    @property
    def facades(self) -> FacadesConfig:
        """The `facades:` config section: timeouts and body limits per kind of request."""
        ...

    def authenticate(self, request: HTTPConnection, *, required: bool = True) -> Principal | None:
        """The caller behind the request's key (Bearer header, or ?api_key=).

        Raises a 401 (code unauthenticated) when `required` and the key is missing or wrong;
        returns None when not required and no key was presented (a wrong key is always 401).
        """
        ...

    async def call_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressFn | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Call `name` (namespaced, e.g. "storage-put_object") as `principal`; the raw CallToolResult.

        A tool outside the principal's scope and an unknown tool both raise
        ToolError(code="not_found") so that scopes do not leak which tools exist.
        """
        ...

    def local_domain(self, server: str) -> Domain | None:
        """The in-process Domain object of a built-in server, when it runs inside the hub."""
        ...

    def signing_secret(self, access_key_id: str) -> tuple[str, Principal] | None:
        """The secret behind a hub key name ("master" or a named key), for signature schemes
        such as AWS SigV4 where the client proves it holds the key without sending it."""
        ...

    def tool_names(self, principal: Principal) -> list[str]:
        """Every tool the principal may call, namespaced."""
        ...

    def tool_definitions(self, principal: Principal) -> list[dict[str, Any]]:
        """The MCP definitions (name, description, inputSchema, ...) of every tool the principal may call."""
        ...

    @property
    def data_dir(self) -> Path | None:
        """Where facades keep their own state (stored responses); None keeps it in memory."""
        ...


def request_id_of(request: HTTPConnection) -> str:
    """The request id the hub assigned (or the client sent), for logs and error bodies."""
    rid = request.scope.get("toolmux.request_id") or request.headers.get(REQUEST_ID_HEADER)
    return str(rid) if rid else uuid.uuid4().hex[:16]


def unauthenticated(message: str) -> FacadeHTTPError:
    """The 401 every face answers a missing or wrong key with."""
    return FacadeHTTPError(401, message, code=ErrorCode.UNAUTHENTICATED.value)


def presented_key(request: HTTPConnection) -> str | None:
    """The API key a request carries: `Authorization: Bearer`, `x-api-key`, or `?api_key=`."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.query_params.get("api_key")


class DirectFacadeContext:
    """A FacadeContext over in-process domains, for facade unit tests (no upstreams, no hub)."""

    def __init__(
        self,
        domains: dict[str, Domain],
        *,
        master_key: str = "test-master",
        keys: dict[str, Principal] | None = None,
        public_url: str = "http://testserver",
        facades: FacadesConfig | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.domains = domains
        self.data_dir = data_dir
        self.facades = facades or FacadesConfig()
        self.master_key = master_key
        self.keys = keys or {}
        self._public_url = public_url

    @property
    def public_url(self) -> str:
        return self._public_url

    def authenticate(self, request: HTTPConnection, *, required: bool = True) -> Principal | None:
        key = presented_key(request)
        if key is None:
            if required:
                raise unauthenticated("missing API key")
            return None
        if hmac.compare_digest(key.encode(), self.master_key.encode()):
            return MASTER
        for secret, principal in self.keys.items():
            if hmac.compare_digest(key.encode(), secret.encode()):
                return principal
        raise unauthenticated("invalid API key")

    async def call_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressFn | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        server, _, tool = name.partition("-")
        domain = self.domains.get(server)
        if domain is None or tool not in domain.visible_tools() or not principal.may_call(name):
            raise ToolError(f"unknown tool {name!r}", code="not_found")
        ctx = _ProgressContext(
            tool=tool, request_id=request_id or uuid.uuid4().hex[:16], caller=principal.name, hub=domain.hub
        )
        ctx.progress_fn = progress
        return await domain.call(tool, arguments, ctx)

    def local_domain(self, server: str) -> Domain | None:
        return self.domains.get(server)

    def signing_secret(self, access_key_id: str) -> tuple[str, Principal] | None:
        if access_key_id == MASTER.name:
            return self.master_key, MASTER
        for secret, principal in self.keys.items():
            if principal.name == access_key_id:
                return secret, principal
        return None

    def tool_names(self, principal: Principal) -> list[str]:
        names = [f"{s}-{t}" for s, d in self.domains.items() for t in d.visible_tools()]
        return [n for n in names if principal.may_call(n)]

    def tool_definitions(self, principal: Principal) -> list[dict[str, Any]]:
        wires = [{**w, "name": f"{s}-{w['name']}"} for s, d in self.domains.items() for w in d.list_tools()]
        return [w for w in wires if principal.may_call(w["name"])]


class _ProgressContext(ToolContext):
    progress_fn: ProgressFn | None = None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_fn is not None:
            await self.progress_fn(progress, total, message)
