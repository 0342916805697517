"""Built-ins that run inside the hub: same behaviour as any upstream, without a process or a session."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aggregator import dispatch
from aggregator.principal import MASTER
from tests.aggregator.hubkit import running_hub

pytestmark = pytest.mark.anyio


async def test_an_in_process_builtin_streams_progress_and_reports_errors_like_a_child(tmp_path: Path) -> None:
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with running_hub(tmp_path, {}, builtins=["demo"]) as running, running.client() as hub:
        assert running.hub.upstreams["demo"].kind == "builtin-inprocess"
        result = await hub.call_tool("demo-count", {"to": 3, "interval": 0}, progress=on_progress)
        bad = await hub.call_tool("demo-add", {"a": 1})
    assert result.structured_content == {"counted": 3}
    assert steps == [1, 2, 3]
    assert bad.is_error and "missing required field 'b'" in bad.content[0].text  # type: ignore[union-attr]


async def test_cancelling_an_in_process_call_stops_it(tmp_path: Path) -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with running_hub(tmp_path, {}, builtins=["demo"]) as running, running.client() as hub:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: hub.call_tool("demo-count", {"to": 1000, "interval": 0.05}, progress=on_progress))
                await started.wait()
                tg.cancel_scope.cancel()
            channel_calls = running.hub.upstreams["demo"]._peer.channel._running  # type: ignore[union-attr]
            for _ in range(100):
                if not channel_calls:
                    break
                await anyio.sleep(0.02)
        assert channel_calls == {}
        assert (await hub.call("demo-echo", text="still fine"))["text"] == "still fine"


@pytest.mark.parametrize("mode", ["inprocess", "stdio"])
async def test_deep_health_includes_a_builtins_own_check_in_process_or_as_a_child(tmp_path: Path, mode: str) -> None:
    async with running_hub(tmp_path, {"demo": {"mode": mode}}, builtins=["demo"]) as running:
        report = await running.hub.deep_health()
    demo = report["servers"]["demo"]
    assert demo["kind"] == f"builtin-{mode}"
    assert demo["health"] == {"healthy": True, "details": {"tools": 3}}


@pytest.mark.parametrize("mode", ["inprocess", "stdio"])
async def test_a_builtin_renders_the_json_text_block_only_for_mcp_clients(tmp_path: Path, mode: str) -> None:
    async with running_hub(tmp_path, {"demo": {"mode": mode}}, builtins=["demo"]) as running, running.client() as hub:
        for_client = await hub.call_tool("demo-echo", {"text": "hi"})
        # A facade or a built-in calling another tool reads structuredContent only.
        internal = await dispatch.call_tool(running.hub, MASTER, "demo-echo", {"text": "hi"})
    assert for_client.structured_content == internal["structuredContent"] == {"text": "hi"}
    assert [block.type for block in for_client.content] == ["text"]
    assert internal["content"] == []
