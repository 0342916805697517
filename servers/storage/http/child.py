"""Storage's face inside its own child process: a private HTTP server on a unix socket.

When storage runs as the hub's child, the hub asks it (custom request `FACE_METHOD`) where its
face is. The first ask starts a uvicorn server on a unix socket in a fresh 0700 directory and
answers the socket's path and a random token; the hub then forwards /storage/ requests there,
each carrying the token and the hub's answers about the request's keys (`hooks.ForwardedAuth`).
The token travelled over the child's stdio pipe, which only the hub holds, so a local process
that finds the socket still cannot speak for the hub.

Why stream through the child rather than through tool calls: S3 objects are up to gigabytes,
ranges and multipart uploads need the file itself, and a JSON-RPC message would hold a whole
object (base64) in memory three times over. A unix socket moves the bytes at close to file-copy
speed, and the storage process stays the only one that opens its files.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from servers.storage.http.face import PREFIX, REQUEST_ID_KEY, StorageFace
from servers.storage.http.hooks import FACE_REQUEST_ID, FACE_TOKEN, FORWARDED_AUTH, ForwardedAuth
from servers.storage.store import ObjectStore

_log = logging.getLogger("toolmux.storage.http")


class ChildFaceApp:
    """The ASGI app behind the socket: the token checked, the hub's answers replayed to the face."""

    def __init__(self, store: ObjectStore, token: str) -> None:
        self.store = store
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        presented = request.headers.get(FACE_TOKEN, "").encode()
        if not hmac.compare_digest(presented, self.token) or not scope["path"].startswith(PREFIX):
            await JSONResponse({"error": {"code": "forbidden", "message": "not the hub"}}, status_code=403)(
                scope, receive, send
            )
            return
        rid = request.headers.get(FACE_REQUEST_ID)
        if rid:
            scope[REQUEST_ID_KEY] = rid  # the hub sends x-request-id on the answer; the face must not
        hooks = ForwardedAuth(request.headers.get(FORWARDED_AUTH))
        response = await StorageFace(self.store, hooks).handle(request)
        await response(scope, receive, send)


class ChildFace:
    """Starts the socket server on first ask, in the domain's lifespan task group."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.task_group: anyio.abc.TaskGroup | None = None
        self._answer: dict[str, Any] | None = None
        self._dir: Path | None = None
        self._lock = anyio.Lock()

    async def endpoint(self) -> dict[str, Any]:
        async with self._lock:
            if self._answer is None:
                self._answer = self._start()
            return self._answer

    def _start(self) -> dict[str, Any]:
        if self.task_group is None:
            raise RuntimeError("the storage server is not running (no lifespan)")
        # A short path: unix socket paths are limited to ~100 bytes, data dirs can be deep.
        self._dir = Path(tempfile.mkdtemp(prefix="toolmux-storage-"))
        path = str(self._dir / "face.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(128)
        token = secrets.token_urlsafe(32)
        config = uvicorn.Config(ChildFaceApp(self.store, token), lifespan="off", log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        # `_serve`, not `serve`: `serve` would take over SIGINT/SIGTERM, which are the child's own.
        self.task_group.start_soon(server._serve, [listener])
        return {"socket": path, "token": token}

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._answer = None
