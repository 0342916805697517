"""The `models` server's config section: backends, aliases (virtual models), routing, limits.

    servers:
      models:
        config:
          backends:
            local: {type: ollama, base_url: "http://127.0.0.1:11434"}
            openai: {type: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
          aliases:
            main:
              deployments:
                - {backend: local, model: "qwen3:8b", context_window: 32768}
                - {backend: openai, model: "gpt-4.1-mini", prices: {input: 0.4, output: 1.6}}

Secrets arrive already interpolated by the hub (`${ENV}`); they are never logged or echoed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BackendType = Literal["openai", "ollama", "anthropic"]
Strategy = Literal["ordered", "weighted", "least-busy", "latency"]
FailoverMode = Literal["backup", "rotational", "duplicate", "none"]
PatternKind = Literal["qwen_xml", "hermes_json", "fenced_json", "bracket", "regex"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendConfig(_Strict):
    """One upstream server speaking one wire protocol."""

    type: BackendType
    base_url: str
    api_key: str | None = Field(default=None, repr=False)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    connect_timeout: float = Field(default=5.0, gt=0)
    # Longest wait for the next byte (a whole non-stream answer, or the next streamed chunk).
    read_timeout: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    anthropic_version: str = "2023-06-01"
    # Down optional backends never turn the server unhealthy; a required one does.
    required: bool = False
    # Ollama only: try /api/embed first, fall back to the legacy /api/embeddings.
    ollama_legacy_embeddings: bool = False

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class Prices(_Strict):
    """US dollars per one million tokens."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached_price = self.input if self.cached_input is None else self.cached_input
        uncached = max(prompt_tokens - cached_tokens, 0)
        return (uncached * self.input + cached_tokens * cached_price + completion_tokens * self.output) / 1_000_000


class DeploymentConfig(_Strict):
    """A real model on a backend that an alias can route to."""

    backend: str
    model: str
    name: str | None = None  # stable id in usage and health; default "<backend>/<model>"
    weight: float = Field(default=1.0, gt=0)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    prices: Prices = Field(default_factory=Prices)
    # Turn tool calls written as text into `tool_calls` (None: the global `tool_call_parsing.enabled`).
    parse_tool_calls: bool | None = None

    @property
    def id(self) -> str:
        return self.name or f"{self.backend}/{self.model}"


class CacheConfig(_Strict):
    enabled: bool = False
    ttl: float = Field(default=300.0, gt=0)
    max_entries: int = Field(default=1000, ge=1)


class AliasConfig(_Strict):
    """A virtual model: the name clients use, mapped to one or more deployments."""

    deployments: list[DeploymentConfig] = Field(min_length=1)
    description: str | None = None
    strategy: Strategy | None = None  # None: routing.strategy
    failover: FailoverMode | None = None  # None: routing.failover
    # Other aliases tried (in order) after this alias's own deployments fail.
    fallbacks: list[str] = Field(default_factory=list)
    # Alias used when the prompt is longer than every deployment's context window.
    context_fallback: str | None = None
    cache: CacheConfig = Field(default_factory=CacheConfig)
    # Unknown request fields (e.g. optillm_approach) go to the backend; None: the global setting.
    passthrough: bool | None = None
    embedding: bool = False  # listed as an embedding model (informational)


class RoutingConfig(_Strict):
    strategy: Strategy = "ordered"
    failover: FailoverMode = "backup"
    max_attempts: int = Field(default=6, ge=1)  # upper bound on upstream requests per call
    # Smoothing of the latency / TTFT averages the `latency` strategy ranks by.
    latency_smoothing: float = Field(default=0.3, gt=0, le=1)


class RetryConfig(_Strict):
    """Retries of the same deployment, only for 408/429/5xx, timeouts and connection errors."""

    max_retries: int = Field(default=1, ge=0)
    backoff_initial: float = Field(default=0.2, ge=0)
    backoff_max: float = Field(default=5.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0)  # a longer Retry-After moves on instead


class CircuitBreakerConfig(_Strict):
    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1)
    window: float = Field(default=60.0, gt=0)
    cooldown: float = Field(default=30.0, gt=0)


class UsageConfig(_Strict):
    enabled: bool = True
    path: str | None = None  # default: <data_dir>/models/usage.sqlite3
    # Privacy mode is the default: metadata only. True stores prompts and answers too.
    log_prompts: bool = False
    # 0: every row is written before its call answers (no row lost if the process is killed; one more
    # write per call). Otherwise rows are written in batches at most this many seconds apart.
    flush_interval: float = Field(default=0.5, ge=0)


class BudgetConfig(_Strict):
    """A spending cap for one hub key (by name)."""

    max_cost: float = Field(ge=0)
    period: Literal["day", "month", "total"] = "month"


class HealthConfig(_Strict):
    enabled: bool = True
    interval: float = Field(default=30.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)


class ToolCallPattern(_Strict):
    kind: PatternKind
    # kind=regex only: a pattern with named groups `name` and `arguments` (a JSON object), and
    # the literal text such a call starts with (lets streams pass other text through unbuffered).
    regex: str | None = None
    start: str | None = None

    @model_validator(mode="after")
    def _regex_given(self) -> ToolCallPattern:
        if self.kind == "regex" and not self.regex:
            raise ValueError("kind 'regex' needs a 'regex' with (?P<name>...) and (?P<arguments>...) groups")
        return self


def _default_patterns() -> list[ToolCallPattern]:
    return [ToolCallPattern(kind=k) for k in ("qwen_xml", "hermes_json", "bracket", "fenced_json")]


class ToolCallParsingConfig(_Strict):
    enabled: bool = True
    patterns: list[ToolCallPattern] = Field(default_factory=_default_patterns)
    rename_tools: dict[str, str] = Field(default_factory=dict)  # name the model wrote -> real tool name
    rename_parameters: dict[str, dict[str, str]] = Field(default_factory=dict)  # tool -> {written: real}


class ModelsConfig(_Strict):
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    aliases: dict[str, AliasConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    budgets: dict[str, BudgetConfig] = Field(default_factory=dict)
    health: HealthConfig = Field(default_factory=HealthConfig)
    tool_call_parsing: ToolCallParsingConfig = Field(default_factory=ToolCallParsingConfig)
    passthrough: bool = False
    # /v1/models lists aliases only; False adds every deployment's real model as "<alias>/<deployment>".
    list_aliases_only: bool = True

    @model_validator(mode="after")
    def _references(self) -> ModelsConfig:
        for alias_name, alias in self.aliases.items():
            for i, dep in enumerate(alias.deployments):
                if dep.backend not in self.backends:
                    known = ", ".join(sorted(self.backends)) or "(none configured)"
                    where = f"aliases.{alias_name}.deployments.{i}.backend"
                    raise ValueError(f"{where}: unknown backend {dep.backend!r}; backends: {known}")
            for ref in [*alias.fallbacks, *([alias.context_fallback] if alias.context_fallback else [])]:
                if ref not in self.aliases or ref == alias_name:
                    raise ValueError(f"aliases.{alias_name}: fallback {ref!r} is not another configured alias")
        return self

    def deployment_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for alias in self.aliases.values():
            for dep in alias.deployments:
                seen[dep.id] = None
        return list(seen)


def parse(raw: dict[str, Any]) -> ModelsConfig:
    return ModelsConfig.model_validate(raw)
