"""Moving around: goto (with retries), back, forward, tabs."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio

from servers.browser.env import Env, page_state, timeout_ms
from servers.browser.session import Session
from servers.kit import ToolError

RETRY_BACKOFF_S = 0.5


async def goto(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    url = args["url"]
    await env.policy.check_url(url)
    wait_until = args.get("wait_until", "load")
    retries = int(args.get("retries", 0))
    attempts = 0
    while True:
        attempts += 1
        try:
            response = await session.page.goto(
                url, wait_until=wait_until, timeout=timeout_ms(env, args, navigation=True)
            )
            break
        except PlaywrightTimeout:
            if attempts > retries:
                limit = timeout_ms(env, args, navigation=True) / 1000
                raise ToolError(
                    f"{url} did not reach '{wait_until}' within {limit:g} s ({attempts} attempt(s))",
                    code="timeout",
                    field="url",
                    retryable=True,
                    data={"attempts": attempts},
                ) from None
            # Stop the navigation still pending in Chromium, or the next attempt reports its abort.
            with contextlib.suppress(Exception):
                await session.page.evaluate("() => window.stop()")
            await anyio.sleep(RETRY_BACKOFF_S * 2 ** (attempts - 1))
    if response is not None and response.headers.get("x-toolmux-blocked"):
        # A redirect led somewhere the policy forbids; the filtering proxy answered instead.
        reason = (await response.text())[:500]
        raise ToolError(
            f"navigation refused after a redirect to {response.url}: {reason}", code="forbidden", field="url"
        )
    state = await page_state(session)
    state["status"] = response.status if response is not None else None
    state["attempts"] = attempts
    return state


async def back(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    return await _history(env, session, args, forward=False)


async def forward(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    return await _history(env, session, args, forward=True)


async def _history(env: Env, session: Session, args: dict[str, Any], *, forward: bool) -> dict[str, Any]:
    page = session.page
    wait_until = args.get("wait_until", "load")
    timeout = timeout_ms(env, args, navigation=True)
    if forward:
        response = await page.go_forward(wait_until=wait_until, timeout=timeout)
    else:
        response = await page.go_back(wait_until=wait_until, timeout=timeout)
    state = await page_state(session)
    # None: no history entry in that direction, or a same-document (#anchor) move.
    state["moved"] = response is not None
    state["status"] = response.status if response is not None else None
    return state


async def tabs(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    action = args.get("action", "list")
    index = args.get("index")
    if action == "new":
        if len(session.tabs) >= env.config.max_tabs:
            raise ToolError(
                f"this session already has {env.config.max_tabs} tabs (the limit); close one first",
                code="too_large",
                field="action",
            )
        url = args.get("url")
        if url is not None:
            await env.policy.check_url(url)
        page = await session.context.new_page()
        tab = session.attach(page)
        session.current = session.tab_index(page) or 0
        if tab is not None and url is not None:
            await page.goto(
                url, wait_until=args.get("wait_until", "load"), timeout=timeout_ms(env, args, navigation=True)
            )
    elif action in ("select", "close"):
        if index is None:
            raise ToolError(f"tabs action {action!r} needs 'index' (from tabs action 'list')", field="index")
        if not 0 <= index < len(session.tabs):
            raise ToolError(f"no tab {index}; this session has {len(session.tabs)} tab(s)", field="index")
        if action == "select":
            session.current = index
            await session.tabs[index].page.bring_to_front()
        else:
            if len(session.tabs) == 1:
                raise ToolError(
                    "cannot close the session's last tab; use close_session to end the session", field="index"
                )
            page = session.tabs[index].page
            await page.close()
            if session.tab_index(page) is not None:  # the close event had not arrived yet
                del session.tabs[index]
            session.current = min(session.current, len(session.tabs) - 1)
    listing = []
    for i, tab in enumerate(session.tabs):
        try:
            title = await tab.page.title()
        except Exception:
            title = ""
        listing.append({"index": i, "url": tab.page.url, "title": title, "current": i == session.current})
    state = await page_state(session)
    state["tabs"] = listing
    if session.tabs_refused:
        state["tabs_refused"] = session.tabs_refused
    return state
