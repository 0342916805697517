"""Mounts storage's own HTTP/S3 face (`servers/storage/http/`) under /storage/ on the hub.

Storage owns the face; the hub only supplies what the face must not know itself: which hub key
a credential is (and its tool scopes), where storage runs (its in-process `ObjectStore`, or its
child process's face endpoint), the call timeout, and the metrics the requests count in.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute

from aggregator.auth import INTERNAL
from aggregator.facade.base import FacadeContext, FacadeHTTPError
from aggregator.facade.context import HubFacadeContext
from aggregator.principal import Principal
from aggregator.upstreams.upstream import UpstreamKind
from servers.kit.domain import FACE_METHOD
from servers.storage.http.mount import FaceEndpoint, describe
from servers.storage.http.mount import routes as storage_routes
from servers.storage.store import ObjectStore

SERVER = "storage"
DEFAULT_CALL_TIMEOUT = 120.0


class HubStorageSide:
    """`servers.storage.http.mount.HubSide` over the hub's facade context."""

    def __init__(self, ctx: FacadeContext) -> None:
        self.ctx = ctx
        self.hub = ctx.hub if isinstance(ctx, HubFacadeContext) else None
        self._checked: tuple[object, ObjectStore | None] = (None, None)

    @property
    def public_url(self) -> str:
        return self.ctx.public_url

    def caller_of(self, request: Request) -> Principal | None:
        try:
            return self.ctx.authenticate(request, required=False)
        except FacadeHTTPError:
            return None

    def signing_secret(self, access_key_id: str) -> tuple[str, Principal] | None:
        return self.ctx.signing_secret(access_key_id)

    def caller_named(self, name: str) -> Principal | None:
        if self.hub is not None and name == INTERNAL.name:
            return INTERNAL  # URLs a built-in minted while calling back on the hub's internal key
        found = self.ctx.signing_secret(name)
        return found[1] if found is not None else None

    def local_store(self) -> ObjectStore | None:
        domain = self.ctx.local_domain(SERVER)
        service = domain.service if domain is not None else None
        if service is None:
            return None
        checked, store = self._checked
        if checked is not service:  # a runtime Protocol check walks every member: once per service
            store = service if isinstance(service, ObjectStore) else None
            self._checked = (service, store)
        return store

    async def child_endpoint(self) -> FaceEndpoint | None:
        upstream = self.hub.upstreams.get(SERVER) if self.hub is not None else None
        if upstream is None or upstream.kind is not UpstreamKind.BUILTIN_STDIO or not upstream.is_ready:
            return None
        return describe(await upstream.request(FACE_METHOD, None, timeout=10))

    @property
    def call_timeout(self) -> float:
        upstream = self.hub.upstreams.get(SERVER) if self.hub is not None else None
        return upstream.entry.timeouts.call if upstream is not None else DEFAULT_CALL_TIMEOUT

    def observe(self, tool: str, status: int, seconds: float) -> None:
        if self.hub is None:
            return
        outcome = "ok" if status < 400 else "timeout" if status == 504 else "error"
        self.hub.metrics.record_call(tool, outcome, seconds)
        self.hub.metrics.http.labels("storage", str(status)).inc()


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return storage_routes(HubStorageSide(ctx))
