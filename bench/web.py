"""Web server figures: fetch + extract of a 200 KB article, and search round trips through the hub.

    .venv/bin/python bench/web.py [-n 40] [--search-n 200] [--modes inprocess,stdio]

Method (printed with the results):
- The "internet" is a separate process (`bench/web.py --serve`): a 200 KB news article (inline CSS
  and script, a navigation bar with 100 links, ~120 paragraphs, sidebar, footer) and a fake SearXNG
  answering /search?format=json in SearXNG's real shape (tests/servers/web/fakes.py), both on loopback.
  Their CPU stays out of every figure.
- (a) The web server's own work, in this process: `Domain.call("fetch")` end to end (HTTP GET over
  loopback through the policy client, charset decoding, trafilatura extraction in a worker thread,
  paging, contract checks) with the document cache off, so every call fetches and extracts; then the
  GET and the extraction alone. Wall time p50/p95 and CPU per call (this process, all threads).
- (b) Through a hub running as its own process (`python -m aggregator serve`), once per run mode of
  the web server (in-process, or a stdio child): `web-fetch` of the same article and `web-search`
  (search cache off, so each call reaches the fake SearXNG; then with the cache on). The client is
  the lean JSON-RPC peer of bench/lean_peers.py (stateless 2026-07-28 era, one keep-alive
  connection). CPU per call is the hub process's user+system time (from /proc via psutil, before
  and after the timed loop) divided by the calls; for a stdio child its CPU is given separately.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lean_peers import BenchError, HttpPeer, wait_for_tools

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MASTER_KEY = "bench-master-key-0123456789"
WORDS = [
    *("river", "council", "flood", "park", "engineers", "wetland", "budget", "houses", "street", "regional"),
    *("fund", "autumn", "mayor", "town", "bridge", "gauge", "level", "report", "residents", "campaign"),
    *("decade", "meadow", "path", "bank", "water", "season", "survey"),
]
FETCH_NULLS = {"format": None, "max_chars": None, "offset": None, "render": None, "save": None}
SEARCH_NULLS = {"categories": None, "language": None, "time_range": None, "safe_search": None, "page": None}


def article_html(target_bytes: int = 200 * 1024) -> str:
    """A news page of about `target_bytes`: boilerplate around an article of varied paragraphs."""
    style = "<style>" + "".join(f".c{i}{{margin:{i % 7}px;color:#{i:06x}}}" for i in range(700)) + "</style>"
    script = "<script>window.__state=" + json.dumps({"items": [{"id": i, "n": WORDS[i % 25]} for i in range(700)]})
    nav = "<nav><ul>" + "".join(f"<li><a href='/section/{i}'>Section {i}</a></li>" for i in range(100)) + "</ul></nav>"
    head = f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>River report</title>{style}"
    head += "<meta name='author' content='Jane Reporter'><link rel='canonical' href='https://news.example/river'>"
    banner = "<div class='cookie-consent'>We use cookies. <button>Accept all cookies</button></div>"
    tail = "<aside><h3>Most read</h3></aside><footer>All rights reserved.</footer></body></html>"
    paragraphs: list[str] = []
    size = len(head) + len(script) + len(nav) + len(banner) + len(tail) + 200
    i = 0
    while size < target_bytes:
        words = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(60))
        paragraph = f"<p>Paragraph {i}: {words}, said a spokesperson on day {i}.</p>\n"
        paragraphs.append(paragraph)
        size += len(paragraph)
        i += 1
    article = "<main><article><h1>River report</h1>" + "".join(paragraphs) + "</article></main>"
    return f"{head}</head><body>{banner}{nav}{article}{script};</script>{tail}"


# --- the "internet": a separate process --------------------------------------------------------------------


def serve() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    from tests.servers.web.fakes import FakeSearxng, searxng_app
    from tests.support.asgi import serve_asgi

    body = article_html().encode()

    async def article(request: Request) -> Response:
        return Response(body, headers={"content-type": "text/html; charset=utf-8"})

    app = Starlette(routes=[Route("/article", article), Mount("/searxng", searxng_app(FakeSearxng()))])

    async def main() -> None:
        async with serve_asgi(app, lifespan="off") as url:
            print(f"SITE {url} {len(body)}", flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


@contextlib.contextmanager
def internet() -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(
        [PYTHON, str(Path(__file__).resolve()), "--serve"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"SITE (\S+) (\d+)", line)
        if not match:
            raise BenchError(f"the page server did not start: {line!r}")
        yield match.group(1), int(match.group(2))
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- helpers --------------------------------------------------------------------------------------------------


def row(name: str, samples_ms: list[float], cpu_ms: float | None = None, extra: str = "") -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    cpu = f"   CPU {cpu_ms:7.2f} ms/call" if cpu_ms is not None else ""
    print(f"  {name:<50} p50 {statistics.median(ordered):8.2f} ms   p95 {p95:8.2f} ms{cpu}{extra}")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def web_config(site: str, *, search_cache: bool) -> dict[str, Any]:
    return {
        "network": {"allow_hosts": ["127.0.0.1"]},
        "search": {"searxng": {"url": f"{site}/searxng"}, "cache_ttl_s": 600 if search_cache else 0},
        "fetch": {"cache_ttl_s": 0},
    }


# --- (a) the server's own work ---------------------------------------------------------------------------------


async def direct(site: str, n: int) -> None:
    from servers.kit import ServerSettings, ToolContext
    from servers.web.charset import decode
    from servers.web.extract import extract_html
    from servers.web.server import create

    domain = create(ServerSettings(name="web", config=web_config(site, search_cache=False)))
    service = domain.service
    url = f"{site}/article"

    async def call() -> dict[str, Any]:
        result = await domain.call("fetch", {**FETCH_NULLS, "url": url}, ToolContext("fetch", "bench"))
        if result["isError"]:
            raise BenchError(result["content"][0]["text"])
        return dict(result["structuredContent"])

    async with domain.lifespan_context():
        page = await call()  # warm: imports, connection pool
        print(
            f"  article: {page['bytes'] / 1024:.0f} KB HTML -> {page['total_chars'] / 1024:.0f} K characters of "
            f"Markdown, title {page['title']!r}, {len(page['links'])} links kept"
        )
        wall, cpu0 = [], time.process_time()
        for _ in range(n):
            start = time.perf_counter()
            await call()
            wall.append((time.perf_counter() - start) * 1000)
        row("web fetch tool (GET + extract), in this process", wall, (time.process_time() - cpu0) * 1000 / n)

        wall, cpu0 = [], time.process_time()
        raw = None
        for _ in range(n):
            start = time.perf_counter()
            raw = await service.client.get(url, max_bytes=10 * 1024 * 1024)
            wall.append((time.perf_counter() - start) * 1000)
        row("  of which the GET through the policy client", wall, (time.process_time() - cpu0) * 1000 / n)

        assert raw is not None
        wall, cpu0 = [], time.process_time()
        for _ in range(n):
            start = time.perf_counter()
            text = decode(raw.body, declared=raw.charset, html=True).text
            extract_html(text, url, markdown=True, max_links=200)
            wall.append((time.perf_counter() - start) * 1000)
        row("  of which decode + trafilatura extraction", wall, (time.process_time() - cpu0) * 1000 / n)


# --- (b) through a hub process -----------------------------------------------------------------------------------


@contextlib.contextmanager
def hub_process(site: str, mode: str, workdir: Path, *, search_cache: bool) -> Iterator[tuple[str, psutil.Process]]:
    config = {
        "builtins": ["web"],
        "server": {"data_dir": str(workdir / f"data-{mode}"), "startup_timeout": 60},
        "auth": {"master_key": MASTER_KEY},
        "mcpServers": {"web": {"mode": mode, "config": web_config(site, search_cache=search_cache)}},
    }
    config_path = workdir / f"hub-{mode}-{search_cache}.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / f"hub-{mode}-{search_cache}.log"
    command = [PYTHON, "-m", "aggregator", "serve", "--config", str(config_path), "--port", "0"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None:
            match = re.search(r"MCP at (http://\S+/mcp/)", log_path.read_text(errors="replace"))
            if match:
                url = match.group(1)
            elif process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the hub did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.05)
        wait_for_tools(url, MASTER_KEY, {"web-fetch", "web-search"}, deadline)
        yield url, psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def web_child(hub: psutil.Process) -> psutil.Process | None:
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "web" in child.cmdline() and "server" in child.cmdline():
                return child
    return None


def timed_calls(
    peer: HttpPeer, hub: psutil.Process, n: int, tool: str, arguments: Callable[[int], dict[str, Any]]
) -> tuple[list[float], float, float | None]:
    child = web_child(hub)
    for i in range(3):
        check(peer.request("tools/call", {"name": tool, "arguments": arguments(-1 - i)}, modern=True, name=tool))
    hub0 = cpu_seconds(hub)
    child0 = cpu_seconds(child) if child else 0.0
    wall = []
    for i in range(n):
        start = time.perf_counter()
        check(peer.request("tools/call", {"name": tool, "arguments": arguments(i)}, modern=True, name=tool))
        wall.append((time.perf_counter() - start) * 1000)
    hub_ms = (cpu_seconds(hub) - hub0) * 1000 / n
    child_ms = (cpu_seconds(child) - child0) * 1000 / n if child else None
    return wall, hub_ms, child_ms


def check(result: dict[str, Any]) -> None:
    if result.get("isError"):
        raise BenchError(f"tool call failed: {result.get('content')}")


def through_hub(site: str, mode: str, n: int, search_n: int, workdir: Path) -> None:
    url = f"{site}/article"
    with hub_process(site, mode, workdir, search_cache=False) as (mcp_url, hub):
        idle0 = cpu_seconds(hub)
        time.sleep(1.0)
        idle = (cpu_seconds(hub) - idle0) * 1000
        peer = HttpPeer(mcp_url, MASTER_KEY)
        try:
            wall, hub_ms, child_ms = timed_calls(peer, hub, n, "web-fetch", lambda i: {**FETCH_NULLS, "url": url})
            extra = f"   child CPU {child_ms:7.2f} ms/call" if child_ms is not None else ""
            row(f"web-fetch 200 KB article, web {mode}", wall, hub_ms, extra)
            wall, hub_ms, child_ms = timed_calls(
                peer, hub, search_n, "web-search", lambda i: {**SEARCH_NULLS, "query": f"river levels {i}"}
            )
            extra = f"   child CPU {child_ms:7.2f} ms/call" if child_ms is not None else ""
            row(f"web-search round trip to SearXNG, web {mode}", wall, hub_ms, extra)
        finally:
            peer.close()
        print(f"    (hub idle CPU: {idle:.1f} ms per second)")
    with hub_process(site, mode, workdir, search_cache=True) as (mcp_url, hub):
        peer = HttpPeer(mcp_url, MASTER_KEY)
        try:
            wall, hub_ms, child_ms = timed_calls(
                peer, hub, search_n, "web-search", lambda i: {**SEARCH_NULLS, "query": "river levels"}
            )
            extra = f"   child CPU {child_ms:7.2f} ms/call" if child_ms is not None else ""
            row(f"web-search answered from the cache, web {mode}", wall, hub_ms, extra)
        finally:
            peer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="fetch calls per case")
    parser.add_argument("--search-n", type=int, default=200, help="search calls per case")
    parser.add_argument("--modes", default="inprocess,stdio")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    with internet() as (site, size), tempfile.TemporaryDirectory() as tmp:
        print(f"web server bench: {size / 1024:.0f} KB article and a fake SearXNG in their own process on loopback")
        print(f"(a) the web server's own work, {args.n} calls each:")
        anyio.run(direct, site, args.n)
        print(
            f"(b) through a hub process over streamable HTTP (2026-07-28), {args.n} fetches, {args.search_n} searches:"
        )
        for mode in args.modes.split(","):
            through_hub(site, mode, args.n, args.search_n, Path(tmp))


if __name__ == "__main__":
    main()
