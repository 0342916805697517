"""Usage rows and budgets: every replica's calls are counted, and a budget never overshoots."""

from __future__ import annotations

import anyio
import pytest

from aggregator.state.interfaces import USAGE_COLUMNS
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio

START = 1_798_761_600.0  # a period start


def row(key: str, model: str, cost: float, replica: str, status: str = "ok") -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(USAGE_COLUMNS)
    base.update(
        ts=START + 10,
        day="2027-01-01",
        key=key,
        model=model,
        kind="chat",
        status=status,
        cost=cost,
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        cache_hit=0,
        attempts=1,
        stream=0,
        latency_ms=12.5,
        replica=replica,
    )
    return base


async def test_usage_written_by_both_replicas_is_counted_together(pair: Pair) -> None:
    await pair.a.ledger.write([row("alice", "main", 0.5, "a"), row("bob", "main", 0.25, "a")])
    await pair.b.ledger.write([row("alice", "fast", 1.0, "b", status="error")])
    by_model = await pair.a.ledger.query(group_by=["model"])
    assert [(r["model"], r["requests"], r["errors"]) for r in by_model] == [("fast", 1, 1), ("main", 2, 0)]
    alice = await pair.b.ledger.query(group_by=[], key="alice")
    assert alice[0]["requests"] == 2 and alice[0]["cost"] == pytest.approx(1.5)
    assert alice[0]["prompt_tokens"] == 20 and alice[0]["avg_latency_ms"] == pytest.approx(12.5)
    recent = await pair.b.ledger.recent(5)
    assert len(recent) == 3


async def test_grouping_by_an_unknown_column_is_refused(pair: Pair) -> None:
    with pytest.raises(ValueError, match="cannot group by"):
        await pair.a.ledger.query(group_by=["secret_hash"])


async def test_a_budget_spent_concurrently_from_two_replicas_never_overshoots(pair: Pair) -> None:
    accepted = 0

    async def spend(first: bool) -> None:
        nonlocal accepted
        result = await (pair.a if first else pair.b).ledger.try_spend("alice", "month", START, 0.3, 2.0)
        accepted += result.accepted

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(spend, i % 2 == 0)
    assert accepted == 6
    assert await pair.b.ledger.spent("alice", "month", START) == pytest.approx(1.8)
    refused = await pair.a.ledger.try_spend("alice", "month", START, 0.3, 2.0)
    assert not refused.accepted and refused.spent == pytest.approx(1.8)


async def test_spend_is_kept_per_period_and_incurred_costs_always_count(pair: Pair) -> None:
    assert await pair.a.ledger.add_spend("bob", "day", START, 1.5) == pytest.approx(1.5)
    assert await pair.b.ledger.add_spend("bob", "day", START, 1.0) == pytest.approx(2.5)
    assert await pair.a.ledger.spent("bob", "day", START + 86400) == 0.0
    assert not (await pair.b.ledger.try_spend("bob", "day", START, 0.1, 2.0)).accepted
    assert (await pair.b.ledger.try_spend("bob", "day", START + 86400, 0.1, 2.0)).accepted
    assert not (await pair.b.ledger.try_spend("carol", "day", START, 3.0, 2.0)).accepted
    assert await pair.a.ledger.spent("carol", "day", START) == 0.0


async def test_a_batch_of_rows_adds_its_spend_in_the_same_write(pair: Pair) -> None:
    from aggregator.state.interfaces import SpendDelta

    await pair.a.ledger.write(
        [row("alice", "main", 0.5, "a"), row("alice", "main", 0.25, "a")],
        spend=[SpendDelta("alice", "month", START, 0.75)],
    )
    await pair.b.ledger.write([], spend=[SpendDelta("alice", "month", START, 0.25)])
    assert await pair.b.ledger.spent("alice", "month", START) == pytest.approx(1.0)
    assert (await pair.a.ledger.query(group_by=[], key="alice"))[0]["requests"] == 2
