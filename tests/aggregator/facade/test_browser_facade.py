"""The browser HTTP API over real HTTP on loopback: actions, screenshots as PNG bytes, errors, keys."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from PIL import Image
from starlette.applications import Starlette

from aggregator.facade.base import DirectFacadeContext
from aggregator.facade.browser import routes
from aggregator.principal import Principal
from tests.support.asgi import serve_asgi
from tests.support.browser_site import Site, require_chromium, running_browser, serve_site

pytestmark = pytest.mark.anyio

KEY = "test-master"
OTHER_KEY = "other-key"


@dataclass
class Api:
    client: httpx2.AsyncClient
    site: Site
    url: str


@pytest.fixture(scope="module")
async def api(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    # One browser server for the module (the facade conftest's anyio_backend is module-scoped).
    require_chromium()
    async with running_browser(Path(tmp_path_factory.mktemp("browser-facade"))) as browser:
        storage = browser.hub.domains["storage"]  # type: ignore[union-attr]
        other = Principal(name="other", allowed_tools=("browser-*", "storage-get_object"))
        ctx = DirectFacadeContext({"browser": browser, "storage": storage}, master_key=KEY, keys={OTHER_KEY: other})
        async with serve_site() as site, serve_asgi(Starlette(routes=routes(ctx))) as url:
            headers = {"authorization": f"Bearer {KEY}"}
            async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
                yield Api(client, site, url)


async def act(api: Api, action: str, **arguments: object) -> httpx2.Response:
    return await api.client.post("/browser/", json={"action": action, **arguments})


async def test_actions_drive_a_session_over_http(api: Api) -> None:
    opened = await act(api, "goto", session="h1", url=f"{api.site.url}/form")
    assert opened.status_code == 200, opened.text
    assert opened.json()["title"] == "Sign up"

    filled = await act(api, "fill", session="h1", selector="input[name=name]", value="Hopper", submit=True)
    assert filled.status_code == 200 and filled.json()["title"] == "Welcome"
    text = await act(api, "get_text", session="h1")
    assert "name=Hopper" in text.json()["text"]
    script = await act(api, "run_script", session="h1", steps=[{"action": "snapshot", "output_id": "page"}])
    assert 'heading "Account created"' in script.json()["outputs"]["page"]["snapshot"]
    assert (await act(api, "close_session", session="h1")).json() == {"session": "h1", "closed": True}


async def test_screenshot_route_returns_the_png_bytes(api: Api) -> None:
    await act(api, "goto", session="h2", url=f"{api.site.url}/tall")
    response = await api.client.get("/browser/screenshot", params={"session": "h2", "width": 640})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert ".png" in response.headers["x-screenshot-url"]  # where the tool stored it
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG" and image.size == (640, 360)


async def test_sessions_belong_to_the_api_key(api: Api) -> None:
    await act(api, "goto", session="mine", url=f"{api.site.url}/cookie/set?v=master")
    other = await api.client.post(
        "/browser/",
        json={"action": "get_text", "session": "mine"},
        headers={"authorization": f"Bearer {OTHER_KEY}"},
    )
    assert other.status_code == 200 and other.json()["url"] == "about:blank"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"action": "teleport"}, 404, "not_found", "action"),
        ({"url": "http://example.com/"}, 400, "invalid_argument", "action"),
        ({"action": "goto"}, 400, "invalid_argument", "url"),
        ({"action": "goto", "url": "http://169.254.169.254/"}, 403, "forbidden", "url"),
        ({"action": "click", "selector": "#nothing", "timeout": 0.2}, 504, "timeout", "selector"),
    ],
)
async def test_bad_requests_get_clear_json_errors(api: Api, body: dict, status: int, code: str, field: str) -> None:
    response = await api.client.post("/browser/", json={"session": "errors", **body})

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error.get("field")) == (code, field)
    assert error["request_id"]


async def test_requests_without_a_valid_key_are_refused(api: Api) -> None:
    async with httpx2.AsyncClient(base_url=api.url, timeout=10) as anonymous:
        missing = await anonymous.post("/browser/", json={"action": "sessions"})
        wrong = await anonymous.get("/browser/screenshot", headers={"authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401


async def test_bodies_that_are_not_json_objects_are_refused(api: Api) -> None:
    not_json = await api.client.post("/browser/", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_request"
    listing = await api.client.post("/browser/", json=["goto"])
    assert listing.status_code == 400
    unknown = await api.client.get("/browser/screenshot", params={"zoom": "2"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "zoom"
