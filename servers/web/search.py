"""Search backends behind one interface: SearXNG's JSON API (the default) and Brave's Search API.

A backend takes a `SearchQuery` and returns `SearchPage`: results normalised to title, url,
snippet, engines, published date and score, whatever the backend's own shape. HTTP failures
become ToolErrors with the code a caller can act on: 429 → rate_limited (retryable, with the
backend's Retry-After), a timeout → timeout, a refused JSON format or a bad key → unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2

from servers.kit import ToolError
from servers.web.config import BraveConfig, SearxngConfig

SAFE_SEARCH_LEVELS = {"off": 0, "moderate": 1, "strict": 2}
BRAVE_FRESHNESS = {"day": "pd", "week": "pw", "month": "pm", "year": "py"}
BRAVE_CATEGORIES = ("general", "news")


@dataclass(frozen=True)
class SearchQuery:
    query: str
    categories: tuple[str, ...] = ()
    language: str | None = None
    time_range: str | None = None
    safe_search: str | None = None
    page: int = 1

    def cache_key(self, backend: str) -> tuple[Any, ...]:
        return (backend, " ".join(self.query.lower().split()), *self._rest())

    def _rest(self) -> tuple[Any, ...]:
        return (tuple(sorted(self.categories)), self.language, self.time_range, self.safe_search, self.page)


@dataclass
class SearchPage:
    results: list[dict[str, Any]]
    suggestions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    unresponsive_engines: list[dict[str, str]] = field(default_factory=list)
    number_of_results: int | None = None


class SearchBackend(Protocol):
    name: str

    async def search(self, query: SearchQuery) -> SearchPage: ...

    async def aclose(self) -> None: ...


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _strings(values: Any) -> list[str]:
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _retry_after(response: httpx2.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _raise_for_status(backend: str, response: httpx2.Response, *, refused_hint: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        raise ToolError(
            f"the {backend} search backend is rate limiting this server (429); try again later",
            code="rate_limited",
            retryable=True,
            retry_after=_retry_after(response),
        )
    if status in (401, 403):
        raise ToolError(
            f"the {backend} search backend refused the request ({status}): {refused_hint}", code="unavailable"
        )
    raise ToolError(f"the {backend} search backend answered {status}", code="upstream_error", retryable=status >= 500)


async def _get_json(
    client: httpx2.AsyncClient, backend: str, url: str, params: dict[str, Any], *, refused_hint: str
) -> dict[str, Any]:
    try:
        response = await client.get(url, params=params)
    except httpx2.TimeoutException:
        raise ToolError(
            f"the {backend} search backend did not answer in time", code="timeout", retryable=True
        ) from None
    except httpx2.HTTPError as exc:
        raise ToolError(
            f"cannot reach the {backend} search backend: {exc}", code="unavailable", retryable=True
        ) from None
    _raise_for_status(backend, response, refused_hint=refused_hint)
    try:
        data = response.json()
    except ValueError:
        raise ToolError(
            f"the {backend} search backend answered with something other than JSON", code="upstream_error"
        ) from None
    if not isinstance(data, dict):
        raise ToolError(f"the {backend} search backend answered with an unexpected shape", code="upstream_error")
    return data


class SearxngBackend:
    """SearXNG's `/search?format=json` (the instance's settings.yml must list json in search.formats)."""

    name = "searxng"

    def __init__(self, config: SearxngConfig) -> None:
        self.config = config
        self.client = httpx2.AsyncClient(
            timeout=config.timeout_s, headers={"accept": "application/json", **config.headers}, trust_env=False
        )
        self.endpoint = config.url.rstrip("/") + "/search"

    async def search(self, query: SearchQuery) -> SearchPage:
        params: dict[str, Any] = {"q": query.query, "format": "json", "pageno": query.page}
        if query.categories:
            params["categories"] = ",".join(query.categories)
        if query.language:
            params["language"] = query.language
        if query.time_range:
            params["time_range"] = query.time_range
        if query.safe_search:
            params["safesearch"] = SAFE_SEARCH_LEVELS[query.safe_search]
        if self.config.engines:
            params["engines"] = ",".join(self.config.engines)
        data = await _get_json(
            self.client,
            self.name,
            self.endpoint,
            params,
            refused_hint="enable the json format (search.formats in the instance's settings.yml)",
        )
        return SearchPage(
            results=[self._result(r) for r in data.get("results") or [] if isinstance(r, dict) and r.get("url")],
            suggestions=_strings(data.get("suggestions")),
            answers=[a for a in (self._answer(x) for x in data.get("answers") or []) if a],
            corrections=_strings(data.get("corrections")),
            unresponsive_engines=[
                {"engine": str(e[0]), "reason": str(e[1]) if len(e) > 1 else ""}
                for e in data.get("unresponsive_engines") or []
                if isinstance(e, list) and e
            ],
            # SearXNG sends 0 when no engine gave an estimate.
            number_of_results=int(count) if (count := _score(data.get("number_of_results"))) else None,
        )

    @staticmethod
    def _result(raw: dict[str, Any]) -> dict[str, Any]:
        engines = _strings(raw.get("engines")) or ([raw["engine"]] if isinstance(raw.get("engine"), str) else [])
        published = raw.get("publishedDate") or raw.get("pubdate")
        return {
            "title": _text(raw.get("title")),
            "url": str(raw["url"]),
            "snippet": _text(raw.get("content")),
            "engines": engines,
            "published_date": published if isinstance(published, str) and published else None,
            "score": _score(raw.get("score")),
            "category": raw.get("category") if isinstance(raw.get("category"), str) else None,
        }

    @staticmethod
    def _answer(raw: Any) -> str:
        # Newer SearXNG sends answers as objects ({"answer": ..., "url": ...}), older ones as strings.
        if isinstance(raw, dict):
            return _text(raw.get("answer"))
        return _text(raw)

    async def aclose(self) -> None:
        await self.client.aclose()


class BraveBackend:
    """Brave's Search API (web and news endpoints), with an `X-Subscription-Token`."""

    name = "brave"

    def __init__(self, config: BraveConfig) -> None:
        self.config = config
        headers = {"accept": "application/json", "x-subscription-token": config.api_key}
        self.client = httpx2.AsyncClient(timeout=config.timeout_s, headers=headers, trust_env=False)

    async def search(self, query: SearchQuery) -> SearchPage:
        unsupported = [c for c in query.categories if c not in BRAVE_CATEGORIES]
        if unsupported or len(query.categories) > 1:
            raise ToolError(
                f"the brave backend searches one of {', '.join(BRAVE_CATEGORIES)} per call, "
                f"not {', '.join(query.categories)}",
                field="categories",
            )
        news = query.categories == ("news",)
        params: dict[str, Any] = {"q": query.query, "count": self.config.count, "offset": query.page - 1}
        if query.language and query.language not in ("all", "auto"):
            params["search_lang"] = query.language.split("-", 1)[0]
        if query.time_range:
            params["freshness"] = BRAVE_FRESHNESS[query.time_range]
        if query.safe_search:
            params["safesearch"] = query.safe_search
        url = self.config.news_url if news else self.config.url
        data = await _get_json(self.client, self.name, url, params, refused_hint="check search.brave.api_key")
        raw_results = data.get("results") if news else (data.get("web") or {}).get("results")
        category = "news" if news else "general"
        results = [self._result(r, category) for r in raw_results or [] if isinstance(r, dict) and r.get("url")]
        altered = (data.get("query") or {}).get("altered")
        return SearchPage(results=results, corrections=[altered] if isinstance(altered, str) and altered else [])

    @staticmethod
    def _result(raw: dict[str, Any], category: str) -> dict[str, Any]:
        published = raw.get("page_age") or raw.get("age")
        return {
            "title": _text(raw.get("title")),
            "url": str(raw["url"]),
            "snippet": _text(raw.get("description")),
            "engines": ["brave"],
            "published_date": published if isinstance(published, str) and published else None,
            "score": None,
            "category": category,
        }

    async def aclose(self) -> None:
        await self.client.aclose()


def build_backend(name: str, searxng: SearxngConfig | None, brave: BraveConfig | None) -> SearchBackend:
    if name == "searxng" and searxng is not None:
        return SearxngBackend(searxng)
    if name == "brave" and brave is not None:
        return BraveBackend(brave)
    raise ValueError(f"search backend {name!r} is not configured")
