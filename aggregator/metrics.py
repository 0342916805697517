"""Prometheus metrics: per-tool call counts, errors and latency; upstream health; HTTP requests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from aggregator.console.activity import Activity

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "toolmux_tool_calls_total", "Tool calls by tool and outcome", ["tool", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "toolmux_tool_call_seconds",
            "Tool call latency through the hub",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_up = Gauge(
            "toolmux_upstream_up", "1 when the upstream server is ready", ["server"], registry=self.registry
        )
        self.http = Counter(
            "toolmux_http_requests_total",
            "HTTP requests by face and status",
            ["face", "status"],
            registry=self.registry,
        )
        self._call_children: dict[tuple[str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self.activity = Activity()  # the console's feed of recent calls

    def record_call(self, tool: str, outcome: str, seconds: float, caller: str = "") -> None:
        counter = self._call_children.get((tool, outcome))
        if counter is None:
            counter = self._call_children[(tool, outcome)] = self.calls.labels(tool, outcome)
        counter.inc()
        histogram = self._latency_children.get(tool)
        if histogram is None:
            histogram = self._latency_children[tool] = self.latency.labels(tool)
        histogram.observe(seconds)
        if caller:
            self.activity.tool_call(caller, tool, outcome, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
