"""Serve an ASGI app on a free loopback port for the length of a test (real HTTP, port 0)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import uvicorn


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on a free port: clients may connect before the server task runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it small responses wait ~40 ms on delayed ACKs
    # (asyncio sets TCP_NODELAY on sockets it creates, not on ones accepted from a given socket).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


@asynccontextmanager
async def serve_asgi(
    app: Any,
    *,
    host: str = "127.0.0.1",
    lifespan: Literal["auto", "on", "off"] = "auto",
    sock: socket.socket | None = None,
    options: dict[str, Any] | None = None,
) -> AsyncIterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of `app` served by uvicorn until the block ends.

    Pass `sock` (from `bound_socket`) when the app must know its own URL before it starts, and
    `options` for uvicorn.Config (the hub's: `aggregator.http_server.server_options`).
    """
    sock = sock or bound_socket(host)
    port = sock.getsockname()[1]
    # A bounded graceful shutdown: after a failing test a peer may still hold a stream open.
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, loop="asyncio", timeout_graceful_shutdown=5, **(options or {})
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
    sock.close()
