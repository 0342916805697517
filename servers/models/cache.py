"""Answer cache for non-stream chat and embeddings: per alias, TTL, LRU-bounded, in memory.

The key is a hash of the normalized request (the alias, the fields that change the answer,
with keys sorted); errors and answers with tool calls are never stored.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

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


def cacheable_chat(response: dict[str, Any]) -> bool:
    """Only plain finished answers: no tool calls, no truncation."""
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        if message.get("tool_calls") or choice.get("finish_reason") not in ("stop", "length", None):
            return False
    return True
