"""External agents: the committed scripted CLI run in the workspace, its JSON mapped onto the result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from servers.kit import ServerConfigError, ServerSettings
from servers.workspaces.runs import RunEvent
from servers.workspaces.server import create
from tests.servers.workspaces.conftest import Env, scripted_agent_config, workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI
from tests.servers.workspaces.procs import group_members, wait_gone

pytestmark = pytest.mark.anyio


@pytest.fixture
async def agent_env(tmp_path: Path, fake: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv("SCRIPTED_AGENT_KEY", "k-123")
    monkeypatch.setenv("UNRELATED_SECRET", "hunter2")
    config = scripted_agent_config(pass_env=["SCRIPTED_AGENT_KEY"], env={"AGENT_MODE": "test"})
    async with workspaces_env(tmp_path, fake, agents={"scripted": config}) as env:
        yield env


def run_args(prompt: str, workspace: str = "ext", **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "workspace": workspace, "agent": "scripted", **extra}


async def test_the_cli_works_in_the_workspace_and_its_json_becomes_the_result(agent_env: Env) -> None:
    result = await agent_env.ok("run", run_args("write a report", model="main"))
    assert (agent_env.root / "ext" / "agent-output.txt").read_text() == "write a report"
    assert result["result"] == "wrote agent-output.txt" and result["is_error"] is False
    assert result["agent"] == "scripted" and result["status"] == "completed" and result["model"] == "main"
    assert result["num_turns"] == 2 and result["total_cost"] == pytest.approx(0.0125)
    assert result["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    assert agent_env.fake.chat_requests == []  # the external agent brings its own model


async def test_continue_passes_the_cli_its_own_session_id(agent_env: Env) -> None:
    first = await agent_env.ok("run", run_args("write one"))
    second = await agent_env.ok("run", run_args("recall"))
    assert second["session_id"] == first["session_id"]
    assert second["result"] == "earlier: write one"
    fresh = await agent_env.ok("run", run_args("recall", no_continue=True))
    assert fresh["result"] == "earlier: " and fresh["session_id"] != first["session_id"]
    resumed = await agent_env.ok("run", run_args("recall", resume=first["session_id"]))
    assert resumed["result"] == "earlier: write one | recall"


async def test_a_builtin_session_cannot_be_resumed_by_an_external_agent(agent_env: Env) -> None:
    builtin = await agent_env.ok("run", {"prompt": "count", "workspace": "ext"})
    error = await agent_env.error("run", run_args("recall", resume=builtin["session_id"]))
    assert error.field == "resume" and "builtin" in error.message


async def test_cli_failures_are_error_results_with_its_message(agent_env: Env) -> None:
    crashed = await agent_env.ok("run", run_args("crash"))
    assert crashed["is_error"] and crashed["error_code"] == "agent_failed" and "model exploded" in crashed["result"]
    refused = await agent_env.ok("run", run_args("refuse"))
    assert refused["is_error"] and refused["result"] == "I cannot do that"
    plain = await agent_env.ok("run", run_args("plain"))
    assert plain["is_error"] is False and plain["result"] == "just some text"


async def test_the_cli_gets_a_scrubbed_environment_plus_what_the_config_passes(agent_env: Env) -> None:
    names = orjson.loads((await agent_env.ok("run", run_args("env")))["result"])
    assert "SCRIPTED_AGENT_KEY" in names and "AGENT_MODE" in names and "HOME" in names
    assert "UNRELATED_SECRET" not in names


async def test_json_schema_is_passed_and_the_structured_answer_validated(agent_env: Env) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    result = await agent_env.ok("run", run_args("json", json_schema=schema))
    assert result["structured_output"] == {"answer": 42} and result["is_error"] is False
    wrong = await agent_env.ok("run", run_args("json", json_schema={"type": "array"}))
    assert wrong["is_error"] and wrong["error_code"] == "invalid_output"


async def test_cancel_kills_the_cli_and_its_children(agent_env: Env) -> None:
    ready = anyio.Event()
    leader: list[int] = []

    def watch(event: RunEvent) -> None:
        if event.kind == "process_started":
            leader.append(event.data["pid"])
        elif event.kind == "process_output" and b"ready" in event.data["data"]:
            ready.set()

    agent_env.service.runs.listeners.append(watch)
    started = await agent_env.ok("run", run_args("sleep", **{"async": True}))
    with anyio.fail_after(20):
        await ready.wait()
        processes = group_members(leader[0])
        # The CLI and the child it started (whose exec may still be settling: no cmdline check).
        assert sorted(p.ppid() == leader[0] for p in processes) == [False, True]
        cancelled = await agent_env.ok("run_cancel", {"run_id": started["run_id"]})
        await wait_gone(processes)
    assert cancelled["status"] == "cancelled"


async def test_an_unknown_agent_and_a_missing_executable_are_clear_errors(tmp_path: Path, fake: ScriptedOpenAI) -> None:
    missing = {"command": [str(tmp_path / "no-such-cli"), "{prompt}"]}
    async with workspaces_env(tmp_path, fake, agents={"ghost": missing}) as env:
        error = await env.error("run", {"prompt": "x", "workspace": "w", "agent": "nobody"})
        assert error.code == "not_found" and error.field == "agent" and "ghost" in error.message
        result = await env.ok("run", {"prompt": "x", "workspace": "w", "agent": "ghost"})
        assert (
            result["is_error"] and result["error_code"] == "unavailable" and "could not be started" in result["result"]
        )


def test_a_template_with_an_unknown_placeholder_is_a_config_error(tmp_path: Path) -> None:
    bad = {"agents": {"x": {"command": ["cli", "{promt}"]}}}
    with pytest.raises(ServerConfigError, match=r"agents\.x\.command.*unknown placeholder \{promt\}"):
        create(ServerSettings(name="workspaces", config=bad, data_dir=tmp_path))
