from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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
Backends = Callable[..., AbstractAsyncContextManager[FakeBackend]]


# One fake server per protocol for a whole test module (starting and stopping a server costs
# ~0.2 s); each test gets it reset to a fresh state.


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def _fakes(anyio_backend: str) -> AsyncIterator[dict[str, FakeBackend]]:
    async with (
        fake_backend("openai") as openai_1,
        fake_backend("openai") as openai_2,
        fake_backend("ollama") as ollama,
        fake_backend("anthropic") as anthropic,
    ):
        yield {"openai": openai_1, "openai_2": openai_2, "ollama": ollama, "anthropic": anthropic}


def _fresh(fakes: dict[str, FakeBackend], name: str) -> FakeBackend:
    fake = fakes[name]
    fake.reset()
    return fake


@pytest.fixture
def backends(_fakes: dict[str, FakeBackend]) -> Backends:
    """`async with backends("ollama", reply=...) as fake:` -- the module's shared fake, reset and set up."""

    @asynccontextmanager
    async def use(protocol: str, **options: Any) -> AsyncIterator[FakeBackend]:
        fake = _fresh(_fakes, protocol)
        for name, value in options.items():
            setattr(fake, name, value)
        yield fake

    return use


@pytest.fixture
def openai_fake(_fakes: dict[str, FakeBackend]) -> FakeBackend:
    return _fresh(_fakes, "openai")


@pytest.fixture
def openai_fake_2(_fakes: dict[str, FakeBackend]) -> FakeBackend:
    return _fresh(_fakes, "openai_2")


@pytest.fixture
def ollama_fake(_fakes: dict[str, FakeBackend]) -> FakeBackend:
    return _fresh(_fakes, "ollama")


@pytest.fixture
def anthropic_fake(_fakes: dict[str, FakeBackend]) -> FakeBackend:
    return _fresh(_fakes, "anthropic")
