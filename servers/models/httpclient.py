"""A lean HTTP/1.1 client for backend calls: a keep-alive pool per backend, one write per request.

Why not httpx2: measured on the hub's machine class, one small POST through `httpx2.AsyncClient`
costs about 0.8 ms of CPU (request building, auth and redirect hooks, an anyio connection pool,
the pure-Python h11 state machine), more than everything else toolmux does for a chat call; this
client costs about 0.05 ms. It does only what a backend call needs: HTTP/1.1 over TCP or TLS,
persistent connections (at most `max_connections`), the request written in one `write`, the
response parsed by httptools (llhttp, the parser uvicorn uses), content-length, chunked and
close-delimited bodies, gzip/deflate, and timeouts for connect, pool, write and each read.
No proxies, redirects or cookies: backends are configured by URL, never from the environment.

Every failure leaves as a `TransportFailure` subclass (see `servers.models.errors`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

USER_AGENT = "toolmux"
_READ_BUFFER_HIGH = 1 << 20  # stop reading from a backend that is this far ahead of its consumer


class TransportFailure(Exception):
    """The request did not produce a complete HTTP answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectFailed(TransportFailure):
    """No connection: refused, unreachable, unknown host, TLS handshake failed."""


class TimedOut(TransportFailure):
    """No connection, free pool slot, write progress or next bytes within the timeout."""


class ConnectionLost(TransportFailure):
    """The backend closed or reset the connection before the answer was complete."""


class BadResponse(TransportFailure):
    """Bytes that are not HTTP/1.1."""


class UndecodableBody(BadResponse):
    """A body in an encoding this client cannot read, or corrupt compressed data."""


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float  # the longest wait for the next bytes of an answer (and for write progress)
    pool: float

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        return cls(seconds, seconds, seconds)


def _check_header(name: str, value: str) -> None:
    if not name or any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
        raise ValueError(f"invalid HTTP header {name!r}: names and values must not contain line breaks")


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.requests = 0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.in_flight = False
        self.received_any = False
        self.status = 0
        self._header_list: list[tuple[bytes, bytes]] = []
        self.headers: dict[str, str] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: TransportFailure | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._close_delimited = False

    # --- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is not None:
            return
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small requests

    def data_received(self, data: bytes) -> None:
        if not self.in_flight or self.complete:
            self.closed = True  # bytes nobody asked for: this connection cannot be trusted again
            self._close_transport()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the backend switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"the backend's answer is not valid HTTP/1.1 ({exc})"))

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # --- httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._header_list = []
            return
        self.status = status
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._header_list:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1").strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self._close_delimited = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _READ_BUFFER_HIGH and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers is None:
            return  # the end of an interim (1xx) answer
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the next message may begin
        self._wake()

    # --- state ----------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: TransportFailure) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self.closed = True
        self._close_transport()
        self._wake()

    def _lost(self) -> None:
        self.closed = True
        if self.in_flight and not self.complete:
            if self.headers is not None and self._close_delimited:
                self.complete = True  # a body without length ends with the connection
            elif self.error is None:
                self.error = ConnectionLost("the backend closed the connection before the answer was complete")
        self._wake()

    def _close_transport(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.complete and self.error is None and self.keep_alive

    def close(self) -> None:
        self.closed = True
        self._close_transport()

    async def _wait(self, timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter, what, timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    # --- one exchange ---------------------------------------------------------------------------
    async def send(self, data: bytes, timeout: float) -> None:
        assert self.transport is not None
        self._reset()
        self.in_flight = True
        self.requests += 1
        self.transport.write(data)
        if self._write_paused and not self.closed:
            loop = asyncio.get_running_loop()
            self._drained = loop.create_future()
            timer = loop.call_later(timeout, _expire, self._drained, "sending the request", timeout)
            try:
                await self._drained
            finally:
                timer.cancel()
                self._drained = None

    async def wait_headers(self, timeout: float) -> None:
        while self.headers is None:
            if self.error is not None:
                raise self.error
            await self._wait(timeout, "the answer to start")

    async def next_chunk(self, timeout: float) -> bytes | None:
        """The next piece of the body as it arrived; None once the body is complete."""
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            await self._wait(timeout, "the next part of the answer")
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered <= _READ_BUFFER_HIGH // 4 and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk


def _expire(waiter: asyncio.Future[None], what: str, timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimedOut(f"no progress on {what} within {timeout:g} s"))


class _Decoder:
    def __init__(self, encoding: str) -> None:
        # 32 + MAX_WBITS accepts gzip and zlib headers; raw deflate is what some servers send.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._raw = encoding == "deflate"
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            if not self._started and self._raw and data and (data[0] & 0x0F) != 8:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._started = True
            return self._zlib.decompress(data)
        except zlib.error as exc:
            raise UndecodableBody(f"the backend's compressed answer is corrupt ({exc})") from None


class Response:
    """Status, headers and the body of one answer (read whole with `aread`, or in pieces)."""

    def __init__(self, client: HTTPClient, conn: _Connection, read_timeout: float) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self._read_timeout = read_timeout
        self.status_code = conn.status
        self.headers: dict[str, str] = conn.headers or {}
        self.content = b""
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate", ""):
            self.close()
            raise UndecodableBody(f"the backend's answer uses an encoding this client cannot read ({encoding})")
        self._decoder = _Decoder(encoding) if encoding not in ("identity", "") else None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                chunk = await conn.next_chunk(self._read_timeout)
                if chunk is None:
                    break
                if self._decoder is not None:
                    chunk = self._decoder.feed(chunk)
                if chunk:
                    yield chunk
        except BaseException:
            self.close()
            raise
        self.close()

    async def aread(self) -> bytes:
        self.content = b"".join([chunk async for chunk in self.aiter_bytes()])
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines without their `\\n` / `\\r\\n` ends, as SSE and NDJSON streams need them."""
        pending = b""
        async for chunk in self.aiter_bytes():
            pending += chunk
            if b"\n" not in chunk:
                continue
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield (line[:-1] if line.endswith(b"\r") else line).decode("utf-8", "replace")
        if pending:
            yield (pending[:-1] if pending.endswith(b"\r") else pending).decode("utf-8", "replace")

    def close(self) -> None:
        """Give the connection back (or drop it when the answer was not read to its end)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn)


@lru_cache(maxsize=256)
def _split(url: str) -> tuple[str, str, int, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, netloc, target


class HTTPClient:
    """Keep-alive connections to one origin (scheme, host, port)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeouts: Timeouts,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port, netloc, _ = _split(base_url)
        self.origin = (self.scheme, self.host, self.port)
        self.timeouts = timeouts
        self.ssl_context = ssl_context if self.scheme == "https" else None
        if self.scheme == "https" and self.ssl_context is None:
            raise ValueError("an https backend needs an SSL context")
        merged = {"host": netloc, "user-agent": USER_AGENT, "accept-encoding": "identity"}
        for name, value in (headers or {}).items():
            _check_header(name, value)
            merged[name.lower()] = value
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in merged.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    # --- the pool -------------------------------------------------------------------------------
    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context is not None else None,
                    ssl_handshake_timeout=timeout if self.ssl_context is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise TimedOut(f"no connection to {self.host}:{self.port} within {timeout:g} s") from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS with {self.host}:{self.port} failed ({exc.reason or exc})") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port} ({reason})") from None
        if conn.transport is None:  # uvloop calls connection_made only after create_connection returned
            conn.connection_made(transport)
        return conn

    async def _checkout(self, timeouts: Timeouts) -> _Connection:
        if self._closed:
            raise ConnectFailed("the client is closed")
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), timeouts.pool)
            except TimeoutError:
                busy = f"all connections to {self.host}:{self.port} stayed busy for {timeouts.pool:g} s"
                raise TimedOut(busy) from None
        else:
            await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            return await self._connect(timeouts.connect)
        except BaseException:
            self._slots.release()
            raise

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed:
            conn.in_flight = False
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- requests -------------------------------------------------------------------------------
    def _head(self, method: str, target: str, body: bytes | None, headers: dict[str, str] | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._fixed_headers]
        if headers:
            for name, value in headers.items():
                _check_header(name, value)
                lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"content-length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)

    async def _open(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str] | None, timeouts: Timeouts
    ) -> Response:
        scheme, host, port, _, target = _split(url)
        if (scheme, host, port) != self.origin:
            raise ValueError(f"{url!r} is not on this client's origin {self.scheme}://{self.host}:{self.port}")
        data = self._head(method, target, body, headers)
        for attempt in range(2):
            conn = await self._checkout(timeouts)
            reused = conn.requests > 0
            try:
                await conn.send(data, timeouts.read)
                await conn.wait_headers(timeouts.read)
            except ConnectionLost:
                conn.close()
                self._slots.release()
                # A kept-alive connection the backend closed just as the request left: nothing was
                # processed, so it is sent once more on a fresh connection.
                if reused and not conn.received_any and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                self._slots.release()
                raise
            return Response(self, conn, timeouts.read)
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request and read the whole answer."""
        timeouts = self.timeouts if timeout is None else Timeouts.all(timeout)
        response = await self._open(method, url, content, headers, timeouts)
        await response.aread()
        return response

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Response]:
        """Send a request; yield the answer once its head arrived, its body still to be read."""
        response = await self._open(method, url, content, headers, self.timeouts)
        try:
            yield response
        finally:
            response.close()


__all__: list[Any] = [
    "BadResponse",
    "ConnectFailed",
    "ConnectionLost",
    "HTTPClient",
    "Response",
    "TimedOut",
    "Timeouts",
    "TransportFailure",
    "UndecodableBody",
]
