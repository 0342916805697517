"""The web server inside a real hub: MCP tools `web-search` / `web-fetch`, and the `/web/` HTTP routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from aggregator.facade import FACADE_MODULES
from aggregator.facade import web as web_facade
from aggregator.facade.base import DirectFacadeContext
from aggregator.principal import Principal
from servers.kit import ToolError
from tests.aggregator.hubkit import MASTER_KEY, running_hub
from tests.servers.web.conftest import FETCH_NULLS, SEARCH_NULLS, web_config, web_server
from tests.servers.web.fakes import FakeSearxng
from tests.servers.web.site import ARTICLE_PARAGRAPHS, Site
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


async def test_the_hub_offers_web_search_and_web_fetch_over_mcp_and_http(
    tmp_path: Path, site: Site, searxng: FakeSearxng
) -> None:
    servers = {"web": {"config": web_config(searxng.url)}}
    async with running_hub(tmp_path, servers, builtins=["web", "storage"]) as running:
        async with running.client() as client:
            names = {tool.name for tool in await client.list_tools()}
            found = await client.call("web-search", **{**SEARCH_NULLS, "query": "sqlite wal mode"})
            page = await client.call("web-fetch", **{**FETCH_NULLS, "url": f"{site.url}/article"})
            with pytest.raises(ToolError) as refused:
                await client.call("web-fetch", **{**FETCH_NULLS, "url": f"{site.secret_url}/"})
            # The web server (a child process) stores through the hub it belongs to.
            saved = (await client.call("web-fetch", **{**FETCH_NULLS, "url": f"{site.url}/notes.txt", "save": True}))[
                "saved"
            ]
            stored = await client.call("storage-get_object", bucket=saved["bucket"], key=saved["key"])
        async with httpx2.AsyncClient(base_url=running.url, headers=MASTER, timeout=30) as http:
            searched = await http.post("/web/search", json={"query": "sqlite wal mode", "page": 2})
            fetched = await http.post("/web/fetch", json={"url": f"{site.url}/article", "format": "text"})
            bad = await http.post("/web/fetch", json={"url": "file:///etc/passwd"})

    assert {"web-search", "web-fetch"} <= names
    assert found["results"][0]["url"] == "https://www.sqlite.org/wal.html"
    assert ARTICLE_PARAGRAPHS[0] in page["content"]
    assert refused.value.code == "forbidden" and refused.value.field == "url"
    assert stored["text"] == "first line\nsecond line\n" and saved["url"].startswith(running.url)
    assert searched.status_code == 200, searched.text
    assert searched.json()["results"][0]["url"] == "https://blog.example/wal-tuning"
    assert fetched.status_code == 200 and fetched.json()["format"] == "text"
    assert bad.status_code == 403 and bad.json()["error"]["field"] == "url"
    assert site.secret_hits == []


async def test_a_hub_without_a_search_backend_offers_fetch_only(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, builtins=["web"]) as running, running.client() as client:
        names = {tool.name for tool in await client.list_tools()}

    assert "web-fetch" in names and "web-search" not in names


# --- the /web/ routes on their own (DirectFacadeContext: the facade without a hub) -------------------


@pytest.fixture
async def routes_client(site: Site, searxng: FakeSearxng) -> AsyncIterator[httpx2.AsyncClient]:
    async with web_server(web_config(searxng.url)) as domain:
        keys = {"fetch-only": Principal(name="reader", allowed_tools=("web-fetch",))}
        ctx = DirectFacadeContext({"web": domain}, keys=keys)
        app = Starlette(routes=web_facade.routes(ctx))
        headers = {"authorization": "Bearer test-master"}
        async with serve_asgi(app) as url, httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            yield http


def test_the_hub_mounts_the_web_routes() -> None:
    assert "aggregator.facade.web" in FACADE_MODULES


async def test_a_route_body_needs_only_the_fields_it_sets(routes_client: httpx2.AsyncClient) -> None:
    response = await routes_client.post("/web/search", json={"query": "sqlite wal mode", "time_range": "year"})

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]
    assert response.json()["results"][0]["engines"] == ["duckduckgo", "google", "brave"]


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [
        ("/web/search", {"query": ""}, 400, "query"),
        ("/web/search", {"query": "x", "categories": ["recipes"]}, 400, "categories.0"),
        ("/web/search", {"query": "x", "engine": "google"}, 400, "engine"),
        ("/web/fetch", {"url": "ftp://example.org/"}, 403, "url"),
        ("/web/fetch", {}, 400, "url"),
    ],
)
async def test_bad_route_bodies_get_an_error_naming_the_field(
    routes_client: httpx2.AsyncClient, route: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = await routes_client.post(route, json=body)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["request_id"]


async def test_a_body_that_is_not_a_json_object_is_refused(routes_client: httpx2.AsyncClient) -> None:
    response = await routes_client.post("/web/fetch", content=b"[1, 2]")

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


async def test_a_key_without_web_search_cannot_search_over_http(routes_client: httpx2.AsyncClient) -> None:
    response = await routes_client.post(
        "/web/search", json={"query": "x"}, headers={"authorization": "Bearer fetch-only"}
    )

    assert response.status_code == 404


async def test_the_routes_reach_a_running_domain(routes_client: httpx2.AsyncClient, site: Site) -> None:
    response = await routes_client.post("/web/fetch", json={"url": f"{site.url}/report.pdf"})

    assert response.status_code == 200 and response.json()["kind"] == "pdf"
