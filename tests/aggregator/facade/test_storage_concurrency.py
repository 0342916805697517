"""50 concurrent writers and readers on the same keys, over real HTTP: no torn reads, nothing lost."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.support.storage import MASTER_KEY, serve_storage

pytestmark = pytest.mark.anyio

KEYS = ["shared/a", "shared/b", "shared/c"]
WRITERS = 25
READERS = 25
ROUNDS = 2


def payload(writer: int, round_: int) -> bytes:
    """64 KiB whose every 8-byte cell names its writer and round: any mix of versions shows."""
    return f"w{writer:03d}r{round_:02d}".encode() * 8192


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


async def test_fifty_concurrent_writers_and_readers_see_only_whole_versions_and_lose_nothing(tmp_path: Path) -> None:
    initial = {key: f"initial{i}".encode() * 8192 for i, key in enumerate(KEYS)}
    versions = {key: {initial[key]} for key in KEYS}
    for writer in range(WRITERS):
        for round_ in range(ROUNDS):
            versions[KEYS[writer % len(KEYS)]].add(payload(writer, round_))
    acknowledged: dict[str, set[bytes]] = {key: set() for key in KEYS}
    reads: list[tuple[str, bytes]] = []
    problems: list[str] = []

    limits = httpx2.Limits(max_connections=WRITERS + READERS + 5)
    async with (
        serve_storage(tmp_path) as served,
        httpx2.AsyncClient(
            base_url=served.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, limits=limits, timeout=60
        ) as http,
    ):
        for key in KEYS:
            assert (await http.put(f"/storage/default/{key}", content=initial[key])).status_code == 200
        start = anyio.Event()

        async def writer(number: int) -> None:
            key = KEYS[number % len(KEYS)]
            await start.wait()
            for round_ in range(ROUNDS):
                body = payload(number, round_)
                response = await http.put(f"/storage/default/{key}", content=body)
                if response.status_code != 200:
                    problems.append(f"writer {number}: {response.status_code} {response.text}")
                    continue
                if response.headers["etag"] != f'"{hashlib.md5(body).hexdigest()}"':
                    problems.append(f"writer {number}: wrong ETag")
                acknowledged[key].add(body)

        async def reader(number: int) -> None:
            key = KEYS[number % len(KEYS)]
            await start.wait()
            for _ in range(ROUNDS + 1):
                response = await http.get(f"/storage/default/{key}")
                if response.status_code != 200:
                    problems.append(f"reader {number}: {response.status_code} {response.text}")
                    continue
                if response.headers["etag"] != f'"{hashlib.md5(response.content).hexdigest()}"':
                    problems.append(f"reader {number}: ETag does not describe the bytes served")
                reads.append((key, response.content))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for number in range(WRITERS):
                    tg.start_soon(writer, number)
                for number in range(READERS):
                    tg.start_soon(reader, number)
                start.set()

        assert problems == []
        assert len(reads) == READERS * (ROUNDS + 1)
        for key, body in reads:
            assert body in versions[key], f"read of {key} returned bytes no writer wrote"
        assert sum(len(bodies) for bodies in acknowledged.values()) == WRITERS * ROUNDS
        for key in KEYS:
            final = (await http.get(f"/storage/default/{key}")).content
            assert final in acknowledged[key]
        listing = (await http.get("/storage/default", params={"prefix": "shared/"})).json()
        assert [o["key"] for o in listing["objects"]] == KEYS

    root = tmp_path / "storage"
    assert len(files_under(root / "objects")) == len(KEYS)  # every replaced version was freed
    assert files_under(root / "tmp") == []
