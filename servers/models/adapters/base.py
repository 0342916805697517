"""What every backend adapter shares: one pooled HTTP client, JSON in/out, SSE and NDJSON lines.

An adapter speaks one backend's real wire protocol and exposes OpenAI shapes only:
`chat()` returns a chat.completion dict, `stream_chat()` yields chat.completion.chunk dicts,
`embed()` returns an embeddings list. Every failure leaves as an `UpstreamError`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import httpx2
import orjson

from aggregator.protocol import sse
from servers.models.config import BackendConfig
from servers.models.errors import (
    UnsupportedOperation,
    UpstreamProtocolError,
    status_error,
    translate_transport_errors,
)
from servers.models.httpclient import HTTPClient, Response, Timeouts


@cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every https backend (loading the CA store takes ~0.1 s)."""
    context = httpx2.create_ssl_context()  # the same trust store (certifi) as the rest of toolmux
    context.set_alpn_protocols(["http/1.1"])  # this client speaks HTTP/1.1 only
    return context


class Adapter:
    """Base adapter: subclasses set `kind` and implement chat / stream_chat / embed / probe."""

    kind = "base"

    def __init__(self, name: str, config: BackendConfig) -> None:
        self.name = name
        self.config = config
        https = config.base_url.startswith("https://")
        self.client = HTTPClient(
            config.base_url,
            # Every body an adapter sends is JSON: the header is written once, not per request.
            headers={"content-type": "application/json", **self.auth_headers(), **config.headers},
            timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout, pool=config.connect_timeout),
            max_connections=config.max_connections,
            ssl_context=_tls_context() if https else None,
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
            response = await self.client.request("POST", self.url(path), content=orjson.dumps(body), timeout=timeout)
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.text, response.headers.get("retry-after"))
        return self.decode(response.content)

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        with translate_transport_errors(self.name):
            response = await self.client.request("GET", self.url(path), timeout=timeout)
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.text, response.headers.get("retry-after"))
        return self.decode(response.content)

    def decode(self, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(f"backend {self.name!r} answered with malformed JSON") from None

    @asynccontextmanager
    async def open_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[Response]:
        """POST and yield the response once its status is known to be a success."""
        with translate_transport_errors(self.name):
            content = orjson.dumps(body)
            async with self.client.stream("POST", self.url(path), content=content) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise status_error(
                        self.name, response.status_code, response.text, response.headers.get("retry-after")
                    )
                yield response

    async def sse_events(self, response: Response) -> AsyncIterator[tuple[str, str]]:
        """(event, data) pairs of a server-sent event stream (events without data are skipped);
        transport errors translated."""
        with translate_transport_errors(self.name):
            async for event in sse.aiter_events(response.aiter_bytes()):
                if event.data:
                    yield event.event, event.data

    async def ndjson_lines(self, response: Response) -> AsyncIterator[Any]:
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
