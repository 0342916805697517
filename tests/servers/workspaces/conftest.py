from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers.demo.server import create as create_demo
from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result
from servers.models.server import create as create_models
from servers.workspaces.runs import RunEvent
from servers.workspaces.server import create
from servers.workspaces.service import WorkspacesService
from tests.servers.workspaces.fakes import ScriptedOpenAI, scripted_openai_per_module  # noqa: F401 (fixture)
from tests.support.hub import DomainsHubCaller

SCRIPTED_AGENT = Path(__file__).with_name("scripted_agent.py")
# Prices per 1M tokens; the fake answers 10 prompt + 5 completion tokens: 20e-6 USD a call.
PRICES = {"input": 1.0, "output": 2.0}
COST_PER_CALL = (10 * 1.0 + 5 * 2.0) / 1e6


def models_config(fake: ScriptedOpenAI) -> dict[str, Any]:
    return {
        "backends": {"local": {"type": "openai", "base_url": fake.url, "read_timeout": 10.0}},
        "aliases": {"main": {"deployments": [{"backend": "local", "model": "fake-model", "prices": PRICES}]}},
        "retries": {"max_retries": 0},
        "health": {"enabled": False},
        "usage": {"enabled": False},
    }


def scripted_agent_config(**extra: Any) -> dict[str, Any]:
    """The committed scripted CLI as an external agent, wired like a real coding-agent CLI."""
    return {
        "command": [sys.executable, str(SCRIPTED_AGENT), "-p", "{prompt}", "--output-format", "json"],
        "resume_args": ["--resume", "{session_id}"],
        "model_args": ["--model", "{model}"],
        "json_schema_args": ["--json-schema", "{json_schema}"],
        **extra,
    }


@dataclass
class Env:
    domain: Domain
    service: WorkspacesService
    models: Domain
    hub: DomainsHubCaller
    fake: ScriptedOpenAI
    data_dir: Path
    events: list[RunEvent] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.data_dir / "workspaces" / "workspaces"

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        return await self.domain.call(tool, args, ToolContext(tool, request_id="test"))

    async def ok(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, args)
        error = error_from_result(result)
        assert error is None, f"{tool} failed: {error.code}: {error.message}"
        return result["structuredContent"]

    async def error(self, tool: str, args: dict[str, Any]) -> ToolError:
        error = error_from_result(await self.call(tool, args))
        assert error is not None, f"{tool} unexpectedly succeeded"
        return error

    def kinds(self, run_id: str | None = None) -> list[str]:
        return [e.kind for e in self.events if run_id is None or e.run_id == run_id]


@asynccontextmanager
async def workspaces_env(data_dir: Path, fake: ScriptedOpenAI, **config: Any) -> AsyncIterator[Env]:
    """The real workspaces domain over the real models domain (via an in-process hub) and the fake."""
    models = create_models(ServerSettings(name="models", config=models_config(fake), data_dir=data_dir))
    hub = DomainsHubCaller({"models": models, "demo": create_demo(ServerSettings(name="demo"))})
    domain = create(
        ServerSettings(name="workspaces", config={"default_model": "main", **config}, data_dir=data_dir, hub=hub)
    )
    env = Env(domain, domain.service, models, hub, fake, data_dir)
    domain.service.runs.listeners.append(env.events.append)
    try:
        async with domain.service.running():
            yield env
    finally:
        await models.service.aclose()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake(_scripted: ScriptedOpenAI) -> ScriptedOpenAI:
    _scripted.reset()
    return _scripted


@pytest.fixture
async def env(tmp_path: Path, fake: ScriptedOpenAI) -> AsyncIterator[Env]:
    async with workspaces_env(tmp_path, fake) as running:
        yield running
