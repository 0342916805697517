"""The backends' HTTP/1.1 client against raw loopback servers that write exactly the bytes a test needs.

Every test runs on the plain asyncio loop and on uvloop (the hub's loop), whose transports differ.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest

from servers.models.adapters.openai import OpenAIAdapter
from servers.models.config import BackendConfig
from servers.models.httpclient import (
    ConnectFailed,
    ConnectionLost,
    HTTPClient,
    TimedOut,
    Timeouts,
    UndecodableBody,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@pytest.fixture(params=[("asyncio", {}), ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param


@dataclass
class RawServer:
    url: str = ""
    connections: int = 0
    requests: list[tuple[list[str], bytes]] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader, server: RawServer) -> bool:
    """Read one request (head and content-length body); False when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    lines = head.decode("latin-1").split("\r\n")[:-2]
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    server.requests.append((lines, await reader.readexactly(length)))
    return True


def answer(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "content-type: application/json", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    state = RawServer()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
    while await read_request(reader, server):
        writer.write(answer(b'{"ok":true}'))
        await writer.drain()


def client(url: str, *, timeout: float = 2.0, **options: object) -> HTTPClient:
    return HTTPClient(url, timeouts=Timeouts.all(timeout), **options)  # type: ignore[arg-type]


async def test_requests_share_one_kept_alive_connection_and_carry_their_headers() -> None:
    async with raw_server(keep_answering) as server:
        http = client(server.url + "/v1", headers={"Authorization": "Bearer k", "content-type": "application/json"})
        for n in range(3):
            response = await http.request("POST", server.url + f"/v1/chat?n={n}", content=b'{"q":1}')
            assert response.status_code == 200 and response.content == b'{"ok":true}'
        await http.aclose()
    assert server.connections == 1
    lines, body = server.requests[2]
    assert lines[0] == "POST /v1/chat?n=2 HTTP/1.1" and body == b'{"q":1}'
    assert {"authorization: Bearer k", "content-type: application/json", "content-length: 7"} <= set(lines)
    assert any(line.startswith("host: 127.0.0.1:") for line in lines)


async def test_chunked_gzip_and_close_delimited_bodies_are_read_whole() -> None:
    packed = gzip.compress(b'{"big":"' + b"x" * 5000 + b'"}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n")
        for start in range(0, len(packed), 1000):
            piece = packed[start : start + 1000]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async with raw_server(handler) as server:
        http = client(server.url)
        assert (await http.request("GET", server.url + "/a")).content == b'{"big":"' + b"x" * 5000 + b'"}'
        assert (await http.request("GET", server.url + "/b")).text == "until the end"
        assert (await http.request("GET", server.url + "/c")).status_code == 200  # a fresh connection
        await http.aclose()
    assert server.connections == 2


async def test_an_encoding_the_client_cannot_read_is_an_undecodable_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(answer(b"\x00\x01", "content-encoding: br"))

    async with raw_server(handler) as server:
        with pytest.raises(UndecodableBody, match="br"):
            await client(server.url).request("GET", server.url + "/")


async def test_a_stalled_answer_times_out_and_frees_its_connection_slot() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        if server.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")  # then silence
            await reader.read()
        else:
            writer.write(answer(b"{}"))
            await reader.read()

    async with raw_server(handler) as server:
        http = client(server.url, timeout=0.3, max_connections=1)
        with anyio.fail_after(5), pytest.raises(TimedOut, match="next part of the answer"):
            await http.request("GET", server.url + "/")
        with anyio.fail_after(5):
            assert (await http.request("GET", server.url + "/")).content == b"{}"


async def test_a_connection_dropped_mid_body_is_lost_not_a_short_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")

    async with raw_server(handler) as server:
        with anyio.fail_after(5), pytest.raises(ConnectionLost):
            await client(server.url).request("POST", server.url + "/", content=b"{}")
    assert server.connections == 1  # a fresh connection that failed is not retried


async def test_a_kept_alive_connection_closed_under_a_new_request_is_retried_once_on_a_fresh_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(answer(b"1"))
        await writer.drain()
        if server.connections == 1:
            await read_request(reader, server)  # the second request arrives; the server closes unanswered
            return
        await keep_answering(reader, writer, server)

    async with raw_server(handler) as server:
        http = client(server.url)
        await http.request("POST", server.url + "/", content=b"first")
        with anyio.fail_after(5):
            assert (await http.request("POST", server.url + "/", content=b"second")).content == b"1"
    assert server.connections == 2
    assert [body for _, body in server.requests] == [b"first", b"second", b"second"]


async def test_a_full_pool_makes_the_next_request_wait_then_time_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await reader.read()

    async with raw_server(handler) as server:
        http = client(server.url, timeout=0.3, max_connections=1)
        async with http.stream("GET", server.url + "/") as held:
            assert held.status_code == 200
            with anyio.fail_after(5), pytest.raises(TimedOut, match="stayed busy"):
                await http.request("GET", server.url + "/")


async def test_a_cancelled_request_closes_its_connection_and_returns_the_slot() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        if server.connections == 1:
            await read_request(reader, server)
            await reader.read()  # never answers
        else:
            await keep_answering(reader, writer, server)

    async with raw_server(handler) as server:
        http = client(server.url, max_connections=1)
        with anyio.move_on_after(0.2) as scope:
            await http.request("GET", server.url + "/")
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            assert (await http.request("GET", server.url + "/")).status_code == 200
    assert server.connections == 2


async def test_nothing_listening_is_a_connect_failure() -> None:
    async with raw_server(keep_answering) as server:
        url = server.url
    with anyio.fail_after(5), pytest.raises(ConnectFailed, match="cannot connect"):
        await client(url).request("GET", url + "/")


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        client("http://127.0.0.1:9", headers={"x-evil": "a\r\nhost: elsewhere"})


async def test_sse_events_survive_crlf_split_pieces_comments_and_multiline_data() -> None:
    pieces = [
        b'data: {"a":1}\r',
        b"\n\r\ndata: x\n",
        b"data: y\n\n: a comment\n\nevent: ping\ndata: z\n",
        b"\nretry: 10\n\n",
        b"data: last",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)  # separate reads on the client side

    async with raw_server(handler) as server:
        adapter = OpenAIAdapter("fake", BackendConfig(type="openai", base_url=server.url + "/v1"))
        async with adapter.open_stream("/chat/completions", {"stream": True}) as response:
            events = [event async for event in adapter.sse_events(response)]
        await adapter.aclose()
    assert events == [("message", '{"a":1}'), ("message", "x\ny"), ("ping", "z"), ("message", "last")]
