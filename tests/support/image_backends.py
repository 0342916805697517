"""Fake image backends on loopback speaking the real wire protocols, drawing real PNGs with Pillow.

One ASGI app answers both protocols: OpenAI's `POST /v1/images/generations` (what the
stable-diffusion.cpp server and LocalAI speak; `b64_json` or `url` answers) and Automatic1111's
`POST /sdapi/v1/txt2img`. `gate`, when set, holds every generation until the test opens it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from PIL import Image

from tests.support.asgi import serve_asgi


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


@dataclass
class FakeImageBackend:
    url: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    gate: anyio.Event | None = None
    waiting: anyio.Event = field(default_factory=anyio.Event)

    def reset(self) -> None:
        self.requests.clear()
        self.gate = None
        self.waiting = anyio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = orjson.loads(raw or b"{}")
        self.requests.append((scope["path"], body))
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if scope["path"] == "/v1/images/generations":
            width, _, height = str(body.get("size", "512x512")).partition("x")
            image = base64.b64encode(png(int(width), int(height))).decode()
            answer: Any = {"created": 1, "data": [{"b64_json": image} for _ in range(int(body.get("n", 1)))]}
        elif scope["path"] == "/sdapi/v1/txt2img":
            image = base64.b64encode(png(int(body["width"]), int(body["height"]), (20, 120, 200))).decode()
            answer = {"images": [image] * int(body.get("batch_size", 1)), "parameters": body, "info": "{}"}
        else:
            answer = {"error": "not found"}
        status = 404 if "error" in answer else 200
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


@asynccontextmanager
async def fake_image_backend() -> AsyncIterator[FakeImageBackend]:
    fake = FakeImageBackend()
    async with serve_asgi(fake, lifespan="off") as url:
        fake.url = url
        try:
            yield fake
        finally:
            if fake.gate is not None:
                fake.gate.set()
