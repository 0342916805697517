"""The handshake era's session with one streamable HTTP server, and how a lost one is replaced.

The session id comes from the `initialize` response's `Mcp-Session-Id` header and the protocol
version from its result; both go on every later request. When the server answers 404 to a
request carrying the id, it forgot the session (a restart, an idle timeout): `replace` replays
the remembered `initialize` under a private id and sends `notifications/initialized`, once for
however many requests noticed the loss at the same time.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx2

from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc
from aggregator.protocol.headers import PROTOCOL_VERSION, SESSION_ID
from aggregator.upstreams.http_common import (
    AUTH_STATUSES,
    EVENT_STREAM,
    JSON_AND_SSE,
    auth_failure,
    content_type,
    describe_http_error,
    event_stream,
    open_stream,
    parse_messages,
    read_body,
    status_text,
)

_log = logging.getLogger("toolmux.upstream")

DELETE_TIMEOUT_S = 2.0


class Session:
    def __init__(self, name: str, entry: ServerEntry, client: httpx2.AsyncClient) -> None:
        assert entry.url is not None
        self.name = name
        self._entry = entry
        self._url = entry.url
        self._client = client
        self.id: str | None = None
        self.negotiated: str | None = None
        # The stateless revision's version last seen, for messages that carry none (our answers).
        self.last_modern: str | None = None
        self._init_id: Any = None
        self._init_params: dict[str, Any] | None = None
        # Bumped whenever the session is replaced, so concurrent 404s lead to one replacement.
        self.generation = 0
        self.replacements = 0
        self._lock = anyio.Lock()
        self._replacing: anyio.Event | None = None

    # --- what the channel tells it ---------------------------------------------------------------
    def remember_initialize(self, message: dict[str, Any]) -> None:
        self._init_id = message.get("id")
        params = message.get("params")
        self._init_params = params if isinstance(params, dict) else {}

    def note_answer(self, message: dict[str, Any]) -> None:
        """Keep the negotiated version when `message` answers our `initialize`."""
        if self._init_id is None or message.get("id") != self._init_id:
            return
        result = message.get("result")
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.negotiated = result["protocolVersion"]

    def capture(self, response: httpx2.Response) -> None:
        """The session id from the `initialize` response (none: the server keeps no sessions)."""
        self.id = response.headers.get(SESSION_ID) or None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.id is not None:
            headers[SESSION_ID] = self.id
        version = self.negotiated if self._init_id is not None else self.last_modern
        if version:
            headers[PROTOCOL_VERSION] = version
        return headers

    async def settled(self) -> None:
        """Wait while the session is being replaced, so a request goes out with the new one."""
        while self._replacing is not None:
            await self._replacing.wait()

    # --- replacing a lost session ----------------------------------------------------------------
    async def replace(self, failed_generation: int) -> str | None:
        """Initialize again after a 404; None on success, else why not. ChannelClosed on 401/403."""
        async with self._lock:
            if self.generation != failed_generation:
                return None if self.id is not None else "another re-initialization failed"
            if self._init_params is None:
                return "no initialize to replay"
            self._replacing = anyio.Event()
            try:
                self.generation += 1
                self.id = None
                self.replacements += 1
                with anyio.fail_after(self._entry.timeouts.connect):
                    problem = await self._initialize_again()
            except TimeoutError:
                problem = "timed out"
            except httpx2.HTTPError as exc:
                problem = describe_http_error(exc)
            except ValueError as exc:  # an oversized body
                problem = str(exc)
            finally:
                self._replacing.set()
                self._replacing = None
            if problem is None:
                _log.warning("%s: the server forgot our session; re-initialized it", self.name)
            return problem

    async def _initialize_again(self) -> str | None:
        private_id = f"toolmux-reinitialize-{self.generation}"
        request = jsonrpc.request(private_id, "initialize", self._init_params)
        base = {"Accept": JSON_AND_SSE, "Content-Type": "application/json"}
        async with open_stream(self._client, "POST", self._url, content=jsonrpc.dumps(request), headers=base) as sent:
            if sent.status_code in AUTH_STATUSES:
                raise auth_failure(self.name, sent)
            if not sent.is_success:
                return f"initialize answered {status_text(sent)}"
            session = sent.headers.get(SESSION_ID) or None
            answer = await _find_answer(sent, private_id)
        result = answer.get("result") if answer is not None else None
        if not isinstance(result, dict):
            error = answer.get("error") if answer is not None else None
            return (
                f"initialize failed: {error.get('message')}" if isinstance(error, dict) else "initialize got no answer"
            )
        self.id = session
        if isinstance(result.get("protocolVersion"), str):
            self.negotiated = result["protocolVersion"]
        initialized = jsonrpc.dumps(jsonrpc.notification("notifications/initialized"))
        headers = {**base, **self.headers()}
        async with open_stream(self._client, "POST", self._url, content=initialized, headers=headers) as sent:
            if not sent.is_success:
                return f"notifications/initialized answered {status_text(sent)}"
        return None

    async def end(self) -> None:
        """DELETE the session (best effort, briefly): the server may free it at once."""
        if self.id is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(DELETE_TIMEOUT_S):
            try:
                async with open_stream(
                    self._client, "DELETE", self._url, headers=self.headers(), timeout=DELETE_TIMEOUT_S
                ) as response:
                    if response.status_code not in (200, 202, 204, 404, 405):
                        _log.debug("%s: ending the session answered %s", self.name, status_text(response))
            except httpx2.HTTPError as exc:
                _log.debug("%s: ending the session failed: %s", self.name, describe_http_error(exc))


async def _find_answer(response: httpx2.Response, request_id: str) -> dict[str, Any] | None:
    """The answer to `request_id` in a JSON body or an event stream (anything else on it is dropped)."""
    if content_type(response) == EVENT_STREAM:
        async for event in event_stream(response):
            found = [m for m in parse_messages(event.data or "") or [] if m.get("id") == request_id]
            if found:
                return found[0]
        return None
    found = [m for m in parse_messages(await read_body(response)) or [] if m.get("id") == request_id]
    return found[0] if found else None
