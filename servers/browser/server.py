"""The browser server's MCP tools (contracts in schemas/browser.json), bound to BrowserService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from servers.browser.config import BrowserConfig
from servers.browser.service import ACTIONS, BrowserService
from servers.kit import Domain, ServerSettings, ToolContext, ToolError, ToolResult

INSTRUCTIONS = (
    "A real headless Chromium. Open a page with goto, read it with snapshot (an outline in which every "
    "element you can act on has a [ref=eN]), then act with click/fill/type/select_option using those refs "
    "(or a CSS/XPath selector). Take a new snapshot after the page changes. Pass the same `session` name to "
    "keep cookies and tabs across calls; use run_script for several steps in one call."
)
SWEEP_INTERVAL_S = 30.0


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(BrowserConfig)
    domain_ref: list[Domain] = []

    def validate_step(action: str, arguments: dict[str, Any], field: str) -> None:
        contract = domain_ref[0].contracts.get(action)
        if contract is None or action not in domain_ref[0].visible_tools():
            known = ", ".join(sorted(n for n in domain_ref[0].visible_tools() if n in ACTIONS))
            raise ToolError(f"unknown action {action!r}; actions: {known}", field=f"{field}.action")
        try:
            contract.validate_input(arguments)
        except ToolError as exc:
            raise ToolError(
                f"{field} ({action}): {exc.message}",
                field=f"{field}.{exc.field}" if exc.field else field,
            ) from None

    service = BrowserService(config, validate_step=validate_step)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:

            async def sweep() -> None:
                while True:
                    await anyio.sleep(min(SWEEP_INTERVAL_S, config.idle_timeout_s))
                    await service.sessions.sweep_idle()

            tg.start_soon(sweep)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await service.aclose()

    domain = Domain("browser", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain_ref.append(domain)
    domain.service = service

    def bind(name: str) -> None:
        async def handler(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any] | ToolResult:
            return await service.call(name, args, ctx)

        domain.add_tool(name, handler)

    for name in [*ACTIONS, "run_script", "close_session", "sessions"]:
        bind(name)
    if not config.eval_js:
        domain.hide("eval_js", "disabled by the server's config (eval_js: false)")

    async def health() -> dict[str, Any]:
        slots = service.pool.slots
        return {
            "healthy": True,
            "details": {
                "browsers": len(slots),
                "live_browsers": sum(1 for s in slots if s.live),
                "sessions": len(service.sessions.sessions),
            },
        }

    domain.health = health
    domain.check_complete()
    return domain
