"""Which deployments a call tries, in what order: routing strategies and failover modes.

Strategies order an alias's own deployments:
    ordered     as configured
    weighted    a weighted shuffle (weight 3 comes first three times as often as weight 1)
    least-busy  fewest requests in flight first
    latency     lowest smoothed latency first (time to first token for streams); unmeasured first
Failover modes decide what follows the first choice:
    backup      the rest in strategy order, then the alias's `fallbacks` aliases
    rotational  like backup, but each call starts one further along the ring
    duplicate   like backup, then deployments of other aliases that serve the same real model
    none        the first choice only
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from aggregator.state.degrade import warn_degraded
from aggregator.state.interfaces import GateStore, RateLimiter, RoutingStore, StateUnavailable
from servers.models.breaker import CircuitBreaker
from servers.models.config import AliasConfig, DeploymentConfig, ModelsConfig

_log = logging.getLogger("toolmux.models")


@dataclass
class DeploymentState:
    """What the router knows about one deployment right now."""

    id: str
    breaker: CircuitBreaker
    in_flight: int = 0
    latency: float | None = None  # smoothed seconds, whole non-stream answers
    ttft: float | None = None  # smoothed seconds to the first streamed chunk
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    healthy: bool | None = None  # from background probes; None: not probed yet
    health_reason: str | None = None
    checked_at: float | None = None

    def observe(self, attr: str, seconds: float, smoothing: float) -> None:
        old = getattr(self, attr)
        setattr(self, attr, seconds if old is None else old + smoothing * (seconds - old))

    def over_capacity(self, dep: DeploymentConfig, now: float) -> str | None:
        """Why the deployment's rpm / tpm cap is reached (None when it has room)."""
        while self.requests and now - self.requests[0] >= 60:
            self.requests.popleft()
        while self.tokens and now - self.tokens[0][0] >= 60:
            self.tokens.popleft()
        if dep.rpm is not None and len(self.requests) >= dep.rpm:
            return f"rpm cap {dep.rpm} reached"
        if dep.tpm is not None and sum(t for _, t in self.tokens) >= dep.tpm:
            return f"tpm cap {dep.tpm} reached"
        return None

    # --- shared across replicas (set by `share`; None keeps everything in this process) ---------
    gate: GateStore | None = None  # caps and circuit in one round trip
    limiter: RateLimiter | None = None
    routing: RoutingStore | None = None  # only for deployments routed by least-busy / latency
    unsent_tokens: int = 0  # counted in the shared window with this replica's next admission here

    @property
    def shared_key(self) -> str:
        return f"models:{self.id}"

    def share(self, gate: GateStore, limiter: RateLimiter, routing: RoutingStore | None) -> None:
        self.gate, self.limiter, self.routing = gate, limiter, routing

    def _degraded(self, what: str, exc: StateUnavailable) -> None:
        warn_degraded(
            _log,
            f"{self.id}:{what}",
            "deployment %s: shared %s unavailable (%s); this replica's own view",
            self.id,
            what,
            exc.reason,
        )

    async def enter(self, dep: DeploymentConfig, now: float) -> tuple[str | None, bool]:
        """(why the rpm / tpm cap is reached, else None; whether the circuit lets the request go).

        Embedded: this process's windows and breaker, as always. Shared: one round trip that
        checks and counts across replicas; if the store does not answer, this replica's own view.
        """
        if self.gate is not None:
            tokens, self.unsent_tokens = self.unsent_tokens, 0
            try:
                admission = await self.gate.admit(
                    self.shared_key, rpm=dep.rpm, tpm=dep.tpm, tokens=tokens, breaker=self.breaker.settings
                )
            except StateUnavailable as exc:
                self.unsent_tokens += tokens
                self.breaker.observe_shared(None)
                self._degraded("limits and circuit", exc)
            else:
                self.breaker.observe_shared(admission.circuit)
                if admission.refusal is not None:
                    return f"{admission.refusal.limit} cap {admission.refusal.cap} reached", False
                return None, admission.circuit.state == "closed"
        full = self.over_capacity(dep, now)
        return (full, False) if full else (None, self.breaker.allow())

    async def count_retry(self) -> None:
        """A retry is one more upstream request (the first was counted at admission when shared)."""
        if self.limiter is not None:
            try:
                await self.limiter.add_request(self.shared_key)
            except StateUnavailable as exc:
                self._degraded("rate limits", exc)

    async def count_tokens(self, now: float, tokens: int) -> None:
        self.tokens.append((now, tokens))
        if self.gate is not None:
            self.unsent_tokens += tokens

    async def record_latency(self, attr: str, seconds: float, smoothing: float) -> None:
        self.observe(attr, seconds, smoothing)
        if self.routing is not None:
            try:
                await self.routing.observe(self.shared_key, "ttft" if attr == "ttft" else "latency", seconds, smoothing)
            except StateUnavailable as exc:
                self._degraded("routing data", exc)

    async def started(self) -> None:
        self.in_flight += 1
        if self.routing is not None:
            try:
                await self.routing.begin(self.shared_key)
            except StateUnavailable as exc:
                self._degraded("routing data", exc)

    async def ended(self) -> None:
        """Runs in `finally` blocks: the shared decrement is shielded so a cancelled call still counts down."""
        self.in_flight -= 1
        if self.routing is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await self.routing.end(self.shared_key)
                except StateUnavailable as exc:
                    self._degraded("routing data", exc)


async def refresh_shared(states: dict[str, DeploymentState], ids: list[str]) -> None:
    """Load every replica's in-flight counts and latencies into the local states before ordering."""
    shared = [states[i] for i in ids if states[i].routing is not None]
    if not shared:
        return
    routing = shared[0].routing
    assert routing is not None
    try:
        snapshot = await routing.snapshot([s.shared_key for s in shared])
    except StateUnavailable as exc:
        shared[0]._degraded("routing data", exc)
        return
    for state in shared:
        stats = snapshot[state.shared_key]
        state.in_flight, state.latency, state.ttft = stats.in_flight, stats.latency, stats.ttft


@dataclass(frozen=True)
class Target:
    alias: str
    deployment: DeploymentConfig
    # "fallback": from a `fallbacks` alias; "duplicate": same real model; "context": context_fallback.
    via: str = "primary"


class Router:
    def __init__(
        self,
        config: ModelsConfig,
        states: dict[str, DeploymentState],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.states = states
        self.rng = rng or random.Random()
        self.clock = clock
        self._rotation: dict[str, int] = {}

    def strategy_of(self, alias: AliasConfig) -> str:
        return alias.strategy or self.config.routing.strategy

    def failover_of(self, alias: AliasConfig) -> str:
        return alias.failover or self.config.routing.failover

    def _ordered(self, alias_name: str, *, stream: bool) -> list[DeploymentConfig]:
        alias = self.config.aliases[alias_name]
        deps = list(alias.deployments)
        strategy = self.strategy_of(alias)
        if strategy == "weighted":
            # Efraimidis-Spirakis: a weighted random permutation in one pass.
            deps.sort(key=lambda d: self.rng.random() ** (1.0 / d.weight), reverse=True)
        elif strategy == "least-busy":
            deps.sort(key=lambda d: self.states[d.id].in_flight)
        elif strategy == "latency":
            attr = "ttft" if stream else "latency"
            deps.sort(key=lambda d: getattr(self.states[d.id], attr) or 0.0)
        if self.failover_of(alias) == "rotational" and len(deps) > 1:
            turn = self._rotation.get(alias_name, 0)
            self._rotation[alias_name] = turn + 1
            shift = turn % len(deps)
            deps = deps[shift:] + deps[:shift]
        return deps

    def targets(self, alias_name: str, *, stream: bool) -> list[Target]:
        """Every target a call to `alias_name` may try, first choice first, without repeats."""
        out: list[Target] = []
        seen: set[str] = set()
        visited: set[str] = set()

        def add(alias: str, deps: list[DeploymentConfig], via: str) -> None:
            for dep in deps:
                if dep.id not in seen:
                    seen.add(dep.id)
                    out.append(Target(alias, dep, via))

        def expand(name: str, via: str) -> None:
            if name in visited:
                return
            visited.add(name)
            alias = self.config.aliases[name]
            mode = self.failover_of(alias)
            ordered = self._ordered(name, stream=stream)
            if mode == "none":
                add(name, ordered[:1], via)
                return
            add(name, ordered, via)
            if mode == "duplicate":
                models = {d.model for d in alias.deployments}
                for other_name, other in self.config.aliases.items():
                    if other_name != name:
                        add(other_name, [d for d in other.deployments if d.model in models], "duplicate")
            for fallback in alias.fallbacks:
                expand(fallback, "fallback")

        expand(alias_name, "primary")
        context = self.config.aliases[alias_name].context_fallback
        if context:
            # Own visited set: a context fallback is worth trying even if already a plain fallback.
            for dep in self._ordered(context, stream=stream):
                if dep.id not in seen:
                    seen.add(dep.id)
                    out.append(Target(context, dep, "context"))
        return out


def estimate_tokens(request: dict[str, object]) -> int:
    """A cheap upper-side guess of the prompt's size (about four characters a token)."""
    chars = 0
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
            chars += sum(len(str(c)) for c in message.get("tool_calls") or [])
    tools = request.get("tools")
    chars += sum(len(str(t)) for t in (tools if isinstance(tools, list) else []))
    return chars // 4 + 1
