"""Local stand-ins for the remote ends the web server talks to, speaking their real wire formats.

- `searxng_app`: SearXNG's `/search?format=json` with the response shape of a real instance
  (merged results carrying `engines`, `positions`, `score`, `publishedDate`, `parsed_url`; answers
  as objects; `unresponsive_engines` as [name, reason] pairs), pagination by `pageno`, an empty
  result, a 429 from its rate limiter, and an answer too slow for the server's timeout.
- `brave_app`: Brave Search API's web and news endpoints behind `X-Subscription-Token`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

RATE_LIMITED_QUERY = "too many"
SLOW_QUERY = "slow answer"
EMPTY_QUERY = "zzqx nothing matches"
BRAVE_KEY = "brave-test-key"


def _result(url: str, title: str, content: str, engines: list[str], score: float, **extra: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "template": "default.html",
        "url": url,
        "title": title,
        "content": content,
        "publishedDate": extra.pop("published", None),
        "thumbnail": "",
        "engine": engines[0],
        "parsed_url": [parts.scheme, parts.netloc, parts.path, "", parts.query, ""],
        "img_src": "",
        "priority": "",
        "engines": engines,
        "positions": list(range(1, len(engines) + 1)),
        "score": score,
        "category": extra.pop("category", "general"),
        **extra,
    }


PAGES: dict[int, list[dict[str, Any]]] = {
    1: [
        _result(
            "https://www.sqlite.org/wal.html",
            "Write-Ahead Logging",
            "The default method by which SQLite implements atomic commit and rollback is a rollback journal.",
            ["duckduckgo", "google", "brave"],
            9.0,
        ),
        _result(
            "https://news.example/sqlite-4",
            "SQLite 4 announced",
            "  The SQLite team announced a new major version.  ",
            ["bing news"],
            2.5,
            published="2024-05-14T09:00:00",
            category="news",
        ),
        _result("https://wiki.example/SQLite", "SQLite - Wiki", "SQLite is a database engine.", ["wikipedia"], 1.0),
    ],
    2: [
        _result("https://blog.example/wal-tuning", "Tuning WAL mode", "checkpoint sizes and fsync", ["google"], 0.8),
        _result("https://forum.example/t/42", "WAL on NFS?", "Do not put WAL databases on NFS.", ["qwant"], 0.5),
    ],
}


@dataclass
class FakeSearxng:
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    # A SearXNG whose settings.yml leaves json out of search.formats answers 403 to format=json.
    json_enabled: bool = True
    # Set when the slow query arrives (tests replace it before waiting).
    slow_arrived: anyio.Event = field(default_factory=anyio.Event)


def searxng_app(fake: FakeSearxng) -> Starlette:
    async def search(request: Request) -> Response:
        params = dict(request.query_params)
        fake.requests.append(params)
        if params.get("format") != "json" or not fake.json_enabled:
            return PlainTextResponse("Forbidden", status_code=403)  # what SearXNG does for a disabled format
        query = params.get("q", "")
        if query == RATE_LIMITED_QUERY:
            return PlainTextResponse("Too Many Requests", status_code=429, headers={"retry-after": "30"})
        if query == SLOW_QUERY:
            fake.slow_arrived.set()
            with anyio.move_on_after(10):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
            return JSONResponse({})
        page = int(params.get("pageno", "1"))
        results = [] if query == EMPTY_QUERY else PAGES.get(page, [])
        body = {
            "query": query,
            "number_of_results": 0 if not results else 1_230_000,
            "results": results,
            "answers": [
                {"url": None, "template": "answer/legacy.html", "engine": "duckduckgo", "answer": "SQLite WAL mode"}
            ]
            if results and page == 1
            else [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": ["sqlite wal checkpoint", "sqlite journal mode"] if results else [],
            "unresponsive_engines": [["startpage", "timeout"], ["qwant", "CAPTCHA"]] if page == 1 else [],
        }
        return JSONResponse(body)

    return Starlette(routes=[Route("/search", search)])


@dataclass
class FakeBrave:
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def brave_app(fake: FakeBrave) -> Starlette:
    def authorised(request: Request) -> bool:
        return request.headers.get("x-subscription-token") == BRAVE_KEY

    async def web(request: Request) -> Response:
        fake.requests.append(("web", dict(request.query_params)))
        if not authorised(request):
            return JSONResponse({"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}, 401)
        return JSONResponse(
            {
                "type": "search",
                "query": {
                    "original": request.query_params["q"],
                    "altered": "sqlite wal",
                    "more_results_available": True,
                },
                "web": {
                    "type": "search",
                    "results": [
                        {
                            "title": "Write-Ahead Logging",
                            "url": "https://www.sqlite.org/wal.html",
                            "description": "How <strong>WAL</strong> works.",
                            "page_age": "2024-01-02T00:00:00",
                            "age": "January 2, 2024",
                            "language": "en",
                            "profile": {"name": "SQLite"},
                        }
                    ],
                },
            }
        )

    async def news(request: Request) -> Response:
        fake.requests.append(("news", dict(request.query_params)))
        if not authorised(request):
            return JSONResponse({"type": "ErrorResponse"}, 401)
        article = {"title": "SQLite 4", "url": "https://news.example/sqlite-4", "description": "New major version."}
        return JSONResponse({"type": "news", "results": [{**article, "age": "2 hours ago"}]})

    return Starlette(routes=[Route("/res/v1/web/search", web), Route("/res/v1/news/search", news)])
