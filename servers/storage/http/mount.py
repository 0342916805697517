"""The storage face as the hub mounts it: in-process, or forwarded to storage's own child process.

    hub process                                        storage child process
    /storage/… ─► StorageMount ─► StorageFace(store)    (storage in-process)
                       └──► ChildProxy ══ unix socket ══► ChildFace ─► StorageFace(store)

The hub hands `routes()` a `HubSide`: its answers about hub keys (`AuthHooks`), where storage
runs (an in-process `ObjectStore`, or the child's face endpoint), the call timeout, and a metrics
callback. Either way every request is counted under the tool whose scope it needs
(`storage-get_object`, …) and bounded like a tool call: it fails with 504 when no byte moves for
the call timeout (uploads and downloads of any size are fine while bytes keep flowing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from servers.storage.http.auth import is_s3_request
from servers.storage.http.errors import StorageHTTPError, error_response
from servers.storage.http.face import METHODS, PREFIX, REQUEST_ID_KEY, StorageFace, request_id_of
from servers.storage.http.hooks import TOOL_FOR, AuthHooks
from servers.storage.http.proxy import ChildProxy, ChildUnreachable
from servers.storage.store import ObjectStore

_log = logging.getLogger("toolmux.storage.http")


@dataclass(frozen=True)
class FaceEndpoint:
    """Where a storage child serves its face: a unix socket, and the token it requires."""

    socket: str
    token: str


class HubSide(AuthHooks, Protocol):
    def local_store(self) -> ObjectStore | None:
        """The storage service when storage runs in the hub's process."""
        ...

    async def child_endpoint(self) -> FaceEndpoint | None:
        """The face endpoint of storage's child process (asked of the child), None when it is not running."""
        ...

    @property
    def call_timeout(self) -> float:
        """Seconds a request may go without a byte moving (the storage server's call timeout)."""
        ...

    def observe(self, tool: str, status: int, seconds: float) -> None:
        """Count one request in the hub's metrics, under the tool whose scope it needed."""
        ...


def tool_of(scope: Scope) -> str:
    """The tool whose scope a request needs, for metrics (the face itself checks the scopes)."""
    method, path = scope["method"], scope["path"][len(PREFIX) :].strip("/")
    bucket, _, key = path.partition("/")
    query = scope.get("query_string", b"")
    if bucket == "presign":
        return TOOL_FOR["presign"]
    if not bucket:
        return TOOL_FOR["list_buckets"]
    if method == "DELETE" or (not key and b"delete" in query):
        return TOOL_FOR["delete"]
    if not key:
        return TOOL_FOR["list"]
    return TOOL_FOR["read" if method in ("GET", "HEAD") else "write"]


def routes(side: HubSide) -> list[BaseRoute]:
    mount = StorageMount(side)
    return [
        Route(PREFIX, mount, methods=METHODS),
        Route(PREFIX + "/{path:path}", mount, methods=METHODS),
    ]


class StorageMount:
    """The ASGI app the hub routes /storage/ to."""

    def __init__(self, side: HubSide) -> None:
        self.side = side
        self.proxy = ChildProxy()
        self._endpoint: FaceEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 0
        timeout = self.side.call_timeout
        deadline = anyio.CancelScope(deadline=anyio.current_time() + timeout)

        def moved() -> None:
            deadline.deadline = anyio.current_time() + timeout

        async def receive_moving() -> Message:
            message = await receive()
            moved()
            return message

        async def send_moving(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            moved()

        with deadline:
            try:
                await self._serve(scope, receive_moving, send_moving)
            except StorageHTTPError as error:  # the forwarding itself failed (the face answers its own)
                if status:
                    raise
                status = error.status
                await self._answer(scope, receive, send, error)
        if deadline.cancelled_caught and not status:
            status = 504
            stalled = StorageHTTPError(504, f"the request made no progress for {timeout:g}s")
            await self._answer(scope, receive, send, stalled)
        self.side.observe(tool_of(scope), status or 500, time.perf_counter() - started)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = self.side.local_store()
        if store is not None:
            request = Request(scope, receive)
            response = await StorageFace(store, self.side).handle(request)
            await response(scope, receive, send)
            return
        for attempt in range(2):
            endpoint = await self._child_endpoint(refresh=attempt > 0)
            if endpoint is None:
                break
            try:
                await self.proxy.forward(scope, receive, send, endpoint.socket, endpoint.token, self.side)
                return
            except ChildUnreachable:
                # The child restarted (a new socket) or is restarting: ask it again once.
                self._endpoint = None
        error = StorageHTTPError(
            503,
            "storage is not running (neither in-process nor as a child); retry shortly",
            s3_code="ServiceUnavailable",
            headers={"Retry-After": "1"},
        )
        await self._answer(scope, receive, send, error)

    async def _child_endpoint(self, *, refresh: bool) -> FaceEndpoint | None:
        if self._endpoint is None or refresh:
            try:
                self._endpoint = await self.side.child_endpoint()
            except Exception:
                _log.warning("storage child did not say where its HTTP face is", exc_info=True)
                self._endpoint = None
        return self._endpoint

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send, error: StorageHTTPError) -> None:
        request = Request(scope, receive)
        response = error_response(
            error,
            s3=is_s3_request(request),
            request_id=request_id_of(request),
            resource=scope["path"],
            head=scope["method"] == "HEAD",
            own_id=REQUEST_ID_KEY not in scope,
        )
        await response(scope, receive, send)


def describe(endpoint: dict[str, Any]) -> FaceEndpoint:
    """A child's FACE_METHOD answer as an endpoint."""
    return FaceEndpoint(str(endpoint["socket"]), str(endpoint["token"]))
