"""Upstreams are supervised: crashes are contained, reported, restarted; config reloads keep the healthy."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from aggregator.app import HubApp
from aggregator.config import parse
from aggregator.hub import Hub
from aggregator.protocol import jsonrpc
from tests.aggregator.hubkit import MASTER_KEY, PROJECT_ROOT, hub_config, probe, running_hub

pytestmark = pytest.mark.anyio


class ListChanges:
    """Counts notifications/tools/list_changed a client receives, with an event per arrival."""

    def __init__(self) -> None:
        self.count = 0
        self._arrived = anyio.Event()

    async def handler(self, message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", None) == "notifications/tools/list_changed":
            self.count += 1
            self._arrived.set()

    async def next(self, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            await self._arrived.wait()
        self._arrived = anyio.Event()


async def test_a_killed_child_fails_its_call_leaves_the_catalog_and_comes_back(tmp_path: Path) -> None:
    # A second before the restart, so the test can see the server gone in between.
    servers = {"alpha": probe("alpha", restart={"first_delay": 1.0}), "beta": probe("beta")}
    async with running_hub(tmp_path, servers) as running:
        changes = ListChanges()
        progressed = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            progressed.set()

        async with running.client(message_handler=changes.handler) as hub:
            pid = int((await hub.call_tool("alpha-pid", {})).content[0].text)  # type: ignore[union-attr]
            failure: list[BaseException] = []

            async def slow_call() -> None:
                try:
                    await hub.call_tool("alpha-slow", {"steps": 10_000, "interval": 0.05}, progress=on_progress)
                except MCPError as exc:
                    failure.append(exc)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(slow_call)
                    await progressed.wait()
                    os.kill(pid, signal.SIGKILL)
            # The in-flight call got a clear error, well within its timeout.
            assert failure and "alpha" in str(failure[0]) and "SIGKILL" in str(failure[0])

            await changes.next()
            names = {t.name for t in await hub.list_tools()}
            assert "alpha-echo" not in names and "beta-echo" in names
            # Gone from the list, but not unknown: a call says the server is restarting (issue 19).
            with pytest.raises(MCPError) as restarting:
                await hub.call_tool("alpha-echo", {"text": "x"})
            assert restarting.value.error.code == jsonrpc.UPSTREAM_UNAVAILABLE

            await changes.next()
            assert "alpha-echo" in {t.name for t in await hub.list_tools()}
            new_pid = int((await hub.call_tool("alpha-pid", {})).content[0].text)  # type: ignore[union-attr]
        assert new_pid != pid
        assert running.hub.upstreams["alpha"].restarts == 1


async def test_a_server_that_cannot_start_is_reported_with_the_reason(tmp_path: Path) -> None:
    broken = {"command": str(tmp_path / "no-such-program"), "restart": {"policy": "never"}}
    async with running_hub(tmp_path, {"broken": broken, "beta": probe("beta")}) as running:
        health = running.hub.health(deep=True)
        async with running.client() as hub:
            assert {t.name for t in await hub.list_tools()} >= {"beta-echo"}
    assert health["status"] == "degraded"
    assert health["servers"]["broken"]["state"] in ("down", "stopped")
    assert "no-such-program" in health["servers"]["broken"]["reason"]


async def test_a_tool_name_collision_stops_the_hub_at_start_naming_both_servers(tmp_path: Path) -> None:
    servers = {"first": probe("first", prefix="never"), "second": probe("second", prefix="never")}
    hub = Hub(parse(hub_config(tmp_path, servers)), master_key=MASTER_KEY)
    with pytest.raises(RuntimeError) as caught:
        async with HubApp(hub).lifespan():
            pass
    message = str(caught.value)
    assert "'echo'" in message and "'first'" in message and "'second'" in message


async def test_reload_starts_new_stops_removed_and_keeps_unchanged_servers_running(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"alpha": probe("alpha"), "beta": probe("beta")}) as running:
        async with running.client() as hub:
            alpha_pid = (await hub.call_tool("alpha-pid", {})).content[0].text  # type: ignore[union-attr]
        new = parse(hub_config(tmp_path, {"alpha": probe("alpha"), "gamma": probe("gamma")}))
        report = await running.hub.reload(new)
        await running.hub.wait_settled(30)
        async with running.client() as hub:
            names = {t.name for t in await hub.list_tools()}
            same_pid = (await hub.call_tool("alpha-pid", {})).content[0].text  # type: ignore[union-attr]
    assert report == {"kept": ["alpha"], "started": ["gamma"], "restarted": [], "stopped": ["beta"]}
    assert "gamma-echo" in names and "beta-echo" not in names
    assert same_pid == alpha_pid


async def test_the_stdio_face_serves_the_aggregated_catalog_to_a_launching_client(tmp_path: Path) -> None:
    import mcp_types as types
    import yaml
    from mcp import Client, StdioServerParameters
    from mcp.client.session import ClientRequestContext

    config = tmp_path / "toolmux.yaml"
    config.write_text(yaml.safe_dump(hub_config(tmp_path, {"alpha": probe("alpha")})))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "stdio", "--config", str(config)],
        cwd=str(PROJECT_ROOT),
    )
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async def on_sampling(ctx: ClientRequestContext, p: types.CreateMessageRequestParams) -> Any:
        return types.CreateMessageResult(role="assistant", model="m", content=types.TextContent(type="text", text="ok"))

    with anyio.fail_after(60):
        async with Client(params, mode="legacy", sampling_callback=on_sampling) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            echoed = await client.call_tool("alpha-echo", {"text": "via stdio"})
            await client.call_tool("alpha-slow", {"steps": 2, "interval": 0}, progress_callback=on_progress)
            sampled = await client.call_tool("alpha-ask_llm", {"prompt": "p"})
    assert "alpha-echo" in names
    assert echoed.structured_content == {"text": "via stdio", "server": "alpha"}
    assert steps == [1, 2]
    assert sampled.content[0].text == "llm said: ok"  # type: ignore[union-attr]


async def test_a_call_past_its_timeout_fails_clearly_and_the_child_is_told_to_stop(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    slow_server = probe("alpha", markers, timeouts={"call": 0.5})
    async with running_hub(tmp_path, {"alpha": slow_server}) as running, running.client() as hub:
        with anyio.fail_after(10), pytest.raises(MCPError) as caught:
            await hub.call_tool("alpha-slow", {"steps": 1000, "interval": 0.05, "tag": "t1"})
        assert caught.value.error.code == -32011
        assert "did not answer tools/call within 0.5 s" in caught.value.error.message
        with anyio.fail_after(10):
            for _ in range(500):
                if await anyio.Path(markers / "cancelled-t1").exists():
                    break
                await anyio.sleep(0.02)
        assert await anyio.Path(markers / "cancelled-t1").exists()
        assert (await hub.call("alpha-echo", text="next"))["text"] == "next"


async def test_a_child_that_exits_at_start_is_reported_with_what_it_said(tmp_path: Path) -> None:
    bad = {"mode": "stdio", "config": {"buckets": [{"name": "x"}]}, "restart": {"policy": "never"}}
    async with running_hub(tmp_path, {"storage": bad}, builtins=["storage"]) as running:
        reason = running.hub.health(deep=False)["servers"]["storage"]["reason"]
    assert "exited with status 2" in reason
    assert "invalid config: servers.storage.config.buckets" in reason


async def test_a_killed_child_is_back_with_its_tools_within_two_seconds(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"alpha": probe("alpha")}) as running:
        changes = ListChanges()
        async with running.client(message_handler=changes.handler) as hub:
            pid = int((await hub.call_tool("alpha-pid", {})).content[0].text)  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            with anyio.fail_after(2):
                await changes.next()  # gone
                await changes.next()  # back
                new_pid = int((await hub.call_tool("alpha-pid", {})).content[0].text)  # type: ignore[union-attr]
    assert new_pid != pid


async def test_a_child_that_keeps_crashing_waits_longer_before_each_restart(tmp_path: Path) -> None:
    import logging
    import re

    delays: list[float] = []
    three = anyio.Event()

    class Restarts(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = re.search(r"server crashy is down .*; restarting in ([0-9.]+) s", record.getMessage())
            if found:
                delays.append(float(found.group(1)))
                if len(delays) == 3:
                    three.set()

    crashing = {"command": sys.executable, "args": ["-c", "pass"], "restart": {"initial_backoff": 0.2}}
    handler = Restarts()
    logging.getLogger("toolmux").addHandler(handler)
    try:
        async with running_hub(tmp_path, {"crashy": crashing}):
            with anyio.fail_after(20):
                await three.wait()
    finally:
        logging.getLogger("toolmux").removeHandler(handler)
    assert delays[:3] == [0.0, 0.2, 0.4]
