"""The models server as users run it: a real stdio child, the MCP tools, streaming as progress, the CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
import yaml
from mcp import Client, StdioServerParameters

from aggregator.cli import main as toolmux
from servers.kit import ServerSettings, ToolContext, error_from_result
from servers.models.server import create
from tests.servers.models.conftest import USER, backend_config
from tests.servers.models.fakes import FakeBackend

pytestmark = pytest.mark.anyio


def config_for(fake: FakeBackend) -> dict[str, Any]:
    return {
        "backends": {"local": backend_config(fake)},
        "aliases": {
            "main": {"deployments": [{"backend": "local", "model": "fake-model", "prices": {"input": 1, "output": 1}}]}
        },
        "health": {"enabled": False},
    }


async def test_models_server_runs_as_a_stdio_child_and_streams_chat_as_progress(
    tmp_path: Path, openai_fake: FakeBackend
) -> None:
    config_file = tmp_path / "models.yaml"
    config_file.write_text(yaml.safe_dump(config_for(openai_fake)))
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "aggregator",
            "server",
            "models",
            "--stdio",
            "--config",
            str(config_file),
            "--data-dir",
            str(tmp_path),
        ],
    )
    chunks: list[dict[str, Any]] = []
    counters: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        counters.append(progress)
        chunks.append(orjson.loads(message or "{}"))

    with anyio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            listing = await client.call_tool("list_models", {})
            result = await client.call_tool(
                "chat", {"model": "main", "messages": USER, "stream": True}, progress_callback=on_progress
            )
            bad = await client.call_tool("chat", {"model": "main"})
            usage = await client.call_tool("usage", {"group_by": ["model"]})
    assert tools == {"chat", "embed", "list_models", "usage"}
    assert [m["id"] for m in listing.structured_content["data"]] == ["main"]
    assert result.structured_content["choices"][0]["message"]["content"] == "Hello from the fake backend"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from the fake backend"
    assert counters == sorted(counters) and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert bad.is_error and "messages" in bad.content[0].text
    assert usage.structured_content["totals"]["requests"] == 1


async def test_tool_validation_names_the_field(tmp_path: Path) -> None:
    domain = create(ServerSettings(name="models", data_dir=tmp_path))
    try:
        result = await domain.call(
            "chat", {"model": "main", "messages": [{"content": "hi"}]}, ToolContext("chat", "r1")
        )
        empty = await domain.call("list_models", {}, ToolContext("list_models", "r2"))
    finally:
        await domain.service.aclose()
    error = error_from_result(result)
    assert error is not None and error.field == "messages.0.role"
    assert empty["structuredContent"]["data"] == [] and "docs/models.md" in empty["structuredContent"]["hint"]


async def test_invalid_config_names_the_key_path(tmp_path: Path) -> None:
    from servers.kit import ServerConfigError

    bad = {"backends": {}, "aliases": {"main": {"deployments": [{"backend": "nowhere", "model": "m"}]}}}
    with pytest.raises(ServerConfigError) as caught:
        create(ServerSettings(name="models", config=bad, data_dir=tmp_path))
    assert "unknown backend 'nowhere'" in str(caught.value)


async def test_domain_health_reports_deployments(tmp_path: Path, openai_fake: FakeBackend) -> None:
    domain = create(ServerSettings(name="models", config=config_for(openai_fake), data_dir=tmp_path))
    try:
        await domain.service.health.probe_all()
        assert domain.health is not None
        report = await domain.health()
    finally:
        await domain.service.aclose()
    assert report["healthy"] is True and report["details"]["deployments"][0]["healthy"] is True


async def test_toolmux_usage_prints_a_table_and_json(
    tmp_path: Path, openai_fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = create(ServerSettings(name="models", config=config_for(openai_fake), data_dir=tmp_path))
    try:
        for caller in ("alice", "bob", "alice"):
            await domain.service.chat({"model": "main", "messages": USER}, caller=caller)
    finally:
        await domain.service.aclose()
    assert toolmux(["usage", "--data-dir", str(tmp_path), "--by", "key"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["key", "requests", "errors"]
    assert table[2].split()[:2] == ["alice", "2"] and table[3].split()[:2] == ["bob", "1"]
    assert table[-1].split()[:2] == ["TOTAL", "3"]
    assert toolmux(["usage", "--data-dir", str(tmp_path), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["totals"]["prompt_tokens"] == 30


async def test_toolmux_usage_explains_an_empty_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert toolmux(["usage", "--data-dir", str(tmp_path)]) == 1
    assert "no usage recorded yet" in capsys.readouterr().err
    assert toolmux(["usage", "--data-dir", str(tmp_path), "--by", "colour"]) == 2
