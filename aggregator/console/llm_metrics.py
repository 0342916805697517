"""The LLM metric families: what a Prometheus + Grafana set-up for an LLM gateway charts.

`LlmMetrics` is the models server's observer (`servers/models/observer.py`): the models service,
running in the hub's process, reports each finished call here and the counters move. What is a
state rather than an event (deployment state, remaining budget, buffered stream bytes) is read
at scrape time by `LlmStateCollector`, so it costs nothing per call.

With `metrics.litellm_names: true` the same events also move LiteLLM's families (docs/metrics.md
has the mapping), so a dashboard built for LiteLLM works against toolmux unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aggregator.console.activity import Activity
from servers.models.usage import UsageRecord

LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)

# toolmux_llm_deployment_state values (LiteLLM's litellm_deployment_state uses the same numbers).
HEALTHY, COOLING_DOWN, OPEN = 0, 1, 2


def deployment_state(circuit: str, healthy: bool | None) -> int:
    """Open circuit: 2; half-open (probing after its cooldown) or a failed health probe: 1; else 0."""
    if circuit == "open":
        return OPEN
    if circuit == "half-open" or healthy is False:
        return COOLING_DOWN
    return HEALTHY


def answered_by(record: UsageRecord) -> str:
    """The deployment that answered; for a failed call, the last one tried ("" when none was)."""
    if record.deployment:
        return record.deployment
    return record.failover_path[-1] if record.failover_path else ""


class LlmMetrics:
    """The models server's observer: counters and histograms per model, deployment and key."""

    def __init__(
        self, registry: CollectorRegistry, *, litellm_names: bool = False, activity: Activity | None = None
    ) -> None:
        self.activity = activity
        self.requests = Counter(
            "toolmux_llm_requests_total",
            "Model calls by alias, deployment, kind (chat, embed) and status (ok, error)",
            ["model", "deployment", "kind", "status"],
            registry=registry,
        )
        self.failures = Counter(
            "toolmux_llm_failures_total",
            "Failed model calls by alias, deployment and reason (the error code)",
            ["model", "deployment", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "toolmux_llm_request_seconds",
            "End-to-end model call latency (first byte in to last byte out of the models service)",
            ["model"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "toolmux_llm_time_to_first_token_seconds",
            "Time to the first streamed chunk of a chat call",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "toolmux_llm_tokens_total",
            "Tokens by alias, deployment and direction (in: prompt, out: completion)",
            ["model", "deployment", "direction"],
            registry=registry,
        )
        self.spend = Counter(
            "toolmux_llm_spend_usd_total",
            "Cost of model calls in USD by alias and key",
            ["model", "key"],
            registry=registry,
        )
        self.cache_hits = Counter(
            "toolmux_llm_cache_hits_total", "Answers served from the response cache", ["model"], registry=registry
        )
        self.streams = Gauge(
            "toolmux_llm_active_streams", "Streamed chat calls in progress", ["model"], registry=registry
        )
        self.litellm = LiteLlmFamilies(registry) if litellm_names else None
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, family: Any, *labels: str) -> Any:
        # labels() costs a lock and a tuple check per call; children are cached by (family, labels).
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def call_finished(self, record: UsageRecord) -> None:
        model, deployment = record.model, answered_by(record)
        self._child(self.requests, model, deployment, record.kind, record.status).inc()
        if record.status != "ok":
            self._child(self.failures, model, deployment, record.error_code or "error").inc()
        if record.cache_hit:
            self._child(self.cache_hits, model).inc()
        else:
            if record.latency_ms is not None:
                self._child(self.latency, model).observe(record.latency_ms / 1000)
            if record.ttft_ms is not None:
                self._child(self.ttft, model).observe(record.ttft_ms / 1000)
        if record.cache_hit:  # a cached answer's tokens were counted when a deployment produced them
            pass
        elif record.prompt_tokens or record.completion_tokens:
            self._child(self.tokens, model, deployment, "in").inc(record.prompt_tokens)
            self._child(self.tokens, model, deployment, "out").inc(record.completion_tokens)
        if record.cost:
            self._child(self.spend, model, record.key).inc(record.cost)
        if self.litellm is not None:
            self.litellm.call_finished(record, self._child)
        if self.activity is not None:
            self.activity.model_call(
                record.key,
                model,
                record.error_code or "error" if record.status != "ok" else "cache_hit" if record.cache_hit else "ok",
                record.latency_ms,
                record.prompt_tokens,
                record.completion_tokens,
                record.cost,
                record.prompt,
            )

    def stream_opened(self, model: str) -> None:
        self._child(self.streams, model).inc()

    def stream_closed(self, model: str) -> None:
        self._child(self.streams, model).dec()


def hashed_key(name: str) -> str:
    """LiteLLM's `hashed_api_key` label: here a hash of the key's name (toolmux never keeps the secret)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class LiteLlmFamilies:
    """LiteLLM's Prometheus names for the same events (a subset of its labels: model, key alias, deployment)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        key_labels = ["model", "hashed_api_key", "api_key_alias"]
        deployment_labels = ["litellm_model_name", "model_id", "api_provider", "requested_model"]
        self.proxy_requests = Counter(
            "litellm_proxy_total_requests_metric", "LiteLLM name: client requests", key_labels, registry=registry
        )
        self.proxy_failed = Counter(
            "litellm_proxy_failed_requests_metric",
            "LiteLLM name: failed client requests",
            key_labels,
            registry=registry,
        )
        self.requests = Counter("litellm_requests_metric", "LiteLLM name: requests", key_labels, registry=registry)
        self.spend = Counter("litellm_spend_metric", "LiteLLM name: spend in USD", key_labels, registry=registry)
        self.total_tokens = Counter(
            "litellm_total_tokens_metric", "LiteLLM name: input + output tokens", key_labels, registry=registry
        )
        self.input_tokens = Counter(
            "litellm_input_tokens_metric", "LiteLLM name: input tokens", key_labels, registry=registry
        )
        self.output_tokens = Counter(
            "litellm_output_tokens_metric", "LiteLLM name: output tokens", key_labels, registry=registry
        )
        self.latency = Histogram(
            "litellm_request_total_latency_metric",
            "LiteLLM name: end-to-end latency",
            ["model", "api_key_alias"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.api_latency = Histogram(
            "litellm_llm_api_latency_metric",
            "LiteLLM name: latency of the call to the deployment",
            ["model", "api_key_alias"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "litellm_llm_api_time_to_first_token_metric",
            "LiteLLM name: time to first token",
            ["model", "api_key_alias"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.deployment_total = Counter(
            "litellm_deployment_total_requests",
            "LiteLLM name: requests per deployment",
            deployment_labels,
            registry=registry,
        )
        self.deployment_success = Counter(
            "litellm_deployment_success_responses",
            "LiteLLM name: successful responses per deployment",
            deployment_labels,
            registry=registry,
        )
        self.deployment_failure = Counter(
            "litellm_deployment_failure_responses",
            "LiteLLM name: failed responses per deployment",
            [*deployment_labels, "exception_status"],
            registry=registry,
        )

    def call_finished(self, record: UsageRecord, child: Callable[..., Any]) -> None:
        model, alias = record.model, record.key
        keyed = (model, hashed_key(alias), alias)
        child(self.proxy_requests, *keyed).inc()
        child(self.requests, *keyed).inc()
        if record.status != "ok":
            child(self.proxy_failed, *keyed).inc()
        if record.cost:
            child(self.spend, *keyed).inc(record.cost)
        tokens = 0 if record.cache_hit else record.prompt_tokens + record.completion_tokens
        if tokens:
            child(self.total_tokens, *keyed).inc(tokens)
            child(self.input_tokens, *keyed).inc(record.prompt_tokens)
            child(self.output_tokens, *keyed).inc(record.completion_tokens)
        if record.latency_ms is not None and not record.cache_hit:
            child(self.latency, model, alias).observe(record.latency_ms / 1000)
            child(self.api_latency, model, alias).observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            child(self.ttft, model, alias).observe(record.ttft_ms / 1000)
        deployment = answered_by(record)
        if deployment and not record.cache_hit:
            backend, _, real_model = deployment.partition("/")
            labels = (real_model or deployment, deployment, backend, model)
            child(self.deployment_total, *labels).inc()
            if record.status == "ok":
                child(self.deployment_success, *labels).inc()
            else:
                child(self.deployment_failure, *labels, record.error_code or "error").inc()


class LlmStateCollector(Collector):
    """At scrape time: each deployment's state, each budget's remaining USD, bytes waiting for slow clients."""

    def __init__(self, service: Callable[[], Any], buffered: Callable[[], int], *, litellm_names: bool) -> None:
        self.service = service  # the in-process ModelsService, or None (not running, or a child process)
        self.buffered = buffered
        self.litellm_names = litellm_names

    def describe(self) -> list[Any]:
        return []  # families vary with the config; prometheus_client then collects once to learn them

    def collect(self) -> Iterator[GaugeMetricFamily]:
        buffered = GaugeMetricFamily(
            "toolmux_llm_buffered_response_bytes", "Streamed answer bytes queued for clients that read slowly"
        )
        buffered.add_metric([], float(self.buffered()))
        yield buffered
        service = self.service()
        if service is None:
            return
        state = GaugeMetricFamily(
            "toolmux_llm_deployment_state",
            "Deployment state: 0 healthy, 1 cooling down (half-open circuit or failed probe), 2 open circuit",
            labels=["model", "deployment"],
        )
        litellm_state = GaugeMetricFamily(
            "litellm_deployment_state",
            "LiteLLM name: 0 healthy, 1 partial outage, 2 complete outage",
            labels=["litellm_model_name", "model_id", "api_provider"],
        )
        for alias_name, alias in service.config.aliases.items():
            for dep in alias.deployments:
                dep_state = service.states[dep.id]
                value = deployment_state(dep_state.breaker.state, dep_state.healthy)
                state.add_metric([alias_name, dep.id], value)
                litellm_state.add_metric([dep.model, dep.id, dep.backend], value)
        yield state
        remaining = GaugeMetricFamily(
            "toolmux_llm_budget_remaining_usd", "USD left in the key's budget period", labels=["key", "period"]
        )
        litellm_remaining = GaugeMetricFamily(
            "litellm_remaining_api_key_budget_metric",
            "LiteLLM name: remaining budget of a key",
            labels=["hashed_api_key", "api_key_alias"],
        )
        for key in sorted(service.usage.budgets):
            status = service.usage.budget_status(key)
            if status is not None:
                remaining.add_metric([key, status["period"]], status["remaining"])
                litellm_remaining.add_metric([hashed_key(key), key], status["remaining"])
        yield remaining
        if self.litellm_names:
            yield litellm_state
            yield litellm_remaining
