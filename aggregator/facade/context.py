"""The hub's implementation of `FacadeContext`: facades call tools through the hub's dispatch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from aggregator import dispatch
from aggregator.config import FacadesConfig
from aggregator.facade.base import ProgressFn, presented_key, unauthenticated
from aggregator.ids import new_id
from aggregator.principal import Principal
from aggregator.protocol.errors import ErrorCode, from_rpc_error
from aggregator.protocol.jsonrpc import RpcError
from servers.kit import Domain, ToolError

if TYPE_CHECKING:
    from aggregator.hub import Hub


class HubFacadeContext:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    @property
    def public_url(self) -> str:
        return self.hub.public_url or ""

    @property
    def facades(self) -> FacadesConfig:
        return self.hub.config.facades

    def authenticate(self, request: HTTPConnection, *, required: bool = True) -> Principal | None:
        key = presented_key(request)
        if key is None and self.hub.keys.anonymous is not None:
            return self.hub.keys.anonymous
        if key is None:
            if required:
                raise unauthenticated("missing API key (Authorization: Bearer <key>)")
            return None
        principal = self.hub.keys.principal_for(key)
        if principal is None:
            raise unauthenticated("invalid API key")
        return principal

    async def call_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressFn | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        try:
            return await dispatch.call_tool(
                self.hub,
                principal,
                name,
                arguments,
                on_progress=progress,
                request_id=request_id or new_id(),
            )
        except RpcError as exc:
            error = from_rpc_error(exc.code, exc.message, exc.data)
            # Unknown and out-of-scope tools read the same, so scopes do not leak which tools exist.
            message = f"unknown tool {name!r}" if error.code is ErrorCode.NOT_FOUND else error.message
            raise ToolError(
                message, code=error.code, retryable=error.retryable, retry_after=error.retry_after, data=error.data
            ) from None

    def local_domain(self, server: str) -> Domain | None:
        upstream = self.hub.upstreams.get(server)
        if upstream is None or not upstream.kind.in_process:
            return None
        return self.hub.domains.get(server)

    def signing_secret(self, access_key_id: str) -> tuple[str, Principal] | None:
        return self.hub.keys.secret_for(access_key_id)

    def tool_names(self, principal: Principal) -> list[str]:
        return [t["name"] for t in self.hub.catalog.tools_for(principal)]

    def tool_definitions(self, principal: Principal) -> list[dict[str, Any]]:
        return self.hub.catalog.tools_for(principal)

    @property
    def data_dir(self) -> Path:
        return self.hub.config.data_dir
