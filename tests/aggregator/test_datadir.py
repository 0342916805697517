"""One data-dir rule for every command: flag > $TOOLMUX_DATA_DIR > config > the platform's user data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml

from aggregator import datadir
from aggregator.config import parse
from tests.aggregator.hubkit import PROJECT_ROOT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOOLMUX_DATA_DIR", "TOOLMUX_MASTER_KEY")}
    env.update(PYTHONPATH=str(PROJECT_ROOT), HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.update(extra)
    return env


def test_the_flag_wins_then_the_environment_then_the_config_then_the_platform_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    env = {"TOOLMUX_DATA_DIR": str(tmp_path / "env")}
    assert datadir.resolve(tmp_path / "flag", "/cfg", environ=env) == tmp_path / "flag"
    assert datadir.resolve(None, "/cfg", environ=env) == tmp_path / "env"
    assert datadir.resolve(None, "/cfg", environ={}) == Path("/cfg")
    if sys.platform.startswith("linux"):
        assert datadir.resolve(None, None, environ={}) == tmp_path / "xdg" / "toolmux"


def test_a_relative_data_dir_in_a_config_file_is_relative_to_that_file_not_to_the_launch_directory(
    tmp_path: Path,
) -> None:
    config = parse({"server": {"data_dir": "state"}}, str(tmp_path / "conf" / "toolmux.yaml"))
    assert config.data_dir == tmp_path / "conf" / "state"


def test_the_embedded_default_keeps_data_in_the_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("XDG_DATA_HOME is the Linux rule")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert parse({}, "<embedded default>").data_dir == tmp_path / "xdg" / "toolmux"


def test_stdio_with_an_unusable_data_dir_fails_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    launch = tmp_path / "read-only-launch-dir"
    launch.mkdir(mode=0o555)
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "stdio"],
        check=False,
        cwd=launch,
        env=_env(tmp_path, TOOLMUX_DATA_DIR=str(blocker / "data")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker / "data") in lines[0] and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_stdio_launched_from_an_unwritable_directory_keeps_its_key_in_the_user_data_dir_unprinted(
    tmp_path: Path,
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    launch = tmp_path / "launch"
    launch.mkdir(mode=0o555)
    config = tmp_path / "toolmux.yaml"
    config.write_text(yaml.safe_dump({"builtins": ["storage"]}))
    errlog = tmp_path / "stderr.log"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "stdio", "--config", str(config)],
        cwd=str(launch),
        env=_env(tmp_path),
    )
    with errlog.open("w") as err, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=err), mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
    key_file = tmp_path / "xdg" / "toolmux" / "master.key"
    key = key_file.read_text().strip()
    assert "storage-put_object" in names
    assert key not in errlog.read_text() and str(key_file) in errlog.read_text()
    assert list(launch.iterdir()) == []
