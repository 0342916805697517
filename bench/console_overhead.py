"""Benchmark: the hub CPU the console adds to one chat completion (metrics, activity feed, key checks).

    .venv/bin/python bench/console_overhead.py [--calls 200000]

What runs per chat completion because of the console, measured here in isolation (end-to-end runs
of bench/models_proxy.py on a shared machine vary by more than the whole figure):
- `LlmMetrics.call_finished` for a finished non-streamed call (requests, tokens, spend, latency;
  LiteLLM's names off, as by default) and for a streamed one (TTFT, stream gauge open and close);
- `Activity.tool_call` (the dispatch's record of the `models-chat` tool call);
- the key check of a YAML key on models (`Hub.key_limits`: a miss in the managed-key mirror).
Prints CPU microseconds per call of each part and of the sum (process time, best of 5 runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from aggregator.console.activity import Activity  # noqa: E402
from aggregator.console.keys import ManagedKeys  # noqa: E402
from aggregator.console.llm_metrics import LlmMetrics  # noqa: E402
from servers.models.usage import UsageRecord  # noqa: E402


def best_of(runs: int, calls: int, fn: object) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--litellm-names", action="store_true")
    args = parser.parse_args()
    activity = Activity()
    metrics = LlmMetrics(CollectorRegistry(), litellm_names=args.litellm_names, activity=activity)
    plain = UsageRecord(
        key="app",
        model="main",
        kind="chat",
        status="ok",
        deployment="local/fake-model",
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.00002,
        latency_ms=1.2,
    )
    streamed = UsageRecord(
        key="app",
        model="main",
        kind="chat",
        status="ok",
        deployment="local/fake-model",
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.00002,
        latency_ms=1.2,
        ttft_ms=0.4,
        stream=True,
    )
    mirror = ManagedKeys(store=None)  # type: ignore[arg-type]  # only the in-memory lookup is timed

    def stream_call() -> None:
        metrics.stream_opened("main")
        metrics.call_finished(streamed)
        metrics.stream_closed("main")

    parts = {
        "metrics, non-stream call": best_of(5, args.calls, lambda: metrics.call_finished(plain)),
        "metrics, streamed call": best_of(5, args.calls, stream_call),
        "activity (tool call)": best_of(5, args.calls, lambda: activity.tool_call("app", "models-chat", "ok", 0.001)),
        "key limits lookup": best_of(5, args.calls, lambda: mirror.signing_secret("app")),
    }
    for name, micros in parts.items():
        print(f"{name:28} {micros:6.2f} µs")
    worst = max(parts["metrics, non-stream call"], parts["metrics, streamed call"])
    total = worst + parts["activity (tool call)"] + parts["key limits lookup"]
    print(f"{'added per chat completion':28} {total:6.2f} µs = {total / 1000:.4f} ms (budget 0.05 ms)")


if __name__ == "__main__":
    main()
