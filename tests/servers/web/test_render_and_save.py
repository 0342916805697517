"""render: true reads through the real browser server (Chromium), save: true stores into the real storage
server; both reached the way the hub routes them (`ctx.hub`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servers.kit import Domain
from servers.kit.storage_link import get_object, object_bytes, stored_result
from tests.servers.web.conftest import fetch, fetch_error, web_config, web_server
from tests.servers.web.site import ARTICLE, REPORT_PDF, Site
from tests.support.browser_site import require_chromium, running_browser
from tests.support.hub import DomainsHubCaller

pytestmark = pytest.mark.anyio

JS_SENTENCE = "Only JavaScript writes this sentence about the quarterly numbers of the river authority."


@pytest.fixture(scope="module")
async def hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DomainsHubCaller]:
    """The real browser (127.0.0.1 allow-listed) and storage servers behind one hub caller."""
    require_chromium()
    async with running_browser(Path(tmp_path_factory.mktemp("browser"))) as browser:
        assert browser.hub is not None
        storage = browser.hub.domains["storage"]  # type: ignore[attr-defined]
        yield DomainsHubCaller({"browser": browser, "storage": storage})


@pytest.fixture
async def web(hub: DomainsHubCaller, site: Site) -> AsyncIterator[Domain]:
    async with web_server(web_config(), hub=hub) as domain:
        yield domain


async def test_a_page_that_needs_javascript_gets_its_text_with_render(web: Domain, site: Site) -> None:
    plain = await fetch(web, f"{site.url}/js")
    rendered = await fetch(web, f"{site.url}/js", render=True)

    assert JS_SENTENCE not in plain["content"] and plain["rendered"] is False
    assert JS_SENTENCE in rendered["content"] and rendered["rendered"] is True
    assert rendered["title"] == "Quarterly numbers"
    assert rendered["final_url"] == f"{site.url}/js" and rendered["status"] == 200


async def test_render_closes_its_browser_session(web: Domain, hub: DomainsHubCaller, site: Site) -> None:
    await fetch(web, f"{site.url}/article", render=True)

    listing = await hub.call_tool("browser-sessions", {})
    names = [s["session"] for s in listing["structuredContent"]["sessions"]]
    assert not [n for n in names if n.startswith("web-render-")]


async def test_render_refuses_what_the_policy_refuses_before_asking_the_browser(
    web: Domain, hub: DomainsHubCaller, site: Site
) -> None:
    calls = len(hub.calls)
    error = await fetch_error(web, f"{site.secret_url}/latest/meta-data", render=True)

    assert error["code"] == "forbidden" and error["field"] == "url"
    assert hub.calls[calls:] == [] and site.secret_hits == []


async def test_render_without_a_browser_server_is_unavailable_naming_render(site: Site) -> None:
    async with web_server(web_config(), hub=DomainsHubCaller({})) as web:
        error = await fetch_error(web, f"{site.url}/js", render=True)

    assert error["code"] == "unavailable" and error["field"] == "render"


@pytest.mark.parametrize(
    ("path", "body", "media"),
    [("/article", ARTICLE.encode(), "text/html"), ("/report.pdf", REPORT_PDF, "application/pdf")],
)
async def test_save_stores_the_raw_document_and_returns_its_url(
    web: Domain, hub: DomainsHubCaller, site: Site, path: str, body: bytes, media: str
) -> None:
    page = await fetch(web, f"{site.url}{path}", save=True)

    saved = page["saved"]
    assert saved["bucket"] == "default" and saved["key"].startswith("web/documents/")
    assert saved["url"] and saved["size"] == len(body) and saved["content_type"].startswith(media)
    stored = stored_result(await get_object(hub, bucket=saved["bucket"], key=saved["key"]), "read back")
    assert object_bytes(stored, saved["bucket"], saved["key"]) == body
