"""The README's commands: `./scripts/serve` installs only what running needs and starts the hub."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HIDDEN = {"npm", "npx", "node", "nodejs", "corepack"}

pytestmark = pytest.mark.anyio


async def readiness(base: str) -> None:
    """Wait until a hub in another process answers /health/readiness with 200 (it has no event to wait on)."""
    async with httpx2.AsyncClient(timeout=10) as http:
        while True:
            if (await http.get(f"{base}/health/readiness")).status_code == 200:
                return
            await anyio.sleep(0.05)


def path_without(tmp_path: Path, hidden: set[str] = HIDDEN) -> str:
    """A PATH holding every executable of this one except the hidden ones (Node's by default)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name not in hidden and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(bin_dir)


def checkout_with_installed_venv(tmp_path: Path) -> Path:
    """A copy of the checkout's scripts whose .venv is already set up (stamped), running this tree's code."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("serve", "setup", "test"):
        shutil.copy2(PROJECT_ROOT / "scripts" / name, root / "scripts" / name)
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, module in (("python", None), ("toolmux", "aggregator")):
        run = f'exec {sys.executable} -m {module} "$@"' if module else f'exec {sys.executable} "$@"'
        (venv_bin / name).write_text(f"#!/bin/sh\nPYTHONPATH={PROJECT_ROOT} {run}\n")
        (venv_bin / name).chmod(0o755)
    stamp = subprocess.run(
        [str(root / "scripts" / "setup"), "--stamp"], check=True, capture_output=True, text=True
    ).stdout.strip()
    (root / ".venv" / ".toolmux-stamp").write_text(f"{stamp} runtime\n")
    return root


async def run_serve(
    tmp_path: Path, builtins: list[str], path: str, stop: tuple[signal.Signals, ...] = (signal.SIGTERM,)
) -> tuple[int, str]:
    """Run ./scripts/serve of a prepared checkout until ready, stop it with `stop`: (exit code, stderr)."""
    root = checkout_with_installed_venv(tmp_path)
    config = tmp_path / "toolmux.yaml"
    config.write_text(yaml.safe_dump({"builtins": builtins}))
    env = {"PATH": path, "HOME": str(tmp_path / "home"), "TOOLMUX_NO_APT": "1", "LANG": "C.UTF-8"}
    command = [str(root / "scripts" / "serve"), "--port", "0", "--config", str(config), "--data-dir", str(tmp_path)]
    lines: list[str] = []
    async with await anyio.open_process(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL) as process:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(60):
            buffered = b""
            async for chunk in process.stderr:
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                lines += [line.decode() for line in complete]
                url = next((w for line in lines for w in line.split() if w.endswith("/mcp/")), "")
                if url:
                    break
        with anyio.fail_after(60):
            await readiness(url.removesuffix("/mcp/"))
        for sig in stop:
            process.send_signal(sig)
        with anyio.fail_after(30):
            rest = b"".join([chunk async for chunk in process.stderr])
            code = await process.wait()
    return code, "\n".join(lines) + buffered.decode() + rest.decode()


@pytest.mark.parametrize(
    "stop",
    [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGINT, signal.SIGINT)],
    ids=["sigterm", "ctrl-c", "ctrl-c-twice"],
)
async def test_scripts_serve_starts_the_hub_without_node_or_npm_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop: tuple[signal.Signals, ...]
) -> None:
    path = path_without(tmp_path)
    assert shutil.which("npm", path=path) is None
    code, output = await run_serve(tmp_path, ["storage"], path, stop)
    assert code == 0, output
    assert "Traceback" not in output and "toolmux: stopped" in output
    assert "npm" not in output and "[setup] installing" not in output
    assert re.search(r"\+ storage: \d+ tools in [0-9.]+ s", output) and "toolmux ready in" in output
    assert re.search(r"key in .*master\.key", output)


async def test_a_domain_whose_system_package_is_missing_is_left_out_in_one_line_and_the_hub_still_starts(
    tmp_path: Path,
) -> None:
    path = path_without(tmp_path, HIDDEN | {"chromium", "ffmpeg", "ffprobe"})
    code, output = await run_serve(tmp_path, ["storage", "browser", "speech"], path)
    assert code == 0, output
    for server in ("browser", "speech"):
        assert len([line for line in output.splitlines() if f"server {server} unavailable" in line]) == 1, output
