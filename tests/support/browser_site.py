"""A small web site for browser tests, served on loopback, and a browser domain pointed at it.

The site is real HTTP (uvicorn on port 0): forms that post, cookies, a JS-rendered element, a
redirect to a forbidden address, a page that loads a subresource from a host the policy refuses.
`browser_domain` builds the real browser server with 127.0.0.1 allow-listed and the real storage
domain behind `ctx.hub`, so screenshots land in storage exactly as through the hub.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from servers.browser.server import create
from servers.kit import Domain, ServerSettings, ToolContext
from tests.support.asgi import serve_asgi
from tests.support.hub import DomainsHubCaller
from tests.support.storage import make_domain

FORM_PAGE = """<!doctype html><html><head><title>Sign up</title></head><body>
<h1>Sign up</h1>
<form action="/submit" method="post">
  <label>Full name <input name="name"></label>
  <label>Email <input name="email" type="email"></label>
  <label>Plan <select name="plan"><option value="free">Free</option><option value="pro">Pro</option></select></label>
  <button type="submit">Create account</button>
</form>
<a href="/article">Read the article</a>
</body></html>"""

LATE_PAGE = """<!doctype html><html><head><title>Late</title></head><body><div id="slot">loading</div>
<script>setTimeout(() => {
  document.getElementById('slot').innerHTML = '<p class="ready">Rendered by JavaScript</p>';
  console.log('rendered late'); console.error('a test error');
}, 400);</script></body></html>"""

DIALOG_PAGE = """<!doctype html><html><head><title>Dialogs</title></head><body>
<button onclick="document.getElementById('answer').textContent = confirm('Proceed?') ? 'yes' : 'no'">Ask</button>
<p id="answer">none</p></body></html>"""

UPLOAD_PAGE = """<!doctype html><html><head><title>Upload</title></head><body>
<input type="file" id="file" onchange="document.getElementById('out').textContent =
  Array.from(this.files).map(f => f.name + ':' + f.size).join(',')">
<p id="out"></p></body></html>"""

TALL_PAGE = """<!doctype html><html><head><title>Tall</title><style>body{margin:0} div{height:3000px;
background:linear-gradient(#fff,#00f)}</style></head><body><div>top</div><p id="end">the end</p></body></html>"""

POPUP_PAGE = """<!doctype html><html><head><title>Opener</title></head><body>
<a href="/form" target="_blank">open form in new tab</a></body></html>"""


@dataclass
class Site:
    url: str  # http://127.0.0.1:PORT
    secret_url: str  # a loopback server the policy must keep the browser away from
    secret_hits: list[str] = field(default_factory=list)
    # Set when a request to /slow arrives (tests replace it with a fresh Event before waiting).
    slow_arrived: anyio.Event = field(default_factory=anyio.Event)


def _article(paragraphs: int = 200) -> str:
    body = "".join(f"<p>Paragraph {i}: the quick brown fox jumps over the lazy dog.</p>" for i in range(paragraphs))
    return f"<!doctype html><html><head><title>Article</title></head><body><h1>Long read</h1>{body}</body></html>"


def site_app(site: Site) -> Starlette:
    async def form(request: Request) -> Response:
        return HTMLResponse(FORM_PAGE)

    async def submit(request: Request) -> Response:
        data = await request.form()
        items = "".join(f"<li>{html.escape(k)}={html.escape(str(v))}</li>" for k, v in data.items())
        return HTMLResponse(f"<!doctype html><title>Welcome</title><h1>Account created</h1><ul>{items}</ul>")

    async def set_cookie(request: Request) -> Response:
        value = request.query_params.get("v", "")
        response = HTMLResponse(f"<title>Cookie</title><p>set {html.escape(value)}</p>")
        response.set_cookie("who", value)
        return response

    async def show_cookie(request: Request) -> Response:
        who = html.escape(request.cookies.get("who", "nobody"))
        return HTMLResponse(f"<title>Cookie</title><p id='who'>cookie={who}</p>")

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def subresource(request: Request) -> Response:
        return HTMLResponse(
            f"<title>Images</title><p>page with a forbidden image</p><img src='{site.secret_url}/pixel.png'>"
        )

    async def slow(request: Request) -> Response:
        site.slow_arrived.set()
        # Answer after `s` seconds, or stop at once when the client goes away (a killed browser).
        with anyio.move_on_after(float(request.query_params.get("s", "3"))):
            while (await request.receive())["type"] != "http.disconnect":
                pass
        return HTMLResponse("<title>Slow</title><p>finally</p>")

    def page(text: str) -> Any:
        async def respond(request: Request) -> Response:
            return HTMLResponse(text)

        return respond

    return Starlette(
        routes=[
            Route("/form", form),
            Route("/submit", submit, methods=["POST"]),
            Route("/article", page(_article())),
            Route("/late", page(LATE_PAGE)),
            Route("/dialog", page(DIALOG_PAGE)),
            Route("/upload", page(UPLOAD_PAGE)),
            Route("/tall", page(TALL_PAGE)),
            Route("/popup", page(POPUP_PAGE)),
            Route("/cookie/set", set_cookie),
            Route("/cookie/show", show_cookie),
            Route("/redirect", redirect),
            Route("/subresource", subresource),
            Route("/slow", slow),
        ]
    )


def secret_app(site: Site) -> Starlette:
    async def anything(request: Request) -> Response:
        site.secret_hits.append(request.url.path)
        return HTMLResponse("<title>Secret</title><p>metadata: s3cr3t</p>")

    return Starlette(routes=[Route("/{path:path}", anything)])


@asynccontextmanager
async def serve_site() -> AsyncIterator[Site]:
    """The test site on 127.0.0.1 and a 'secret' server on 127.0.0.2 (loopback, not allow-listed)."""
    site = Site(url="", secret_url="")
    async with serve_asgi(secret_app(site), host="127.0.0.2", lifespan="off") as secret_url:
        site.secret_url = secret_url
        async with serve_asgi(site_app(site), lifespan="off") as url:
            site.url = url
            yield site


def chromium_missing_reason(executable: str = "/usr/bin/chromium") -> str | None:
    """Why the browser tests cannot run here (None when Chromium is installed)."""
    if shutil.which(executable) is None:
        return f"Chromium is not installed at {executable} (./scripts/setup installs Debian's chromium)"
    return None


def browser_domain(data_dir: Path, config: dict[str, Any] | None = None, *, with_storage: bool = True) -> Domain:
    """The real browser server with 127.0.0.1 allow-listed and, by default, real storage behind ctx.hub."""
    settings: dict[str, Any] = {"navigation": {"allow_hosts": ["127.0.0.1"]}, **(config or {})}
    hub = DomainsHubCaller({"storage": make_domain(data_dir)}) if with_storage else None
    return create(ServerSettings(name="browser", config=settings, data_dir=data_dir, hub=hub))


def require_chromium() -> None:
    """Fail (not skip) the test that needs a real Chromium when the machine has none."""
    reason = chromium_missing_reason()
    if reason is not None:
        pytest.fail(reason)


@asynccontextmanager
async def running_browser(
    data_dir: Path, config: dict[str, Any] | None = None, *, with_storage: bool = True
) -> AsyncIterator[Domain]:
    """`browser_domain` for the block; its browsers (and its storage) closed afterwards."""
    domain = browser_domain(data_dir, config, with_storage=with_storage)
    try:
        yield domain
    finally:
        await domain.service.aclose()
        if with_storage:
            domain.hub.domains["storage"].service.close()  # type: ignore[union-attr]


async def call(domain: Domain, tool: str, args: dict[str, Any], *, caller: str = "tester") -> dict[str, Any]:
    """Call a tool as the hub would (caller = the hub key name); the raw CallToolResult dict."""
    ctx = ToolContext(tool, request_id="test", caller=caller, hub=domain.hub)
    return await domain.call(tool, args, ctx)


async def ok(domain: Domain, tool: str, args: dict[str, Any], *, caller: str = "tester") -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    result = await call(domain, tool, args, caller=caller)
    assert not result["isError"], result["content"][0]["text"]
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def error_of(result: dict[str, Any]) -> dict[str, Any]:
    """The `toolmux/error` info of a call that must fail."""
    assert result["isError"], result.get("structuredContent")
    info: dict[str, Any] = result["_meta"]["toolmux/error"]
    return info
