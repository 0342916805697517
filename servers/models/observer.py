"""What the models server tells whoever watches it (the hub's Prometheus metrics) — a narrow interface.

The models server knows what the hub cannot see from outside: the deployment that answered, the
tokens, the cost, the time to the first streamed token, cache hits. It reports each finished call
once, and streams as they open and close; the hub turns that into metric families
(`aggregator/console/llm_metrics.py`). Nothing here blocks: an observer only updates counters.
"""

from __future__ import annotations

from typing import Protocol

from servers.models.usage import UsageRecord


class ModelsObserver(Protocol):
    def call_finished(self, record: UsageRecord) -> None:
        """A chat or embed call ended (ok, error or cache hit); `record` is its usage row."""
        ...

    def stream_opened(self, model: str) -> None: ...

    def stream_closed(self, model: str) -> None: ...
