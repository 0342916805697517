"""The front layer's clients: legacy sessions, stateless `subscriptions/listen` streams, and the
stateless calls parked while they wait for the client's input.

The hub does not know front sessions: it tells this registry (its `ChangeAudience`) that a list
changed, a resource was updated or a server logged outside any call, and the registry decides
which client hears of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from aggregator.front.mrtr import InputBroker
from aggregator.front.session import Emit, FrontSession
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_SUBSCRIPTION_ID


@dataclass(eq=False)
class Listener:
    """A stateless client's `subscriptions/listen` stream."""

    principal_name: str
    subscription_id: Any
    tools: bool
    prompts: bool
    resources: bool
    resource_uris: set[str]
    emit: Emit
    closed: anyio.Event = field(default_factory=anyio.Event)
    # The caller's view; one on a toolset hears of tool changes only when they touch it.
    principal: Principal | None = None

    def wants(self, kind: str) -> bool:
        return {"tools": self.tools, "prompts": self.prompts, "resources": self.resources}.get(kind, False)


class FrontRegistry:
    def __init__(self, view_changed: Callable[[Principal], bool] | None = None) -> None:
        self.sessions: set[FrontSession] = set()
        self.listeners: set[Listener] = set()
        self.broker = InputBroker()
        # Whether the last catalog change touched a toolset view (None: every view changed).
        self.view_changed = view_changed

    def _told(self, kind: str) -> Callable[[Principal | None], bool]:
        """Who hears of a change of `kind`: everyone, except toolset views the change did not touch
        (decided before any send, so a rebuild during the sends cannot blur it)."""
        decided: dict[tuple[object, ...], bool] = {}
        check = self.view_changed

        def told(principal: Principal | None) -> bool:
            if kind != "tools" or check is None or principal is None or principal.toolset is None:
                return True
            if principal.catalog_key not in decided:
                decided[principal.catalog_key] = check(principal)
            return decided[principal.catalog_key]

        return told

    # --- ChangeAudience ---------------------------------------------------------------------------
    async def list_changed(self, method: str, kind: str) -> None:
        """`notifications/<kind>/list_changed` to every initialized session and every listener that asked
        (a session on a toolset only when its view changed)."""
        message = jsonrpc.notification(method)
        told = self._told(kind)
        sessions = [s for s in self.sessions if s.initialized and told(s.principal)]
        listeners = [listener for listener in self.listeners if listener.wants(kind) and told(listener.principal)]
        for session in sessions:
            await session.send_unsolicited(message)
        for listener in listeners:
            await self._to_listener(listener, method, None)

    async def resource_updated(self, uri: str, params: dict[str, Any]) -> None:
        """`notifications/resources/updated` (with the hub's URI) to whoever subscribed to `uri`."""
        method = "notifications/resources/updated"
        for session in list(self.sessions):
            if uri in session.subscriptions:
                await session.send_unsolicited(jsonrpc.notification(method, params))
        for listener in list(self.listeners):
            if uri in listener.resource_uris:
                await self._to_listener(listener, method, params)

    async def server_log(self, params: dict[str, Any] | None) -> None:
        """A log line outside any call: every legacy session that asked for logs hears it."""
        for session in list(self.sessions):
            if session.log_level is not None and not session.modern:
                await session.send_unsolicited(jsonrpc.notification("notifications/message", params))

    def client_count(self) -> int:
        return len(self.sessions)

    def close(self) -> None:
        for session in list(self.sessions):
            session.close()

    async def _to_listener(self, listener: Listener, method: str, params: dict[str, Any] | None) -> None:
        body = dict(params or {})
        body["_meta"] = {**(body.get("_meta") or {}), META_SUBSCRIPTION_ID: listener.subscription_id}
        try:
            await listener.emit(jsonrpc.notification(method, body))
        except Exception:
            listener.closed.set()
