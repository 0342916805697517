from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from servers.models.config import ModelsConfig
from servers.models.service import ModelsService
from tests.servers.models.fakes import FakeBackend, fake_backend


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SleepRecorder:
    """Stands in for anyio.sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def backend_config(fake: FakeBackend, **options: Any) -> dict[str, Any]:
    return {"type": fake.protocol, "base_url": fake.url, "read_timeout": 2.0, "connect_timeout": 1.0, **options}


def service_for(
    tmp_path: Path,
    backends: dict[str, FakeBackend],
    aliases: dict[str, Any],
    *,
    backend_options: dict[str, dict[str, Any]] | None = None,
    clock: FakeClock | None = None,
    sleep: SleepRecorder | None = None,
    **settings: Any,
) -> ModelsService:
    config = ModelsConfig.model_validate(
        {
            "backends": {n: backend_config(f, **(backend_options or {}).get(n, {})) for n, f in backends.items()},
            "aliases": aliases,
            **settings,
        }
    )
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    return ModelsService(config, data_dir=tmp_path, sleep=sleep or SleepRecorder(), **extra)


def one(backend: str, model: str = "fake-model", **options: Any) -> dict[str, Any]:
    return {"backend": backend, "model": model, **options}


USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeBackend]:
    async with fake_backend("openai") as fake:
        yield fake


@pytest.fixture
async def openai_fake_2() -> AsyncIterator[FakeBackend]:
    async with fake_backend("openai") as fake:
        yield fake


@pytest.fixture
async def ollama_fake() -> AsyncIterator[FakeBackend]:
    async with fake_backend("ollama") as fake:
        yield fake


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[FakeBackend]:
    async with fake_backend("anthropic") as fake:
        yield fake
