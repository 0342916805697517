"""What the app holds when `oauth:` is on: the token check after the keys, the discovery
documents, and the 401 challenge that points MCP clients to them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
from starlette.routing import BaseRoute

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount
from aggregator.oauth.config import OAuthConfig
from aggregator.oauth.resource import MCP_PATH, WELL_KNOWN_PRM, ProtectedResource, resource_path
from aggregator.principal import Principal
from aggregator.protocol.errors import ErrorCode, RequestError

STARTUP_FETCH_SECONDS = 15.0


class TokenCheck(Protocol):
    def verify(self, token: str) -> Principal | None: ...

    async def run(self) -> None: ...


class OAuthGate:
    def __init__(
        self,
        config: OAuthConfig,
        public_url: str,
        *,
        data_dir: Path,
        admin_key: Callable[[str], Principal | None] = lambda _: None,
        tools_for: Callable[[Principal], list[str]] = lambda _: [],
    ) -> None:
        public_url = public_url.rstrip("/")
        issuer = (config.issuer or public_url).rstrip("/")
        self.config = config
        self.resource = ProtectedResource(
            public_url=public_url,
            issuer=issuer,
            scopes=tuple(config.scopes),
            audience=tuple(a.rstrip("/") for a in config.audience),
        )
        self.check: TokenCheck
        self.server: Any = None  # the built-in authorization server, in builtin mode
        try:
            import authlib  # noqa: F401
            import joserfc  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                f"oauth.mode {config.mode} needs the oauth extra: pip install 'toolmux[oauth]' ({exc.name} missing)"
            ) from exc
        if config.mode == "external":
            from aggregator.oauth.jwt_verifier import JwtVerifier

            self.check = JwtVerifier(config, self.resource)
        else:
            from aggregator.oauth.builtin.server import BuiltinServer

            self.server = BuiltinServer(config, self.resource, data_dir, admin_key=admin_key, tools_for=tools_for)
            self.check = self.server

    def verify(self, token: str) -> Principal | None:
        return self.check.verify(token)

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Begin the background work (key fetching); in external mode wait, bounded, for the first keys."""
        task_group.start_soon(self.check.run)
        attempted: anyio.Event | None = getattr(self.check, "attempted", None)
        if attempted is not None:
            with anyio.move_on_after(STARTUP_FETCH_SECONDS):
                await attempted.wait()

    def challenge(self, request_path: str) -> bytes:
        return self.resource.challenge(request_path).encode()

    def routes(self, ctx: FacadeContext) -> list[BaseRoute]:
        table: list[tuple[str, str, Any]] = [
            ("GET", WELL_KNOWN_PRM, endpoint(limit="oauth", auth="optional")(partial(_resource_metadata, self))),
            (
                "GET",
                WELL_KNOWN_PRM + "/{rest:path}",
                endpoint(limit="oauth", auth="optional")(partial(_resource_metadata, self)),
            ),
        ]
        if self.server is not None:
            table.extend(self.server.table())
        return mount(ctx, table)


async def _resource_metadata(gate: OAuthGate, call: Call) -> Any:
    """RFC 9728: the root document, `/mcp`'s, or a toolset path's (`/mcp/<toolset>`)."""
    rest = call.request.path_params.get("rest")
    path = "" if rest is None else resource_path("/" + rest)
    if rest is not None and not path.startswith(MCP_PATH):
        raise RequestError(f"no protected resource at /{rest}", code=ErrorCode.NOT_FOUND)
    return call.json_response(gate.resource.metadata(path), headers={"cache-control": "public, max-age=300"})
