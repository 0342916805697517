"""Requests for a 2025-era MCP session that another replica owns, forwarded to that replica.

A legacy session is more than a record: its in-flight calls, the server-to-client requests they
wait on (elicitation, sampling), its GET stream and the event logs of dropped SSE responses are
live objects in the process that opened it. So with `state:` shared, the replica that answers
`initialize` claims the session in the shared session directory (Redis), and any other replica
that receives a request for it streams the request to the owner over HTTP and the answer back
(docs/scale-out.md says why this and not a session record every replica can serve from).

The owner authenticates the forwarded request itself (the client's headers travel unchanged), and
a forwarded request is never forwarded again (`x-toolmux-forwarded`). An owner that does not
answer is gone, and its sessions with it: the client gets 404, which tells MCP clients to start a
new session.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import httpx2

from aggregator.front.http_stream import Receive, Send
from aggregator.state import State, StateUnavailable

_log = logging.getLogger("toolmux.forward")

FORWARDED_HEADER = "x-toolmux-forwarded"
# Per-connection headers, and the length the HTTP client writes itself. `Host` stays the client's:
# the owner applies the same Host/Origin policy the first replica did.
_REQUEST_SKIP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"content-length"}
_RESPONSE_SKIP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
CLAIM_REFRESH_SECONDS = 60.0


class SessionForwarder:
    def __init__(self, state: State, *, idle_timeout: float) -> None:
        self.state = state
        # A claim outlives the session's idle timeout by two refreshes; the owner renews its claims.
        self.claim_ttl = idle_timeout + 2 * CLAIM_REFRESH_SECONDS
        self._urls: dict[str, str] = {}
        # No read timeout: a forwarded SSE stream lasts as long as the client keeps it open.
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(None, connect=2.0))

    async def claim(self, session_id: str) -> None:
        try:
            await self.state.sessions.claim(session_id, self.state.replica_id, ttl=self.claim_ttl)
        except StateUnavailable as exc:
            _log.warning("session %s is reachable on this replica only: %s", session_id[:8], exc)

    async def release(self, session_id: str) -> None:
        with contextlib.suppress(StateUnavailable):  # else the claim expires by itself
            await self.state.sessions.release(session_id)

    async def keep_claims(self, sessions: Callable[[], Iterable[str]]) -> None:
        """Renew this replica's claims while its sessions live (until cancelled)."""
        while True:
            await anyio.sleep(CLAIM_REFRESH_SECONDS)
            for session_id in list(sessions()):
                await self.claim(session_id)

    async def claim_parked(self, token: str) -> None:
        await self.claim(f"parked:{token}")

    async def parked_owner_url(self, token: str) -> str | None:
        return await self.owner_url(f"parked:{token}")

    async def owner_url(self, session_id: str) -> str | None:
        """The address of the replica owning `session_id`, if that is another, live replica."""
        try:
            owner = await self.state.sessions.owner(session_id)
            if owner is None or owner == self.state.replica_id:
                return None
            if owner not in self._urls:
                self._urls = {r.id: r.url for r in await self.state.registry.fleet() if r.url}
        except StateUnavailable as exc:
            _log.warning("cannot look up the owner of session %s: %s", session_id[:8], exc)
            return None
        return self._urls.get(owner)

    async def forward(
        self, scope: dict[str, Any], receive: Receive, send: Send, url: str, *, read: bytes | None = None
    ) -> bool:
        """Stream the request to `url` and its answer back; False (nothing sent) when the owner is unreachable.
        `read`: the body, when the caller has already read it."""
        body = bytearray(read or b"")
        if scope["method"] == "POST" and read is None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return True  # the client left: nothing to answer
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _REQUEST_SKIP]
        headers.append((FORWARDED_HEADER.encode(), b"1"))
        query = scope.get("query_string") or b""
        target = url + scope["path"] + (f"?{query.decode('latin-1')}" if query else "")
        request = self._client.build_request(scope["method"], target, headers=headers, content=bytes(body))
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.TransportError as exc:
            _log.warning("the replica owning a session did not answer at %s: %s", url, exc)
            self._urls = {}
            return False
        try:
            raw_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _RESPONSE_SKIP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": raw_headers})
            async with anyio.create_task_group() as tg:

                async def client_gone() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()  # closing our side tells the owner the client left

                tg.start_soon(client_gone)
                try:
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except httpx2.TransportError:
                    pass  # the owner went away mid-answer: end the client's response too
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        return True

    async def aclose(self) -> None:
        await self._client.aclose()
