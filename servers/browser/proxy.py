"""A filtering HTTP proxy on loopback that every request of the pooled Chromium goes through.

Playwright's request routes do not see redirect hops (measured: a 302 from an allowed page to a
forbidden address is followed without the route handler being called), and a page's DNS answer
can change between a check and Chromium's own lookup. Sending all traffic through this proxy closes
both holes: Chromium never resolves names itself (it hands them to the proxy), and the proxy
resolves each host once, checks every address against the navigation policy and connects to
exactly the address it checked. HTTPS and WebSockets arrive as CONNECT tunnels; plain HTTP as
absolute-form requests, forwarded one per connection (`Connection: close`).

Refused destinations get `403` with a short reason (Chromium reports CONNECT refusals as
net::ERR_TUNNEL_CONNECTION_FAILED). The proxy listens on 127.0.0.1 only and forwards only where the
policy allows, so it opens nothing a local process could not reach directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from servers.browser.policy import NavigationPolicy
from servers.kit.netpolicy import PolicyRefusal

_log = logging.getLogger("toolmux.browser.proxy")

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer", "upgrade"}


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
    return host, int(port) if port else default_port


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


class FilteringProxy:
    """`await proxy.start()` then point Chromium at `proxy.url`; `await proxy.aclose()` at the end."""

    def __init__(self, policy: NavigationPolicy, *, max_connections: int = 256) -> None:
        self.policy = policy
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        # The latest refusals, newest last: (host, reason). Shown by the tools as blocked requests.
        self.refusals: deque[tuple[str, str]] = deque(maxlen=100)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with self._slots:
                _nodelay(writer)
                await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:
            _log.exception("browser proxy: unexpected failure")
        finally:
            if task is not None:
                self._tasks.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        if method.upper() == "CONNECT":
            host, port = _split_host_port(target, 443)
            upstream = await self._open(host, port, writer)
            if upstream is None:
                return
            up_reader, up_writer = upstream
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await self._relay(reader, writer, up_reader, up_writer)
            return
        parts = urlsplit(target)
        if parts.scheme.lower() != "http" or not parts.hostname:
            await self._refuse(writer, 400, "the proxy takes absolute http:// requests and CONNECT only")
            return
        upstream = await self._open(parts.hostname, parts.port or 80, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = [h for h in header_lines if h.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
        up_writer.write(f"{method} {path} HTTP/1.1\r\n".encode("latin-1"))
        up_writer.write("".join(f"{h}\r\n" for h in [*headers, "Connection: close"]).encode("latin-1") + b"\r\n")
        await up_writer.drain()
        await self._relay(reader, writer, up_reader, up_writer, rewrite_response=True)

    async def _open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            addresses = await self.policy.permitted_addresses(host, port)
        except PolicyRefusal as exc:
            self.refusals.append((host, str(exc)))
            await self._refuse(writer, 403, f"blocked by the toolmux browser policy: {exc}")
            return None
        last_error: Exception | None = None
        for address in addresses:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=CHUNK), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                last_error = exc
                continue
            _nodelay(up_writer)
            return up_reader, up_writer
        await self._refuse(writer, 502, f"cannot connect to {host}:{port}: {last_error}")
        return None

    async def _refuse(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = message.encode("utf-8", "replace")
        reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nX-Toolmux-Blocked: 1\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        *,
        rewrite_response: bool = False,
    ) -> None:
        async def downstream() -> None:
            if rewrite_response:
                with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    head = await up_reader.readuntil(b"\r\n\r\n")
                    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
                    kept = [h for h in lines if h.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
                    writer.write(
                        "\r\n".join([status_line, *kept, "Connection: close", "Proxy-Connection: close"]).encode(
                            "latin-1"
                        )
                        + b"\r\n\r\n"
                    )
            await _pipe(up_reader, writer)

        tasks = [asyncio.ensure_future(downstream()), asyncio.ensure_future(_pipe(reader, up_writer))]
        try:
            # Either side closing ends the exchange (a tunnel or one Connection: close request).
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _close(up_writer)
