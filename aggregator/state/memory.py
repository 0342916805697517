"""Embedded fast state: in-process implementations (one replica; nothing to configure)."""

from __future__ import annotations

import copy
import os
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from aggregator.state.interfaces import Admission, BreakerSettings, BreakerStatus, Refusal, ReplicaInfo, RoutingStats

Clock = Callable[[], float]
WINDOW = 60.0


@dataclass
class _Window:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0

    def trim(self, now: float) -> None:
        while self.requests and now - self.requests[0] >= WINDOW:
            self.requests.popleft()
        while self.tokens and now - self.tokens[0][0] >= WINDOW:
            self.token_sum -= self.tokens.popleft()[1]


class MemoryRateLimiter:
    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._windows: dict[str, _Window] = {}

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        return window

    def check(self, key: str, rpm: int | None, tpm: int | None) -> Refusal | None:
        now = self.clock()
        window = self._window(key)
        window.trim(now)
        if rpm is not None and len(window.requests) >= rpm:
            return Refusal("rpm", rpm, max(WINDOW - (now - window.requests[0]), 0.0))
        if tpm is not None and window.token_sum >= tpm:
            return Refusal("tpm", tpm, max(WINDOW - (now - window.tokens[0][0]), 0.0))
        return None

    async def acquire(self, key: str, *, rpm: int | None, tpm: int | None) -> Refusal | None:
        refusal = self.check(key, rpm, tpm)
        if refusal is None:
            self._window(key).requests.append(self.clock())
        return refusal

    async def add_request(self, key: str) -> None:
        self._window(key).requests.append(self.clock())

    async def add_tokens(self, key: str, tokens: int) -> None:
        window = self._window(key)
        window.tokens.append((self.clock(), tokens))
        window.token_sum += tokens


@dataclass
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    opened_at: float | None = None
    probe: bool = False
    last_error: str | None = None


class MemoryBreakerStore:
    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, key: str) -> _Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = _Circuit()
        return circuit

    def _status(self, circuit: _Circuit, settings: BreakerSettings) -> BreakerStatus:
        if circuit.opened_at is None:
            return BreakerStatus("closed", failures=bool(circuit.failures))
        left = settings.cooldown - (self.clock() - circuit.opened_at)
        if left <= 0:
            return BreakerStatus("half-open", 0.0, circuit.last_error)
        return BreakerStatus("open", left, circuit.last_error)

    async def status(self, key: str, settings: BreakerSettings) -> BreakerStatus:
        return self._status(self._circuit(key), settings)

    async def allow(self, key: str, settings: BreakerSettings) -> BreakerStatus:
        circuit = self._circuit(key)
        status = self._status(circuit, settings)
        if status.state == "half-open":
            if circuit.probe:
                return BreakerStatus("open", 0.0, circuit.last_error)
            circuit.probe = True
            return BreakerStatus("closed", 0.0, circuit.last_error)
        return status

    async def record_success(self, key: str) -> None:
        self._circuits.pop(key, None)

    async def record_failure(self, key: str, reason: str, settings: BreakerSettings) -> BreakerStatus:
        now = self.clock()
        circuit = self._circuit(key)
        circuit.last_error = reason
        if circuit.opened_at is not None:
            circuit.opened_at, circuit.probe = now, False
        else:
            circuit.failures.append(now)
            while circuit.failures and now - circuit.failures[0] > settings.window:
                circuit.failures.popleft()
            if len(circuit.failures) >= settings.failure_threshold:
                circuit.opened_at = now
                circuit.failures.clear()
        return self._status(circuit, settings)

    async def release_probe(self, key: str) -> None:
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probe = False


class MemoryGate:
    """`GateStore` over the in-process limiter and breakers (the same windows and circuits)."""

    def __init__(self, limiter: MemoryRateLimiter, breakers: MemoryBreakerStore) -> None:
        self.limiter = limiter
        self.breakers = breakers

    async def admit(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, breaker: BreakerSettings
    ) -> Admission:
        if tokens:
            await self.limiter.add_tokens(key, tokens)
        refusal = self.limiter.check(key, rpm, tpm)
        if refusal is not None:
            return Admission(refusal, await self.breakers.status(key, breaker))
        circuit = await self.breakers.allow(key, breaker)
        if circuit.state == "closed":
            await self.limiter.add_request(key)
        return Admission(None, circuit)


class MemoryResponseCache:
    def __init__(self, clock: Clock = time.monotonic, max_entries: int = 10_000) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, *, ttl: float, max_entries: int | None = None) -> None:
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > (max_entries or self.max_entries):
            self._entries.popitem(last=False)


class MemoryRoutingStore:
    def __init__(self) -> None:
        self._stats: dict[str, dict[str, Any]] = {}

    def _entry(self, key: str) -> dict[str, Any]:
        entry = self._stats.get(key)
        if entry is None:
            entry = self._stats[key] = {"in_flight": 0, "latency": None, "ttft": None}
        return entry

    async def begin(self, key: str) -> None:
        self._entry(key)["in_flight"] += 1

    async def end(self, key: str) -> None:
        entry = self._entry(key)
        entry["in_flight"] = max(entry["in_flight"] - 1, 0)

    async def observe(self, key: str, metric: Literal["latency", "ttft"], seconds: float, smoothing: float) -> None:
        entry = self._entry(key)
        old = entry[metric]
        entry[metric] = seconds if old is None else old + smoothing * (seconds - old)

    async def snapshot(self, keys: Sequence[str]) -> dict[str, RoutingStats]:
        return {k: RoutingStats(**self._stats[k]) if k in self._stats else RoutingStats() for k in keys}


class MemoryPubSub:
    """In-process fan-out: every subscriber gets its own bounded queue (a slow one drops, never blocks)."""

    def __init__(self, buffer: int = 256) -> None:
        self.buffer = buffer
        self._subscribers: dict[str, set[MemoryObjectSendStream[dict[str, Any]]]] = {}

    async def publish(self, channel: str, message: Mapping[str, Any]) -> None:
        for send in list(self._subscribers.get(channel, ())):
            try:
                send.send_nowait(copy.deepcopy(dict(message)))
            except anyio.WouldBlock:
                pass
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers[channel].discard(send)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self.buffer)
        self._subscribers.setdefault(channel, set()).add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers[channel].discard(send)
            send.close()


class MemorySessionDirectory:
    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._secrets: dict[str, bytes] = {}

    async def claim(self, session_id: str, replica_id: str, *, ttl: float) -> None:
        self._owners[session_id] = replica_id

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)

    async def release(self, session_id: str) -> None:
        self._owners.pop(session_id, None)

    async def shared_secret(self, name: str) -> bytes:
        return self._secrets.setdefault(name, os.urandom(32))


class MemoryReplicaRegistry:
    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._replicas: dict[str, tuple[ReplicaInfo, float]] = {}

    async def heartbeat(self, info: ReplicaInfo, *, ttl: float) -> None:
        now = self.clock()
        self._replicas[info.id] = (
            ReplicaInfo(info.id, info.version, info.load, info.started_at, now, info.url),
            now + ttl,
        )

    async def fleet(self) -> list[ReplicaInfo]:
        now = self.clock()
        return sorted((info for info, expires in self._replicas.values() if expires > now), key=lambda r: r.id)

    async def leave(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)
