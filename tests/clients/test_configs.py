"""`toolmux clients …` prints configs the apps accept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    # The whole `Bearer …` value travels in the environment: arguments with spaces break on Windows.
    assert "Authorization:${TOOLMUX_AUTH}" in entry["args"] and not any(" " in arg for arg in entry["args"])
    assert entry["env"]["TOOLMUX_AUTH"].startswith("Bearer ")


def test_librechat_section_is_streamable_http_with_the_key_from_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["clients", "librechat", "--url", "http://hub.internal:4000/mcp/"]) == 0
    section = yaml.safe_load(capsys.readouterr().out)["mcpServers"]["toolmux"]
    assert section["type"] == "streamable-http" and section["url"] == "http://hub.internal:4000/mcp/"
    assert section["headers"]["Authorization"] == "Bearer ${TOOLMUX_API_KEY}"


def test_claude_desktop_stdio_entry_uses_absolute_paths_and_pins_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOOLMUX_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert main(["clients", "claude-desktop", "--config", "toolmux.yaml"]) == 0
    entry = json.loads(capsys.readouterr().out)["mcpServers"]["toolmux"]
    args = entry["args"]
    assert Path(entry["command"]).is_absolute()
    assert args[args.index("--config") + 1] == str(tmp_path / "toolmux.yaml")
    if sys.platform.startswith("linux"):
        assert entry["env"]["TOOLMUX_DATA_DIR"] == str(tmp_path / "xdg" / "toolmux")


def test_openai_compatible_apps_get_the_hubs_v1_and_no_real_key(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://hub.internal:4000/mcp/"
    assert main(["clients", "librechat-endpoint", "--url", url, "--model", "fast"]) == 0
    endpoint = yaml.safe_load(capsys.readouterr().out)["endpoints"]["custom"][0]
    assert endpoint["baseURL"] == "http://hub.internal:4000/v1" and endpoint["models"]["default"] == ["fast"]
    assert endpoint["apiKey"] == "${TOOLMUX_API_KEY}"

    assert main(["clients", "continue", "--url", url]) == 0
    block = yaml.safe_load(capsys.readouterr().out)
    assert block["models"][0]["apiBase"] == "http://hub.internal:4000/v1"
    assert block["mcpServers"][0]["url"] == url

    assert main(["clients", "openai-env", "--url", url]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    assert lines["OPENAI_BASE_URL"] == "http://hub.internal:4000/v1"

    assert main(["clients", "open-webui", "--url", url]) == 0
    env = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    assert env["OPENAI_API_BASE_URL"] == "http://hub.internal:4000/v1"
    servers = json.loads(env["TOOL_SERVER_CONNECTIONS"].strip("'"))
    assert servers[0]["type"] == "mcp" and servers[0]["url"] == url


def test_toolmux_tools_with_the_hub_down_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["tools", "--url", f"http://127.0.0.1:{port}/mcp/", "--key", "k"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{port}" in err and "TaskGroup" not in err


def test_the_command_line_offers_every_app_the_generators_know() -> None:
    from aggregator.cli import CLIENT_APPS
    from clients.configs import APPS

    assert set(CLIENT_APPS) == set(APPS)
