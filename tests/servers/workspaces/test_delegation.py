"""The built-in agent calls hub tools with the scopes of whoever started the run (a real hub)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.aggregator.hubkit import running_hub
from tests.servers.workspaces.conftest import models_config
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn, tool_results

pytestmark = pytest.mark.anyio

RUNNER_KEY = "runner-key-0123456789abcdef"
AUTH = {"keys": [{"name": "runner", "key": RUNNER_KEY, "tools": ["workspaces-*"]}]}


def read_private_object(body: dict[str, Any]) -> Turn:
    results = tool_results(body)
    if not results:
        return Turn(calls=[("storage-get_object", {"bucket": "default", "key": "private.txt"})])
    return Turn(content=f"tool said: {results[-1]}")


async def test_the_agent_reads_storage_only_when_the_runs_caller_may(tmp_path: Path, fake: ScriptedOpenAI) -> None:
    fake.policy = read_private_object
    workspaces = {"default_model": "main", "hub_tools": ["storage-get_object"]}
    servers = {"models": {"config": models_config(fake)}, "workspaces": {"config": workspaces}}
    async with running_hub(tmp_path, servers, builtins=["storage", "models", "workspaces"], auth=AUTH) as running:
        async with running.client() as master:
            await master.call(
                "storage-put_object",
                bucket="default",
                key="private.txt",
                base64=base64.b64encode(b"the private text").decode(),
                content_type="text/plain",
            )
            allowed = await master.call("workspaces-run", prompt="read it", workspace="as-master")
        async with running.client(RUNNER_KEY) as runner:
            refused = await runner.call("workspaces-run", prompt="read it", workspace="as-runner")
    assert "the private text" in allowed["result"]
    # The run itself works for the scoped key (the agent's model calls are the server's own) ...
    assert refused["status"] == "completed" and refused["result"].startswith("tool said: error:")
    # ... but the tool the model called was held to that key's scope.
    assert "the private text" not in refused["result"] and "storage-get_object" in refused["result"]
