"""`toolmux usage`: totals of LLM requests, tokens and cost from the models server's usage records."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio

from servers.models.usage import GROUPS, SHARED_GROUPS, query, query_ledger

_COLUMNS = [
    ("requests", "requests"),
    ("errors", "errors"),
    ("cache_hits", "cached"),
    ("prompt_tokens", "in tokens"),
    ("completion_tokens", "out tokens"),
    ("cost", "cost USD"),
    ("avg_latency_ms", "avg ms"),
]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("usage", help="LLM usage and cost totals (from the models server's records)")
    parser.add_argument(
        "--by",
        default="model",
        help="comma-separated groups: model,key,day,deployment,status, and replica with shared state (default: model)",
    )
    parser.add_argument("--since", help="start date or time, ISO 8601 UTC (e.g. 2025-06-01)")
    parser.add_argument("--until", help="end date or time (a bare date includes that day)")
    parser.add_argument("--key", help="only this hub key's usage")
    parser.add_argument("--model", help="only this alias's usage")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--config", help="hub config: with a shared `state:` (PostgreSQL) the report covers every replica's calls"
    )
    parser.add_argument("--data-dir", help="data directory (default: $TOOLMUX_DATA_DIR, else the user data dir)")
    parser.add_argument("--db", help="path of the usage database (default: <data dir>/models/usage.sqlite3)")
    parser.set_defaults(func=run)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column == "cost":
        return f"{value:.6f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_table(report: dict[str, Any], groups: list[str]) -> str:
    header = [*groups, *(title for _, title in _COLUMNS)]
    rows = [
        [_cell(row.get(g), g) for g in groups] + [_cell(row.get(c), c) for c, _ in _COLUMNS] for row in report["rows"]
    ]
    totals = report["totals"]
    rows.append(["TOTAL", *([""] * (len(groups) - 1))] + [_cell(totals.get(c), c) for c, _ in _COLUMNS])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    numeric_from = len(groups)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i >= numeric_from else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _shared_report(postgres: str, schema: str, **kwargs: Any) -> dict[str, Any]:
    from aggregator.state.postgres_store import PostgresStore

    async def main() -> dict[str, Any]:
        store = PostgresStore(postgres, schema=schema, pool_size=1)
        try:
            await store.open()
            return await query_ledger(store, **kwargs)
        finally:
            await store.aclose()

    return anyio.run(main)


def _local_report(args: argparse.Namespace, data_dir: Path | None, **kwargs: Any) -> dict[str, Any] | None:
    if args.db:
        path = Path(args.db)
    else:
        from aggregator import datadir  # the one data-dir rule every command shares

        path = (
            (Path(args.data_dir) if args.data_dir else data_dir or datadir.resolve(None)) / "models" / "usage.sqlite3"
        )
    if not path.exists():
        print(f"toolmux usage: no usage recorded yet ({path} does not exist)", file=sys.stderr)
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return query(conn, **kwargs)
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    from aggregator import config as hub_config
    from aggregator.state import StateUnavailable

    config = None
    if args.config:
        try:
            config = hub_config.load(args.config)
        except hub_config.ConfigError as exc:
            print("\n".join(exc.problems), file=sys.stderr)
            return 2
    shared = config is not None and config.state.postgres is not None and not args.db
    groups = [g.strip() for g in args.by.split(",") if g.strip()]
    allowed = SHARED_GROUPS if shared else tuple(GROUPS)
    unknown = [g for g in groups if g not in allowed]
    if unknown or not groups:
        print(f"toolmux usage: --by takes {', '.join(allowed)} (got {args.by!r})", file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {
        "group_by": groups,
        "since": args.since,
        "until": args.until,
        "key": args.key,
        "model": args.model,
    }
    try:
        if shared:
            assert config is not None and config.state.postgres is not None
            report = _shared_report(config.state.postgres, config.state.schema_name, **kwargs)
        else:
            local = _local_report(args, config.data_dir if config is not None else None, **kwargs)
            if local is None:
                return 1
            report = local
    except ValueError as exc:
        print(f"toolmux usage: invalid date: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:
        print(f"toolmux usage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_table(report, groups))
    return 0
