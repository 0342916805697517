"""Losing a replica: SIGTERM drains its in-flight calls; kill -9 under load loses no acknowledged usage row,
and once the balancer routes around the dead replica every call succeeds."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg
import pytest

from aggregator.protocol.sse import SseDecoder
from tests.servers.models.fakes import FakeBackend, fake_backend
from tests.support.replicas import PROJECT_ROOT, Fleet, replica_fleet
from tests.support.shared_state import POSTGRES_URL

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Say hello"}]
LEGACY = "2025-11-25"
CHAT = {"model": "main", "messages": USER}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBackend]:
    async with fake_backend("openai") as backend:
        yield backend


@pytest.fixture
async def fleet(fake: FakeBackend, tmp_path: Path) -> AsyncIterator[Fleet]:
    models = {
        "backends": {"fake": {"type": "openai", "base_url": fake.url}},
        "aliases": {"main": {"deployments": [{"backend": "fake", "model": "fake-model"}]}},
        "usage": {"flush_interval": 0},  # each row written before its call answers
        "health": {"enabled": False},
    }
    probe = {
        "command": sys.executable,
        "args": ["-m", "tests.fixtures.probe_server", "--name", "probe"],
        "cwd": str(PROJECT_ROOT),
        "protocol": "legacy",
    }
    storage = {"config": {"root": "@SHARED@/storage"}}
    config = {
        "builtins": ["models", "storage"],
        "mcpServers": {"models": {"config": models}, "probe": probe, "storage": storage},
    }
    async with replica_fleet(tmp_path, config) as running:
        yield running


async def usage_request_ids(fleet: Fleet) -> set[str]:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
        cursor = await conn.execute(
            f'SELECT request_id FROM "{fleet.state.schema_name}".usage_calls WHERE status = %s', ("ok",)
        )
        return {row[0] for row in await cursor.fetchall()}


async def test_kill_9_of_a_replica_under_load_loses_no_acknowledged_write_or_usage_row_and_later_calls_succeed(
    fleet: Fleet,
) -> None:
    acknowledged: list[str] = []
    stored: dict[str, bytes] = {}
    kinds: list[str] = []
    killed = anyio.Event()
    loaded = anyio.Event()

    async def writer(http: Any, name: str) -> None:
        for n in itertools.count():
            if killed.is_set():
                return
            key, body = f"load/{name}-{n}", f"{name} {n}\n".encode() * 64
            try:
                response = await http.put(f"{fleet.url}/storage/default/{key}", content=body, headers=fleet.headers())
            except Exception as exc:
                kinds.append(repr(exc))
                continue
            if response.status_code == 200:
                stored[key] = body
            else:
                kinds.append(f"{response.status_code} {response.text[:200]}")

    async def worker(http: Any) -> None:
        while not killed.is_set():
            try:
                response = await http.post(
                    f"{fleet.url}/v1/chat/completions",
                    json={"model": "main", "messages": USER},
                    headers=fleet.headers(),
                )
            except Exception as exc:
                kinds.append(repr(exc))
                continue
            if response.status_code == 200:
                acknowledged.append(response.headers["x-request-id"])
                if len(acknowledged) >= 40:
                    loaded.set()
            else:
                kinds.append(f"{response.status_code} {response.text[:200]}")

    async with fleet.http() as http:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(worker, http)
                    tg.start_soon(writer, http, f"w{i}")
                await loaded.wait()  # the load runs on both replicas
                fleet.replicas[1].kill()
                await fleet.replicas[1].exited.wait()
                killed.set()
        after = []
        with anyio.fail_after(60):
            for _ in range(30):
                response = await http.post(
                    f"{fleet.url}/v1/chat/completions",
                    json={"model": "main", "messages": USER},
                    headers=fleet.headers(),
                )
                after.append((response.status_code, response.headers.get("x-served-by")))
            for key, body in stored.items():
                response = await http.get(f"{fleet.url}/storage/default/{key}", headers=fleet.headers())
                assert (response.status_code, response.content) == (200, body), key
    assert after == [(200, "r0")] * 30
    # Calls in flight on the killed replica may fail, but only in ways a client retries (the balancer's
    # 502 or a dropped connection; 503), never with a server error of the surviving replica.
    assert all(kind.startswith(("RemoteProtocolError", "ReadError", "502 ", "503 ")) for kind in kinds), kinds
    assert len(stored) >= 10
    assert set(acknowledged) <= await usage_request_ids(fleet)


async def test_sigterm_lets_a_replica_finish_its_in_flight_calls_before_it_exits(fleet: Fleet) -> None:
    replica = fleet.replicas[0]
    headers = {**fleet.headers(), "accept": "application/json, text/event-stream", "mcp-protocol-version": LEGACY}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "probe-slow", "arguments": {"steps": 10, "interval": 0.1}, "_meta": {"progressToken": 1}},
    }
    messages: list[dict[str, Any]] = []
    async with fleet.http() as http:
        response = await http.post(f"{replica.url}/mcp/", json=init, headers=headers)
        headers["mcp-session-id"] = response.headers["mcp-session-id"]
        await http.post(
            f"{replica.url}/mcp/", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        with anyio.fail_after(30):
            async with http.stream("POST", f"{replica.url}/mcp/", json=call, headers=headers) as sse:
                decoder = SseDecoder()
                async for chunk in sse.aiter_bytes():
                    for event in decoder.feed(chunk):
                        if event.data:
                            messages.append(orjson.loads(event.data))
                    if len(messages) == 1:
                        replica.terminate()  # the call is under way (it takes about a second)
            await replica.exited.wait()
    progress = [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress == list(range(1, 11))
    assert messages[-1]["result"]["content"][0]["text"] == "done after 10 steps"
    assert replica.process is not None and replica.process.returncode == 0
