"""Helpers for storage tests: a controllable clock, a storage domain in a temp dir, its HTTP face served."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from aggregator.facade.base import DirectFacadeContext
from aggregator.facade.storage import routes
from aggregator.principal import Principal
from servers.kit import Domain, ServerSettings
from servers.storage.config import StorageConfig
from servers.storage.server import create
from servers.storage.service import StorageService
from tests.support.asgi import serve_asgi

MASTER_KEY = "test-master-key-0123456789"


class FakeClock:
    """Stands in for time.time() in the storage service so TTLs and expiries need no waiting."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_service(
    data_dir: Path,
    config: dict[str, Any] | None = None,
    *,
    clock: FakeClock | None = None,
    public_url: str | None = None,
) -> StorageService:
    """The storage service alone (building a whole Domain compiles every contract: ~0.4 s)."""
    return StorageService(
        StorageConfig.model_validate(config or {}),
        data_dir / "storage",
        public_url=public_url,
        clock=clock or time.time,
    )


class ServiceHolder:
    """What the hub's mount needs of a Domain: its `.service` (the face never calls tools)."""

    def __init__(self, service: StorageService) -> None:
        self.service = service


def make_domain(
    data_dir: Path,
    config: dict[str, Any] | None = None,
    *,
    clock: FakeClock | None = None,
    public_url: str | None = None,
) -> Domain:
    domain = create(ServerSettings(name="storage", config=config or {}, data_dir=data_dir, public_url=public_url))
    if clock is not None:
        domain.service.clock = clock
    return domain


@dataclass
class ServedStorage:
    url: str  # http://127.0.0.1:PORT
    service: StorageService
    ctx: DirectFacadeContext
    domain: Domain | None = None  # with_tools=True: the MCP tools over the same service

    @property
    def s3_endpoint(self) -> str:
        return self.url + "/storage"

    def bucket_key(self, bucket: str) -> str:
        return self.service.buckets[bucket].key


@asynccontextmanager
async def serve_storage(
    data_dir: Path,
    config: dict[str, Any] | None = None,
    *,
    clock: FakeClock | None = None,
    keys: dict[str, Principal] | None = None,
    with_tools: bool = False,
) -> AsyncIterator[ServedStorage]:
    """The storage HTTP/S3 face on a loopback port, over an in-process storage service."""
    domain = make_domain(data_dir, config, clock=clock) if with_tools else None
    service = domain.service if domain is not None else make_service(data_dir, config, clock=clock)
    holder: Any = domain if domain is not None else ServiceHolder(service)
    ctx = DirectFacadeContext({"storage": holder}, master_key=MASTER_KEY, keys=keys)
    app = Starlette(routes=routes(ctx))
    try:
        async with serve_asgi(app) as url:
            ctx._public_url = url
            service.public_url = url
            yield ServedStorage(url, service, ctx, domain)
    finally:
        service.close()
