"""The front layer's clients: legacy sessions, stateless `subscriptions/listen` streams, and the
stateless calls parked while they wait for the client's input.

The hub does not know front sessions: it tells this registry (its `ChangeAudience`) that a list
changed, a resource was updated or a server logged outside any call, and the registry decides
which client hears of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from aggregator.front.mrtr import InputBroker
from aggregator.front.session import Emit, FrontSession
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

    def wants(self, kind: str) -> bool:
        return {"tools": self.tools, "prompts": self.prompts, "resources": self.resources}.get(kind, False)


class FrontRegistry:
    def __init__(self) -> None:
        self.sessions: set[FrontSession] = set()
        self.listeners: set[Listener] = set()
        self.broker = InputBroker()

    # --- ChangeAudience ---------------------------------------------------------------------------
    async def list_changed(self, method: str, kind: str) -> None:
        """`notifications/<kind>/list_changed` to every initialized session and every listener that asked."""
        message = jsonrpc.notification(method)
        for session in list(self.sessions):
            if session.initialized:
                await session.send_unsolicited(message)
        for listener in list(self.listeners):
            if listener.wants(kind):
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
