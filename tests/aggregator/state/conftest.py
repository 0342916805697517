"""Stores for the contract tests: each test gets an embedded pair or a shared pair of "replicas".

Shared pairs are two independent `State`s (own Redis client, own PostgreSQL pool) on the real
services, with a key prefix and a schema unique to the test, dropped afterwards. An embedded
"pair" is one `State` seen twice: a single replica shares everything with itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.state import State, StateConfig, open_state
from tests.support.shared_state import POSTGRES_URL, REDIS_URL, drop_shared, shared_config  # noqa: F401  (re-exported)

# Loopback ports with nothing listening (a stopped store).
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
DEAD_POSTGRES_URL = "postgresql://postgres@127.0.0.1:1/test"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Pair:
    a: State
    b: State
    clock: FakeClock
    shared: bool


def set_clock(state: State, clock: FakeClock) -> None:
    for part in (state.limiter, state.breakers, state.gate, state.registry, state.keys):
        part.clock = clock  # type: ignore[union-attr]


@pytest.fixture
async def shared_state_config() -> AsyncIterator[StateConfig]:
    config = shared_config()
    try:
        yield config
    finally:
        await drop_shared(config)


@pytest.fixture(params=["embedded", "shared"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    clock = FakeClock()
    if request.param == "embedded":
        state = await open_state(StateConfig(), data_dir=tmp_path, replica_id="solo")
        set_clock(state, clock)
        try:
            yield Pair(state, state, clock, shared=False)
        finally:
            await state.aclose()
        return
    config = shared_config()
    a = await open_state(config, data_dir=tmp_path / "a", replica_id="replica-a")
    b = await open_state(config, data_dir=tmp_path / "b", replica_id="replica-b")
    set_clock(a, clock)
    set_clock(b, clock)
    try:
        yield Pair(a, b, clock, shared=True)
    finally:
        await a.aclose()
        await b.aclose()
        await drop_shared(config)
