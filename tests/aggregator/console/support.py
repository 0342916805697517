"""A real hub with the models server (in front of a fake OpenAI backend) and storage, for console tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, running_hub
from tests.servers.models.fakes import FakeBackend, fake_backend

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
USER = [{"role": "user", "content": "Say hello"}]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def models_config(fake: FakeBackend) -> dict[str, Any]:
    return {
        "backends": {"local": {"type": "openai", "base_url": fake.url, "read_timeout": 2.0}},
        "aliases": {
            "main": {
                "deployments": [{"backend": "local", "model": "fake-model", "prices": {"input": 1.0, "output": 2.0}}],
                "cache": {"enabled": True},
            },
            "other": {"deployments": [{"backend": "local", "model": "fake-model"}]},
        },
        "retries": {"max_retries": 0},
        "health": {"enabled": False},
    }


@asynccontextmanager
async def console_hub(tmp_path: Path, **sections: Any) -> AsyncIterator[tuple[RunningHub, FakeBackend]]:
    async with fake_backend("openai") as fake:
        servers = {"models": {"config": models_config(fake)}}
        async with running_hub(tmp_path, servers, builtins=["models", "storage"], **sections) as running:
            yield running, fake
