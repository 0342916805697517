"""Fixtures for the web tests: one page site and one fake SearXNG per module, a fresh web server per test.

The servers are real HTTP on loopback (port 0); the site and the fake are module-scoped (so
`anyio_backend` is too) because starting uvicorn costs ~0.2 s, and tests stay independent by
building their own web server (its caches start empty).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from servers.kit import Domain, HubCaller, ServerSettings, ToolContext
from servers.web.server import create
from tests.servers.web.fakes import FakeSearxng, searxng_app
from tests.servers.web.site import Site, serve_site
from tests.support.asgi import serve_asgi

SEARCH_NULLS: dict[str, Any] = {
    "categories": None,
    "language": None,
    "time_range": None,
    "safe_search": None,
    "page": None,
}
FETCH_NULLS: dict[str, Any] = {"format": None, "max_chars": None, "offset": None, "render": None, "save": None}
LOOPBACK_ALLOWED = {"allow_hosts": ["127.0.0.1"]}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def site(anyio_backend: str) -> AsyncIterator[Site]:
    async with serve_site() as served:
        yield served


@pytest.fixture(scope="module")
async def searxng(anyio_backend: str) -> AsyncIterator[FakeSearxng]:
    fake = FakeSearxng()
    async with serve_asgi(searxng_app(fake), lifespan="off") as url:
        fake.url = url
        yield fake


def web_config(searxng_url: str | None = None, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"network": LOOPBACK_ALLOWED, **sections}
    if searxng_url is not None:
        config.setdefault("search", {})["searxng"] = {"url": searxng_url, "timeout_s": 2.0}
    return config


@asynccontextmanager
async def web_server(config: dict[str, Any], hub: HubCaller | None = None) -> AsyncIterator[Domain]:
    domain = create(ServerSettings(name="web", config=config, hub=hub))
    async with domain.lifespan_context():
        yield domain


@pytest.fixture
async def web(site: Site, searxng: FakeSearxng) -> AsyncIterator[Domain]:
    """A web server reaching the fake SearXNG, with 127.0.0.1 (the site, not 127.0.0.2) allow-listed."""
    async with web_server(web_config(searxng.url)) as domain:
        yield domain


async def call(domain: Domain, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """The raw CallToolResult of a call made as the hub would make it."""
    return await domain.call(tool, args, ToolContext(tool, request_id="test", caller="tester", hub=domain.hub))


async def ok(domain: Domain, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call(domain, tool, args)
    assert not result["isError"], result["content"][0]["text"]
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def error_of(result: dict[str, Any]) -> dict[str, Any]:
    assert result["isError"], result.get("structuredContent")
    info: dict[str, Any] = result["_meta"]["toolmux/error"]
    return info


async def fetch(domain: Domain, url: str, **args: Any) -> dict[str, Any]:
    return await ok(domain, "fetch", {**FETCH_NULLS, "url": url, **args})


async def fetch_error(domain: Domain, url: str, **args: Any) -> dict[str, Any]:
    return error_of(await call(domain, "fetch", {**FETCH_NULLS, "url": url, **args}))


async def search(domain: Domain, query: str, **args: Any) -> dict[str, Any]:
    return await ok(domain, "search", {**SEARCH_NULLS, "query": query, **args})


async def search_error(domain: Domain, query: str, **args: Any) -> dict[str, Any]:
    return error_of(await call(domain, "search", {**SEARCH_NULLS, "query": query, **args}))
