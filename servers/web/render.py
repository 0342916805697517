"""`render: true`: read a page through the hub's browser server, for pages that need JavaScript.

A throwaway browser session per call: goto (waiting for the network to go quiet), the document's
HTML (paged in when large), then the session is closed whatever happened. The browser enforces
its own navigation policy on every request the page makes; the web server checks the URL against
its own policy before asking.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import anyio

from servers.kit import HubCaller, ToolError
from servers.kit.errors import error_from_result
from servers.web.config import RenderConfig

HTML_PAGE_CHARS = 1_000_000


@dataclass
class Rendered:
    final_url: str
    status: int | None
    html: str
    cut: bool


def _need_browser(config: RenderConfig, reason: str) -> ToolError:
    return ToolError(
        f"render: true needs the browser server ({config.server}) reached through a toolmux hub: {reason}",
        code="unavailable",
        field="render",
    )


class BrowserRenderer:
    def __init__(self, config: RenderConfig) -> None:
        self.config = config

    async def _call(self, hub: HubCaller, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        name = f"{self.config.server}-{tool}"
        try:
            result = await hub.call_tool(name, arguments, timeout=self.config.timeout_s)
        except ToolError as exc:
            if exc.code in ("not_found", "unavailable"):
                raise _need_browser(self.config, exc.message) from None
            raise
        error = error_from_result(result)
        if error is not None:
            # The hub's "no such tool" names no field; the browser's own not_found names `session`.
            if error.code == "not_found" and error.field is None:
                raise _need_browser(self.config, error.message)
            # The browser names its own fields (url for goto); a refusal there is about our url.
            field = "url" if error.field in ("url", None) else "render"
            raise ToolError(
                f"rendering failed: {error.message}", code=error.code, field=field, retryable=error.retryable
            )
        structured = result.get("structuredContent")
        if not isinstance(structured, dict):
            raise ToolError(f"{name} returned no structured result", code="upstream_error", field="render")
        return structured

    async def render(self, hub: HubCaller | None, url: str, *, max_chars: int) -> Rendered:
        if hub is None:
            raise _need_browser(self.config, "this web server runs alone (no hub)")
        session = f"web-render-{uuid.uuid4().hex[:16]}"
        try:
            page = await self._call(hub, "goto", {"session": session, "url": url, "wait_until": self.config.wait_until})
            chunks: list[str] = []
            offset, total, size = 0, None, 0
            while total is None or offset < total:
                window = min(HTML_PAGE_CHARS, max_chars - size)
                if window < 100:
                    break
                got = await self._call(hub, "get_html", {"session": session, "offset": offset, "max_chars": window})
                html = str(got.get("html", ""))
                chunks.append(html)
                size += len(html)
                total = int(got.get("total_chars", size))
                offset = int(got.get("next_offset") or total)
                if not got.get("truncated"):
                    break
            return Rendered(str(page.get("url") or url), page.get("status"), "".join(chunks), (total or 0) > size)
        finally:
            # A browser that is gone has no session left to close.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5), contextlib.suppress(ToolError):
                await hub.call_tool(f"{self.config.server}-close_session", {"session": session}, timeout=5)
