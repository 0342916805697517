"""Answer cache for non-stream chat and embeddings: per alias, TTL, LRU-bounded, in memory.

The key is a hash of the normalized request (the alias, the fields that change the answer,
with keys sorted); errors and answers with tool calls are never stored. After `share()`, the
async `fetch` / `store` go to a cache every replica shares (Redis: bounded by the TTL and Redis's
own memory policy rather than `max_entries`); a store that does not answer is a miss.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from aggregator.state.degrade import warn_degraded
from aggregator.state.interfaces import ResponseCacheStore, StateUnavailable

_log = logging.getLogger("toolmux.models")

# Fields that never change an answer: who asks, how it is delivered, what the cache should do.
_IGNORED = frozenset({"stream", "stream_options", "user", "cache", "metadata"})


def cache_key(kind: str, alias: str, request: dict[str, Any]) -> str:
    material = {k: v for k, v in request.items() if k not in _IGNORED and v is not None}
    raw = orjson.dumps([kind, alias, material], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class ResponseCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return copy.deepcopy(value)

    def put(self, key: str, value: dict[str, Any], *, ttl: float, max_entries: int) -> None:
        self._entries[key] = (self.clock() + ttl, copy.deepcopy(value))
        self._entries.move_to_end(key)
        while len(self._entries) > max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    # --- shared across replicas ---------------------------------------------------------------
    shared: ResponseCacheStore | None = None

    def share(self, store: ResponseCacheStore) -> None:
        self.shared = store

    async def fetch(self, key: str) -> dict[str, Any] | None:
        if self.shared is None:
            return self.get(key)
        try:
            raw = await self.shared.get(key)
        except StateUnavailable as exc:
            warn_degraded(_log, "cache", "response cache unavailable (%s): misses", exc.reason)
            return None
        value = orjson.loads(raw) if raw is not None else None
        return value if isinstance(value, dict) else None

    async def store(self, key: str, value: dict[str, Any], *, ttl: float, max_entries: int) -> None:
        if self.shared is None:
            self.put(key, value, ttl=ttl, max_entries=max_entries)
            return
        try:
            await self.shared.set(key, orjson.dumps(value), ttl=ttl, max_entries=max_entries)
        except StateUnavailable as exc:
            warn_degraded(_log, "cache", "response cache unavailable (%s): answers not cached", exc.reason)


def cacheable_chat(response: dict[str, Any]) -> bool:
    """Only plain finished answers: no tool calls, no truncation."""
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        if message.get("tool_calls") or choice.get("finish_reason") not in ("stop", "length", None):
            return False
    return True
