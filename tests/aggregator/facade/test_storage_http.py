"""The storage HTTP API over real HTTP on loopback: objects, listings, keys, presigned URLs, limits."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from anyio import wait_all_tasks_blocked

from aggregator.principal import MASTER as MASTER_PRINCIPAL
from aggregator.principal import Principal
from tests.support.storage import MASTER_KEY, FakeClock, ServedStorage, serve_storage

pytestmark = pytest.mark.anyio

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def tree(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


async def raw_request(url: str, request_line: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send a request line byte for byte (HTTP clients normalise '..' away before sending)."""
    parts = urlsplit(url)
    lines = [request_line, f"Host: {parts.netloc}", "Connection: close", "Content-Length: 1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    async with await anyio.connect_tcp(parts.hostname or "", parts.port or 80) as stream:
        await stream.send(("\r\n".join(lines) + "\r\n\r\nx").encode())
        response = b""
        with anyio.fail_after(10):
            try:
                while True:
                    response += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


async def test_objects_round_trip_with_the_headers_clients_rely_on(tmp_path: Path) -> None:
    big = os.urandom(5 * 1024 * 1024 + 3)
    async with serve_storage(tmp_path) as served, httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http:
        for key, body in [("t/hello.txt", "grüß dich".encode()), ("t/pic.png", PNG), ("t/empty", b""), ("t/big", big)]:
            put = await http.put(f"/storage/default/{key}", content=body)
            assert put.status_code == 200, put.text
            assert put.json()["etag"] == hashlib.md5(body).hexdigest()
            assert put.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
            got = await http.get(f"/storage/default/{key}")
            assert got.status_code == 200 and got.content == body
            assert got.headers["content-length"] == str(len(body))
            assert got.headers["etag"] == put.headers["etag"]
            assert got.headers["x-content-type-options"] == "nosniff"
            assert got.headers["last-modified"].endswith("GMT")
            assert got.headers["x-request-id"]
        assert (await http.get("/storage/default/t/hello.txt")).headers["content-type"] == "text/plain; charset=utf-8"
        assert (await http.get("/storage/default/t/pic.png")).headers["content-type"] == "image/png"
        typed = await http.put("/storage/default/t/x", content=b"{}", headers={"Content-Type": "application/x-thing"})
        assert typed.json()["content_type"] == "application/x-thing"

        head = await http.head("/storage/default/t/pic.png")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(PNG))
        overwritten = await http.put("/storage/default/t/hello.txt", content=b"v2")
        assert overwritten.status_code == 200
        assert (await http.get("/storage/default/t/hello.txt")).content == b"v2"
        assert (await http.delete("/storage/default/t/hello.txt")).status_code == 204
        gone = await http.get("/storage/default/t/hello.txt")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NoSuchKey"


async def test_range_and_conditional_requests(tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    async with serve_storage(tmp_path) as served, httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http:
        etag = (await http.put("/storage/default/r", content=body)).headers["etag"]
        part = await http.get("/storage/default/r", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == body[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"
        tail = await http.get("/storage/default/r", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == body[-10:]
        open_end = await http.get("/storage/default/r", headers={"Range": "bytes=10000-"})
        assert open_end.content == body[10000:]
        beyond = await http.get("/storage/default/r", headers={"Range": f"bytes={len(body)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"
        cached = await http.get("/storage/default/r", headers={"If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b""
        changed = await http.get("/storage/default/r", headers={"If-Match": '"0000"'})
        assert changed.status_code == 412


async def test_listing_pages_through_keys_with_prefix_and_delimiter(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served, httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http:
        for key in ["docs/a", "docs/b", "docs/deep/c", "img/x", "readme"]:
            await http.put(f"/storage/default/{key}", content=key.encode())
        top = (await http.get("/storage/default", params={"delimiter": "/"})).json()
        assert [o["key"] for o in top["objects"]] == ["readme"]
        assert top["common_prefixes"] == ["docs/", "img/"]
        keys: list[str] = []
        params = {"prefix": "docs/", "max-keys": "1"}
        while True:
            page = (await http.get("/storage/default/", params=params)).json()
            keys += [o["key"] for o in page["objects"]]
            if not page["is_truncated"]:
                break
            params["continuation-token"] = page["next_continuation_token"]
        assert keys == ["docs/a", "docs/b", "docs/deep/c"]
        bad = await http.get("/storage/default", params={"max-keys": "many"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "max-keys"


async def test_bucket_keys_reach_only_their_own_bucket_and_unknown_looks_like_forbidden(tmp_path: Path) -> None:
    config = {"buckets": [{"name": "alpha"}, {"name": "beta"}]}
    async with serve_storage(tmp_path, config) as served, httpx2.AsyncClient(base_url=served.url) as http:
        alpha = {"Authorization": f"Bearer {served.bucket_key('alpha')}"}
        assert (await http.put("/storage/alpha/k", content=b"mine", headers=alpha)).status_code == 200
        assert (await http.get("/storage/alpha/k", headers=alpha)).content == b"mine"
        listed = (await http.get("/storage/", headers=alpha)).json()
        assert [b["name"] for b in listed["buckets"]] == ["alpha"]

        other = await http.put("/storage/beta/k", content=b"x", headers=alpha)
        unknown = await http.put("/storage/gamma/k", content=b"x", headers=alpha)
        assert other.status_code == unknown.status_code == 403
        strip = lambda r: {k: v for k, v in r.json()["error"].items() if k != "request_id"}  # noqa: E731
        assert strip(other) == strip(unknown)

        master_sees = (await http.get("/storage/", headers=MASTER)).json()
        assert [b["name"] for b in master_sees["buckets"]] == ["alpha", "beta"]
        assert (await http.get("/storage/gamma/k", headers=MASTER)).json()["error"]["code"] == "NoSuchBucket"
        wrong = await http.get("/storage/alpha/k", headers={"Authorization": "Bearer not-a-key"})
        assert wrong.status_code == 401


async def test_hub_keys_act_within_their_tool_scopes(tmp_path: Path) -> None:
    reader = Principal(name="reader", allowed_tools=("storage-get_object", "storage-list_objects"))
    keys = {"reader-secret-key": reader}
    async with serve_storage(tmp_path, keys=keys) as served, httpx2.AsyncClient(base_url=served.url) as http:
        await http.put("/storage/default/doc", content=b"data", headers=MASTER)
        as_reader = {"Authorization": "Bearer reader-secret-key"}
        assert (await http.get("/storage/default/doc", headers=as_reader)).content == b"data"
        assert (await http.put("/storage/default/doc", content=b"x", headers=as_reader)).status_code == 403
        assert (await http.delete("/storage/default/doc", headers=as_reader)).status_code == 403


async def test_public_buckets_read_without_a_key_but_writes_and_private_reads_need_one(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served, httpx2.AsyncClient(base_url=served.url) as http:
        await http.put("/storage/uploads/pub.png", content=PNG, headers=MASTER)
        await http.put("/storage/default/secret.txt", content=b"s", headers=MASTER)
        public = await http.get("/storage/uploads/pub.png")
        assert public.status_code == 200 and public.content == PNG
        await http.put("/storage/uploads/page.html", content=b"<!DOCTYPE html><script>", headers=MASTER)
        page = await http.get("/storage/uploads/page.html")
        assert page.headers["content-security-policy"] == "sandbox"  # no script runs as the hub's origin
        private = await http.get("/storage/default/secret.txt")
        unknown = await http.get("/storage/nosuchbucket/secret.txt")
        assert private.status_code == unknown.status_code == 401
        assert private.json()["error"]["message"] == unknown.json()["error"]["message"]
        assert (await http.put("/storage/uploads/new", content=b"x")).status_code == 401
        assert (await http.get("/storage/uploads")).status_code == 401  # listing is not reading
        assert (await http.get("/storage/")).status_code == 401


async def test_presigned_urls_work_until_they_expire_and_refuse_tampering(tmp_path: Path) -> None:
    clock = FakeClock()
    async with serve_storage(tmp_path, clock=clock) as served, httpx2.AsyncClient(base_url=served.url) as http:
        await http.put("/storage/default/report.pdf", content=b"%PDF-1.4 data", headers=MASTER)
        made = await http.post("/storage/presign/default/report.pdf", params={"expires": "60"}, headers=MASTER)
        assert made.status_code == 200 and made.json()["expires_in"] == 60
        assert made.json()["expires_at"].endswith("Z")
        url = made.json()["url"]
        fetched = await http.get(url)
        assert fetched.status_code == 200 and fetched.content == b"%PDF-1.4 data"
        assert (await http.head(url)).status_code == 200

        tampered_key = await http.get(url.replace("report.pdf", "report.pdX"))
        tampered_expiry = await http.get(url.replace("X-Toolmux-Expires=", "X-Toolmux-Expires=9"))
        as_put = await http.put(url, content=b"overwrite")
        for refused in (tampered_key, tampered_expiry, as_put):
            assert refused.status_code == 403 and "signature" in refused.json()["error"]["message"]

        upload = (await http.post("/storage/presign/default/in.txt", params={"method": "PUT"}, headers=MASTER)).json()
        assert (await http.put(upload["url"], content=b"uploaded by link")).status_code == 200
        assert (await http.get("/storage/default/in.txt", headers=MASTER)).content == b"uploaded by link"

        clock.advance(61)
        expired = await http.get(url)
        assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]

        infinite = await http.post("/storage/presign/default/x", params={"expires": "inf"}, headers=MASTER)
        assert infinite.status_code == 400 and infinite.json()["error"]["field"] == "expires"
        public = (await http.post("/storage/presign/uploads/a.png", headers=MASTER)).json()
        assert public["public"] is True and "?" not in public["url"]
        assert (await http.post("/storage/presign/default/x")).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "/storage/default/../../etc/passwd",
        "/storage/default/a/../../../x",
        "/storage/default/%2e%2e/%2e%2e/etc/passwd",
        "/storage/default/%2E%2E%2F%2E%2E%2Fetc",
        "/storage/default/..%2f..%2fescape",
        "/storage/default/nul%00byte",
        "/storage/default//etc/passwd",
        "/storage/default/..%5c..%5cwindows",
    ],
)
async def test_traversal_in_keys_is_refused_with_400_and_touches_nothing(tmp_path: Path, target: str) -> None:
    data_dir = tmp_path / "data"
    async with serve_storage(data_dir) as served:
        before = tree(tmp_path)
        for method in ("PUT", "GET", "DELETE"):
            status, body = await raw_request(
                served.url, f"{method} {target} HTTP/1.1", {"Authorization": f"Bearer {MASTER_KEY}"}
            )
            assert status == 400, (method, target, body)
        assert tree(tmp_path) == before


async def test_an_object_over_the_limit_is_refused_413_naming_the_limit(tmp_path: Path) -> None:
    config = {"buckets": [{"name": "small", "max_object_size": 1024}]}
    async with (
        serve_storage(tmp_path, config) as served,
        httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http,
    ):
        declared = await http.put("/storage/small/k", content=b"x" * 1025)
        assert declared.status_code == 413 and "1024 bytes" in declared.json()["error"]["message"]

        async def undeclared_length():  # chunked: the limit is enforced while streaming
            for _ in range(5):
                yield b"y" * 512

        streamed = await http.put("/storage/small/k", content=undeclared_length())
        assert streamed.status_code == 413 and "1024 bytes" in streamed.json()["error"]["message"]
        assert (await http.get("/storage/small/k")).status_code == 404
        assert not list((tmp_path / "storage" / "tmp").iterdir())


async def test_a_busy_object_answers_503_with_retry_after(tmp_path: Path) -> None:
    served_storage = serve_storage(tmp_path, {"lock_max_waiters": 1})
    async with served_storage as served, httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http:
        await http.put("/storage/default/hot", content=b"v1")
        statuses: list[int] = []

        async def first_reader() -> None:
            statuses.append((await http.get("/storage/default/hot")).status_code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg, served.service.locks.write(("default", "hot")):
                tg.start_soon(first_reader)
                await wait_all_tasks_blocked()
                assert served.service.locks.state(("default", "hot"))["waiters"] == 1
                busy = await http.get("/storage/default/hot")
                assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
                assert busy.json()["error"]["code"] == "SlowDown"
        assert statuses == [200]


async def test_the_face_answers_503_when_storage_is_not_in_process(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from aggregator.facade.base import DirectFacadeContext
    from aggregator.facade.storage import routes
    from tests.support.asgi import serve_asgi

    app = Starlette(routes=routes(DirectFacadeContext({}, master_key=MASTER_KEY)))
    async with serve_asgi(app) as url, httpx2.AsyncClient(base_url=url, headers=MASTER) as http:
        response = await http.get("/storage/default/k")
    assert response.status_code == 503 and "in-process" in response.json()["error"]["message"]


class HubThroughContext:
    """A HubCaller like the hub's: other domains' tool calls dispatched through the facade context."""

    def __init__(self, served: ServedStorage) -> None:
        self.served = served

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        return await self.served.ctx.call_tool(MASTER_PRINCIPAL, name, arguments)


async def test_another_domain_stores_an_artifact_through_the_hub_and_hands_back_a_working_url(tmp_path: Path) -> None:
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(2000)
    async with serve_storage(tmp_path, with_tools=True) as served, httpx2.AsyncClient() as http:
        hub = HubThroughContext(served)
        encoded = base64.b64encode(audio).decode()
        for bucket in ("uploads", "default"):
            result = await hub.call_tool(
                "storage-put_object", {"bucket": bucket, "key": "speech/hello.wav", "base64": encoded}
            )
            stored = result["structuredContent"]
            assert stored["content_type"] == "audio/wav" and stored["size"] == len(audio)
            assert any(block["type"] == "resource_link" for block in result["content"])
            fetched = await http.get(stored["url"])  # no key: public link or presigned link
            assert fetched.status_code == 200 and fetched.content == audio
            assert fetched.headers["content-type"] == "audio/wav"


async def test_an_expired_object_is_gone_from_reads_and_listings_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    config = {"buckets": [{"name": "scratch", "ttl_seconds": 30}]}
    storage = serve_storage(tmp_path, config, clock=clock)
    async with storage as served, httpx2.AsyncClient(base_url=served.url, headers=MASTER) as http:
        put = await http.put("/storage/scratch/tmp.txt", content=b"soon gone")
        assert put.json()["expires_at"] is not None
        assert (await http.get("/storage/scratch/tmp.txt")).status_code == 200
        clock.advance(31)
        assert (await http.get("/storage/scratch/tmp.txt")).status_code == 404
        assert (await http.get("/storage/scratch")).json()["objects"] == []
