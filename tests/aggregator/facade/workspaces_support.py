"""The workspaces HTTP faces served over loopback, on the real workspaces and models domains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette

from aggregator.facade import openai as openai_facade
from aggregator.facade import workspaces as workspaces_facade
from aggregator.facade.base import DirectFacadeContext
from servers.workspaces.runs import RunEvent
from tests.servers.workspaces.conftest import Env, workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn, count_lines_policy, prompt_of, tool_results
from tests.support.asgi import serve_asgi

MASTER_KEY = "test-master"
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
LONG_COMMAND = "sleep 3145.5 & echo ready; wait"


@dataclass
class Face:
    url: str
    env: Env


@asynccontextmanager
async def serve_workspaces(tmp_path: Path, fake: ScriptedOpenAI, **config: Any) -> AsyncIterator[Face]:
    async with workspaces_env(tmp_path, fake, **config) as env:
        ctx = DirectFacadeContext({"workspaces": env.domain, "models": env.models}, master_key=MASTER_KEY)
        app = Starlette(routes=[*workspaces_facade.routes(ctx), *openai_facade.routes(ctx)])
        async with serve_asgi(app, lifespan="off") as url:
            yield Face(url, env)


@asynccontextmanager
async def serve_scripted(tmp_path: Path, scripted: ScriptedOpenAI, **config: Any) -> AsyncIterator[Face]:
    """`serve_workspaces` on the module's scripted fake, reset to answer with `long_or_count_policy`."""
    scripted.reset()
    scripted.policy = long_or_count_policy
    async with serve_workspaces(tmp_path, scripted, **config) as running:
        yield running


def long_or_count_policy(body: dict[str, Any]) -> Turn:
    """The prompt "long" starts a command that runs until killed; other prompts count lines."""
    if prompt_of(body) != "long":
        return count_lines_policy(body)
    if not tool_results(body):
        return Turn(calls=[("run_shell", {"command": LONG_COMMAND})])
    return Turn(content="came back")


class CommandWatch:
    """Set when a run's shell command printed 'ready'; remembers the command's process group."""

    def __init__(self, env: Env) -> None:
        self.ready = anyio.Event()
        self.leader: int | None = None
        env.service.runs.listeners.append(self)

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "process_started":
            self.leader = event.data["pid"]
        elif event.kind == "process_output" and b"ready" in event.data["data"]:
            self.ready.set()
