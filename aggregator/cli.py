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
    import importlib.util

    import anyio
    import uvicorn

    from aggregator.app import HubApp
    from aggregator.auth import resolve_master_key
    from aggregator.config import ConfigError
    from aggregator.front.stdio_face import StdioFace
    from aggregator.hub import Hub
    from aggregator.principal import MASTER

    try:
        config = _hub_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.startup_timeout is not None:
        config.server.startup_timeout = args.startup_timeout
    # Built-ins running as child processes call the hub back (e.g. speech storing audio); over
    # stdio the hub has no HTTP face, so it opens a private one on loopback for them.
    sock = bind_socket("127.0.0.1", 0)
    hub = Hub(config, master_key=resolve_master_key(config), public_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    principal = hub.keys.principal_for(args.key) if args.key else None
    if args.key and principal is None:
        print("toolmux stdio: --key matches no configured key", file=sys.stderr)
        return 2
    app = HubApp(hub, bind_host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    server.config.load()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(config.server.startup_timeout + 30):
                await app.started.wait()
            await StdioFace(app.core, principal or MASTER).serve()
            server.should_exit = True

    anyio.run(main, backend_options={"use_uvloop": importlib.util.find_spec("uvloop") is not None})
    return 0


def bind_socket(host: str, port: int) -> Any:
    """A listening socket with TCP_NODELAY (small JSON-RPC writes must not wait for Nagle)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    import uvicorn

    from aggregator.app import HubApp
    from aggregator.auth import resolve_master_key
    from aggregator.config import ConfigError
    from aggregator.hub import Hub

    try:
        config = _hub_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if args.data_dir:
        config.server.data_dir = args.data_dir
    host = config.server.host
    try:
        sock = bind_socket(host, config.server.port)
    except OSError as exc:
        print(f"toolmux serve: cannot listen on {host}:{config.server.port}: {exc.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    public_url = (config.server.public_url or f"http://{shown_host}:{port}").rstrip("/")
    hub = Hub(config, master_key=resolve_master_key(config), public_url=public_url)
    app = HubApp(hub, bind_host=host, config_path=args.config)
    print(
        f"toolmux {__import__('aggregator').__version__}: MCP at {public_url}/mcp/ "
        f"(OpenAI-compatible API at {public_url}/v1), data in {config.data_dir}",
        file=sys.stderr,
        flush=True,
    )
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop=loop,
            http="httptools",
            lifespan="on",
            log_level=args.log_level.lower(),
            timeout_keep_alive=75,
            timeout_graceful_shutdown=10,
            access_log=False,
            # The hub reads no client addresses; skip rewriting them from X-Forwarded-* on every request.
            proxy_headers=False,
        )
    )
    server.run(sockets=[sock])
    return 0 if server.started else 1


def cmd_config_check(args: argparse.Namespace) -> int:
    from aggregator import config as hub_config
    from servers import registry

    try:
        config = hub_config.load(args.file)
    except hub_config.ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    problems: list[str] = []
    from aggregator.hub import plan_servers

    planned, unavailable = plan_servers(config)
    for name, (entry, builtin) in planned.items():
        if builtin is None:
            continue
        model = registry.BUILTINS[builtin].config_class()
        if model is not None:
            from servers.kit import ServerConfigError, ServerSettings

            try:
                ServerSettings(name=name, config=entry.config).parse(model)
            except ServerConfigError as exc:
                problems.append(f"{args.file}: {exc}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    print(f"{args.file}: ok ({len(planned)} servers", end="")
    print(f"; unavailable here: {', '.join(f'{n} ({r})' for n, r in unavailable.items())})" if unavailable else ")")
    return 0


def _hub_target(args: argparse.Namespace) -> tuple[str, str | None]:
    url = args.url or os.environ.get("TOOLMUX_URL") or "http://127.0.0.1:4000/mcp/"
    key = args.key or os.environ.get("TOOLMUX_API_KEY") or os.environ.get("TOOLMUX_MASTER_KEY")
    if not key:
        path = Path(args.data_dir or "./toolmux-data") / "master.key"
        if path.exists():
            key = path.read_text(encoding="utf-8").strip()
    return url, key


def cmd_tools(args: argparse.Namespace) -> int:
    import anyio
    import httpx2

    from clients.hub import HubClient

    url, key = _hub_target(args)

    async def main() -> int:
        async with HubClient.http(url, key) as hub:
            tools = await hub.list_tools()
        health: dict[str, Any] = {}
        try:
            async with httpx2.AsyncClient(timeout=10) as http:
                response = await http.get(
                    url.rsplit("/mcp", 1)[0] + "/health", headers={"Authorization": f"Bearer {key}"} if key else {}
                )
                health = response.json() if response.status_code in (200, 503) else {}
        except (httpx2.HTTPError, ValueError):
            pass
        if args.json:
            print(
                json.dumps(
                    {
                        "tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
                        "servers": health.get("servers", {}),
                    },
                    indent=2,
                )
            )
            return 0
        width = max((len(t.name) for t in tools), default=10)
        for tool in tools:
            print(f"{tool.name:<{width}}  {(tool.description or '').splitlines()[0][:90] if tool.description else ''}")
        for name, info in health.get("servers", {}).items():
            if info.get("state") != "ready":
                print(f"# {name}: {info.get('state')}: {info.get('reason', '')}")
        return 0

    try:
        return anyio.run(main)
    except Exception as exc:
        print(f"toolmux tools: cannot reach the hub at {url}: {exc}", file=sys.stderr)
        return 1


def _parse_call_args(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = json.loads(raw_json) if raw_json else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--arg expects key=value, got {pair!r}")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


def cmd_call(args: argparse.Namespace) -> int:
    import anyio

    from clients.hub import HubClient

    url, key = _hub_target(args)
    arguments = _parse_call_args(args.arg, args.json)

    async def main() -> int:
        async def progress(value: float, total: float | None, message: str | None) -> None:
            print(f"progress {value:g}{'/' + format(total, 'g') if total else ''} {message or ''}", file=sys.stderr)

        async with HubClient.http(url, key) as hub:
            result = await hub.call_tool(args.tool, arguments, progress=progress)
        wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if result.structured_content is not None and not result.is_error:
            print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
        else:
            for block in wire.get("content", []):
                print(block.get("text") if block.get("type") == "text" else json.dumps(block))
        return 1 if result.is_error else 0

    try:
        return anyio.run(main)
    except Exception as exc:
        print(f"toolmux call: {exc}", file=sys.stderr)
        return 1


def cmd_clients(args: argparse.Namespace) -> int:
    from clients import configs

    url = args.url or "http://127.0.0.1:4000/mcp/"
    if args.app == "claude-desktop":
        print(configs.claude_desktop(url=url, config_path=args.config, use_stdio=not args.http))
    else:
        print(configs.librechat(url=url))
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

    serve = sub.add_parser("serve", help="run the hub over HTTP: MCP at /mcp/, OpenAI-compatible /v1, facades")
    serve.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 4000; 0 picks a free one)")
    serve.add_argument("--data-dir", help="data directory (default ./toolmux-data)")
    serve.set_defaults(func=cmd_serve)

    config_cmd = sub.add_parser("config", help="work with config files")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file; print precise errors")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    def hub_target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="hub MCP URL (default $TOOLMUX_URL or http://127.0.0.1:4000/mcp/)")
        p.add_argument("--key", help="API key (default $TOOLMUX_API_KEY, $TOOLMUX_MASTER_KEY, or the data dir's)")
        p.add_argument("--data-dir", help="where to find master.key (default ./toolmux-data)")

    tools = sub.add_parser("tools", help="list the live catalog of a running hub")
    hub_target(tools)
    tools.add_argument("--json", action="store_true")
    tools.set_defaults(func=cmd_tools)

    call = sub.add_parser("call", help="call one tool on a running hub")
    call.add_argument("tool")
    call.add_argument("--arg", action="append", default=[], help="key=value (value parsed as JSON when it is)")
    call.add_argument("--json", help="all arguments as one JSON object")
    hub_target(call)
    call.set_defaults(func=cmd_call)

    clients = sub.add_parser("clients", help="print ready-to-paste config for MCP apps")
    clients.add_argument("app", choices=["claude-desktop", "librechat"])
    clients.add_argument("--url", help="the hub's MCP URL (default http://127.0.0.1:4000/mcp/)")
    clients.add_argument("--config", help="claude-desktop stdio: the toolmux config to launch with")
    clients.add_argument("--http", action="store_true", help="claude-desktop: connect over HTTP instead of stdio")
    clients.set_defaults(func=cmd_clients)

    stdio = sub.add_parser("stdio", help="serve the aggregated MCP server over stdin/stdout")
    stdio.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    stdio.add_argument("--key", help="act with this named key's tool scope instead of the master key's")
    stdio.add_argument(
        "--startup-timeout", type=float, help="seconds to wait for upstreams before serving (default 30)"
    )
    stdio.set_defaults(func=cmd_stdio)
    from servers.models import usage_cli  # models domain: `toolmux usage`

    usage_cli.add_parser(sub)
    from aggregator.state import cli as state_cli  # `toolmux db upgrade`

    state_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr: on stdio faces stdout carries the protocol.
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The HTTP client logs every request line with its full URL at INFO: noise per call, and a
    # query-string secret would land in the log. Its warnings still show.
    for noisy in ("httpx2", "httpcore2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return int(args.func(args) or 0)
