"""`toolmux db upgrade`: apply the state schema migrations without starting a hub.

Replicas also migrate at start; running this first (a deploy step, a Kubernetes init job) keeps
schema changes out of the start-up of many replicas at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio


def add_parser(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the state database (SQLite embedded, PostgreSQL shared)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations and print the versions")
    upgrade.add_argument("--config", help="toolmux YAML config whose `state:` names the database")
    upgrade.add_argument("--data-dir", help="data directory of the embedded database (default: from the config)")
    upgrade.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    from aggregator import config as hub_config
    from aggregator.state import StateUnavailable, upgrade

    try:
        config = hub_config.load(args.config) if args.config else hub_config.HubConfig.model_validate({})
    except hub_config.ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir) if args.data_dir else config.data_dir
    try:
        store, applied, versions = anyio.run(lambda: upgrade(config.state, data_dir=data_dir))
    except StateUnavailable as exc:
        print(f"toolmux db upgrade: {exc}", file=sys.stderr)
        return 1
    done = f"applied {', '.join(map(str, applied))}" if applied else "already up to date"
    print(f"{store}: {done}; schema version {max(versions, default=0)}")
    return 0
