"""The `toolmux` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml


def _load_server_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: the server config must be a mapping")
    return data


def cmd_server(args: argparse.Namespace) -> int:
    from servers import registry
    from servers.kit import ServerConfigError, ServerSettings
    from servers.kit.runner import run_stdio, serve_http
    from servers.kit.settings import ENV_DATA_DIR

    try:
        builtin = registry.get(args.name)
    except KeyError as exc:
        print(f"toolmux server: {exc.args[0]}", file=sys.stderr)
        return 2
    reason = builtin.unavailable_reason()
    if reason:
        print(f"toolmux server {args.name}: unavailable: {reason}", file=sys.stderr)
        return 3
    if args.data_dir:
        os.environ[ENV_DATA_DIR] = args.data_dir
    settings = ServerSettings.from_environment(args.name, _load_server_config(args.config))
    try:
        domain = builtin.create(settings)
    except ServerConfigError as exc:
        print(f"toolmux server {args.name}: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.http:
        key = args.key or os.environ.get("TOOLMUX_SERVER_KEY")
        if not key:
            key = secrets.token_urlsafe(24)
            print(f"toolmux server {args.name}: generated API key: {key}", file=sys.stderr)
        serve_http(domain, host=args.host, port=args.port, key=key)
    else:
        run_stdio(domain)
    return 0


def _hub_config(path: str | None) -> Any:
    from aggregator import config as hub_config

    if path:
        return hub_config.load(path)
    return hub_config.default()


def cmd_stdio(args: argparse.Namespace) -> int:
    import anyio

    from aggregator.auth import resolve_master_key
    from aggregator.config import ConfigError
    from aggregator.front.core import McpCore
    from aggregator.front.stdio_face import StdioFace
    from aggregator.hub import Hub

    try:
        config = _hub_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    hub = Hub(config, master_key=resolve_master_key(config))
    principal = hub.keys.principal_for(args.key) if args.key else None
    if args.key and principal is None:
        print("toolmux stdio: --key matches no configured key", file=sys.stderr)
        return 2

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await hub.wait_settled(args.startup_timeout)
            face = StdioFace(McpCore(hub), principal or MASTER)
            await face.serve()
            await hub.stop()

    from aggregator.principal import MASTER

    anyio.run(main)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolmux", description="MCP-first tool server aggregator")
    parser.add_argument("--log-level", default=os.environ.get("TOOLMUX_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run one built-in domain server alone (stdio or HTTP)")
    server.add_argument("name", help="built-in server name, e.g. storage")
    transport = server.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout (default)")
    transport.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=4001)
    server.add_argument("--key", help="API key for --http (default: $TOOLMUX_SERVER_KEY or generated)")
    server.add_argument("--config", help="YAML/JSON file with this server's own config section")
    server.add_argument("--data-dir", help="data directory (default: $TOOLMUX_DATA_DIR or .data)")
    server.set_defaults(func=cmd_server)

    stdio = sub.add_parser("stdio", help="serve the aggregated MCP server over stdin/stdout")
    stdio.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    stdio.add_argument("--key", help="act with this named key's tool scope instead of the master key's")
    stdio.add_argument(
        "--startup-timeout", type=float, default=20.0, help="seconds to wait for upstreams before serving (default 20)"
    )
    stdio.set_defaults(func=cmd_stdio)
    from servers.models import usage_cli  # models domain: `toolmux usage`

    usage_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr: on stdio faces stdout carries the protocol.
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args) or 0)
