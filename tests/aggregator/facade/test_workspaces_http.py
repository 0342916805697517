"""The workspaces HTTP API over real loopback HTTP: raw file bytes, runs, 409 when busy, disconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.aggregator.facade.workspaces_support import AUTH, CommandWatch, Face, serve_scripted
from tests.servers.workspaces.fakes import ScriptedOpenAI
from tests.servers.workspaces.procs import group_members, wait_gone

pytestmark = pytest.mark.anyio


@pytest.fixture
async def face(tmp_path: Path, _scripted: ScriptedOpenAI) -> AsyncIterator[Face]:
    async with serve_scripted(tmp_path, _scripted, max_file_bytes=1024 * 1024) as running:
        yield running


@pytest.fixture
async def http(face: Face) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=face.url, headers=AUTH, timeout=30) as client:
        yield client


async def test_files_round_trip_as_raw_bytes(face: Face, http: httpx2.AsyncClient) -> None:
    blob = bytes(range(256)) * 10
    created = await http.put("/workspaces/files/clients/acme/-/docs/r.bin", content=blob)
    assert created.status_code == 201 and created.json()["size"] == 2560
    assert (face.env.root / "clients" / "acme" / "docs" / "r.bin").read_bytes() == blob
    replaced = await http.put("/workspaces/files/clients/acme/-/docs/r.bin", content=b"v2")
    assert replaced.status_code == 200 and replaced.json()["created"] is False

    got = await http.get("/workspaces/files/clients/acme/-/docs/r.bin")
    assert got.status_code == 200 and got.content == b"v2"
    assert got.headers["content-type"] == "application/octet-stream" and got.headers["last-modified"].endswith("GMT")
    await http.put("/workspaces/files/single/notes.txt", content=b"hello")
    text = await http.get("/workspaces/files/single/notes.txt")
    assert text.text == "hello" and text.headers["content-type"].startswith("text/plain")

    listing = await http.get("/workspaces/files/clients/acme/-/", params={"recursive": "true"})
    assert [e["path"] for e in listing.json()["entries"]] == ["docs", "docs/r.bin"]
    workspaces = await http.get("/workspaces")
    assert [w["name"] for w in workspaces.json()["workspaces"]] == ["clients/acme", "single"]

    refused = await http.delete("/workspaces/files/clients/acme/-/docs")
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "recursive"
    deleted = await http.delete("/workspaces/files/clients/acme/-/docs/r.bin")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == "file"
    missing = await http.get("/workspaces/files/clients/acme/-/docs/r.bin")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_bad_requests_get_clear_statuses_and_touch_nothing(face: Face, http: httpx2.AsyncClient) -> None:
    async with httpx2.AsyncClient(base_url=face.url) as anonymous:
        assert (await anonymous.get("/workspaces/files/w/f.txt")).status_code == 401
    for location in ("w/%2e%2e/%2e%2e/escape.txt", "w/a/%2E%2E/%2E%2E/escape.txt"):
        response = await http.put(f"/workspaces/files/{location}", content=b"pwned")
        assert response.status_code == 400 and response.json()["error"]["field"] == "path", location
    bad_name = await http.put("/workspaces/files/.hidden/f.txt", content=b"x")
    assert bad_name.status_code == 400 and bad_name.json()["error"]["field"] == "workspace"
    too_big = await http.put("/workspaces/files/w/big.bin", content=b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    assert list(face.env.root.iterdir()) == []
    assert not list(face.env.data_dir.rglob("escape.txt"))


async def test_a_sync_run_over_http_answers_with_the_result(face: Face, http: httpx2.AsyncClient) -> None:
    response = await http.post("/workspaces/runs", json={"prompt": "count", "workspace": "http"})
    body = response.json()
    assert response.status_code == 200 and body["result"] == "wc says: 3 notes/list.txt" and body["num_turns"] == 3
    sessions = await http.get("/workspaces/sessions/http")
    assert sessions.json()["sessions"][0]["session_id"] == body["session_id"]
    status = await http.get("/workspaces/status")
    assert status.json()["busy"] == [] and status.json()["isolation"]["shell"] in ("bubblewrap", "separate-user")


async def test_async_run_is_accepted_then_fetched(http: httpx2.AsyncClient) -> None:
    accepted = await http.post("/workspaces/runs", json={"prompt": "count", "workspace": "later", "async": True})
    assert accepted.status_code == 202 and accepted.json()["status"] == "running"
    done = await http.get(f"/workspaces/runs/{accepted.json()['run_id']}", params={"wait": "10"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    unknown = await http.get("/workspaces/runs/run_nope")
    assert unknown.status_code == 404


async def test_a_second_run_in_a_busy_workspace_gets_503_and_delete_cancels(
    face: Face, http: httpx2.AsyncClient
) -> None:
    watch = CommandWatch(face.env)
    accepted = await http.post("/workspaces/runs", json={"prompt": "long", "workspace": "busy", "async": True})
    run_id = accepted.json()["run_id"]
    with anyio.fail_after(20):
        await watch.ready.wait()
        assert watch.leader is not None
        processes = group_members(watch.leader)
        busy = await http.post("/workspaces/runs", json={"prompt": "count", "workspace": "busy"})
        assert (
            busy.status_code == 503
            and busy.json()["error"]["code"] == "busy"
            and run_id in busy.json()["error"]["message"]
        )
        cancelled = await http.delete(f"/workspaces/runs/{run_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        await wait_gone(processes)


async def test_a_client_that_disconnects_stops_its_sync_run(face: Face, http: httpx2.AsyncClient) -> None:
    watch = CommandWatch(face.env)
    finished = anyio.Event()
    face.env.service.runs.listeners.append(lambda e: finished.set() if e.kind == "run_finished" else None)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: http.post("/workspaces/runs", json={"prompt": "long", "workspace": "gone"}))
            await watch.ready.wait()
            assert watch.leader is not None
            processes = group_members(watch.leader)
            tg.cancel_scope.cancel()  # the client gives up: its connection closes
        await wait_gone(processes)
        await finished.wait()
    assert face.env.service.runs.active == {}
    assert [e.data["status"] for e in face.env.events if e.kind == "run_finished"] == ["cancelled"]
