"""The hub's side of a storage child's face: requests streamed over a unix socket, both ways.

The hub has already answered the auth questions (`hooks.forwarded_auth`); this module only
moves bytes. The request keeps its method, path, query and headers exactly (SigV4 signs the
Host header and the path), minus hop-by-hop headers; `Expect: 100-continue` was already
answered by the hub's server. The response streams back as it comes (`aiter_raw`, nothing
decoded or buffered whole).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from servers.storage.http.auth import access_key_id_of, minter_of
from servers.storage.http.errors import StorageHTTPError
from servers.storage.http.hooks import FACE_REQUEST_ID, FACE_TOKEN, FORWARDED_AUTH, AuthHooks, forwarded_auth

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"expect", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection"}
)
_PRIVATE = (FORWARDED_AUTH.encode(), FACE_TOKEN.encode(), FACE_REQUEST_ID.encode())
_DROP_FROM_CHILD = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"x-request-id", b"date", b"server"})


class ChildUnreachable(Exception):
    """The child's socket did not answer before any of the request was sent (safe to retry)."""


class ChildProxy:
    def __init__(self) -> None:
        self._socket: str | None = None
        self._http: httpx2.AsyncClient | None = None

    async def _client(self, socket: str) -> httpx2.AsyncClient:
        if self._http is None or socket != self._socket:
            if self._http is not None:
                await self._http.aclose()  # a restarted child listens on a new socket
            transport = httpx2.AsyncHTTPTransport(uds=socket)
            # No client timeout: the mount bounds every request by the bytes that move.
            self._http = httpx2.AsyncClient(transport=transport, timeout=None)
            self._socket = socket
        return self._http

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, socket: str, token: str, hooks: AuthHooks
    ) -> None:
        request = Request(scope, receive)
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP and not k.startswith(_PRIVATE)]
        rid = scope.get("toolmux.request_id")
        if rid:
            headers.append((FACE_REQUEST_ID.encode(), str(rid).encode()))
        auth = forwarded_auth(hooks, request, access_key_id_of(request), minter_of(request))
        headers += [(FACE_TOKEN.encode(), token.encode()), (FORWARDED_AUTH.encode(), auth)]
        consumed = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal consumed
            more = True
            while more:
                message = await receive()
                consumed = True
                if message["type"] == "http.disconnect":
                    raise StorageHTTPError(400, "the client went away")
                more = bool(message.get("more_body", False))
                if message.get("body"):
                    yield message["body"]

        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = "http://storage" + target.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        client = await self._client(socket)
        outgoing = client.build_request(scope["method"], url, headers=headers, content=body() if has_body else None)
        try:
            response = await client.send(outgoing, stream=True)
        except httpx2.TransportError as exc:
            if not consumed:
                raise ChildUnreachable(str(exc)) from None
            raise StorageHTTPError(
                502, "the storage process went away during the request; retry", headers={"Retry-After": "1"}
            ) from None
        try:
            out_headers = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _DROP_FROM_CHILD]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
