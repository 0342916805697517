"""Connections that never finish their headers are closed, and open connections are capped
(issue 19, item 10): the `http:` section's header_timeout and max_connections."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import orjson
import pytest
from anyio.abc import SocketStream

from tests.aggregator.hubkit import running_hub

pytestmark = pytest.mark.anyio

HEADER_TIMEOUT = 1.0


async def read_until_closed(stream: SocketStream) -> bytes:
    received = b""
    try:
        while True:
            received += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        return received


def answer_of(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)


async def test_two_hundred_slowloris_connections_are_closed_after_the_header_timeout_and_the_hub_answers(
    tmp_path: Path,
) -> None:
    http = {"header_timeout": HEADER_TIMEOUT, "max_connections": 1000}
    async with running_hub(tmp_path, {}, http=http) as running:
        port = int(running.url.rsplit(":", 1)[1])
        streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(200)]
        answers: list[bytes] = []
        try:
            # Half of them start a request and trickle its headers; the others never send a byte.
            for stream in streams[:100]:
                await stream.send(b"GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            with anyio.fail_after(HEADER_TIMEOUT + 15):
                async with anyio.create_task_group() as tg:

                    async def trickle_then_read(stream: SocketStream, trickle: bool) -> None:
                        if trickle:
                            for _ in range(3):
                                await anyio.sleep(HEADER_TIMEOUT / 8)
                                try:
                                    await stream.send(b"a")
                                except (anyio.BrokenResourceError, ConnectionResetError):
                                    break
                        answers.append((trickle, await read_until_closed(stream)))

                    for index, stream in enumerate(streams):
                        tg.start_soon(trickle_then_read, stream, index < 100)
        finally:
            for stream in streams:
                await stream.aclose()
        # Every one of them was closed by the hub (else reading would not have ended in time).
        assert len(answers) == 200
        for trickled, raw in answers:
            if trickled and not raw:
                continue  # a byte sent after the hub closed draws a reset, which discards its 408
            status, body = answer_of(raw)
            assert status == 408
            assert body["error"]["code"] == "timeout" and body["error"]["request_id"]  # type: ignore[index]

        async with httpx2.AsyncClient(base_url=running.url) as client:
            alive = await client.get("/health/liveliness")
        assert alive.status_code == 200


async def test_a_connection_beyond_the_cap_gets_503_at_once_and_the_others_keep_working(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, http={"max_connections": 20}) as running:
        port = int(running.url.rsplit(":", 1)[1])
        held = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(20)]
        try:
            extra = await anyio.connect_tcp("127.0.0.1", port)
            with anyio.fail_after(5):
                raw = await read_until_closed(extra)
            status, body = answer_of(raw)
            assert status == 503
            assert b"retry-after: 1" in raw.lower()
            assert body["error"]["code"] == "unavailable"  # type: ignore[index]
            # A connection within the cap is served as usual.
            await held[0].send(b"GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            with anyio.fail_after(5):
                response = await held[0].receive()
            assert response.startswith(b"HTTP/1.1 200")
        finally:
            for stream in held:
                await stream.aclose()


async def test_bytes_that_are_not_http_get_a_json_400_with_a_request_id(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}) as running:
        port = int(running.url.rsplit(":", 1)[1])
        for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            try:
                await stream.send(garbage)
                with anyio.fail_after(5):
                    raw = await read_until_closed(stream)
            finally:
                await stream.aclose()
            status, body = answer_of(raw)
            assert status == 400
            assert body["error"]["code"] == "invalid_argument" and body["error"]["request_id"]  # type: ignore[index]
