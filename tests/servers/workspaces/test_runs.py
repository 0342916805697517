"""Runs: parallel across workspaces, one per workspace, cancel, async results and their expiry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from servers.workspaces.runs import RunEvent
from tests.servers.workspaces.conftest import Env, workspaces_env
from tests.servers.workspaces.fakes import Barrier, ScriptedOpenAI, Turn, prompt_of, tool_results
from tests.servers.workspaces.procs import group_members, wait_gone

pytestmark = pytest.mark.anyio

LONG_COMMAND = "sleep 3143.5 & echo ready; wait"


def long_shell_policy(body: dict[str, Any]) -> Turn:
    """For the prompt "long": start a command that runs until killed. Other prompts: answer."""
    if prompt_of(body) != "long":
        return Turn(content=f"quick answer to {prompt_of(body)}")
    results = tool_results(body)
    if not results:
        return Turn(calls=[("run_shell", {"command": LONG_COMMAND})])
    return Turn(content=f"came back: {results[0][:40]}")


class Watch:
    """Run events as anyio Events: `await watch.ready(...)` instead of sleeping."""

    def __init__(self, env: Env) -> None:
        self.command_ready = anyio.Event()
        self.leader: int | None = None
        self.finished: dict[str, anyio.Event] = {}
        env.service.runs.listeners.append(self)

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "process_started":
            self.leader = event.data["pid"]
        elif event.kind == "process_output" and b"ready" in event.data["data"]:
            self.command_ready.set()
        elif event.kind == "run_finished":
            self.finished.setdefault(event.run_id, anyio.Event()).set()

    async def run_finished(self, run_id: str) -> None:
        await self.finished.setdefault(run_id, anyio.Event()).wait()


async def test_runs_in_two_workspaces_proceed_together(env: Env) -> None:
    barrier = Barrier(2)  # each run's first model call waits until the other one's has arrived too

    async def policy(body: dict[str, Any]) -> Turn:
        if not tool_results(body) and body["messages"][-1]["role"] == "user":
            await barrier.wait()
        return Turn(content=f"done: {prompt_of(body)}")

    env.fake.policy = policy
    results: dict[str, dict[str, Any]] = {}

    async def run(name: str) -> None:
        results[name] = await env.ok("run", {"prompt": name, "workspace": name})

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "left")
            tg.start_soon(run, "right")
    assert results["left"]["result"] == "done: left" and results["right"]["result"] == "done: right"


async def test_a_second_run_in_a_busy_workspace_is_refused_and_cancel_kills_the_command(env: Env) -> None:
    env.fake.policy = long_shell_policy
    watch = Watch(env)
    first: dict[str, Any] = {}
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def first_run() -> None:
                first.update(await env.ok("run", {"prompt": "long", "workspace": "busy"}))

            tg.start_soon(first_run)
            await watch.command_ready.wait()
            assert watch.leader is not None
            processes = group_members(watch.leader)
            assert any("3143.5" in " ".join(p.cmdline()) for p in processes)

            refused = await env.error("run", {"prompt": "another", "workspace": "busy"})
            assert refused.code == "busy" and refused.field == "workspace" and refused.retryable
            status = await env.ok("status", {})
            [active] = status["busy"]
            assert refused.data == {"workspace": "busy", "run_id": active["run_id"]}
            other = await env.ok("run", {"prompt": "elsewhere", "workspace": "free"})
            assert other["result"] == "quick answer to elsewhere"  # other workspaces are not held up

            cancelled = await env.ok("run_cancel", {"workspace": "busy"})
            assert cancelled == {
                "run_id": active["run_id"],
                "workspace": "busy",
                "cancelled": True,
                "status": "cancelled",
            }
        await wait_gone(processes)
    assert first["status"] == "cancelled" and first["is_error"] and first["num_turns"] == 1
    assert "run_cancel" in first["result"]
    assert (await env.ok("status", {}))["busy"] == []
    again = await env.ok("run", {"prompt": "after", "workspace": "busy"})
    assert again["status"] == "completed" and again["session_id"] == first["session_id"]


async def test_a_caller_that_goes_away_takes_its_sync_run_and_processes_with_it(env: Env) -> None:
    env.fake.policy = long_shell_policy
    watch = Watch(env)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(env.call, "run", {"prompt": "long", "workspace": "leaver"})
            await watch.command_ready.wait()
            assert watch.leader is not None
            processes = group_members(watch.leader)
            tg.cancel_scope.cancel()  # what an MCP cancellation or an HTTP disconnect does to the handler
        await wait_gone(processes)
    assert env.service.runs.active == {}
    finished = [e for e in env.events if e.kind == "run_finished"]
    assert finished[-1].data["status"] == "cancelled"
    sessions = await env.ok("list_sessions", {"workspace": "leaver"})
    assert sessions["sessions"][0]["runs"] == 1  # the cancelled run is in the transcript


async def test_async_run_returns_at_once_and_its_result_is_fetched_later(env: Env) -> None:
    started = await env.ok("run", {"prompt": "count", "workspace": "bg", "async": True})
    assert started["status"] == "running" and started["mode"] == "async"
    with anyio.fail_after(10):
        result = await env.ok("run_result", {"run_id": started["run_id"], "wait_seconds": 10})
    assert result["status"] == "completed" and result["result"] == "wc says: 3 notes/list.txt"
    assert result["session_id"] == started["session_id"]
    assert (await env.ok("run_result", {"workspace": "bg"}))["run_id"] == started["run_id"]


async def test_async_run_can_be_cancelled_by_run_id(env: Env) -> None:
    env.fake.policy = long_shell_policy
    watch = Watch(env)
    started = await env.ok("run", {"prompt": "long", "workspace": "bg-cancel", "async": True})
    with anyio.fail_after(20):
        await watch.command_ready.wait()
        assert watch.leader is not None
        processes = group_members(watch.leader)
        cancelled = await env.ok("run_cancel", {"run_id": started["run_id"]})
        await wait_gone(processes)
    assert cancelled["cancelled"] is True and cancelled["status"] == "cancelled"
    result = await env.ok("run_result", {"run_id": started["run_id"]})
    assert result["status"] == "cancelled"
    late = await env.ok("run_cancel", {"run_id": started["run_id"]})
    assert late["cancelled"] is False


async def test_unread_async_results_expire(tmp_path: Path, fake: ScriptedOpenAI) -> None:
    async with workspaces_env(tmp_path, fake, async_result_ttl=100, read_result_ttl=10) as env:
        now = [1000.0]
        clock: Callable[[], float] = lambda: now[0]  # noqa: E731
        env.service.runs.clock = clock
        watch = Watch(env)
        unread = await env.ok("run", {"prompt": "count", "workspace": "exp-a", "async": True})
        read = await env.ok("run", {"prompt": "count", "workspace": "exp-b", "async": True})
        with anyio.fail_after(10):
            await watch.run_finished(unread["run_id"])
            await env.ok("run_result", {"run_id": read["run_id"], "wait_seconds": 10})
        now[0] += 11  # past the read TTL, not the unread one
        assert (await env.error("run_result", {"run_id": read["run_id"]})).code == "not_found"
        assert (await env.ok("run_result", {"run_id": unread["run_id"]}))["status"] == "completed"
        now[0] += 11
        assert (await env.error("run_result", {"run_id": unread["run_id"]})).code == "not_found"

        never_read = await env.ok("run", {"prompt": "count", "workspace": "exp-c", "async": True})
        with anyio.fail_after(10):
            await watch.run_finished(never_read["run_id"])
        assert [r["run_id"] for r in (await env.ok("status", {}))["kept_results"]] == [never_read["run_id"]]
        now[0] += 101
        error = await env.error("run_result", {"run_id": never_read["run_id"]})
        assert error.code == "not_found" and "expired" in error.message
        assert (await env.ok("status", {}))["kept_results"] == []


async def test_fire_and_forget_keeps_no_result_but_the_transcript_has_it(env: Env) -> None:
    watch = Watch(env)
    started = await env.ok("run", {"prompt": "count", "workspace": "fnf", "fire_and_forget": True})
    assert started["status"] == "running" and started["mode"] == "fire_and_forget"
    with anyio.fail_after(10):
        await watch.run_finished(started["run_id"])
    assert (await env.error("run_result", {"run_id": started["run_id"]})).code == "not_found"
    [session] = (await env.ok("list_sessions", {"workspace": "fnf"}))["sessions"]
    assert session["session_id"] == started["session_id"] and session["last_result"] == "wc says: 3 notes/list.txt"


async def test_a_run_past_its_timeout_is_stopped_and_its_command_killed(env: Env) -> None:
    env.fake.policy = long_shell_policy
    watch = Watch(env)
    result: dict[str, Any] = {}
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                result.update(await env.ok("run", {"prompt": "long", "workspace": "slow", "timeout": 1.0}))

            tg.start_soon(run)
            await watch.command_ready.wait()
            assert watch.leader is not None
            processes = group_members(watch.leader)
        await wait_gone(processes)
    assert result["status"] == "timeout" and result["is_error"] and result["error_code"] == "timeout"


async def test_run_result_and_cancel_of_unknown_runs_are_not_found(env: Env) -> None:
    assert (await env.error("run_result", {"run_id": "run_nope"})).field == "run_id"
    assert (await env.error("run_cancel", {"workspace": "never"})).code == "not_found"
    assert (await env.error("run_result", {})).field == "run_id"
