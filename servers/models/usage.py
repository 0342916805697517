"""Usage records and budgets: one row per call in SQLite (metadata only unless prompts are logged).

Writes are buffered and flushed in a worker thread (every `flush_interval`, when 64 rows are
waiting, before every query, and at shutdown), so a call never waits on the disk.

After `share()`, rows and spend go to a `UsageLedger` every replica shares (PostgreSQL) instead:
rows still buffered (a batch that fails to write stays buffered for the next flush), spend added
per call (so every replica's next check sees it), budgets read from the shared spend, failing
closed when the store is down.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from aggregator.state.interfaces import StateUnavailable, UsageLedger
from servers.models.config import BudgetConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment TEXT,
    kind TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    latency_ms REAL,
    ttft_ms REAL,
    status TEXT NOT NULL,
    error_code TEXT,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    failover_path TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    prompt TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS calls_day ON calls(day);
CREATE INDEX IF NOT EXISTS calls_key_ts ON calls(key, ts);
"""

_log = logging.getLogger("toolmux.models")
GROUPS = {"model": "model", "key": "key", "day": "day", "deployment": "deployment", "status": "status"}
SHARED_GROUPS = (*GROUPS, "replica")  # the shared ledger also records which replica served a call
FLUSH_BATCH = 64


@dataclass
class UsageRecord:
    key: str
    model: str
    kind: str
    status: str
    deployment: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error_code: str | None = None
    cache_hit: bool = False
    attempts: int = 0
    failover_path: list[str] = field(default_factory=list)
    stream: bool = False
    request_id: str | None = None
    prompt: str | None = None
    response: str | None = None
    ts: float = field(default_factory=time.time)


_RECORD_FIELDS = tuple(f.name for f in fields(UsageRecord))
_TOTALS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens", "cost")


def as_row(r: UsageRecord) -> dict[str, Any]:
    """A record as a `calls` / `usage_calls` row."""
    data = {name: getattr(r, name) for name in _RECORD_FIELDS}  # asdict() deep-copies: needless here
    data["day"] = day_of(r.ts)
    data["failover_path"] = orjson.dumps(r.failover_path).decode() if r.failover_path else None
    data["cache_hit"] = int(r.cache_hit)
    data["stream"] = int(r.stream)
    return data


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def period_start(period: str, now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return 0.0


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def _timestamp(value: str | None, *, end: bool = False) -> float | None:
    """An ISO date or datetime as a UTC timestamp; a bare date `until` includes that whole day."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = moment.timestamp()
    if end and len(value) == 10:
        stamp += 86400
    return stamp


def query(
    conn: sqlite3.Connection,
    *,
    group_by: Iterable[str] = ("model",),
    since: str | None = None,
    until: str | None = None,
    key: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Totals grouped by model / key / day / deployment / status (plain SQL, any thread)."""
    columns = [GROUPS[g] for g in group_by]
    where: list[str] = []
    params: list[str | float] = []
    for clause, value in (("ts >= ?", _timestamp(since)), ("ts < ?", _timestamp(until, end=True))):
        if value is not None:
            where.append(clause)
            params.append(value)
    for column, text in (("key", key), ("model", model)):
        if text is not None:
            where.append(f"{column} = ?")
            params.append(text)
    aggregates = (
        "COUNT(*), SUM(status != 'ok'), SUM(cache_hit), SUM(prompt_tokens), SUM(completion_tokens),"
        " SUM(cached_tokens), SUM(cost), AVG(latency_ms), AVG(ttft_ms)"
    )
    select = ", ".join([*columns, aggregates])
    sql = f"SELECT {select} FROM calls"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if columns:
        sql += " GROUP BY " + ", ".join(columns) + " ORDER BY " + ", ".join(columns)
    names = [
        "requests",
        "errors",
        "cache_hits",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost",
        "avg_latency_ms",
        "avg_ttft_ms",
    ]
    rows = []
    totals: dict[str, Any] = dict.fromkeys(names[:7], 0)
    for raw in conn.execute(sql, params).fetchall():
        group = dict(zip(group_by, raw[: len(columns)], strict=True))
        values = dict(zip(names, raw[len(columns) :], strict=True))
        if not values["requests"]:
            continue
        row = {**group, **{k: (v or 0) for k, v in values.items() if k not in ("avg_latency_ms", "avg_ttft_ms")}}
        row["cost"] = round(float(row["cost"]), 8)
        row["avg_latency_ms"] = round(values["avg_latency_ms"], 3) if values["avg_latency_ms"] is not None else None
        row["avg_ttft_ms"] = round(values["avg_ttft_ms"], 3) if values["avg_ttft_ms"] is not None else None
        rows.append(row)
        for name in names[:7]:
            totals[name] += row[name]
    totals["cost"] = round(float(totals["cost"]), 8)
    return {"rows": rows, "totals": totals}


async def query_ledger(ledger: UsageLedger, **kwargs: Any) -> dict[str, Any]:
    """`query`'s report from a shared ledger (PostgreSQL): the rows of every replica."""
    group_by = list(kwargs.get("group_by") or ())
    rows = await ledger.query(
        group_by=group_by,
        since=_timestamp(kwargs.get("since")),
        until=_timestamp(kwargs.get("until"), end=True),
        key=kwargs.get("key"),
        model=kwargs.get("model"),
    )
    totals: dict[str, Any] = dict.fromkeys(_TOTALS, 0)
    for row in rows:
        for name in _TOTALS:
            totals[name] += row[name]
    totals["cost"] = round(float(totals["cost"]), 8)
    return {"rows": rows, "totals": totals}


class UsageStore:
    """Buffered SQLite writer plus in-memory spend per key for budget checks."""

    def __init__(
        self,
        path: Path | None,
        *,
        log_prompts: bool = False,
        budgets: dict[str, BudgetConfig] | None = None,
        flush_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.log_prompts = log_prompts
        self.budgets = budgets or {}
        self.flush_interval = flush_interval
        self.clock = clock
        self._conn = connect(path) if path is not None else None
        self._pending: list[UsageRecord] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._spent: dict[str, float] = {}
        self._spent_since: dict[str, float] = {}
        self._load_spend()

    def _load_spend(self) -> None:
        now = self.clock()
        for key, budget in self.budgets.items():
            since = period_start(budget.period, now)
            self._spent_since[key] = since
            spent = 0.0
            if self._conn is not None:
                row = self._conn.execute(
                    "SELECT SUM(cost) FROM calls WHERE key = ? AND ts >= ?", (key, since)
                ).fetchone()
                spent = float(row[0] or 0.0)
            self._spent[key] = spent

    # --- budgets --------------------------------------------------------------------------------
    def budget_status(self, key: str) -> dict[str, Any] | None:
        budget = self.budgets.get(key)
        if budget is None:
            return None
        since = period_start(budget.period, self.clock())
        if self._spent_since.get(key) != since:  # a new day / month began
            self._spent_since[key] = since
            self._spent[key] = 0.0
        spent = self._spent.get(key, 0.0)
        return _budget_view(key, budget, spent)

    async def adopt_budget(self, key: str, budget: BudgetConfig) -> None:
        """A budget that comes with the caller's key (a managed key) rather than the config's `budgets:`."""
        if self.budgets.get(key) == budget:
            return
        self.budgets = {**self.budgets, key: budget}
        if self.ledger is None:
            await anyio.to_thread.run_sync(self._load_key_spend, key, budget)

    def _load_key_spend(self, key: str, budget: BudgetConfig) -> None:
        since = period_start(budget.period, self.clock())
        spent = 0.0
        if self._conn is not None:
            with self._lock:
                row = self._conn.execute(
                    "SELECT SUM(cost) FROM calls WHERE key = ? AND ts >= ?", (key, since)
                ).fetchone()
            spent = float(row[0] or 0.0)
        self._spent_since[key] = since
        self._spent[key] = spent + sum(r.cost for r in self._pending if r.key == key and r.ts >= since)

    # --- shared across replicas ---------------------------------------------------------------
    ledger: UsageLedger | None = None
    replica: str | None = None

    def share(self, ledger: UsageLedger, replica: str) -> None:
        """Keep rows and spend in a ledger every replica shares (this process's SQLite stays unused)."""
        self.ledger, self.replica = ledger, replica

    async def budget(self, key: str) -> dict[str, Any] | None:
        """`budget_status`, from the shared spend when shared (raises `StateUnavailable`: fail closed)."""
        budget = self.budgets.get(key)
        if budget is None or self.ledger is None:
            return self.budget_status(key)
        spent = await self.ledger.spent(key, budget.period, period_start(budget.period, self.clock()))
        return _budget_view(key, budget, spent)

    async def _record_shared(self, record: UsageRecord, ledger: UsageLedger) -> None:
        budget = self.budgets.get(record.key)
        if budget is not None and record.cost:
            # At once, not with the batch: every replica's next budget check must see it.
            since = period_start(budget.period, record.ts)
            try:
                await ledger.add_spend(record.key, budget.period, since, record.cost)
            except StateUnavailable as exc:
                _log.error("spend of key %s not recorded (%s): %.8f USD", record.key, exc.reason, record.cost)
        with self._lock:
            self._pending.append(record)
            due = len(self._pending) >= FLUSH_BATCH or time.monotonic() - self._last_flush >= self.flush_interval
        if due:
            await self.flush()

    async def run_flusher(self) -> None:
        """Write buffered rows every `flush_interval` even when no further call comes (until cancelled)."""
        while self.flush_interval > 0:
            await anyio.sleep(self.flush_interval)
            if self._pending:
                await self.flush()

    async def _flush_shared(self, ledger: UsageLedger) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        try:
            await ledger.write([{**as_row(r), "replica": self.replica} for r in batch])
        except StateUnavailable as exc:
            _log.error("%d usage rows kept for the next flush (%s)", len(batch), exc.reason)
            with self._lock:
                self._pending[:0] = batch

    # --- recording ------------------------------------------------------------------------------
    async def record(self, record: UsageRecord) -> None:
        if not self.log_prompts:
            record.prompt = record.response = None
        if self.ledger is not None:
            await self._record_shared(record, self.ledger)
            return
        if record.key in self.budgets:
            self.budget_status(record.key)
            self._spent[record.key] = self._spent.get(record.key, 0.0) + record.cost
        if self._conn is None:
            return
        with self._lock:
            self._pending.append(record)
            due = len(self._pending) >= FLUSH_BATCH or time.monotonic() - self._last_flush >= self.flush_interval
        if due:
            await self.flush()

    def _write(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not batch or self._conn is None:
            return
        rows = [as_row(r) for r in batch]
        columns = list(rows[0])
        sql = f"INSERT INTO calls ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        with self._lock:
            self._conn.executemany(sql, rows)

    async def flush(self) -> None:
        if self.ledger is not None and self._pending:
            await self._flush_shared(self.ledger)
        elif self._conn is not None and self._pending:
            await anyio.to_thread.run_sync(self._write)

    async def _query_shared(self, ledger: UsageLedger, **kwargs: Any) -> dict[str, Any]:
        return await query_ledger(ledger, **kwargs)

    async def query(self, **kwargs: Any) -> dict[str, Any]:
        await self.flush()
        if self.ledger is not None:
            return await self._query_shared(self.ledger, **kwargs)
        if self._conn is None:
            return {
                "rows": [],
                "totals": dict.fromkeys(
                    ["requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens", "cost"],
                    0,
                ),
            }
        conn = self._conn

        def run() -> dict[str, Any]:
            with self._lock:
                return query(conn, **kwargs)

        return await anyio.to_thread.run_sync(run)

    async def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """The latest rows (for tests and debugging), newest first."""
        await self.flush()
        if self.ledger is not None:
            return await self.ledger.recent(limit)
        if self._conn is None:
            return []
        conn = self._conn

        def run() -> list[dict[str, Any]]:
            with self._lock:
                cursor = conn.execute("SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,))
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return await anyio.to_thread.run_sync(run)

    async def aclose(self) -> None:
        await self.flush()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await anyio.to_thread.run_sync(conn.close)


def _budget_view(key: str, budget: BudgetConfig, spent: float) -> dict[str, Any]:
    """A key's budget as `budget_status` and `budget` report it."""
    return {
        "key": key,
        "period": budget.period,
        "limit": budget.max_cost,
        "spent": round(spent, 8),
        "remaining": round(max(budget.max_cost - spent, 0.0), 8),
        "exhausted": spent >= budget.max_cost,
    }
