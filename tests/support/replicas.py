"""Two (or more) real `toolmux serve` processes sharing Redis and PostgreSQL, behind a real HAProxy.

    async with replica_fleet(tmp_path, {"builtins": ["models"], ...}) as fleet:
        fleet.url                 # the balancer: round-robin over the replicas, no stickiness
        fleet.replicas[0].url     # one replica directly
        fleet.replicas[1].kill()  # kill -9

Each fleet gets its own Redis key prefix and PostgreSQL schema (dropped at the end), its own data
directory per replica and a shared directory (`fleet.shared_dir`) for what all replicas must see.
Every process listens on a free loopback port: the replicas bind port 0 and say where in their
start-up line; HAProxy inherits a socket this process bound to port 0 (`bind fd@N`). Each answer
through the balancer names the replica that served it in `x-served-by` (HAProxy's server name,
`r0`, `r1`, ...), so a test can show that both replicas took part.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml
from anyio.abc import Process, TaskGroup

from aggregator.state import StateConfig
from tests.support.shared_state import drop_shared, shared_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "fleet-master-key-0123456789"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
_STARTING = re.compile(rb"starting on (http://127\.0\.0\.1:\d+)")


@dataclass
class Replica:
    name: str  # r0, r1, ...: HAProxy's server name, echoed in x-served-by
    config_path: Path
    data_dir: Path
    process: Process | None = None
    url: str = ""
    log: bytearray = field(default_factory=bytearray)
    ready: anyio.Event = field(default_factory=anyio.Event)
    exited: anyio.Event = field(default_factory=anyio.Event)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown an orchestrator asks for."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def output(self) -> str:
        return self.log.decode(errors="replace")


@dataclass
class Fleet:
    url: str  # the balancer
    replicas: list[Replica]
    state: StateConfig
    shared_dir: Path
    key: str = MASTER_KEY

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def http(self, **options: Any) -> httpx2.AsyncClient:
        options.setdefault("timeout", 30)
        return httpx2.AsyncClient(**options)

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp/"


def _replica_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLMUX_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _write_config(path: Path, config: dict[str, Any], data_dir: Path, state: StateConfig) -> None:
    document = dict(config)
    document["server"] = {"data_dir": str(data_dir), "startup_timeout": 30, **config.get("server", {})}
    document["auth"] = {"master_key": MASTER_KEY, **config.get("auth", {})}
    document["state"] = {**state.model_dump(by_alias=True, exclude_none=True), **config.get("state", {})}
    path.write_text(yaml.safe_dump(document))


async def _drain(replica: Replica) -> None:
    """Keep reading the replica's log (a full pipe would stall it) and note when it is ready."""
    process = replica.process
    assert process is not None and process.stderr is not None
    try:
        async for chunk in process.stderr:
            replica.log += chunk
            if not replica.url and (found := _STARTING.search(replica.log)):
                replica.url = found.group(1).decode()
            if not replica.ready.is_set() and b"toolmux ready in" in replica.log:
                replica.ready.set()
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    finally:
        await process.wait()
        replica.exited.set()


async def start_replica(replica: Replica, tg: TaskGroup) -> None:
    command = [sys.executable, "-m", "aggregator", "serve", "--port", "0", "--config", str(replica.config_path)]
    replica.process = await anyio.open_process(
        command, env=_replica_env(), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    replica.ready = anyio.Event()
    replica.exited = anyio.Event()
    replica.url = ""
    tg.start_soon(_drain, replica)


async def wait_ready(replica: Replica, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:

            async def exited() -> None:
                await replica.exited.wait()
                raise RuntimeError(f"replica {replica.name} exited while starting:\n{replica.output()}")

            tg.start_soon(exited)
            await replica.ready.wait()
            tg.cancel_scope.cancel()


def haproxy_config(listen_fd: int, replicas: list[Replica]) -> str:
    """Round-robin per request, no stickiness; a replica that fails its readiness probe (or a connection)
    is taken out within a fraction of a second, and a request whose connection failed is re-sent elsewhere."""
    servers = "\n".join(f"  server {r.name} {r.url.removeprefix('http://')} check" for r in replicas)
    return f"""
global
  maxconn 512

defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout tunnel 60s
  option redispatch 1
  retries 3
  retry-on conn-failure empty-response response-timeout

frontend hub
  bind fd@{listen_fd}
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk GET /health/readiness
  http-check expect status 200
  default-server inter 100ms fall 1 rise 1
  http-response set-header x-served-by %s
{servers}
"""


async def _balancer_sees_all(url: str, names: set[str], timeout: float = 30) -> None:
    """Wait until the balancer routed probes to every replica (its health checks marked them up)."""
    seen: set[str] = set()
    async with httpx2.AsyncClient(timeout=5) as http:
        with anyio.fail_after(timeout):
            while seen != names:
                response = await http.get(f"{url}/health/readiness")
                if response.status_code == 200:
                    seen.add(response.headers.get("x-served-by", ""))
                else:
                    await anyio.sleep(0.05)  # the balancer has no server up yet: nothing to wait on but time


@asynccontextmanager
async def replica_fleet(tmp_path: Path, config: dict[str, Any], *, count: int = 2) -> AsyncIterator[Fleet]:
    """Start `count` replicas of `config` (a hub config; `server`, `auth` and `state` are filled in) and HAProxy."""
    state = shared_config()
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir(parents=True, exist_ok=True)
    replicas: list[Replica] = []
    for index in range(count):
        data_dir = tmp_path / f"replica{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config).replace("@SHARED@", str(shared_dir))
        path = tmp_path / f"replica{index}.yaml"
        _write_config(path, yaml.safe_load(text), data_dir, state)
        replicas.append(Replica(f"r{index}", path, data_dir))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    balancer_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    balancer: Process | None = None
    try:
        async with anyio.create_task_group() as tg:
            try:
                for replica in replicas:
                    await start_replica(replica, tg)
                for replica in replicas:
                    await wait_ready(replica)
                cfg = tmp_path / "haproxy.cfg"
                cfg.write_text(haproxy_config(listener.fileno(), replicas))
                balancer = await anyio.open_process(
                    [HAPROXY, "-db", "-q", "-f", str(cfg)],
                    pass_fds=(listener.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await _balancer_sees_all(balancer_url, {r.name for r in replicas})
                yield Fleet(balancer_url, replicas, state, shared_dir)
            finally:
                with anyio.CancelScope(shield=True):
                    if balancer is not None and balancer.returncode is None:
                        balancer.kill()
                        await balancer.wait()
                    for replica in replicas:
                        if replica.process is not None and replica.process.returncode is None:
                            replica.terminate()
                    with anyio.move_on_after(15):
                        for replica in replicas:
                            await replica.exited.wait()
                    for replica in replicas:
                        if replica.process is not None and replica.process.returncode is None:
                            replica.kill()
                            await replica.exited.wait()
                tg.cancel_scope.cancel()
    finally:
        listener.close()
        with anyio.CancelScope(shield=True):
            await drop_shared(state)
