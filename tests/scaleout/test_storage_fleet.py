"""Storage across replicas: metadata in PostgreSQL, bytes on a directory both replicas share, and
per-object locks that hold across them (PostgreSQL advisory locks)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest

from tests.support.replicas import Fleet, replica_fleet

pytestmark = pytest.mark.anyio

SIZE = 256 * 1024


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fleet(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    config = {"builtins": ["storage"], "mcpServers": {"storage": {"config": {"root": "@SHARED@/storage"}}}}
    async with replica_fleet(tmp_path_factory.mktemp("fleet"), config) as running:
        yield running


async def test_an_object_written_through_one_replica_is_read_through_the_other(fleet: Fleet) -> None:
    first, second = fleet.replicas
    body = b"written on the first replica\n" * 100
    async with fleet.http() as http:
        put = await http.put(f"{first.url}/storage/default/notes/a.txt", content=body, headers=fleet.headers())
        assert put.status_code == 200, put.text
        got = await http.get(f"{second.url}/storage/default/notes/a.txt", headers=fleet.headers())
        # A link minted by one replica opens on the other: they share the URL secret in the shared root.
        minted = await http.post(f"{first.url}/storage/presign/default/notes/a.txt", headers=fleet.headers())
        link = minted.json()["url"].replace(first.url, second.url)
        by_link = await http.get(link)
        listing = await http.get(f"{second.url}/storage/default?prefix=notes/", headers=fleet.headers())
        deleted = await http.delete(f"{second.url}/storage/default/notes/a.txt", headers=fleet.headers())
        gone = await http.get(f"{first.url}/storage/default/notes/a.txt", headers=fleet.headers())
    assert got.status_code == 200 and got.content == body
    assert by_link.status_code == 200 and by_link.content == body
    assert got.headers["etag"].strip('"') == hashlib.md5(body).hexdigest()
    assert [o["key"] for o in listing.json()["objects"]] == ["notes/a.txt"]
    assert deleted.status_code in (200, 204)
    assert gone.status_code == 404


async def test_twenty_concurrent_writers_on_one_key_through_both_replicas_never_produce_a_torn_read(
    fleet: Fleet,
) -> None:
    url = f"{fleet.url}/storage/default/hot/object.bin"
    bodies = {bytes([65 + i]) * SIZE for i in range(20)}
    served: set[str] = set()
    reads: list[bytes] = []
    failures: list[tuple[str, int, str]] = []
    async with fleet.http() as http:

        async def send(method: str, body: bytes | None = None) -> httpx2.Response:
            """Like an S3 SDK: a busy object (503 with Retry-After) is asked again."""
            while True:
                response = await http.request(method, url, content=body, headers=fleet.headers())
                if response.status_code != 503:
                    return response
                await anyio.sleep(float(response.headers.get("retry-after", "1")) / 10)

        async def write(body: bytes) -> None:
            response = await send("PUT", body)
            served.add(response.headers.get("x-served-by", ""))
            if response.status_code != 200:
                failures.append(("put", response.status_code, response.text))

        async def read() -> None:
            response = await send("GET")
            served.add(response.headers.get("x-served-by", ""))
            if response.status_code == 200:
                assert response.headers["etag"].strip('"') == hashlib.md5(response.content).hexdigest()
                reads.append(response.content)
            elif response.status_code != 404:  # a read before the first write finished
                failures.append(("get", response.status_code, response.text))

        async def keep_reading(writers_done: anyio.Event) -> None:
            # Reads overlap the writes for as long as they run (a fixed number of reads could all
            # land before the first write finished on a loaded machine, and prove nothing).
            while not writers_done.is_set():
                await read()

        async def writers(writers_done: anyio.Event) -> None:
            async with anyio.create_task_group() as tg:
                for body in bodies:
                    tg.start_soon(write, body)
            writers_done.set()

        with anyio.fail_after(60):
            writers_done = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(writers, writers_done)
                for _ in range(8):
                    tg.start_soon(keep_reading, writers_done)
            await read()  # at least one read after every write finished
        final = await http.get(url, headers=fleet.headers())
    assert failures == []
    assert served == {"r0", "r1"}
    assert reads and all(body in bodies for body in reads)  # each read is one writer's whole body
    assert final.content in bodies
