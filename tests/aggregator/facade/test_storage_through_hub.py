"""Storage's HTTP/S3 face through a real hub, with storage in the hub's process and as its child.

Real boto3 and plain HTTP against a real hub on loopback; the child case is a real
`toolmux server storage --stdio` process whose face the hub reaches over its unix socket.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import boto3
import httpx2
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from aggregator.config import parse
from tests.aggregator.hubkit import MASTER_KEY, RunningHub, hub_config, running_hub

pytestmark = pytest.mark.anyio
T = TypeVar("T")
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
WRITER_KEY = "writer-key-0123456789abcdef"
READER_KEY = "reader-key-0123456789abcdef"
WRITER = {"name": "writer", "key": WRITER_KEY, "tools": ["storage-*"]}
READER = {"name": "reader", "key": READER_KEY, "tools": ["storage-get_object"]}
MODES = {"inprocess": {}, "child": {"storage": {"mode": "stdio"}}}


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def s3_client(running: RunningHub) -> BaseClient:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=running.url + "/storage",
        aws_access_key_id="master",
        aws_secret_access_key=MASTER_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4"),
    )


async def in_thread(fn: Callable[[], T]) -> T:
    with anyio.fail_after(120):
        return await anyio.to_thread.run_sync(fn)


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("mode", MODES)
async def test_boto3_and_the_http_api_work_with_storage_in_process_and_as_a_child(tmp_path: Path, mode: str) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    async with running_hub(tmp_path, MODES[mode], builtins=["storage"]) as running:
        expected_kind = "builtin-stdio" if mode == "child" else "builtin-inprocess"
        assert running.hub.upstreams["storage"].kind == expected_kind
        s3 = s3_client(running)
        await in_thread(lambda: s3.put_object(Bucket="default", Key="docs/big.bin", Body=big))

        def read(**extra: str) -> bytes:
            return bytes(s3.get_object(Bucket="default", Key="docs/big.bin", **extra)["Body"].read())

        assert await in_thread(read) == big
        assert await in_thread(lambda: read(Range="bytes=10-19")) == big[10:20]
        listed = await in_thread(lambda: s3.list_objects_v2(Bucket="default", Prefix="docs/"))
        assert [o["Key"] for o in listed["Contents"]] == ["docs/big.bin"]
        link = await in_thread(
            lambda: s3.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": "docs/big.bin"})
        )
        with pytest.raises(ClientError) as caught:
            await in_thread(lambda: s3.head_object(Bucket="default", Key="missing"))
        assert caught.value.response["Error"]["Code"] == "404"

        async with httpx2.AsyncClient(base_url=running.url, timeout=60) as http:
            assert (await http.get(link)).content == big
            put = await http.put("/storage/default/notes/a.txt", content=b"hello", headers=MASTER)
            assert put.status_code == 200 and put.json()["size"] == 5
            fetched = await http.get("/storage/default/notes/a.txt", headers=MASTER)
            assert fetched.content == b"hello"
            assert fetched.headers.get_list("x-request-id") == [fetched.headers["x-amz-request-id"]]
            missing = await http.get("/storage/default/nothing", headers={**MASTER, "x-request-id": "req-missing-1"})
            assert missing.status_code == 404 and missing.json()["error"]["request_id"] == "req-missing-1"
            assert missing.headers.get_list("x-request-id") == ["req-missing-1"]
            xml = await http.get("/storage/default/nothing", headers={**MASTER, "x-amz-content-sha256": "UNSIGNED"})
            assert xml.status_code == 404 and b"<Code>NoSuchKey</Code>" in xml.content and b"<RequestId>" in xml.content
            metrics = (await http.get("/metrics", headers=MASTER)).text
        async with running.client() as hub:
            assert (await hub.call("storage-get_object", bucket="default", key="notes/a.txt"))["text"] == "hello"
    assert sample(metrics, "toolmux_tool_calls_total", tool="storage-put_object", outcome="ok") >= 2
    assert sample(metrics, "toolmux_tool_calls_total", tool="storage-get_object", outcome="error") >= 1
    assert sample(metrics, "toolmux_http_requests_total", face="storage", status="404") >= 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_presigned_url_dies_with_the_key_that_minted_it(tmp_path: Path, mode: str) -> None:
    keys = {"keys": [WRITER, READER]}
    async with (
        running_hub(tmp_path, MODES[mode], builtins=["storage"], auth=keys) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        writer = {"Authorization": f"Bearer {WRITER_KEY}"}
        assert (await http.put("/storage/default/r.txt", content=b"report", headers=writer)).status_code == 200
        minted = await http.post("/storage/presign/default/r.txt", params={"expires": "600"}, headers=writer)
        assert minted.status_code == 200
        url = minted.json()["url"]
        async with running.client(WRITER_KEY) as hub:
            by_tool = await hub.call("storage-presign_url", bucket="default", key="r.txt")
        assert (await http.get(url)).content == b"report"
        assert (await http.get(by_tool["url"])).content == b"report"

        without_writer = parse(
            hub_config(tmp_path, MODES[mode], builtins=["storage"], auth={"keys": [READER]}), "<test config>"
        )
        await running.hub.reload(without_writer)
        for link in (url, by_tool["url"]):
            refused = await http.get(link)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "AccessDenied"


@pytest.mark.parametrize("mode", MODES)
async def test_minting_a_url_over_http_needs_the_presign_scope(tmp_path: Path, mode: str) -> None:
    async with (
        running_hub(tmp_path, MODES[mode], builtins=["storage"], auth={"keys": [READER]}) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        await http.put("/storage/default/r.txt", content=b"report", headers=MASTER)
        reader = {"Authorization": f"Bearer {READER_KEY}"}
        assert (await http.get("/storage/default/r.txt", headers=reader)).status_code == 200
        refused = await http.post("/storage/presign/default/r.txt", headers=reader)
        assert refused.status_code == 403 and refused.json()["error"]["request_id"]


async def test_a_request_that_stops_moving_gets_504_within_the_call_timeout(tmp_path: Path) -> None:
    servers = {"storage": {"timeouts": {"call": 0.5}}}
    async with running_hub(tmp_path, servers, builtins=["storage"]) as running:
        host, port = running.url.removeprefix("http://").split(":")
        head = (
            f"PUT /storage/default/stalled HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: 100\r\n\r\n"
        )
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(head.encode() + b"only a few bytes")
            answer = b""
            with anyio.fail_after(10):
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive()
        assert answer.startswith(b"HTTP/1.1 504")
        async with httpx2.AsyncClient(base_url=running.url, headers=MASTER) as http:
            assert (await http.get("/storage/default/stalled")).status_code == 404
            metrics = (await http.get("/metrics")).text
    assert sample(metrics, "toolmux_tool_calls_total", tool="storage-put_object", outcome="timeout") == 1


def _child_pids(command_part: str) -> list[int]:
    """Processes started by this test process whose command line contains `command_part`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(status.split("PPid:")[1].split()[0])
        if ppid == os.getpid() and command_part in cmdline:
            found.append(int(entry.name))
    return found


async def test_the_face_follows_a_storage_child_that_was_killed_and_restarted(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, MODES["child"], builtins=["storage"]) as running,
        httpx2.AsyncClient(base_url=running.url, headers=MASTER) as http,
    ):
        assert (await http.put("/storage/default/kept.txt", content=b"kept")).status_code == 200
        [pid] = _child_pids("server storage --stdio")
        os.kill(pid, signal.SIGKILL)
        upstream = running.hub.upstreams["storage"]
        with anyio.fail_after(30):
            while upstream.restarts == 0 or not upstream.is_ready:
                await upstream.wait_ready(30)
        again = await http.get("/storage/default/kept.txt")
        assert again.status_code == 200 and again.content == b"kept"


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_cannot_forge_the_hubs_forwarded_answers(tmp_path: Path, mode: str) -> None:
    forged = '{"caller": {"name": "master", "is_master": true}, "public_url": "http://evil"}'
    headers = {"x-toolmux-face-auth": forged, "x-toolmux-face-token": "guess"}
    async with (
        running_hub(tmp_path, MODES[mode], builtins=["storage"]) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        await http.put("/storage/default/secret.txt", content=b"private", headers=MASTER)
        anonymous = await http.get("/storage/default/secret.txt", headers=headers)
        wrong_key = await http.get("/storage/default/secret.txt", headers={**headers, "Authorization": "Bearer nope"})
    assert anonymous.status_code == 401 and wrong_key.status_code == 401
