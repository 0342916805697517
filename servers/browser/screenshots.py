"""Screenshots: captured as PNG, stored in the storage server, returned as URL + small image.

With a hub (`ctx.hub`), the PNG goes to storage through `storage-put_object` and the result carries
its URL, a `resource_link` block and a downscaled JPEG thumbnail (a model sees the page without a
megabyte of base64 in its context). Alone (no hub), the PNG is returned inline as an image block.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from typing import Any

import anyio

from servers.browser.env import Env, page_state, timeout_ms
from servers.browser.pagemodel import target_locator
from servers.browser.session import Session
from servers.kit import ToolResult
from servers.kit import storage_link as storage

STORAGE_TIMEOUT_S = 60.0


def _resize(png: bytes, width: int | None, height: int | None) -> tuple[bytes, int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        w, h = image.size
        if width is None and height is None:
            return png, w, h
        if width is None:
            width = max(1, round(w * (height or h) / h))
        if height is None:
            height = max(1, round(h * width / w))
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        resized.save(out, format="PNG", optimize=False)
        return out.getvalue(), width, height


def _thumbnail(png: bytes, max_width: int) -> tuple[bytes, str]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.thumbnail((max_width, max_width * 4), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=70)
        return out.getvalue(), "image/jpeg"


async def capture_png(env: Env, session: Session, args: dict[str, Any]) -> tuple[bytes, int, int]:
    locator, _ = target_locator(session, args, required=False)
    if locator is not None:
        png = await locator.screenshot(type="png", timeout=timeout_ms(env, args))
    else:
        png = await session.page.screenshot(
            type="png", full_page=bool(args.get("full_page", False)), timeout=timeout_ms(env, args)
        )
    return await anyio.to_thread.run_sync(_resize, png, args.get("width"), args.get("height"))


async def screenshot(env: Env, session: Session, args: dict[str, Any]) -> ToolResult:
    png, width, height = await capture_png(env, session, args)
    state = await page_state(session)
    image: dict[str, Any] = {
        "width": width,
        "height": height,
        "bytes": len(png),
        "content_type": "image/png",
        "url": None,
        "bucket": None,
        "key": None,
    }
    state["screenshot"] = image
    if env.hub is None:
        # The server runs alone: there is no storage to put the image in.
        content = [{"type": "image", "data": base64.b64encode(png).decode("ascii"), "mimeType": "image/png"}]
        return ToolResult(structured=state, content=content)
    shots = env.config.screenshots
    key = f"{shots.prefix.strip('/')}/{time.strftime('%Y%m%d')}/{uuid.uuid4().hex}.png"
    result = await storage.put_object(
        env.hub,
        bucket=shots.bucket,
        key=key,
        data=png,
        content_type="image/png",
        ttl_seconds=shots.ttl_seconds,
        timeout=STORAGE_TIMEOUT_S,
    )
    stored = storage.stored_result(result, "saving the screenshot to storage failed")
    image.update(url=stored.get("url"), bucket=shots.bucket, key=key, url_expires_at=stored.get("url_expires_at"))
    thumb, thumb_type = await anyio.to_thread.run_sync(_thumbnail, png, shots.thumbnail_width)
    links: list[dict[str, Any]] = [
        {
            "type": "resource_link",
            "uri": stored.get("url") or f"storage://{shots.bucket}/{key}",
            "name": key.rsplit("/", 1)[-1],
            "mimeType": "image/png",
            "size": len(png),
        },
        {"type": "image", "data": base64.b64encode(thumb).decode("ascii"), "mimeType": thumb_type},
    ]
    return ToolResult(structured=state, content=links)
