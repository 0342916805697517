"""The workspaces server as users run it: a real stdio child driven by `mcp.Client`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import psutil
import pytest
import yaml
from mcp import Client, StdioServerParameters

from tests.servers.workspaces.conftest import scripted_agent_config
from tests.servers.workspaces.procs import running, wait_gone

pytestmark = pytest.mark.anyio


def stdio_params(tmp_path: Path) -> StdioServerParameters:
    config_file = tmp_path / "workspaces.yaml"
    config_file.write_text(yaml.safe_dump({"agents": {"scripted": scripted_agent_config()}}))
    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "aggregator",
            "server",
            "workspaces",
            "--stdio",
            "--config",
            str(config_file),
            "--data-dir",
            str(tmp_path),
        ],
    )


async def test_workspaces_server_runs_as_a_stdio_child(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append(orjson.loads(message or "{}"))

    with anyio.fail_after(60):
        async with Client(stdio_params(tmp_path), mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            written = await client.call_tool("write_file", {"workspace": "team/a", "path": "in.txt", "text": "hello"})
            read = await client.call_tool("read_file", {"workspace": "team/a", "path": "in.txt"})
            escape = await client.call_tool("read_file", {"workspace": "team/a", "path": "../../etc/passwd"})
            run = await client.call_tool(
                "run",
                {"prompt": "write via stdio", "workspace": "team/a", "agent": "scripted"},
                progress_callback=on_progress,
            )
            builtin = await client.call_tool("run", {"prompt": "hi", "workspace": "team/a", "model": "main"})
            status = await client.call_tool("status", {})
    assert tools == {
        "list_workspaces", "status", "list_files", "read_file", "write_file", "delete_file", "list_sessions",
        "run", "run_result", "run_cancel",
    }  # fmt: skip
    assert written.structured_content["created"] is True and read.structured_content["text"] == "hello"
    assert escape.is_error and "contains '..'" in escape.content[0].text
    assert run.structured_content["result"] == "wrote agent-output.txt"
    assert (tmp_path / "workspaces" / "workspaces" / "team" / "a" / "agent-output.txt").read_text() == "write via stdio"
    assert [e["event"] for e in events][:2] == ["run_started", "process_started"]
    # Alone (no hub), the built-in agent cannot reach the models server, and says so.
    assert builtin.is_error and "hub" in builtin.content[0].text
    assert status.structured_content["isolation"]["shell"] in ("bubblewrap", "unavailable")
    assert status.structured_content["agents"] == ["builtin", "scripted"]


async def test_cancelling_the_mcp_call_kills_the_run_and_its_processes(tmp_path: Path) -> None:
    leader: list[int] = []
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        event = orjson.loads(message or "{}")
        if event.get("event") == "process_started":
            leader.append(event["pid"])
            started.set()

    with anyio.fail_after(60):
        async with Client(stdio_params(tmp_path), mode="legacy") as client:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool(
                        "run", {"prompt": "sleep", "workspace": "w", "agent": "scripted"}, progress_callback=on_progress
                    )

                tg.start_soon(call)
                await started.wait()
                cli = psutil.Process(leader[0])
                tg.cancel_scope.cancel()  # the SDK tells the server: notifications/cancelled
            await wait_gone([cli])
            sleepers = [p for p in psutil.process_iter(["cmdline"]) if "3144.5" in (p.info["cmdline"] or [])]
            await wait_gone(sleepers)
            status = await client.call_tool("status", {})
    assert not running(cli)
    assert status.structured_content["busy"] == []
