"""Admission: caps and circuit asked in one step, on the same windows and circuits as the limiter and breaker."""

from __future__ import annotations

import pytest

from aggregator.state import BreakerSettings
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio

SETTINGS = BreakerSettings(failure_threshold=1, window=10, cooldown=30)


async def test_admission_counts_requests_in_the_limiters_window_across_replicas(pair: Pair) -> None:
    for i in range(3):
        admission = await (pair.a if i % 2 else pair.b).gate.admit("k", rpm=3, tpm=None, tokens=0, breaker=SETTINGS)
        assert admission.refusal is None and admission.circuit.state == "closed"
    refused = await pair.a.gate.admit("k", rpm=3, tpm=None, tokens=0, breaker=SETTINGS)
    assert refused.refusal is not None and refused.refusal.limit == "rpm"
    assert await pair.b.limiter.acquire("k", rpm=3, tpm=None) is not None


async def test_tokens_handed_to_admission_count_before_the_tpm_check(pair: Pair) -> None:
    first = await pair.a.gate.admit("k", rpm=None, tpm=100, tokens=0, breaker=SETTINGS)
    second = await pair.b.gate.admit("k", rpm=None, tpm=100, tokens=100, breaker=SETTINGS)
    assert first.refusal is None
    assert second.refusal is not None and second.refusal.limit == "tpm"


async def test_an_open_circuit_refuses_admission_without_counting_the_request(pair: Pair) -> None:
    await pair.a.breakers.record_failure("k", "down", SETTINGS)
    shut = await pair.b.gate.admit("k", rpm=1, tpm=None, tokens=0, breaker=SETTINGS)
    assert shut.refusal is None and shut.circuit.state == "open" and shut.circuit.last_error == "down"
    pair.clock.advance(30)
    probe = await pair.a.gate.admit("k", rpm=1, tpm=None, tokens=0, breaker=SETTINGS)
    assert probe.refusal is None and probe.circuit.state == "closed"  # the probe, and the first counted request
    assert (await pair.b.gate.admit("k", rpm=5, tpm=None, tokens=0, breaker=SETTINGS)).circuit.state == "open"
    assert (await pair.b.limiter.acquire("k", rpm=1, tpm=None)) is not None
