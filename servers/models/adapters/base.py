"""What every backend adapter shares: one pooled HTTP client, JSON in/out, SSE and NDJSON lines.

An adapter speaks one backend's real wire protocol and exposes OpenAI shapes only:
`chat()` returns a chat.completion dict, `stream_chat()` yields chat.completion.chunk dicts,
`embed()` returns an embeddings list. Every failure leaves as an `UpstreamError`.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import httpx2
import orjson

from servers.models.config import BackendConfig
from servers.models.errors import (
    UnsupportedOperation,
    UpstreamProtocolError,
    status_error,
    translate_transport_errors,
)

_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every https backend (loading the CA store takes ~0.1 s)."""
    return httpx2.create_ssl_context()


class Adapter:
    """Base adapter: subclasses set `kind` and implement chat / stream_chat / embed / probe."""

    kind = "base"

    def __init__(self, name: str, config: BackendConfig, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.config = config
        timeout = httpx2.Timeout(config.read_timeout, connect=config.connect_timeout, pool=config.connect_timeout)
        limits = httpx2.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        if transport is None:
            transport = httpx2.AsyncHTTPTransport(
                verify=_tls_context() if config.base_url.startswith("https://") else False,
                limits=limits,
                socket_options=_NODELAY,
                retries=0,
            )
        self.client = httpx2.AsyncClient(
            timeout=timeout,
            transport=transport,
            verify=False,  # the transport above decides; this only skips building an unused CA store
            headers={**self.auth_headers(), **config.headers},
            trust_env=False,
        )

    def auth_headers(self) -> dict[str, str]:
        return {}

    def url(self, path: str) -> str:
        return self.config.base_url + path

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- plumbing -------------------------------------------------------------------------------
    async def post_json(self, path: str, body: dict[str, Any], *, timeout: float | None = None) -> Any:
        with translate_transport_errors(self.name):
            response = await self.client.post(
                self.url(path),
                content=orjson.dumps(body),
                headers={"content-type": "application/json"},
                timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
            )
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.text, response.headers.get("retry-after"))
        return self.decode(response.content)

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        with translate_transport_errors(self.name):
            response = await self.client.get(
                self.url(path), timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT
            )
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.text, response.headers.get("retry-after"))
        return self.decode(response.content)

    def decode(self, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(f"backend {self.name!r} answered with malformed JSON") from None

    @asynccontextmanager
    async def open_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx2.Response]:
        """POST and yield the response once its status is known to be a success."""
        with translate_transport_errors(self.name):
            async with self.client.stream(
                "POST", self.url(path), content=orjson.dumps(body), headers={"content-type": "application/json"}
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise status_error(
                        self.name, response.status_code, response.text, response.headers.get("retry-after")
                    )
                yield response

    async def sse_events(self, response: httpx2.Response) -> AsyncIterator[tuple[str, str]]:
        """(event, data) pairs of a server-sent event stream; transport errors translated."""
        event = ""
        data: list[str] = []
        with translate_transport_errors(self.name):
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        yield event or "message", "\n".join(data)
                    event, data = "", []
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    event = line[6:].strip()
            if data:
                yield event or "message", "\n".join(data)

    async def ndjson_lines(self, response: httpx2.Response) -> AsyncIterator[Any]:
        with translate_transport_errors(self.name):
            async for line in response.aiter_lines():
                if line.strip():
                    yield self.decode(line.encode())

    @staticmethod
    def now() -> int:
        return int(time.time())

    # --- the operations -------------------------------------------------------------------------
    async def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def stream_chat(self, model: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    async def embed(self, model: str, inputs: list[str], request: dict[str, Any]) -> dict[str, Any]:
        raise UnsupportedOperation(f"backend {self.name!r} ({self.kind}) cannot compute embeddings")

    async def probe(self, timeout: float) -> set[str] | None:
        """The models the backend serves (None: it cannot say); an UpstreamError when it is down."""
        raise NotImplementedError


def require_choices(name: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        raise UpstreamProtocolError(f"backend {name!r} answered without 'choices'")
    return data


def model_ids(data: Any) -> set[str] | None:
    """Model ids of an OpenAI / Anthropic style `{"data": [{"id": ...}]}` listing."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return {str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m}
