"""The hub's HTTP server settings: uvicorn with httptools, plus two guards uvicorn lacks.

- **A header timeout.** uvicorn arms its keep-alive timer only after a response, so a connection
  that never sends a request, or sends its headers a byte at a time (slowloris), stays open for
  ever: measured, 1,000 of 1,000 such sockets were still open after 25 s. Here every request's
  line and headers must arrive within `http.header_timeout` seconds of its first byte (of the
  connection, for the first request); past that the hub answers 408 and closes.
- **JSON for what is not HTTP.** uvicorn answers bytes its parser refuses with a plain-text 400;
  here it is toolmux's JSON error body with a request id, like every other answer.
- **A connection cap.** uvicorn's `limit_concurrency` answers 503 only once a request's headers
  are complete, so it does not bound idle or half-open connections. Here a connection beyond
  `http.max_connections` gets a 503 with `Retry-After` and is closed as soon as it is accepted.

Both are a small subclass of uvicorn's httptools protocol (`guarded_protocol`), used by
`toolmux serve`, `toolmux stdio`'s private face and the tests alike.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aggregator.config import HttpConfig
from aggregator.ids import new_id

ABORT_SCOPE_KEY = "toolmux.abort"


def _error_response(status: bytes, code: str, message: str, extra: bytes = b"", *, retryable: bool = True) -> bytes:
    """A complete HTTP/1.1 answer in toolmux's plain JSON error shape, closing the connection."""
    request_id = new_id()
    error = {"code": code, "message": message, "retryable": retryable, "request_id": request_id}
    body = orjson.dumps({"error": error})
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"x-request-id: " + request_id.encode() + b"\r\n" + extra + b"connection: close\r\n\r\n"
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a connection cap (class attributes,
    set by `guarded_protocol`)."""

    header_timeout: float = 10.0
    max_connections: int = 2048

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            message = f"the hub has {self.max_connections} connections open, its limit; retry shortly"
            transport.write(_error_response(b"503 Service Unavailable", "unavailable", message, b"retry-after: 1\r\n"))
            transport.close()
            return
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # How the app drops a client that stopped reading: close() would wait for the unread
        # bytes to flush for ever (aggregator.response_buffers).
        scope = cast(dict[str, Any], self.scope)
        scope[ABORT_SCOPE_KEY] = self.transport.abort
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers bytes that are not HTTP in plain text; every answer of the hub is JSON.
        self._disarm_header_timer()
        self.transport.write(_error_response(b"400 Bad Request", "invalid_argument", msg, retryable=False))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        message = f"the request headers did not arrive within {self.header_timeout:g} s"
        self.transport.write(_error_response(b"408 Request Timeout", "timeout", message))
        self.transport.close()


def guarded_protocol(http: HttpConfig) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` setting, with this config's limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": http.header_timeout, "max_connections": http.max_connections},
    )


def server_options(http: HttpConfig) -> dict[str, Any]:
    """The uvicorn.Config options every hub server shares."""
    return {
        "http": guarded_protocol(http),
        "timeout_keep_alive": http.keep_alive_timeout,
        # The hub reads no client addresses; skip rewriting them from X-Forwarded-* on every request.
        "proxy_headers": False,
    }
