"""What a tool handler gets besides its arguments: progress, logging, the caller, the hub."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

# `_meta` keys the hub sets on every forwarded call (and strips from what clients send).
REQUEST_ID_META_KEY = "toolmux/request_id"
CALLER_META_KEY = "toolmux/caller"

_log = logging.getLogger("toolmux.kit")


class HubCaller(Protocol):
    """Calls any tool of the hub a server belongs to (e.g. speech storing audio in storage)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Return the raw `CallToolResult` dict; `isError` results are returned, not raised."""
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
