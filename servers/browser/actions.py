"""Acting on a page: click, fill, type, keys, hover, select, upload, scroll, mouse, waits, JavaScript."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson

from servers.browser.env import Env, page_state, settling, timeout_ms
from servers.browser.pagemodel import SCROLL_STATE_JS, clip, target_locator
from servers.browser.session import Session
from servers.kit import ToolError
from servers.kit import storage_link as storage

SCROLL_STEP_PX = 600


# True when clicking the element follows a link into another tab (target=_blank and the like).
_OPENS_TAB_JS = "e => { const a = e.closest('a[href]'); return !!(a && a.target && a.target !== '_self') }"


async def click(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    timeout = timeout_ms(env, args)

    async def press() -> None:
        await locator.click(
            button=args.get("button", "left"),
            click_count=2 if args.get("double") else 1,
            modifiers=args.get("modifiers") or None,
            timeout=timeout,
        )

    async with settling(session.page):
        if await locator.evaluate(_OPENS_TAB_JS, timeout=timeout):
            # Chromium announces the new tab after the click returns: wait for it, so the answer
            # (and the next `tabs` call) already lists the tab the link opened.
            async with session.page.context.expect_page(timeout=timeout) as opened:
                await press()
            session.attach(await opened.value)
        else:
            await press()
    return await page_state(session)


async def fill(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    async with settling(session.page):
        await locator.fill(args["value"], timeout=timeout_ms(env, args))
        if args.get("submit"):
            await locator.press("Enter", timeout=timeout_ms(env, args))
    return await page_state(session)


async def type_text(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args, required=False)
    delay = float(args.get("delay_ms", 0))
    async with settling(session.page):
        if locator is not None:
            await locator.press_sequentially(args["text"], delay=delay, timeout=timeout_ms(env, args))
            if args.get("submit"):
                await locator.press("Enter", timeout=timeout_ms(env, args))
        else:
            await session.page.keyboard.type(args["text"], delay=delay)
            if args.get("submit"):
                await session.page.keyboard.press("Enter")
    return await page_state(session)


async def send_key(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args, required=False)
    key = args["key"]
    async with settling(session.page):
        for _ in range(int(args.get("repeat", 1))):
            if locator is not None:
                await locator.press(key, timeout=timeout_ms(env, args))
            else:
                await session.page.keyboard.press(key)
    return await page_state(session)


async def hover(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    await locator.hover(timeout=timeout_ms(env, args))
    return await page_state(session)


async def select_option(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    values, labels = args.get("values"), args.get("labels")
    if (values is None) == (labels is None):
        raise ToolError("give either 'values' (option values) or 'labels' (visible option texts)", field="values")
    async with settling(session.page):
        selected = await locator.select_option(value=values, label=labels, timeout=timeout_ms(env, args))
    state = await page_state(session)
    state["selected"] = selected
    return state


async def upload_file(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    payloads: list[dict[str, Any]] = []
    total = 0
    for i, item in enumerate(args["files"]):
        field = f"files.{i}"
        data, content_type = await _file_bytes(env, item, field)
        total += len(data)
        if total > env.config.max_upload_bytes:
            raise ToolError(
                f"files add up to more than {env.config.max_upload_bytes} bytes", code="too_large", field=field
            )
        name = item.get("name") or str(item.get("key", f"file{i}")).rsplit("/", 1)[-1]
        payloads.append({"name": name, "mimeType": item.get("content_type") or content_type, "buffer": data})
    await locator.set_input_files(payloads, timeout=timeout_ms(env, args))  # type: ignore[arg-type]
    state = await page_state(session)
    state["files"] = [{"name": p["name"], "size": len(p["buffer"])} for p in payloads]
    return state


async def _file_bytes(env: Env, item: dict[str, Any], field: str) -> tuple[bytes, str]:
    if "base64" in item:
        try:
            return base64.b64decode(item["base64"], validate=True), "application/octet-stream"
        except (binascii.Error, ValueError):
            raise ToolError("'base64' is not valid base64", field=f"{field}.base64") from None
    if "text" in item:
        return item["text"].encode("utf-8"), "text/plain"
    hub = storage.require_hub(
        env.hub, field, "files from storage ('bucket' + 'key') need the toolmux hub; this server runs alone"
    )
    bucket, key = item["bucket"], item["key"]
    result = await storage.get_object(hub, bucket=bucket, key=key)
    stored = storage.stored_result(result, f"reading {bucket}/{key} from storage", field)
    content_type = str(stored.get("content_type") or "application/octet-stream")
    return storage.object_bytes(stored, bucket, key, field), content_type


async def scroll(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    page = session.page
    locator, _ = target_locator(session, args, required=False)
    to = args.get("to")
    if locator is not None:
        await locator.scroll_into_view_if_needed(timeout=timeout_ms(env, args))
    elif to is not None:
        await page.evaluate(
            "(to) => { const el = document.scrollingElement || document.documentElement;"
            " window.scrollTo(0, to === 'top' ? 0 : el.scrollHeight); }",
            to,
        )
    else:
        direction = args.get("direction", "down")
        amount = float(args.get("amount", SCROLL_STEP_PX))
        dx = {"left": -amount, "right": amount}.get(direction, 0.0)
        dy = {"up": -amount, "down": amount}.get(direction, 0.0)
        viewport = page.viewport_size or {"width": env.config.viewport_width, "height": env.config.viewport_height}
        await page.mouse.move(viewport["width"] / 2, viewport["height"] / 2)
        await page.mouse.wheel(dx, dy)
        # Wheel scrolling is asynchronous in Chromium: a frame later the position is final.
        await page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    state = await page_state(session)
    state["scroll"] = await page.evaluate(SCROLL_STATE_JS)
    return state


async def mouse_move(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    page = session.page
    x, y = float(args["x"]), float(args["y"])
    async with settling(page):
        await page.mouse.move(x, y, steps=int(args.get("steps", 1)))
        if args.get("click"):
            await page.mouse.click(x, y, button=args.get("button", "left"))
    return await page_state(session)


async def wait_for_element(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    locator, _ = target_locator(session, args)
    assert locator is not None
    state_wanted = args.get("state", "visible")
    await locator.first.wait_for(state=state_wanted, timeout=timeout_ms(env, args))
    state = await page_state(session)
    state["count"] = await locator.count()
    return state


async def wait_for_text(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    text = args["text"]
    gone = bool(args.get("gone", False))
    locator = session.page.get_by_text(text, exact=bool(args.get("exact", False))).first
    await locator.wait_for(state="hidden" if gone else "visible", timeout=timeout_ms(env, args))
    return await page_state(session)


async def eval_js(env: Env, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    if not env.config.eval_js:
        raise ToolError("eval_js is disabled by this server's configuration", code="forbidden")
    async with settling(session.page):
        value = await session.page.evaluate(args["expression"], args.get("arg"))
    state = await page_state(session)
    encoded = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    max_chars = int(args.get("max_chars", env.config.max_text_chars))
    if len(encoded) <= max_chars and _json_safe(value):
        state["result"] = value
        state["truncated"] = False
    else:
        text, info = clip(encoded, 0, max_chars)
        state["result_json"] = text
        state["truncated"] = info["truncated"]
    return state


def _json_safe(value: Any) -> bool:
    """Whether a value survives JSON as itself (NaN/Infinity and exotic objects do not)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    return value is None or isinstance(value, str | int | bool)
