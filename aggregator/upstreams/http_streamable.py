"""Streamable HTTP client channel: one POST per message, answers as JSON or an event stream.

The era is read off each message: a `params._meta` carrying the protocol version is the
stateless 2026-07-28 revision (no session, routing headers, cancellation = closing the request's
stream); anything else is the handshake era (session id from `initialize`, a GET stream for
unsolicited messages, DELETE on close).

`send` never waits for a request's answer: each request's POST runs in its own task and queues
whatever arrives on its stream (notifications and server-to-client requests first, the response
last). HTTP failures become JSON-RPC error responses for that request, so a caller always gets a
clear error instead of a hang; 401/403 close the channel, naming the status.

A server that forgot our session (HTTP 404 to a request carrying the session id) is
re-initialized inside the channel: the remembered `initialize` is replayed under a private id,
`notifications/initialized` follows, and the failed message is sent once more. The peer above
never sees it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup

from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc
from aggregator.protocol.headers import (
    LAST_EVENT_ID,
    PROTOCOL_VERSION,
    modern_headers,
    modern_version,
    safe_value,
)
from aggregator.upstreams.channel import ChannelClosed
from aggregator.upstreams.http_common import (
    AUTH_STATUSES,
    EVENT_STREAM,
    JSON_AND_SSE,
    Inbox,
    auth_failure,
    content_type,
    describe_http_error,
    event_stream,
    jsonrpc_error_body,
    open_stream,
    parse_messages,
    read_body,
    safe_url,
    status_text,
    stream_timeout,
)
from aggregator.upstreams.http_session import Session

_log = logging.getLogger("toolmux.upstream")

DEFAULT_RETRY_MS = 1000
MAX_BACKOFF_S = 30.0
RESUME_ATTEMPTS = 3
ERROR_BODY_BYTES = 64 * 1024
# Told the first POST's status when the server may be a legacy HTTP+SSE one (see http.AutoChannel);
# True means "abandon this answer: the message goes to the other transport".
StatusReport = Callable[[int | None], bool]


def _ignore_status(status: int | None) -> bool:
    return False


@dataclass(eq=False)
class _Flight:
    """One request's POST in flight; cancelling `scope` closes its response stream."""

    modern: bool
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


@dataclass
class _StreamState:
    last_event_id: str | None = None
    retry_ms: int | None = None
    skipped: int = 0
    events: int = 0
    failure: str | None = None


class StreamableHttpChannel:
    def __init__(self, name: str, entry: ServerEntry, client: httpx2.AsyncClient, tg: TaskGroup) -> None:
        assert entry.url is not None
        self.name = name
        self._entry = entry
        self._url = entry.url
        self._client = client
        self._tg = tg
        self._inbox = Inbox()
        self._flights: dict[Any, _Flight] = {}
        self.session = Session(name, entry, client)
        self._listener: anyio.CancelScope | None = None
        self._listening_generation = -1
        self._closing = False

    # --- Channel ----------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        if self._inbox.closed:
            raise ChannelClosed(self._inbox.reason or "closed")
        method = message.get("method")
        version = modern_version(message)
        if version is not None:
            self.session.last_modern = version
        if method == "notifications/cancelled" and self._cancel(message):
            return
        if method == "initialize" and "id" in message:
            self.session.remember_initialize(message)
        if method is not None and "id" in message:
            flight = _Flight(modern=version is not None)
            self._register(message["id"], flight)
            self._tg.start_soon(self._run_request, message, headers, flight, _ignore_status)
            return
        # Notifications and our answers to the server's requests: the server acknowledges them with
        # 202 at once, and sending them in order keeps e.g. `initialized` ahead of what follows.
        await self._post(message, headers, report=_ignore_status)
        if method == "notifications/initialized" and self.session.id is not None:
            self._start_listener()

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_listener()
        for flight in list(self._flights.values()):
            flight.scope.cancel()
        await self.session.end()
        self._inbox.close("the hub closed the connection")
        self._inbox.dispose()

    def describe(self) -> str:
        return f"streamable-http: {safe_url(self._url)}"

    # --- used by http.AutoChannel -------------------------------------------------------------------
    async def probe(self, message: dict[str, Any], headers: dict[str, str] | None) -> int | None:
        """Send the first request; return the status when it suggests a legacy SSE server, else None."""
        flight = _Flight(modern=modern_version(message) is not None)
        if message.get("method") == "initialize":
            self.session.remember_initialize(message)
        self._register(message["id"], flight)

        async def run(*, task_status: anyio.abc.TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED) -> None:
            reported = False

            def report(status: int | None) -> bool:
                nonlocal reported
                if reported:
                    return False
                reported = True
                task_status.started(status)
                return status is not None

            try:
                await self._run_request(message, headers, flight, report)
            finally:
                report(None)

        status: int | None = await self._tg.start(run)
        return status

    def close_quietly(self, reason: str) -> None:
        self._inbox.close(reason)

    # --- requests ---------------------------------------------------------------------------------
    def _register(self, request_id: Any, flight: _Flight) -> None:
        previous = self._flights.get(request_id)
        if previous is not None:
            previous.scope.cancel()
        self._flights[request_id] = flight

    def _cancel(self, message: dict[str, Any]) -> bool:
        """Handle an outbound cancellation; True when nothing is to be POSTed.

        The stateless revision has no client-to-server notifications over HTTP: closing the
        request's stream is the cancellation. In the handshake era the notification is the
        signal; the stream is closed too once it is sent (its answer is no longer awaited).
        """
        params = jsonrpc.obj(message.get("params"))
        flight = self._flights.get(params.get("requestId"))
        if flight is not None and flight.modern:
            flight.scope.cancel()
            return True
        if flight is None:
            return self.session.id is None and self.session.last_modern is not None
        self._tg.start_soon(self._post_then_close, message, flight)
        return True

    async def _post_then_close(self, message: dict[str, Any], flight: _Flight) -> None:
        with contextlib.suppress(ChannelClosed):
            await self._post(message, None, report=_ignore_status)
        flight.scope.cancel()

    async def _run_request(
        self, message: dict[str, Any], headers: dict[str, str] | None, flight: _Flight, report: StatusReport
    ) -> None:
        request_id = message["id"]
        try:
            with flight.scope:
                await self._post(message, headers, report=report)
        except Exception:
            # A bug here must not leave the caller waiting for an answer that will never come.
            _log.exception("%s: sending %s failed", self.name, message.get("method"))
            self._answer_error(message, jsonrpc.INTERNAL_ERROR, "the hub failed to send the request")
        finally:
            if self._flights.get(request_id) is flight:
                del self._flights[request_id]

    async def _post(
        self,
        message: dict[str, Any],
        extra: dict[str, str] | None,
        *,
        report: StatusReport,
        may_reinitialize: bool = True,
    ) -> None:
        """POST one message and queue what comes back; failures become error answers or a closed channel."""
        is_modern = modern_version(message) is not None
        if not is_modern:
            await self.session.settled()
        generation = self.session.generation
        session = None if message.get("method") == "initialize" else self.session.id
        expired = False
        try:
            async with open_stream(
                self._client, "POST", self._url, content=jsonrpc.dumps(message), headers=self._headers(message, extra)
            ) as response:
                status = response.status_code
                if status in AUTH_STATUSES:
                    report(None)
                    self._fail(auth_failure(self.name, response).reason)
                    return
                if status == 404 and session is not None and not is_modern:
                    report(None)
                    expired = True
                elif not response.is_success:
                    body = await _read_error_body(response)
                    if 400 <= status < 500 and jsonrpc_error_body(body) is None and report(status):
                        return
                    report(None)
                    self._answer_status(message, response, body)
                    return
                else:
                    report(None)
                    await self._accept(message, response)
        except httpx2.HTTPError as exc:
            report(None)
            why = describe_http_error(exc)
            self._answer_error(message, jsonrpc.UPSTREAM_UNAVAILABLE, f"{self._where()}: {why}")
            if isinstance(exc, httpx2.ConnectError):
                # Nobody is listening: let the supervisor take the tools down and reconnect with backoff.
                self._fail(f"{self._where()}: {why}")
            return
        except ValueError as exc:  # an oversized body
            report(None)
            self._answer_error(message, jsonrpc.INTERNAL_ERROR, f"{self._where()}: {exc}")
            return
        if expired:
            await self._after_expiry(message, extra, generation, may_reinitialize)

    async def _after_expiry(
        self, message: dict[str, Any], extra: dict[str, str] | None, generation: int, may_reinitialize: bool
    ) -> None:
        if not may_reinitialize:
            self._answer_error(
                message,
                jsonrpc.UPSTREAM_UNAVAILABLE,
                f"{self._where()}: the session expired again right after re-initializing",
            )
            return
        if not await self._replace_session(generation):
            self._answer_error(message, jsonrpc.UPSTREAM_UNAVAILABLE, self._inbox.reason or "the session expired")
            return
        await self._post(message, extra, report=_ignore_status, may_reinitialize=False)

    async def _replace_session(self, generation: int) -> bool:
        """Get a new session for the lost one; False (and the channel closed) when that fails."""
        try:
            problem = await self.session.replace(generation)
        except ChannelClosed as exc:
            problem = exc.reason
        if problem is not None:
            self._fail(f"{self._where()}: the session expired and re-initializing failed: {problem}")
            return False
        if self.session.id is not None and self._listening_generation != self.session.generation:
            self._start_listener()
        return True

    async def _accept(self, message: dict[str, Any], response: httpx2.Response) -> None:
        """A 2xx answer: capture the session, then read the answer to a request."""
        if message.get("method") == "initialize":
            self.session.capture(response)
        if "method" not in message or "id" not in message:
            return  # the server acknowledges notifications and responses; there is nothing to read
        if response.status_code == 202:
            self._answer_error(
                message, jsonrpc.INTERNAL_ERROR, f"{self._where()}: accepted the request but sent no answer"
            )
            return
        kind = content_type(response)
        if kind == EVENT_STREAM:
            await self._read_request_stream(message, response)
        elif kind == "application/json":
            messages = parse_messages(await read_body(response))
            if messages is None:
                self._answer_error(
                    message, jsonrpc.INTERNAL_ERROR, f"{self._where()}: answered with a body that is not JSON-RPC"
                )
                return
            if not any([self._deliver(item, message["id"]) for item in messages]):
                self._answer_error(
                    message, jsonrpc.INTERNAL_ERROR, f"{self._where()}: the JSON answer did not answer the request"
                )
        else:
            self._answer_error(
                message,
                jsonrpc.INTERNAL_ERROR,
                f"{self._where()}: answered with content type {kind or 'none'!r}, not JSON or an event stream",
            )

    async def _read_request_stream(self, message: dict[str, Any], response: httpx2.Response) -> None:
        """Queue the stream's messages until the answer; resume with Last-Event-ID if it breaks off."""
        state = _StreamState()
        if await self._consume(response, message["id"], state):
            return
        attempts = 0
        while state.last_event_id is not None and attempts < RESUME_ATTEMPTS and not self._inbox.closed:
            attempts += 1
            await anyio.sleep((state.retry_ms if state.retry_ms is not None else DEFAULT_RETRY_MS) / 1000)
            seen = state.last_event_id
            headers = {**self._get_headers(message), LAST_EVENT_ID: seen}
            try:
                async with open_stream(
                    self._client, "GET", self._url, headers=headers, timeout=stream_timeout(self._entry)
                ) as resumed:
                    if resumed.status_code in AUTH_STATUSES:
                        self._fail(auth_failure(self.name, resumed).reason)
                        return
                    if not resumed.is_success or content_type(resumed) != EVENT_STREAM:
                        state.failure = f"resuming answered {status_text(resumed)}"
                        continue
                    if await self._consume(resumed, message["id"], state):
                        return
                    if state.last_event_id != seen:
                        attempts = 0
            except httpx2.HTTPError as exc:
                state.failure = describe_http_error(exc)
        detail = f" ({state.failure})" if state.failure else ""
        if state.skipped:
            detail += f"; {state.skipped} event(s) were not JSON-RPC"
        self._answer_error(
            message,
            jsonrpc.UPSTREAM_UNAVAILABLE,
            f"{self._where()}: the response stream ended before the answer{detail}",
        )

    async def _consume(self, response: httpx2.Response, request_id: Any, state: _StreamState) -> bool:
        """Read one event stream; True once the answer to `request_id` arrived."""
        try:
            async for event in event_stream(response):
                state.events += 1
                if event.id:
                    state.last_event_id = event.id
                if event.retry is not None:
                    state.retry_ms = event.retry
                if event.event != "message" or not event.data:
                    continue
                messages = parse_messages(event.data)
                if messages is None:
                    state.skipped += 1
                    _log.warning("%s: ignoring an event that is not JSON-RPC: %.200r", self.name, event.data)
                    continue
                if any([self._deliver(item, request_id) for item in messages]):
                    return True
        except httpx2.HTTPError as exc:
            state.failure = describe_http_error(exc)
        return False

    # --- inbound ----------------------------------------------------------------------------------
    def _deliver(self, message: dict[str, Any], request_id: Any = None) -> bool:
        """Queue a message from the server; True when it is the answer to `request_id`."""
        is_answer = "method" not in message
        if is_answer and request_id is not None and message.get("id") is None:
            message["id"] = request_id  # an error the server could not attribute belongs to this request
        if is_answer:
            self.session.note_answer(message)
        self._inbox.put(message)
        return is_answer and request_id is not None and str(message.get("id")) == str(request_id)

    def _answer_error(self, message: dict[str, Any], code: int, text: str) -> None:
        """Resolve a request with an error (notifications and responses only get a log line)."""
        if "method" in message and "id" in message:
            self._inbox.put(jsonrpc.error(message["id"], code, text))
        else:
            _log.warning("%s: %s (while sending %s)", self.name, text, message.get("method") or "a response")

    def _answer_status(self, message: dict[str, Any], response: httpx2.Response, body: bytes) -> None:
        carried = jsonrpc_error_body(body)
        if carried is not None and "method" in message and "id" in message:
            self._inbox.put({**carried, "id": message["id"]})
            return
        detail = " with a body that is not JSON-RPC" if body.strip() else ""
        code = jsonrpc.UPSTREAM_UNAVAILABLE if response.status_code >= 500 else jsonrpc.INTERNAL_ERROR
        self._answer_error(message, code, f"{self._where()}: answered {status_text(response)}{detail}")

    def _fail(self, reason: str) -> None:
        if not self._inbox.closed:
            _log.warning("%s: %s", self.name, reason)
        self._inbox.close(reason)

    # --- headers ----------------------------------------------------------------------------------
    def _headers(self, message: dict[str, Any], extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": JSON_AND_SSE, "Content-Type": "application/json"}
        version = modern_version(message)
        if version is not None:
            headers.update(modern_headers(message, version))
        elif message.get("method") != "initialize":
            headers.update(self.session.headers())
        if extra:
            headers.update({name: safe_value(value) for name, value in extra.items()})
        return headers

    def _get_headers(self, message: dict[str, Any] | None = None) -> dict[str, str]:
        headers = {"Accept": EVENT_STREAM}
        version = modern_version(message) if message is not None else None
        headers.update({PROTOCOL_VERSION: version} if version is not None else self.session.headers())
        return headers

    def _where(self) -> str:
        return f"server {self.name!r} ({safe_url(self._url)})"

    # --- the GET stream for unsolicited messages --------------------------------------------------
    def _start_listener(self) -> None:
        self._stop_listener()
        scope = anyio.CancelScope()
        self._listener = scope
        self._listening_generation = self.session.generation
        self._tg.start_soon(self._listen, scope, self.session.generation)

    def _stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None

    async def _listen(self, scope: anyio.CancelScope, generation: int) -> None:
        """Keep the GET stream open, reconnecting with the server's `retry:` or else a growing backoff.

        A stream that delivered events was healthy: the next attempt comes after `retry:` (1 s by
        default). One that failed or ended empty counts as a failure and doubles the backoff.
        """
        state = _StreamState()
        backoff = DEFAULT_RETRY_MS / 1000
        connected_once = False
        with scope:
            while not self._inbox.closed and generation == self.session.generation:
                headers = self._get_headers()
                if state.last_event_id is not None:
                    headers[LAST_EVENT_ID] = state.last_event_id
                events_before = state.events
                try:
                    async with open_stream(
                        self._client, "GET", self._url, headers=headers, timeout=stream_timeout(self._entry)
                    ) as response:
                        status = response.status_code
                        if status == 405:
                            _log.debug("%s: the server offers no GET stream", self.name)
                            return
                        if status in AUTH_STATUSES:
                            self._fail(auth_failure(self.name, response).reason)
                            return
                        if status == 404:
                            # The session is gone. If it was live before, re-initialize now so unsolicited
                            # messages keep flowing; a server that never had a GET stream just has none.
                            if connected_once:
                                self._tg.start_soon(self._replace_session, generation)
                            return
                        if response.is_success and content_type(response) == EVENT_STREAM:
                            connected_once = True
                            await self._consume(response, None, state)
                        else:
                            _log.debug("%s: the GET stream answered %s", self.name, status_text(response))
                except httpx2.HTTPError as exc:
                    _log.debug("%s: the GET stream failed: %s", self.name, describe_http_error(exc))
                retry_s = (state.retry_ms if state.retry_ms is not None else DEFAULT_RETRY_MS) / 1000
                if state.events > events_before:
                    backoff = DEFAULT_RETRY_MS / 1000
                    await anyio.sleep(retry_s)
                else:
                    await anyio.sleep(max(backoff, retry_s))
                    backoff = min(backoff * 2, MAX_BACKOFF_S)


async def _read_error_body(response: httpx2.Response) -> bytes:
    try:
        return await read_body(response, ERROR_BODY_BYTES)
    except (httpx2.HTTPError, ValueError):
        return b""
