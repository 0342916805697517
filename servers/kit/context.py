"""What a tool handler gets besides its arguments: progress, logging, the caller, the hub."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

# `_meta` keys the hub sets on every forwarded call (and strips from what clients send).
REQUEST_ID_META_KEY = "toolmux/request_id"
CALLER_META_KEY = "toolmux/caller"
# `_meta` key of a call a domain makes back to the hub while serving a caller: the hub evaluates
# that call with the caller's scopes, not the domain's own (no confused deputy). The hub honours
# it only on calls made with its internal key, which only its own domains hold.
ON_BEHALF_OF_META_KEY = "toolmux/on_behalf_of"

# Who the tool call being served right now came from; set around each handler, inherited by the
# tasks it starts (a workspaces run keeps acting for whoever started it).
_acting_for: ContextVar[str | None] = ContextVar("toolmux_acting_for", default=None)

_log = logging.getLogger("toolmux.kit")


@contextmanager
def acting_for(caller: str | None) -> Iterator[None]:
    """Calls to the hub made inside this block act for `caller` (see `delegation_meta`)."""
    token = _acting_for.set(caller)
    try:
        yield
    finally:
        _acting_for.reset(token)


def delegation_meta() -> dict[str, str]:
    """The `_meta` entry a `HubCaller` adds to each call: whose scopes the hub must apply."""
    caller = _acting_for.get()
    return {ON_BEHALF_OF_META_KEY: caller} if caller is not None else {}


class HubCaller(Protocol):
    """Calls any tool of the hub a server belongs to (e.g. speech storing audio in storage)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Return the raw `CallToolResult` dict; `isError` results are returned, not raised.

        An implementation sends `delegation_meta()` with the call, so the hub applies the scopes of
        the caller being served (none outside a tool call: the domain's own background work).
        """
        ...


@dataclass
class ToolContext:
    """Per-call context handed to a tool handler."""

    tool: str
    request_id: str
    caller: str | None = None
    hub: HubCaller | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    request_context: ServerRequestContext[Any, Any] | None = None

    @classmethod
    def from_request(
        cls, tool: str, request_context: ServerRequestContext[Any, Any] | None, hub: HubCaller | None
    ) -> ToolContext:
        raw = (request_context.params or {}) if request_context is not None else {}
        meta = raw.get("_meta") or {}
        request_id = str(meta.get(REQUEST_ID_META_KEY) or uuid.uuid4().hex[:16])
        caller = meta.get(CALLER_META_KEY)
        return cls(tool, request_id, caller if isinstance(caller, str) else None, hub, meta, request_context)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress to the caller (a no-op when the caller did not ask for progress)."""
        if self.request_context is not None:
            await self.request_context.session.report_progress(progress, total, message)

    async def log(self, level: str, message: str, **data: Any) -> None:
        """Send an MCP log message about this call to the caller, and to the server's own log."""
        _log.log(logging.getLevelName(level.upper()) if level != "warning" else logging.WARNING, "%s", message)
        if self.request_context is not None:
            payload: Any = {"message": message, **data} if data else message
            await self.request_context.session.send_log_message(
                level,  # type: ignore[arg-type]
                payload,
                logger=self.tool,
                related_request_id=self.request_context.request_id,
            )
