"""What the hub and the domains may keep in shared state, as typed interfaces.

Every interface has an embedded implementation (in-process, SQLite) and a shared one (Redis for
fast-changing state, PostgreSQL for durable records); `aggregator.state.open_state` picks them at
start. All methods are async because the shared ones cross the network; the embedded ones never
suspend. A shared store that cannot be reached raises `StateUnavailable`: callers decide whether
to fail closed (budgets, keys) or degrade to local state (limits, circuits, cache, routing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

CircuitState = Literal["closed", "open", "half-open"]
BudgetPeriod = Literal["day", "month", "total"]
Row = Mapping[str, Any]


class StateUnavailable(Exception):
    """A shared store did not answer. `store` names it ("redis" or "postgres")."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store} is unavailable: {reason}")
        self.store = store
        self.reason = reason


# --- rate limits -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """Why a sliding-window limit refused: which limit, and when the oldest counted entry leaves."""

    limit: Literal["rpm", "tpm"]
    cap: int
    retry_after: float


class RateLimiter(Protocol):
    """Sliding 60-second windows of requests and tokens per key, checked and counted atomically."""

    async def acquire(self, key: str, *, rpm: int | None, tpm: int | None) -> Refusal | None:
        """Count one request unless a cap is reached (then count nothing and say why)."""
        ...

    async def add_tokens(self, key: str, tokens: int) -> None:
        """Count tokens spent by a request already admitted (known only once it answered)."""
        ...

    async def add_request(self, key: str) -> None:
        """Count one more request without checking (a retry of an admitted call)."""
        ...


# --- circuit breakers -------------------------------------------------------------------------
@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    window: float = 60.0
    cooldown: float = 30.0


@dataclass(frozen=True)
class BreakerStatus:
    state: CircuitState
    retry_in: float = 0.0
    last_error: str | None = None
    # Failures are counted towards opening: a success must clear them (else it may skip the store).
    failures: bool = False


class BreakerStore(Protocol):
    """closed -> (N failures within a window) open -> (cooldown) half-open (one probe) -> closed/open."""

    async def allow(self, key: str, settings: BreakerSettings) -> BreakerStatus:
        """The state now; when half-open and no probe is out, claims the probe (state "closed" = go)."""
        ...

    async def status(self, key: str, settings: BreakerSettings) -> BreakerStatus: ...

    async def record_success(self, key: str) -> None: ...

    async def record_failure(self, key: str, reason: str, settings: BreakerSettings) -> BreakerStatus: ...

    async def release_probe(self, key: str) -> None: ...


# --- admission: limits and circuit in one step ------------------------------------------------
@dataclass(frozen=True)
class Admission:
    refusal: Refusal | None  # a cap is reached: nothing was counted, the circuit was not asked
    circuit: BreakerStatus  # "closed": go (the request is counted; a half-open probe is claimed)


class GateStore(Protocol):
    """The rate limiter and the breaker of one key asked together: one round trip per call when shared.

    Works on the same windows and circuits as `RateLimiter` and `BreakerStore`.
    """

    async def admit(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, breaker: BreakerSettings
    ) -> Admission:
        """Count `tokens` spent by earlier requests, check the caps, then the circuit; count the request if both
        let it through."""
        ...


# --- response cache ---------------------------------------------------------------------------
class ResponseCacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float, max_entries: int | None = None) -> None:
        """Store with a time to live; `max_entries` bounds an in-process cache (Redis evicts by memory)."""
        ...


# --- routing data -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoutingStats:
    in_flight: int = 0
    latency: float | None = None  # smoothed seconds
    ttft: float | None = None  # smoothed seconds to the first streamed chunk


class RoutingStore(Protocol):
    async def begin(self, key: str) -> None:
        """One more request in flight."""
        ...

    async def end(self, key: str) -> None: ...

    async def observe(self, key: str, metric: Literal["latency", "ttft"], seconds: float, smoothing: float) -> None:
        """Fold a measurement into the exponentially weighted average."""
        ...

    async def snapshot(self, keys: Sequence[str]) -> dict[str, RoutingStats]: ...


# --- usage and budgets ------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendResult:
    accepted: bool
    spent: float  # spend of the period after the operation (unchanged when refused)


@dataclass(frozen=True)
class SpendDelta:
    key: str
    period: BudgetPeriod
    period_start: float
    amount: float


class UsageLedger(Protocol):
    """Usage rows (one per call) and spend per key and budget period, durable."""

    async def write(self, rows: Sequence[Row], *, spend: Sequence[SpendDelta] = ()) -> None:
        """Append usage rows (the columns of `USAGE_COLUMNS`) and add their costs to spend, in one transaction."""
        ...

    async def query(
        self,
        *,
        group_by: Sequence[str] = ("model",),
        since: float | None = None,
        until: float | None = None,
        key: str | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals per group: requests, errors, cache_hits, tokens, cost, average latencies."""
        ...

    async def recent(self, limit: int = 10) -> list[dict[str, Any]]: ...

    async def spent(self, key: str, period: BudgetPeriod, period_start: float) -> float: ...

    async def try_spend(
        self, key: str, period: BudgetPeriod, period_start: float, amount: float, limit: float
    ) -> SpendResult:
        """Add `amount` only if the period's spend stays within `limit` (atomic across replicas)."""
        ...

    async def add_spend(self, key: str, period: BudgetPeriod, period_start: float, amount: float) -> float:
        """Add a cost already incurred (unconditionally); returns the new spend."""
        ...


USAGE_COLUMNS = (
    "ts",
    "day",
    "key",
    "model",
    "deployment",
    "kind",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_code",
    "cache_hit",
    "attempts",
    "failover_path",
    "stream",
    "request_id",
    "prompt",
    "response",
    "replica",
)
USAGE_GROUPS = ("model", "key", "day", "deployment", "status", "replica")


# --- keys -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyRecord:
    """A managed API key. Only a hash of the secret is stored; `prefix` helps people tell keys apart."""

    name: str
    prefix: str
    tools: tuple[str, ...] = ("*",)
    budget: float | None = None
    budget_period: BudgetPeriod = "month"
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    revoked_at: float | None = None
    models: tuple[str, ...] | None = None  # alias globs the key may use; None: every alias
    scopes: tuple[str, ...] = ()  # "admin", "metrics" (see aggregator.principal)

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class KeyStore(Protocol):
    async def create(
        self,
        name: str,
        *,
        tools: Sequence[str] = ("*",),
        budget: float | None = None,
        budget_period: BudgetPeriod = "month",
        rpm: int | None = None,
        tpm: int | None = None,
        expires_at: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        models: Sequence[str] | None = None,
        scopes: Sequence[str] = (),
    ) -> tuple[KeyRecord, str]:
        """A new key; the secret is returned once and never stored. A taken name is a `KeyExists`."""
        ...

    async def active_hashes(self) -> list[tuple[KeyRecord, str]]:
        """Every key not revoked, with its secret's hash: what a replica's in-memory mirror holds."""
        ...

    async def verify(self, secret: str) -> KeyRecord | None:
        """The active key with this secret, or None (revoked, expired, unknown)."""
        ...

    async def get(self, name: str) -> KeyRecord | None: ...

    async def list(self, pattern: str = "*") -> list[KeyRecord]:
        """Keys whose name matches a glob, revoked ones included, by name."""
        ...

    async def rotate(self, name: str) -> tuple[KeyRecord, str]:
        """A new secret for the key (the old one stops working at once)."""
        ...

    async def revoke(self, name: str) -> bool: ...


class KeyExists(ValueError):
    pass


class KeyNotFound(LookupError):
    pass


# --- fan-out ----------------------------------------------------------------------------------
class PubSub(Protocol):
    async def publish(self, channel: str, message: Mapping[str, Any]) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """Once entered, every message published to `channel` (by any replica) until exit."""
        ...


CHANNEL_LIST_CHANGED = "list-changed"
CHANNEL_CONFIG_RELOAD = "config-reload"


# --- replicas ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaInfo:
    id: str
    version: str
    load: float = 0.0  # calls in flight
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    url: str = ""  # where the other replicas reach this one (forwarded session requests)


class ReplicaRegistry(Protocol):
    async def heartbeat(self, info: ReplicaInfo, *, ttl: float) -> None:
        """Report this replica alive; it leaves the fleet `ttl` seconds after its last heartbeat."""
        ...

    async def fleet(self) -> list[ReplicaInfo]: ...

    async def leave(self, replica_id: str) -> None: ...


# --- sessions ---------------------------------------------------------------------------------
class SessionDirectory(Protocol):
    """Which replica owns a 2025-era MCP session (requests for it are forwarded there), and the
    secrets every replica must hold alike (the HMAC key of stateless `requestState`)."""

    async def claim(self, session_id: str, replica_id: str, *, ttl: float) -> None: ...

    async def owner(self, session_id: str) -> str | None: ...

    async def release(self, session_id: str) -> None: ...

    async def shared_secret(self, name: str) -> bytes:
        """The fleet's secret called `name`: made by the first replica that asks, the same for all."""
        ...
