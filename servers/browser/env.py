"""What every action gets besides its session and arguments, and the helpers they share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from servers.browser.config import BrowserConfig
from servers.browser.policy import NavigationPolicy
from servers.kit import HubCaller, ToolContext

if TYPE_CHECKING:
    from playwright.async_api import Page, Request

    from servers.browser.session import Session

SETTLE_TIMEOUT_S = 10.0


@dataclass
class Env:
    config: BrowserConfig
    policy: NavigationPolicy
    hub: HubCaller | None
    ctx: ToolContext | None = None


def timeout_ms(env: Env, args: dict[str, Any], *, navigation: bool = False) -> float:
    """The Playwright timeout of one action: the `timeout` argument (seconds) or the configured default."""
    default = env.config.navigation_timeout_s if navigation else env.config.action_timeout_s
    return float(args.get("timeout", default)) * 1000


async def page_state(session: Session) -> dict[str, Any]:
    """The fields every action result carries: where the session's current tab is now."""
    page = session.page
    try:
        title = await page.title()
    except Exception:  # the page is navigating: its title is not readable this instant
        title = ""
    state: dict[str, Any] = {"session": session.name, "tab": session.current, "url": page.url, "title": title}
    dialogs = session.take_dialogs()
    if dialogs:
        state["dialogs"] = dialogs
    return state


@contextlib.asynccontextmanager
async def settling(page: Page, timeout_s: float = SETTLE_TIMEOUT_S) -> AsyncIterator[None]:
    """Run an action, then wait for a navigation it started (a submit, a link) to load.

    Playwright's actions return once the input is dispatched; a model that reads the page right
    after clicking "Sign in" must see the next page, not the old one.
    """
    navigations: list[Request] = []
    committed = anyio.Event()

    def on_request(request: Request) -> None:
        if request.is_navigation_request() and request.frame == page.main_frame:
            navigations.append(request)

    def on_navigated(frame: Any) -> None:
        if frame == page.main_frame and navigations:
            committed.set()

    def on_failed(request: Request) -> None:
        if request in navigations:
            committed.set()

    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("framenavigated", on_navigated)
    try:
        yield
        if navigations:
            with anyio.move_on_after(timeout_s):
                await committed.wait()
                with contextlib.suppress(Exception):
                    await page.wait_for_load_state("load", timeout=timeout_s * 1000)
    finally:
        page.remove_listener("request", on_request)
        page.remove_listener("requestfailed", on_failed)
        page.remove_listener("framenavigated", on_navigated)
