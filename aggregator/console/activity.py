"""Recent calls, in memory: what the console's activity feed shows (tool calls and model calls).

A bounded ring of tuples, appended on every call (a tuple append: no dict, no formatting on the
hot path); entries become dicts only when the console reads them. Per replica, lost on restart:
the durable record of model calls is the usage ledger.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

RING_SIZE = 1000
# (id, ts, kind, key, name, status, latency_ms, prompt_tokens, completion_tokens, cost, prompt)
Entry = tuple[int, float, str, str, str, str, float | None, int, int, float, str | None]


class Activity:
    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[Entry] = deque(maxlen=size)
        self._ids = itertools.count(1)

    def tool_call(self, key: str, tool: str, outcome: str, seconds: float) -> None:
        self._ring.append((next(self._ids), time.time(), "tool", key, tool, outcome, seconds * 1000, 0, 0, 0.0, None))

    def model_call(
        self,
        key: str,
        model: str,
        status: str,
        latency_ms: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        prompt: str | None,
    ) -> None:
        entry = (next(self._ids), time.time(), "model", key, model, status, latency_ms)
        self._ring.append((*entry, prompt_tokens, completion_tokens, cost, prompt))

    def recent(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        filters: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, entries with an id above `after` matching every filter given (key, name, kind, status)."""
        given = filters or {}
        key, name, kind, status = (given.get(f) for f in ("key", "name", "kind", "status"))
        found: list[dict[str, Any]] = []
        for entry in reversed(self._ring):
            if entry[0] <= after or len(found) >= limit:
                break
            if (key and entry[3] != key) or (kind and entry[2] != kind) or (status and entry[5] != status):
                continue
            if name and name.lower() not in entry[4].lower():
                continue
            found.append(as_dict(entry))
        return found

    def keys(self) -> Iterable[str]:
        return sorted({e[3] for e in self._ring})


def as_dict(entry: Entry) -> dict[str, Any]:
    id_, ts, kind, key, name, status, latency, prompt_tokens, completion_tokens, cost, prompt = entry
    return {
        "id": id_,
        "ts": ts,
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)),
        "kind": kind,
        "key": key,
        "name": name,
        "status": status,
        "latency_ms": None if latency is None else round(latency, 1),
        "tokens": prompt_tokens + completion_tokens,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "prompt": prompt,
    }
