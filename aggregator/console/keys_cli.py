"""`toolmux keys create|list|rotate|revoke`: managed keys, from the data dir's store or a hub's admin API.

Without `--url` the command opens the key store the config names (`state.postgres`, else the data
dir's state.sqlite3) directly; a running hub sees the change within its refresh interval (5 s).
With `--url` it asks the hub's `/admin/keys` with an admin key, and the hub applies it at once.
A new or rotated secret is printed once and never stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from aggregator.console.keys import KeyRequestError, KeySpec, describe


def add_parser(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="managed API keys: create, list, rotate, revoke")
    sub = keys.add_subparsers(dest="keys_command", required=True)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="toolmux YAML config whose `state:` names the key store")
        p.add_argument("--data-dir", help="data directory of the embedded store and master.key")
        p.add_argument("--url", help="a running hub's base URL (http://host:4000): use its /admin/keys")
        p.add_argument("--key", help="admin key for --url (default $TOOLMUX_MASTER_KEY or the data dir's)")
        p.add_argument("--json", action="store_true", help="print JSON")

    create = sub.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("name")
    create.add_argument("--tools", default="*", help="comma-separated tool globs (default *)")
    create.add_argument("--models", help="comma-separated model alias globs (default: every alias)")
    create.add_argument("--scopes", default="", help="comma-separated: metrics, admin")
    create.add_argument("--budget", type=float, help="USD per budget period")
    create.add_argument("--budget-period", default="month", choices=["day", "month", "total"])
    create.add_argument("--rpm", type=int, help="requests per minute on models")
    create.add_argument("--tpm", type=int, help="tokens per minute on models")
    create.add_argument("--expires-in", type=float, help="seconds until the key expires")
    create.add_argument("--metadata", help="a JSON object kept with the key")
    target(create)
    create.set_defaults(func=run)

    listing = sub.add_parser("list", help="list managed keys (and, with --url, the config's keys)")
    target(listing)
    listing.set_defaults(func=run)
    for name, text in (("rotate", "give a key a new secret; prints it once"), ("revoke", "revoke a key at once")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        target(p)
        p.set_defaults(func=run)


def spec_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": args.name,
        "tools": args.tools,
        "scopes": args.scopes,
        "budget": args.budget,
        "budget_period": args.budget_period,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "expires_in": args.expires_in,
    }
    if args.models is not None:
        body["models"] = args.models
    if args.metadata:
        try:
            body["metadata"] = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise KeyRequestError(f"--metadata is not JSON: {exc}", "metadata") from None
    return body


def run(args: argparse.Namespace) -> int:
    try:
        result = anyio.run(remote if args.url else local, args)
    except KeyRequestError as exc:
        print(f"toolmux keys: {exc.field}: {exc}", file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"toolmux keys: {exc}", file=sys.stderr)
        return 1
    show(args, result)
    return 0


class CommandFailed(Exception):
    pass


def show(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "keys" in result:
        for key in result["keys"]:
            limits = ", ".join(f"{name}={key[name]}" for name in ("rpm", "tpm", "budget") if key.get(name) is not None)
            tools = ",".join(key.get("tools") or [])
            print(f"{key['name']:24} {key.get('source', 'store'):6} {key['state']:8} tools={tools} {limits}".rstrip())
    elif "secret" in result:
        print(f"key {result['key']['name']}: {result['secret']}")
        print("(shown once: store it now; toolmux keeps only its hash)", file=sys.stderr)
    else:
        print(f"key {result['name']}: revoked")


async def remote(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2

    key = args.key or os.environ.get("TOOLMUX_MASTER_KEY")
    if not key:
        from aggregator import datadir

        path = datadir.resolve(args.data_dir) / "master.key"
        key = path.read_text(encoding="utf-8").strip() if path.exists() else None
    base = args.url.rstrip("/").removesuffix("/mcp")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    command = args.keys_command
    async with httpx2.AsyncClient(timeout=30, headers=headers) as http:
        try:
            if command == "list":
                response = await http.get(f"{base}/admin/keys")
            elif command == "create":
                response = await http.post(f"{base}/admin/keys", json=spec_body(args))
            elif command == "rotate":
                response = await http.post(f"{base}/admin/keys/{args.name}/rotate")
            else:
                response = await http.delete(f"{base}/admin/keys/{args.name}")
        except httpx2.HTTPError as exc:
            raise CommandFailed(f"{base} did not answer: {exc}") from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        error = body.get("error") or {}
        raise CommandFailed(f"{response.status_code} {error.get('code', '')}: {error.get('message', response.text)}")
    return body


async def local(args: argparse.Namespace) -> dict[str, Any]:
    from aggregator import config as hub_config
    from aggregator.state.interfaces import KeyExists, KeyNotFound

    try:
        config = hub_config.load(args.config) if args.config else hub_config.HubConfig.model_validate({})
    except hub_config.ConfigError as exc:
        raise CommandFailed("\n".join(exc.problems)) from None
    data_dir = Path(args.data_dir) if args.data_dir else config.data_dir
    store, close = await open_key_store(config.state, data_dir)
    try:
        command = args.keys_command
        if command == "list":
            return {"keys": [describe(r, time.time()) for r in await store.list()]}
        if command == "create":
            spec = KeySpec.parse(spec_body(args), now=time.time())
            if spec.name in {k.name for k in config.auth.keys}:
                raise KeyRequestError(f"a key named {spec.name!r} exists in the config file", "name")
            try:
                record, secret = await spec.create_in(store)
            except KeyExists as exc:
                raise CommandFailed(str(exc)) from None
            return {"key": describe(record, time.time()), "secret": secret}
        if command == "rotate":
            try:
                record, secret = await store.rotate(args.name)
            except KeyNotFound as exc:
                raise CommandFailed(str(exc)) from None
            return {"key": describe(record, time.time()), "secret": secret}
        if not await store.revoke(args.name):
            raise CommandFailed(f"no active managed key named {args.name!r}")
        return {"name": args.name, "revoked": True}
    finally:
        await close()


async def open_key_store(state: Any, data_dir: Path) -> tuple[Any, Any]:
    """The durable store the config names (PostgreSQL when shared, else the data dir's SQLite) and its closer."""
    if state.postgres is not None:
        from aggregator.state.postgres_store import PostgresStore

        store = PostgresStore(state.postgres, schema=state.schema_name, pool_size=1)
        await store.open()
        await store.migrate()
        return store, store.aclose
    from aggregator.state.sqlite_store import SqliteStore

    sqlite = await anyio.to_thread.run_sync(SqliteStore, data_dir / "state.sqlite3")
    return sqlite, sqlite.aclose
