"""Pages the web server reads in tests, served over real HTTP on loopback.

A news article wrapped in navigation, ads, a cookie banner and a footer; a PDF built with pypdf;
Latin-1 pages with and without a declared charset; text and JSON; a redirect to anywhere; a 50 MB
body; a body that stalls; a page whose text only JavaScript writes. A second server on 127.0.0.2
stands for an internal service the policy must keep fetches away from (it records every hit).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio
from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import ContentStream, DictionaryObject, NameObject
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.support.asgi import serve_asgi

ARTICLE_PARAGRAPHS = [
    "The city council voted on Tuesday to expand the riverside park by twelve hectares, after a three-year "
    "campaign by residents who argued that the floodplain should stay green.",
    "Engineers told the council that the wetland would absorb most of a hundred-year flood, sparing the "
    "houses on Mill Street that were flooded twice in the last decade.",
    "The expansion will be paid for by a regional fund, and work on the new paths starts in the autumn.",
    "Mayor Alvarez said the decision would protect homes downstream and give the old town its river back.",
]
BOILERPLATE = ("Accept all cookies", "BUY CHEAP WATCHES", "Most read today", "All rights reserved", "Weather")

ARTICLE = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Council expands riverside park | Daily Bugle</title>
<meta name="author" content="Jane Reporter">
<meta property="article:published_time" content="2024-05-14T09:00:00Z">
<meta name="description" content="The park grows by twelve hectares.">
<link rel="canonical" href="https://news.example/2024/05/park"></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
  <button>Accept all cookies</button></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport</a></li>
  <li><a href="/weather">Weather</a></li></ul></nav></header>
<div class="ad advertisement">BUY CHEAP WATCHES now, advertisement</div>
<main><article>
<h1>Council expands riverside park</h1>
<p class="byline">By Jane Reporter</p>
<p>{ARTICLE_PARAGRAPHS[0]}</p>
<p>{ARTICLE_PARAGRAPHS[1]} See the <a href="/flood-map">flood map</a>.</p>
<p>{ARTICLE_PARAGRAPHS[2]}</p>
<p>{ARTICLE_PARAGRAPHS[3]}</p>
</article></main>
<aside class="sidebar"><h3>Most read today</h3><ul><li><a href="/gossip">Celebrity gossip</a></li></ul></aside>
<footer>Copyright 2024 Daily Bugle. All rights reserved. <a href="/privacy">Privacy</a></footer>
</body></html>"""

LATIN1_TEXT = (
    "Le café de la gare est fermé depuis lundi. Déjà les habitués se plaignent : « Où boire un crème à "
    "sept heures ? » demande un garçon de café. Ça coûte cher, hélas, d'aller à Évreux."
)
LATIN1_PAGE = (
    f"<!doctype html><html lang='fr'><head><title>Le café fermé</title></head><body><article><h1>Le café fermé</h1>"
    f"<p>{LATIN1_TEXT}</p><p>{LATIN1_TEXT}</p></article></body></html>"
)

JS_PAGE = """<!doctype html><html><head><title>Dashboard</title></head><body><div id="app">Loading…</div>
<script>setTimeout(() => {
  document.getElementById('app').innerHTML = '<article><h1>Quarterly numbers</h1><p>' +
    'Only JavaScript writes this sentence about the quarterly numbers of the river authority. '.repeat(4) +
    '</p></article>';
}, 300);</script></body></html>"""

HUGE_BYTES = 50 * 1024 * 1024
CHUNK = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n" * 700


def long_article(paragraphs: int = 300) -> str:
    body = "".join(
        f"<p>Paragraph {i}: the river authority measured a level of {i * 7 % 113} centimetres at gauge {i}, "
        f"and the report for section {i} notes the banks held.</p>"
        for i in range(paragraphs)
    )
    head = "<!doctype html><html lang='en'><head><title>Gauge report</title></head>"
    return f"{head}<body><article>{body}</article></body></html>"


def make_pdf(pages: list[list[str]], *, title: str, author: str, link: str | None = None) -> bytes:
    """A real PDF with Helvetica text lines per page, document info, and an optional link annotation."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        stream = ContentStream(None, writer)
        stream.set_data(("BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({ln}) '" for ln in lines) + " ET").encode())
        page.replace_contents(stream)
    if link is not None:
        writer.add_annotation(0, Link(rect=(72, 700, 300, 720), url=link))
    writer.add_metadata({"/Title": title, "/Author": author, "/CreationDate": "D:20240301120000Z"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


REPORT_PDF = make_pdf(
    [["Revenue grew by twelve percent.", "Costs were flat."], ["Page two is about hiring river wardens."]],
    title="Quarterly report",
    author="Ada Lovelace",
    link="https://example.org/annex",
)


@cache
def gzip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """A gzip body that inflates to `size` bytes of text (about 700 times its own size)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"bomb\n" * 200_000
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


@dataclass
class Site:
    url: str = ""  # http://127.0.0.1:PORT
    secret_url: str = ""  # http://127.0.0.2:PORT, loopback but never allow-listed
    secret_hits: list[str] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)


def site_app(site: Site) -> Starlette:
    def page(body: str | bytes, media_type: str = "text/html", **headers: str) -> Any:
        async def respond(request: Request) -> Response:
            site.hits[request.url.path] = site.hits.get(request.url.path, 0) + 1
            # Content-Type as given: Starlette would add "; charset=utf-8" to a text/* media_type.
            return Response(body, headers={"content-type": media_type, **headers})

        return respond

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=int(request.query_params.get("status", 302)))

    async def huge(request: Request) -> Response:
        html = request.url.path.endswith(".html")
        head = b"<!doctype html><html><head><title>Huge</title></head><body>" if html else b""

        async def chunks() -> AsyncIterator[bytes]:
            yield head
            sent = 0
            while sent < HUGE_BYTES:
                sent += len(CHUNK)
                yield CHUNK

        size = str(len(head) + -(-HUGE_BYTES // len(CHUNK)) * len(CHUNK))
        media = "text/html" if html else "text/plain"
        return StreamingResponse(chunks(), headers={"content-type": media, "content-length": size})

    async def stall(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"<!doctype html><html><body><p>the start, then nothing"
            await anyio.sleep(30)  # ended early when the client goes away

        return StreamingResponse(chunks(), media_type="text/html")

    async def gzipped(request: Request) -> Response:
        if request.url.path == "/bomb.txt":
            body, media = gzip_bomb(), "text/plain"
        else:
            packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body, media = packer.compress(b"squeezed text\n" * 1000) + packer.flush(), "text/plain"
        return Response(body, headers={"content-type": media, "content-encoding": "gzip"})

    async def missing(request: Request) -> Response:
        return HTMLResponse("<title>Not found</title><p>no such page</p>", status_code=404)

    async def busy(request: Request) -> Response:
        return PlainTextResponse("slow down", status_code=429, headers={"retry-after": "5"})

    return Starlette(
        routes=[
            Route("/article", page(ARTICLE)),
            Route("/long", page(long_article())),
            Route("/report.pdf", page(REPORT_PDF, "application/pdf")),
            Route("/report-untyped", page(REPORT_PDF, "application/octet-stream")),
            Route("/latin1", page(LATIN1_PAGE.encode("latin-1"), "text/html; charset=iso-8859-1")),
            Route("/latin1-undeclared", page(LATIN1_PAGE.encode("latin-1"), "text/html")),
            Route("/notes.txt", page("first line\nsecond line\n", "text/plain; charset=utf-8")),
            Route("/data.json", page('{"river": "Mill", "levels": [3, 4]}', "application/json")),
            Route("/pixel.png", page(b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")),
            Route("/js", page(JS_PAGE)),
            Route("/redirect", redirect),
            Route("/huge.html", huge),
            Route("/huge.txt", huge),
            Route("/stall", stall),
            Route("/bomb.txt", gzipped),
            Route("/squeezed.txt", gzipped),
            Route("/missing", missing),
            Route("/busy", busy),
        ]
    )


def secret_app(site: Site) -> Starlette:
    async def anything(request: Request) -> Response:
        site.secret_hits.append(request.url.path)
        return JSONResponse({"AccessKeyId": "s3cr3t"})

    return Starlette(routes=[Route("/{path:path}", anything)])


@asynccontextmanager
async def serve_site() -> AsyncIterator[Site]:
    site = Site()
    async with serve_asgi(secret_app(site), host="127.0.0.2", lifespan="off") as secret_url:
        site.secret_url = secret_url
        async with serve_asgi(site_app(site), lifespan="off") as url:
            site.url = url
            yield site
