"""web-search against a fake SearXNG (and a fake Brave) speaking their real JSON shapes."""

from __future__ import annotations

import anyio
import pytest

from servers.kit import Domain
from servers.web.config import search_unavailable_reason
from tests.servers.web.conftest import (
    SEARCH_NULLS,
    call,
    error_of,
    search,
    search_error,
    web_config,
    web_server,
)
from tests.servers.web.fakes import (
    BRAVE_KEY,
    EMPTY_QUERY,
    RATE_LIMITED_QUERY,
    SLOW_QUERY,
    FakeBrave,
    FakeSearxng,
    brave_app,
    searxng_app,
)
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio


async def test_results_from_several_engines_come_back_normalised(web: Domain, searxng: FakeSearxng) -> None:
    answer = await search(web, "sqlite wal mode")

    assert answer["backend"] == "searxng" and answer["page"] == 1 and answer["cached"] is False
    first, news = answer["results"][0], answer["results"][1]
    assert first == {
        "title": "Write-Ahead Logging",
        "url": "https://www.sqlite.org/wal.html",
        "snippet": "The default method by which SQLite implements atomic commit and rollback is a rollback journal.",
        "engines": ["duckduckgo", "google", "brave"],
        "published_date": None,
        "score": 9.0,
        "category": "general",
    }
    assert news["published_date"] == "2024-05-14T09:00:00" and news["snippet"] == (
        "The SQLite team announced a new major version."
    )
    assert answer["answers"] == ["SQLite WAL mode"]
    assert answer["suggestions"] == ["sqlite wal checkpoint", "sqlite journal mode"]
    assert answer["unresponsive_engines"] == [
        {"engine": "startpage", "reason": "timeout"},
        {"engine": "qwant", "reason": "CAPTCHA"},
    ]
    assert answer["number_of_results"] == 1_230_000


async def test_options_reach_searxng_as_its_query_parameters(web: Domain, searxng: FakeSearxng) -> None:
    await search(
        web,
        "river levels",
        categories=["news", "science"],
        language="de-DE",
        time_range="week",
        safe_search="strict",
        page=2,
    )

    sent = searxng.requests[-1]
    assert sent == {
        "q": "river levels",
        "format": "json",
        "pageno": "2",
        "categories": "news,science",
        "language": "de-DE",
        "time_range": "week",
        "safesearch": "2",
    }


async def test_page_two_gives_the_next_results(web: Domain) -> None:
    first = await search(web, "sqlite wal mode")
    second = await search(web, "sqlite wal mode", page=2)

    assert [r["url"] for r in second["results"]] == ["https://blog.example/wal-tuning", "https://forum.example/t/42"]
    assert not {r["url"] for r in first["results"]} & {r["url"] for r in second["results"]}


async def test_a_search_without_results_is_an_empty_list_not_an_error(web: Domain) -> None:
    answer = await search(web, EMPTY_QUERY)

    assert answer["results"] == [] and answer["suggestions"] == [] and answer["number_of_results"] is None


async def test_the_same_search_repeated_is_answered_from_the_cache(web: Domain, searxng: FakeSearxng) -> None:
    before = len(searxng.requests)
    first = await search(web, "cached  Query")
    again = await search(web, "CACHED query")
    other_page = await search(web, "cached query", page=2)

    assert first["cached"] is False and again["cached"] is True and other_page["cached"] is False
    assert again["results"] == first["results"]
    assert len(searxng.requests) - before == 2


async def test_a_rate_limited_backend_gives_a_retryable_error_with_its_retry_after(web: Domain) -> None:
    error = await search_error(web, RATE_LIMITED_QUERY)

    assert error["code"] == "rate_limited" and error["retryable"] is True and error["retry_after"] == 30


async def test_a_backend_slower_than_its_timeout_gives_a_timeout_error(searxng: FakeSearxng) -> None:
    config = web_config()
    config["search"] = {"searxng": {"url": searxng.url, "timeout_s": 0.3}}
    searxng.slow_arrived = anyio.Event()
    async with web_server(config) as web:
        with anyio.fail_after(10):
            error = await search_error(web, SLOW_QUERY)
    assert searxng.slow_arrived.is_set()
    assert error["code"] == "timeout" and error["retryable"] is True


async def test_a_searxng_without_the_json_format_enabled_is_reported_unavailable() -> None:
    fake = FakeSearxng(json_enabled=False)
    async with serve_asgi(searxng_app(fake), lifespan="off") as url, web_server(web_config(url)) as web:
        error = await search_error(web, "sqlite")

    assert error["code"] == "unavailable"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "categories": ["general", "recipes"]}, "categories.1"),
        ({"query": "x", "time_range": "decade"}, "time_range"),
        ({"query": "x", "page": 0}, "page"),
        ({"query": "x", "language": "english please"}, "language"),
        ({"query": "x", "engines": ["google"]}, "engines"),
    ],
)
async def test_bad_search_input_is_refused_naming_the_field(
    web: Domain, arguments: dict[str, object], field: str
) -> None:
    error = error_of(await call(web, "search", {**SEARCH_NULLS, **arguments}))

    assert error["code"] == "invalid_argument" and error["field"] == field


async def test_a_query_longer_than_the_servers_limit_is_refused_naming_the_field(web: Domain) -> None:
    error = await search_error(web, "word " * 200)

    assert error["code"] == "invalid_argument" and error["field"] == "query"


async def test_every_field_is_required_as_openai_strict_schemas_demand(web: Domain) -> None:
    for tool in ("search", "fetch"):
        contract = web.contracts[tool].input_schema
        assert contract["additionalProperties"] is False
        assert sorted(contract["required"]) == sorted(contract["properties"])
        # Keywords OpenAI's strict mode refuses.
        assert not _keys(contract) & {"default", "minLength", "maxLength", "uniqueItems", "format"}
    error = error_of(await call(web, "search", {"query": "x"}))
    assert error["code"] == "invalid_argument" and error["field"] in SEARCH_NULLS


async def test_without_a_backend_search_is_absent_and_the_reason_is_given() -> None:
    async with web_server(web_config()) as web:
        assert [t["name"] for t in web.list_tools()] == ["fetch"]
        error = error_of(await call(web, "search", {**SEARCH_NULLS, "query": "x"}))
    assert error["code"] == "not_found"
    reason = search_unavailable_reason({})
    assert reason is not None and "search.searxng.url" in reason
    assert search_unavailable_reason({"search": {"searxng": {"url": "http://searxng:8080"}}}) is None
    assert "servers.web.config.search" in (search_unavailable_reason({"search": {"backend": "brave"}}) or "")


async def test_brave_results_come_back_in_the_same_shape() -> None:
    fake = FakeBrave()
    async with serve_asgi(brave_app(fake), lifespan="off") as url:
        brave = {"api_key": BRAVE_KEY, "url": f"{url}/res/v1/web/search", "news_url": f"{url}/res/v1/news/search"}
        async with web_server({"search": {"brave": brave}}) as web:
            answer = await search(web, "sqlite wal", time_range="month", language="en-GB", page=3)
            news = await search(web, "sqlite", categories=["news"])
            refused = await search_error(web, "sqlite", categories=["images"])
        async with web_server({"search": {"brave": {**brave, "api_key": "wrong"}}}) as web:
            unauthorised = await search_error(web, "sqlite")

    assert answer["backend"] == "brave"
    assert answer["results"] == [
        {
            "title": "Write-Ahead Logging",
            "url": "https://www.sqlite.org/wal.html",
            "snippet": "How <strong>WAL</strong> works.",
            "engines": ["brave"],
            "published_date": "2024-01-02T00:00:00",
            "score": None,
            "category": "general",
        }
    ]
    assert answer["corrections"] == ["sqlite wal"]
    assert fake.requests[0] == (
        "web",
        {"q": "sqlite wal", "count": "10", "offset": "2", "search_lang": "en", "freshness": "pm"},
    )
    assert news["results"][0]["category"] == "news" and fake.requests[1][0] == "news"
    assert refused["code"] == "invalid_argument" and refused["field"] == "categories"
    assert unauthorised["code"] == "unavailable"


def _keys(schema: object) -> set[str]:
    """Every keyword used anywhere in a schema (property names of `properties` excluded)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key != "properties":
                found.add(key)
                found |= _keys(value)
            else:
                for sub in value.values():
                    found |= _keys(sub)
    elif isinstance(schema, list):
        for item in schema:
            found |= _keys(item)
    return found
