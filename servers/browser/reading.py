"""Reading a page: snapshot, text, HTML, interactive elements, console messages, network requests."""

from __future__ import annotations

from collections import deque
from typing import Any

from servers.browser.env import Env, page_state, timeout_ms
from servers.browser.pagemodel import (
    INTERACTIVE_ELEMENTS_JS,
    PAGE_TEXT_JS,
    clip,
    take_snapshot,
    target_locator,
    tidy_text,
)
from servers.browser.session import Session


async def snapshot(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args, required=False)
    root = locator if locator is not None else session.page.locator("body")
    text = await take_snapshot(
        session.tab, root, boxes=bool(args.get("boxes", False)), timeout_ms=timeout_ms(env, args)
    )
    window, info = clip(text, int(args.get("offset", 0)), int(args.get("max_chars", env.config.max_text_chars)))
    state = await page_state(session)
    state["snapshot"] = window
    state["refs"] = len(session.tab.refs or ())
    state.update(info)
    return state


async def get_text(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args, required=False)
    if locator is not None:
        raw = await locator.inner_text(timeout=timeout_ms(env, args))
    else:
        raw = await session.page.evaluate(PAGE_TEXT_JS)
    window, info = clip(
        tidy_text(raw or ""), int(args.get("offset", 0)), int(args.get("max_chars", env.config.max_text_chars))
    )
    state = await page_state(session)
    state["text"] = window
    state.update(info)
    return state


async def get_html(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args, required=False)
    if locator is not None:
        prop = "innerHTML" if args.get("inner") else "outerHTML"
        raw = await locator.evaluate(f"(el) => el.{prop}", timeout=timeout_ms(env, args))
    else:
        raw = await session.page.content()
    window, info = clip(str(raw), int(args.get("offset", 0)), int(args.get("max_chars", env.config.max_text_chars)))
    state = await page_state(session)
    state["html"] = window
    state.update(info)
    return state


async def get_interactive_elements(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    found = await session.page.evaluate(INTERACTIVE_ELEMENTS_JS, int(args.get("limit", 200)))
    state = await page_state(session)
    state["elements"] = found["elements"]
    state["total"] = found["total"]
    return state


async def _latest(
    session: Session, args: dict[str, Any], key: str, entries: list[dict[str, Any]], log: deque[dict[str, Any]]
) -> dict[str, Any]:
    """The page state with the last `limit` of `entries` under `key` and their total; `clear` empties `log`."""
    limit = int(args.get("limit", 50))
    state = await page_state(session)
    state[key] = entries[-limit:]
    state["total"] = len(entries)
    if args.get("clear"):
        log.clear()
    return state


async def console_messages(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    level = args.get("level")
    entries = [m for m in session.console if level is None or m["level"] == level]
    return await _latest(session, args, "messages", entries, session.console)


async def network_requests(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    needle = args.get("url_contains")
    failed_only = bool(args.get("failed_only", False))
    entries = [
        r
        for r in session.network
        if (needle is None or needle in r["url"])
        and (not failed_only or "failure" in r or r.get("blocked") or int(r.get("status", 0)) >= 400)
    ]
    return await _latest(session, args, "requests", entries, session.network)
