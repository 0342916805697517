"""SQL shared by the SQLite and PostgreSQL stores (they differ only in the placeholder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregator.state.interfaces import USAGE_COLUMNS, USAGE_GROUPS, SpendDelta

TOTAL_NAMES = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens", "cost")
_AGGREGATES = (
    "COUNT(*), SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(cache_hit), SUM(prompt_tokens),"
    " SUM(completion_tokens), SUM(cached_tokens), SUM(cost), AVG(latency_ms), AVG(ttft_ms)"
)


ADD_SPEND = (
    "INSERT INTO budget_spend (key, period, period_start, spent) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (key, period, period_start) DO UPDATE SET spent = budget_spend.spent + excluded.spent"
)


def spend_values(delta: SpendDelta) -> tuple[Any, ...]:
    return (delta.key, delta.period, delta.period_start, delta.amount)


def insert_usage(ph: str) -> str:
    return f"INSERT INTO usage_calls ({', '.join(USAGE_COLUMNS)}) VALUES ({', '.join([ph] * len(USAGE_COLUMNS))})"


def usage_values(row: Any) -> tuple[Any, ...]:
    return tuple(row.get(column) for column in USAGE_COLUMNS)


def usage_query(
    ph: str,
    *,
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    key: str | None,
    model: str | None,
) -> tuple[str, list[Any]]:
    unknown = [g for g in group_by if g not in USAGE_GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; groups: {', '.join(USAGE_GROUPS)}")
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        (f"ts >= {ph}", since),
        (f"ts < {ph}", until),
        (f"key = {ph}", key),
        (f"model = {ph}", model),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = f"SELECT {', '.join([*group_by, _AGGREGATES])} FROM usage_calls"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group_by:
        sql += " GROUP BY " + ", ".join(group_by) + " ORDER BY " + ", ".join(group_by)
    return sql, params


def usage_rows(group_by: Sequence[str], raw_rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    rows = []
    for raw in raw_rows:
        group = dict(zip(group_by, raw[: len(group_by)], strict=True))
        values = raw[len(group_by) :]
        if not values[0]:
            continue
        row: dict[str, Any] = {**group, **{n: (v or 0) for n, v in zip(TOTAL_NAMES, values[:7], strict=True)}}
        row["requests"], row["errors"], row["cache_hits"] = (
            int(row["requests"]),
            int(row["errors"]),
            int(row["cache_hits"]),
        )
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            row[name] = int(row[name])
        row["cost"] = round(float(row["cost"]), 8)
        row["avg_latency_ms"] = round(float(values[7]), 3) if values[7] is not None else None
        row["avg_ttft_ms"] = round(float(values[8]), 3) if values[8] is not None else None
        rows.append(row)
    return rows
