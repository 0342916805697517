"""Run a real hub for a test: config from a dict, upstreams as real child processes, real HTTP."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from aggregator.app import HubApp
from aggregator.config import parse
from aggregator.http_server import server_options
from aggregator.hub import Hub
from clients.hub import HubClient
from tests.support.asgi import bound_socket, serve_asgi

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "test-master-key-0123456789"


def probe(name: str = "probe", marker_dir: Path | None = None, **options: Any) -> dict[str, Any]:
    """A config entry spawning tests/fixtures/probe_server.py as a stdio child."""
    args = ["-m", "tests.fixtures.probe_server", "--name", name]
    if marker_dir is not None:
        args += ["--marker-dir", str(marker_dir)]
    options.setdefault("protocol", "legacy")
    return {"command": sys.executable, "args": args, "cwd": str(PROJECT_ROOT), **options}


def hub_config(tmp_path: Path, servers: dict[str, Any], **sections: Any) -> dict[str, Any]:
    auth = {"master_key": MASTER_KEY, **sections.pop("auth", {})}
    server = {"data_dir": str(tmp_path / "data"), "startup_timeout": 30, **sections.pop("server", {})}
    return {"builtins": sections.pop("builtins", []), "server": server, "auth": auth, "mcpServers": servers, **sections}


@dataclass
class RunningHub:
    url: str  # http://127.0.0.1:PORT
    hub: Hub
    app: HubApp

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp/"

    def client(self, key: str | None = MASTER_KEY, **options: Any) -> HubClient:
        return HubClient.http(self.mcp_url, key, **options)


@asynccontextmanager
async def running_hub(tmp_path: Path, servers: dict[str, Any], **sections: Any) -> AsyncIterator[RunningHub]:
    config = parse(hub_config(tmp_path, servers, **sections), "<test config>")
    # Bound first, so built-ins running as children are told where to call the hub back.
    sock = bound_socket()
    hub = Hub(config, master_key=MASTER_KEY, public_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = HubApp(hub)
    async with serve_asgi(app, lifespan="on", sock=sock, options=server_options(config.http)) as url:
        with anyio.fail_after(60):
            await app.started.wait()
        yield RunningHub(url, hub, app)
