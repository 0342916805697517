"""`toolmux clients …` prints configs the apps accept."""

from __future__ import annotations

import json

import pytest
import yaml

from aggregator.cli import main


def test_claude_desktop_stdio_entry_launches_the_hub_with_the_given_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clients", "claude-desktop", "--config", "/etc/toolmux.yaml"]) == 0
    entry = json.loads(capsys.readouterr().out)["mcpServers"]["toolmux"]
    assert entry["args"][-3:] == ["stdio", "--config", "/etc/toolmux.yaml"]
    assert "url" not in entry


def test_claude_desktop_http_entry_is_a_stdio_bridge_to_the_running_hub(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clients", "claude-desktop", "--http", "--url", "http://127.0.0.1:4100/mcp/"]) == 0
    entry = json.loads(capsys.readouterr().out)["mcpServers"]["toolmux"]
    assert entry["command"] == "npx" and "http://127.0.0.1:4100/mcp/" in entry["args"]
    assert any(arg.startswith("Authorization:Bearer ") for arg in entry["args"])


def test_librechat_section_is_streamable_http_with_the_key_from_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["clients", "librechat", "--url", "http://hub.internal:4000/mcp/"]) == 0
    section = yaml.safe_load(capsys.readouterr().out)["mcpServers"]["toolmux"]
    assert section["type"] == "streamable-http" and section["url"] == "http://hub.internal:4000/mcp/"
    assert section["headers"]["Authorization"] == "Bearer ${TOOLMUX_API_KEY}"
