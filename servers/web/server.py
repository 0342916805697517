"""The web server: binds the tools in `schemas/web.json` to `WebService`.

`fetch` is always offered (it needs no backend); `search` only when a search backend is
configured (`servers.web.config.search_unavailable_reason` says why it is not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from servers.kit import Domain, ServerSettings, ToolContext
from servers.web.config import NO_BACKEND, WebConfig
from servers.web.service import WebService

INSTRUCTIONS = (
    "Search the web with `search` (query plus optional categories, language, time_range, safe_search, page), "
    "then read a result with `fetch` (url): you get the page's main content as Markdown with its title, date "
    "and links. Long pages come in windows: call fetch again with offset=next_offset. Use render: true only for "
    "pages that stay empty without JavaScript. Every input field is required: pass null for the defaults."
)


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(WebConfig)
    service = WebService(config)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.aclose()

    domain = Domain("web", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = service

    @domain.tool("search")
    async def search(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.search(args)

    @domain.tool("fetch")
    async def fetch(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.fetch(args, ctx.hub)

    if service.backend is None:
        domain.hide("search", NO_BACKEND)

    async def health() -> dict[str, Any]:
        details: dict[str, Any] = {
            "search_backend": service.backend.name if service.backend else f"none ({NO_BACKEND})",
            "search_cache": {"entries": len(service.search_cache), "hits": service.search_cache.hits},
        }
        return {"healthy": True, "details": details}

    domain.health = health
    domain.check_complete()
    return domain
