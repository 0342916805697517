"""Routing strategies, the circuit breaker's states, and the upstream error translation."""

from __future__ import annotations

import random

import pytest

from servers.models.breaker import CircuitBreaker
from servers.models.config import CircuitBreakerConfig, ModelsConfig
from servers.models.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    parse_retry_after,
    status_error,
    translate_transport_errors,
)
from servers.models.httpclient import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    TimedOut,
    TransportFailure,
    UndecodableBody,
)
from servers.models.router import DeploymentState, Router
from tests.servers.models.conftest import FakeClock


def router(strategy: str, weights: tuple[float, ...] = (1, 1, 1), seed: int = 7) -> Router:
    config = ModelsConfig.model_validate(
        {
            "backends": {"b": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "aliases": {
                "main": {
                    "strategy": strategy,
                    "deployments": [{"backend": "b", "model": f"m{i}", "weight": w} for i, w in enumerate(weights)],
                }
            },
        }
    )
    states = {d: DeploymentState(d, CircuitBreaker(config.circuit_breaker)) for d in config.deployment_ids()}
    return Router(config, states, rng=random.Random(seed))


def first_choices(r: Router, n: int, stream: bool = False) -> list[str]:
    return [r.targets("main", stream=stream)[0].deployment.model for _ in range(n)]


def test_ordered_always_starts_with_the_first_deployment() -> None:
    assert set(first_choices(router("ordered"), 20)) == {"m0"}


def test_weighted_prefers_heavier_deployments_in_proportion() -> None:
    picks = first_choices(router("weighted", (6, 3, 1)), 2000)
    shares = [picks.count(f"m{i}") / len(picks) for i in range(3)]
    assert shares[0] > shares[1] > shares[2] > 0
    assert 0.5 < shares[0] < 0.7


def test_least_busy_picks_the_deployment_with_fewest_requests_in_flight() -> None:
    r = router("least-busy")
    r.states["b/m0"].in_flight, r.states["b/m1"].in_flight, r.states["b/m2"].in_flight = 3, 0, 1
    assert [t.deployment.model for t in r.targets("main", stream=False)] == ["m1", "m2", "m0"]


def test_latency_ranks_by_time_to_first_token_for_streams() -> None:
    r = router("latency")
    for name, latency, ttft in (("m0", 0.1, 0.9), ("m1", 0.5, 0.2), ("m2", 0.3, 0.4)):
        r.states[f"b/{name}"].observe("latency", latency, 1.0)
        r.states[f"b/{name}"].observe("ttft", ttft, 1.0)
    assert [t.deployment.model for t in r.targets("main", stream=False)] == ["m0", "m2", "m1"]
    assert [t.deployment.model for t in r.targets("main", stream=True)] == ["m1", "m2", "m0"]


def test_breaker_opens_at_the_threshold_within_the_window_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=3, window=10, cooldown=5), clock)
    breaker.record_failure("x")
    clock.advance(11)  # the first failure leaves the window
    breaker.record_failure("x")
    breaker.record_failure("x")
    assert breaker.state == "closed"
    breaker.record_failure("x")
    assert breaker.state == "open" and not breaker.allow()


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, cooldown=5), clock)
    breaker.record_failure("boom")
    clock.advance(5)
    assert breaker.state == "half-open"
    assert breaker.allow() is True and breaker.allow() is False
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (408, True), (429, True), (500, True), (503, True), (529, True)],
)
def test_only_408_429_and_5xx_are_retryable(status: int, retryable: bool) -> None:
    assert status_error("b", status, "").retryable is retryable


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectFailed("refused"), UpstreamConnectError),
        (TimedOut("slow"), UpstreamTimeout),
        (ConnectionLost("dropped"), UpstreamConnectError),
        (BadResponse("not HTTP"), UpstreamConnectError),
        (UndecodableBody("gzip"), UpstreamProtocolError),
    ],
)
def test_every_transport_error_is_translated(exc: Exception, expected: type[UpstreamError]) -> None:
    with pytest.raises(expected), translate_transport_errors("b"):
        raise exc


def test_transport_error_translation_covers_every_client_failure() -> None:
    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    for cls in subclasses(TransportFailure) | {TransportFailure}:
        with pytest.raises(UpstreamError), translate_transport_errors("b"):
            raise cls("x")


def test_cached_answers_expire_after_their_ttl_and_the_oldest_go_first() -> None:
    from servers.models.cache import ResponseCache, cache_key

    clock = FakeClock()
    cache = ResponseCache(clock)
    key = cache_key("chat", "main", {"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    same = cache_key("chat", "main", {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "user": "x"})
    assert key == same and key != cache_key(
        "chat", "fast", {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    )
    cache.put(key, {"answer": 1}, ttl=10, max_entries=2)
    clock.advance(9.9)
    assert cache.get(key) == {"answer": 1}
    clock.advance(0.1)
    assert cache.get(key) is None
    for name in ("a", "b", "c"):
        cache.put(name, {"answer": name}, ttl=10, max_entries=2)
    assert cache.get("a") is None and cache.get("c") == {"answer": "c"} and len(cache) == 2
