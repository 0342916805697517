from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from aggregator.config import FacadesConfig
from aggregator.facade import ollama as ollama_facade
from aggregator.facade import openai as openai_facade
from aggregator.facade.base import DirectFacadeContext
from aggregator.principal import Principal
from servers.kit import ServerSettings
from servers.models.cache import ResponseCache
from servers.models.server import create
from servers.models.service import ModelsService
from tests.servers.models.fakes import FakeBackend, fake_backend
from tests.servers.workspaces.fakes import scripted_openai_per_module  # noqa: F401 (fixture)
from tests.support.asgi import serve_asgi

MASTER_KEY = "test-master"
LIMITED_KEY = "limited-key"


@dataclass
class Hub:
    url: str
    fake: FakeBackend
    service: ModelsService


def models_config(fake: FakeBackend, **extra: Any) -> dict[str, Any]:
    return {
        "backends": {"local": {"type": fake.protocol, "base_url": fake.url, "read_timeout": 2.0}},
        "aliases": {
            "main": {
                "deployments": [{"backend": "local", "model": "fake-model", "prices": {"input": 1.0, "output": 2.0}}],
                "cache": {"enabled": True},
            },
            "embed": {"deployments": [{"backend": "local", "model": "embed-model"}], "embedding": True},
        },
        "retries": {"max_retries": 0},
        **extra,
    }


async def start_hub(
    tmp_path: Path, fake: FakeBackend, *, facades: FacadesConfig | None = None, **extra: Any
) -> AsyncIterator[Hub]:
    domain = create(ServerSettings(name="models", config=models_config(fake, **extra), data_dir=tmp_path))
    keys = {LIMITED_KEY: Principal(name="limited", allowed_tools=("models-list_models",))}
    ctx = DirectFacadeContext({"models": domain}, master_key=MASTER_KEY, keys=keys, facades=facades)
    app = Starlette(routes=[*openai_facade.routes(ctx), *ollama_facade.routes(ctx)])
    try:
        async with serve_asgi(app, lifespan="off") as url:
            yield Hub(url, fake, domain.service)
    finally:
        await domain.service.aclose()


def reset(hub: Hub) -> Hub:
    """A module's shared hub, fresh for the next test: no script, no cache, closed circuits."""
    hub.fake.reset()
    hub.service.cache = ResponseCache()
    for state in hub.service.states.values():
        state.breaker.record_success()
        state.requests.clear()
        state.tokens.clear()
    return hub


# One backend and one hub per test module (starting and stopping servers costs ~0.2 s each).


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def _openai_hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    async with fake_backend("openai") as fake:
        async for running in start_hub(tmp_path_factory.mktemp("hub"), fake):
            yield running


@pytest.fixture(scope="module")
async def _ollama_hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    async with fake_backend("ollama") as fake:
        async for running in start_hub(tmp_path_factory.mktemp("hub"), fake):
            yield running


@pytest.fixture
def hub(_openai_hub: Hub) -> Hub:
    return reset(_openai_hub)


@pytest.fixture
def ollama_hub(_ollama_hub: Hub) -> Hub:
    return reset(_ollama_hub)
