"""The web server's config section (`servers.web.config` in the hub's YAML).

    servers:
      web:
        config:
          search:
            searxng: {url: "http://searxng:8080"}      # the default backend when set
            brave: {api_key: "${BRAVE_API_KEY}"}       # or Brave's Search API
            cache_ttl_s: 600
          fetch:
            max_bytes: 10485760
            timeout_s: 20
          network:
            allow_hosts: ["intranet.example.com", "10.1.2.0/24"]
          save: {bucket: default, ttl_seconds: 86400}

Search backends are trusted, operator-configured services (a SearXNG on the private network is
normal): the network policy applies to the pages `fetch` reads, not to them. With no backend,
`search` is left out of the tool list and `search_unavailable_reason` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from servers.kit.netpolicy import HostPolicyConfig

BackendName = Literal["searxng", "brave"]
BRAVE_WEB_URL = "https://api.search.brave.com/res/v1/web/search"
BRAVE_NEWS_URL = "https://api.search.brave.com/res/v1/news/search"
DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; toolmux-web/0.1; +https://github.com/toolmux)"


class SearxngConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        pattern=r"^https?://", description="Base URL of the SearXNG instance (its /search must allow json)"
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Longest wait for one search")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. an auth header of a protected instance)"
    )
    engines: list[str] = Field(default_factory=list, description="Restrict searches to these SearXNG engines")


class BraveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, description="Brave Search API subscription token")
    url: str = Field(default=BRAVE_WEB_URL, pattern=r"^https?://", description="Web search endpoint")
    news_url: str = Field(default=BRAVE_NEWS_URL, pattern=r"^https?://", description="News search endpoint")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    count: int = Field(default=10, ge=1, le=20, description="Results per page")


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: BackendName | None = Field(
        default=None, description="Which configured backend answers (default: searxng when set, else brave)"
    )
    searxng: SearxngConfig | None = None
    brave: BraveConfig | None = None
    cache_ttl_s: float = Field(default=600.0, ge=0, description="Repeated searches answer from a cache this long")
    cache_entries: int = Field(default=1024, ge=1, description="Searches kept in the cache")
    max_results: int = Field(default=20, ge=1, le=100, description="Results returned per page at most")
    max_query_chars: int = Field(default=500, ge=1, le=5000)

    @model_validator(mode="after")
    def _chosen_backend_is_configured(self) -> SearchConfig:
        if self.backend is not None and getattr(self, self.backend) is None:
            raise ValueError(f"backend {self.backend!r} is chosen but search.{self.backend} is not configured")
        return self

    def chosen(self) -> BackendName | None:
        if self.backend is not None:
            return self.backend
        if self.searxng is not None:
            return "searxng"
        if self.brave is not None:
            return "brave"
        return None


class FetchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="A response body is cut (not buffered) past this many bytes"
    )
    timeout_s: float = Field(default=20.0, gt=0, le=600, description="Longest a fetch may take, redirects included")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_chars: int = Field(default=20000, ge=100, le=1_000_000, description="Characters returned when not given")
    max_links: int = Field(default=200, ge=0, le=10000, description="Links listed per document at most")
    user_agent: str = DEFAULT_USER_AGENT
    cache_ttl_s: float = Field(
        default=300.0, ge=0, description="Extracted documents are kept this long, so paging with offset is cheap"
    )
    cache_entries: int = Field(default=32, ge=1, le=10000)
    thorough_html_bytes: int = Field(
        default=512 * 1024,
        ge=0,
        description="HTML up to this size gets trafilatura's full extraction (with its fallback extractors); "
        "larger pages its fast mode, which needs about a quarter of the memory",
    )
    extract_concurrency: int = Field(default=2, ge=1, le=64, description="Extractions (HTML, PDF) running at once")


class RenderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: str = Field(default="browser", pattern=r"^[a-z0-9_]+$", description="Name of the browser server in the hub")
    timeout_s: float = Field(default=45.0, gt=0, le=600)
    wait_until: Literal["load", "domcontentloaded", "networkidle"] = Field(
        default="networkidle", description="When the rendered page counts as ready"
    )


class SaveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(default="default", description="Storage bucket raw documents are saved to")
    prefix: str = Field(default="web/documents", description="Key prefix inside the bucket")
    ttl_seconds: int | None = Field(default=86400, gt=0, description="Saved documents expire after this")


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search: SearchConfig = Field(default_factory=SearchConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    network: HostPolicyConfig = Field(default_factory=HostPolicyConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    save: SaveConfig = Field(default_factory=SaveConfig)


NO_BACKEND = (
    "no search backend is configured: set servers.web.config.search.searxng.url (a SearXNG instance with the "
    "json format enabled) or search.brave.api_key"
)


def search_unavailable_reason(section: Mapping[str, Any] | None) -> str | None:
    """Why `web-search` is absent for this config section (None when it is offered).

    For `toolmux doctor`: takes the raw `servers.web.config` mapping, never raises.
    """
    try:
        config = WebConfig.model_validate(dict(section or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        return f"the web server's config is invalid at servers.web.config.{path}: {first['msg']}"
    return NO_BACKEND if config.search.chosen() is None else None
