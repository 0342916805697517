"""Image generation as plain logic: pick the backend, hold its slot, draw, store each image.

One generation runs per backend at a time (`servers.kit.resources.ResourceManager`, one class
per backend): a request that waits longer than `busy_wait_seconds` gets `busy` with a retry
hint, never a queue without bound. Images go to storage through the hub (`storage_link`); the
answer carries their URLs, never their bytes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from servers.images import backends
from servers.images.backends import Job
from servers.images.config import ImageBackend, ImagesConfig
from servers.kit import HubCaller, ToolError
from servers.kit import storage_link as storage
from servers.kit.resources import ResourceManager

Draw = Callable[[str, ImageBackend, Job], Awaitable[list[bytes]]]


def parse_size(size: str, backend: ImageBackend) -> tuple[int, int]:
    width, _, height = size.partition("x")
    w, h = int(width), int(height)
    if w < 64 or h < 64 or w * h > backend.max_pixels:
        raise ToolError(
            f"size {size} is outside what this backend accepts (64 px at least, {backend.max_pixels} pixels at most)",
            field="size",
        )
    return w, h


def content_type_of(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\x89PNG"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


class ImagesService:
    def __init__(self, config: ImagesConfig, *, draw: Draw = backends.generate) -> None:
        self.config = config
        self.draw = draw
        self.resources = ResourceManager(
            classes=tuple(config.backends) or ("none",),
            busy_wait_seconds=config.busy_wait_seconds,
            what="image backend",
        )

    def backend(self, model: str | None) -> tuple[str, ImageBackend]:
        if not self.config.backends:
            raise ToolError("no image backend is configured", code="unavailable")
        name = model or next(iter(self.config.backends))
        found = self.config.backends.get(name)
        if found is None:
            known = ", ".join(self.config.backends)
            raise ToolError(f"no image backend {name!r}; configured: {known}", code="not_found", field="model")
        return name, found

    async def generate(self, args: dict[str, Any], hub: HubCaller | None) -> dict[str, Any]:
        hub = storage.require_hub(hub, "prompt", "images are kept in the hub's storage: run this server in a hub")
        name, backend = self.backend(args.get("model"))
        width, height = parse_size(args.get("size") or "512x512", backend)
        job = Job(
            prompt=args["prompt"],
            width=width,
            height=height,
            n=int(args.get("n") or 1),
            seed=args.get("seed"),
            negative_prompt=args.get("negative_prompt"),
            steps=args.get("steps"),
        )
        started = time.perf_counter()
        async with self.resources.slot(name, job=f"generate {width}x{height}"):
            drawn = await self.draw(name, backend, job)
        seconds = time.perf_counter() - started
        bucket = args.get("bucket") or self.config.bucket
        images = [await self._store(hub, bucket, data, name) for data in drawn]
        return {"model": name, "images": images, "width": width, "height": height, "seed": job.seed, "seconds": seconds}

    async def _store(self, hub: HubCaller, bucket: str, data: bytes, backend: str) -> dict[str, Any]:
        content_type, extension = content_type_of(data)
        key = f"{self.config.prefix}{uuid.uuid4().hex}.{extension}"
        result = await storage.put_object(
            hub,
            bucket=bucket,
            key=key,
            data=data,
            content_type=content_type,
            metadata={"backend": backend},
            ttl_seconds=self.config.storage_ttl_seconds,
        )
        stored = storage.stored_result(result, "saving the image in storage", field="bucket")
        return {
            "url": str(stored.get("url", "")),
            "url_expires_at": stored.get("url_expires_at"),
            "bucket": str(stored.get("bucket", bucket)),
            "key": str(stored.get("key", key)),
            "content_type": content_type,
            "size": len(data),
        }
