"""Start-up and recovery of `toolmux serve` on the embedded default config.

    .venv/bin/python bench/startup.py [--config FILE] [--rounds 1]

Starts a real hub (a fresh data dir, port 0) and prints:
  - seconds from launch to /health/liveliness 200, to /health/readiness 200, and to a tools/list
    holding every tool of every server that is up
  - idle RSS of the hub process and of all its children together (MB), after start-up
  - per child process (a built-in in stdio mode): seconds from kill -9 to its first successful call
Goals (issue 13): readiness <= 3 s, hub idle RSS <= 80 MB, recovery <= 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clients.hub import HubClient  # noqa: E402

# A cheap call per built-in that succeeds with no arguments.
PROBE_CALLS = {
    "speech": "speech-list_voices",
    "workspaces": "workspaces-list_workspaces",
    "browser": "browser-sessions",
    "forecast": "forecast-list_models",
}


async def poll(http: httpx2.AsyncClient, url: str, headers: dict[str, str] | None = None) -> Any:
    while True:
        try:
            response = await http.get(url, headers=headers or {})
            if response.status_code == 200:
                return response.json()
        except httpx2.TransportError:
            pass
        await anyio.sleep(0.02)


def children_by_server(hub: psutil.Process) -> dict[str, psutil.Process]:
    found = {}
    for child in hub.children(recursive=False):
        cmd = child.cmdline()
        if "server" in cmd and "--stdio" in cmd:
            found[cmd[cmd.index("server") + 1]] = child
    return found


def rss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 1e6


async def first_success(hub: HubClient, tool: str) -> None:
    while True:
        try:
            result = await hub.call_tool(tool, {})
            if not result.is_error:
                return
        except Exception:
            pass
        await anyio.sleep(0.02)


def launch(args: argparse.Namespace, key: str) -> tuple[subprocess.Popen[bytes], float, Path]:
    data = Path(tempfile.mkdtemp(prefix="toolmux-bench-"))
    command = [sys.executable, "-m", "aggregator", "serve", "--port", "0", "--data-dir", str(data)]
    if args.config:
        command += ["--config", args.config]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOOLMUX_MASTER_KEY": key}
    log = data / "serve.log"
    launched = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stderr=out)
    return process, launched, log


async def listening(process: subprocess.Popen[bytes], log: Path) -> str:
    path = anyio.Path(log)
    while process.poll() is None:
        found = re.search(r"starting on (http://\S+),", await path.read_text())
        if found:
            return found.group(1)
        await anyio.sleep(0.01)
    raise SystemExit(f"toolmux serve exited before listening:\n{await path.read_text()}")


async def complete_listing(hub: HubClient, expected: int) -> None:
    while True:
        if len(await hub.list_tools()) >= expected:
            return
        await anyio.sleep(0.02)


async def measure(args: argparse.Namespace, process: subprocess.Popen[bytes], launched: float, log: Path) -> None:
    key = KEY
    base = await listening(process, log)
    async with httpx2.AsyncClient(timeout=30) as http:
        await poll(http, f"{base}/health/liveliness")
        alive = time.monotonic() - launched
        await poll(http, f"{base}/health/readiness")
        ready = time.monotonic() - launched
        health = await poll(http, f"{base}/health", {"Authorization": f"Bearer {key}"})
    servers = health["servers"]
    expected = sum(s.get("tools", 0) for s in servers.values() if s.get("state") == "ready")
    async with HubClient.http(f"{base}/mcp/", key) as hub:
        await complete_listing(hub, expected)
        listed = time.monotonic() - launched
        print(f"liveliness {alive:.2f} s  readiness {ready:.2f} s  full tools/list {listed:.2f} s ({expected} tools)")
        print("servers: " + ", ".join(f"{name} {state.get('state')}" for name, state in servers.items()))
        await anyio.sleep(args.settle)
        me = psutil.Process(process.pid)
        children = me.children(recursive=True)
        print(f"idle RSS: hub {rss_mb([me]):.0f} MB, {len(children)} children {rss_mb(children):.0f} MB")
        for name, child in sorted(children_by_server(me).items()):
            tool = PROBE_CALLS.get(name)
            if tool is None:
                continue
            await first_success(hub, tool)
            killed = time.monotonic()
            os.kill(child.pid, signal.SIGKILL)
            await anyio.sleep(0.05)  # let the hub see the exit before probing
            with anyio.fail_after(120):
                await first_success(hub, tool)
            print(f"recovery {name}: {time.monotonic() - killed:.2f} s from kill -9 to a successful {tool}")


KEY = "bench-master-key-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="toolmux config (default: the embedded default)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before measuring RSS")
    args = parser.parse_args()
    process, launched, log = launch(args, KEY)
    try:
        anyio.run(measure, args, process, launched, log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
