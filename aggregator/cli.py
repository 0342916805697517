"""The `toolmux` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
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
    from aggregator import datadir

    try:
        os.environ[ENV_DATA_DIR] = str(datadir.ensure_usable(datadir.resolve(args.data_dir)))
    except datadir.DataDirError as exc:
        print(f"{exc} [server {args.name}]", file=sys.stderr)
        return 2
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


def _settle_data_dir(args: argparse.Namespace, config: Any, command: str) -> bool:
    """Apply the one data-dir rule to `config` and make sure the directory is usable.

    On failure prints one line (no traceback: a desktop client shows only the last stderr line)
    and returns False; the caller exits with code 2.
    """
    from aggregator import datadir

    path = datadir.resolve(getattr(args, "data_dir", None), config.server.data_dir, config_file=config.source)
    try:
        datadir.ensure_usable(path)
    except datadir.DataDirError as exc:
        print(f"{exc} [{command}]", file=sys.stderr)
        return False
    config.server.data_dir = str(path)
    return True


def cmd_stdio(args: argparse.Namespace) -> int:
    import importlib.util

    import anyio
    import uvicorn

    from aggregator.app import HubApp
    from aggregator.auth import resolve_master_key
    from aggregator.config import ConfigError
    from aggregator.front.stdio_face import StdioFace
    from aggregator.http_server import server_options
    from aggregator.hub import Hub
    from aggregator.principal import MASTER

    try:
        config = _hub_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.startup_timeout is not None:
        config.server.startup_timeout = args.startup_timeout
    if not _settle_data_dir(args, config, "stdio"):
        return 2
    # Over stdio stderr is the desktop client's log file: a generated key is stored, never shown.
    key_file = config.data_dir / "master.key"
    had_key = key_file.exists()
    master_key = resolve_master_key(config, announce=False)
    if not had_key and key_file.exists():
        print(f"toolmux stdio: generated a master key, stored in {key_file}", file=sys.stderr)
    # Built-ins running as child processes call the hub back (e.g. speech storing audio); over
    # stdio the hub has no HTTP face, so it opens a private one on loopback for them.
    sock = bind_socket("127.0.0.1", 0)
    hub = Hub(config, master_key=master_key, public_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    principal = hub.keys.principal_for(args.key) if args.key else None
    if args.key and principal is None:
        print("toolmux stdio: --key matches no configured key", file=sys.stderr)
        return 2
    toolset = hub.keys.toolsets.get(args.toolset) if args.toolset is not None else None
    if args.toolset is not None and toolset is None:
        print(f"toolmux stdio: --toolset {args.toolset!r} is not in the config's toolsets", file=sys.stderr)
        return 2
    principal = hub.keys.mcp_view(principal or MASTER, toolset)
    app = HubApp(hub, bind_host="127.0.0.1")
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, **server_options(config.http))
    )
    server.config.load()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(config.server.startup_timeout + 30):
                await app.started.wait()
            await StdioFace(app.core, principal).serve()
            server.should_exit = True

    try:
        anyio.run(main, backend_options={"use_uvloop": importlib.util.find_spec("uvloop") is not None})
    except KeyboardInterrupt:  # Ctrl-C in a terminal: a stop, not a crash
        print("toolmux stdio: stopped", file=sys.stderr)
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


def _drop_cancelled_tracebacks(record: logging.LogRecord) -> bool:
    import asyncio

    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _key_source(config: Any) -> str:
    """Where the master key comes from, for the start-up summary (never the key itself)."""
    from aggregator.auth import MASTER_KEY_ENV, MASTER_KEY_FILE

    if config.auth.master_key:
        return f"from auth.master_key in {config.source}"
    if os.environ.get(MASTER_KEY_ENV):
        return f"from ${MASTER_KEY_ENV}"
    return f"in {config.data_dir / MASTER_KEY_FILE}"


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    import uvicorn

    from aggregator.app import HubApp
    from aggregator.auth import resolve_master_key
    from aggregator.config import ConfigError
    from aggregator.http_server import server_options
    from aggregator.hub import Hub
    from aggregator.startup_report import StartupReport

    try:
        config = _hub_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if not _settle_data_dir(args, config, "serve"):
        return 2
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
    report = StartupReport(public_url, _key_source(config))
    app.on_join, app.on_ready = report.joined, _then_freeze(report.ready)
    print(
        f"toolmux {__import__('aggregator').__version__}: starting on {public_url}, data in {config.data_dir}",
        file=sys.stderr,
        flush=True,
    )
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    server = _stoppable_server(
        uvicorn.Config(
            app,
            loop=loop,
            lifespan="on",
            log_level=args.log_level.lower(),
            timeout_graceful_shutdown=10,
            access_log=False,
            # httptools with the header timeout and connection cap of the `http:` section.
            **server_options(config.http),
        )
    )
    # A second Ctrl-C skips the graceful shutdown; uvicorn then logs the cancelled lifespan as a crash.
    logging.getLogger("uvicorn.error").addFilter(_drop_cancelled_tracebacks)
    server.run(sockets=[sock])
    if server.stopped_by:
        print("toolmux: stopped", file=sys.stderr, flush=True)
    return 0 if server.started else 1


def _then_freeze(ready: Callable[[], None]) -> Callable[[], None]:
    """`ready`, after moving start-up's objects (~100k, alive as long as the hub) out of the garbage
    collector's full passes: each walked them all, ~40 ms about every 3000 requests."""

    def on_ready() -> None:
        import gc

        gc.freeze()
        ready()

    return on_ready


def _stoppable_server_class() -> Any:
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    class StoppableServer(uvicorn.Server):
        """uvicorn's server, except that Ctrl-C or SIGTERM ends the process normally.

        uvicorn re-raises a captured signal once it has shut down: SIGINT then surfaces as a
        KeyboardInterrupt traceback and SIGTERM as death by signal. A person stopping the hub (or
        systemd, or Docker) gets the graceful shutdown (in-flight requests get
        timeout_graceful_shutdown seconds, children are stopped) and exit code 0.
        """

        stopped_by: list[int]

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            self.stopped_by = []
            with super().capture_signals():
                try:
                    yield
                finally:
                    self.stopped_by = list(self._captured_signals)
                    self._captured_signals.clear()

    return StoppableServer


def _stoppable_server(config: Any) -> Any:
    return _stoppable_server_class()(config)


def cmd_config_check(args: argparse.Namespace) -> int:
    from aggregator import config as hub_config
    from aggregator import datadir
    from aggregator.hub import plan_servers

    try:
        # Every problem of the file in one run: structure, unset variables and built-ins' own sections.
        config = hub_config.load(args.file, builtins=True)
    except hub_config.ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    planned, unavailable = plan_servers(config)
    where = datadir.resolve(None, config.server.data_dir, config_file=config.source)
    print(f"{args.file}: ok ({len(planned)} servers", end="")
    print(
        f"; unavailable here: {', '.join(f'{n} ({r})' for n, r in unavailable.items())}" if unavailable else "", end=""
    )
    print(f"); data dir {where}")
    return 0


def _hub_target(args: argparse.Namespace) -> tuple[str, str | None]:
    url = args.url or os.environ.get("TOOLMUX_URL") or "http://127.0.0.1:4000/mcp/"
    key = args.key or os.environ.get("TOOLMUX_API_KEY") or os.environ.get("TOOLMUX_MASTER_KEY")
    if not key:
        from aggregator import datadir

        path = datadir.resolve(args.data_dir) / "master.key"
        if path.exists():
            key = path.read_text(encoding="utf-8").strip()
    return url, key


def cmd_tools(args: argparse.Namespace) -> int:
    import anyio
    import httpx2

    from clients.hub import HubClient

    url, key = _hub_target(args)
    if args.toolset:
        url = toolset_url(url, args.toolset)

    async def main() -> int:
        async with HubClient.http(url, key) as hub:
            tools = await hub.list_tools()
        if args.size:
            listing = {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]}
            size = len(json.dumps(listing, separators=(",", ":")).encode())
            print(f"{len(tools)} tools, {size} bytes, ~{estimated_tokens(size)} tokens")
            return 0
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
        print(f"toolmux tools: cannot reach the hub at {url}: {_root_cause(exc)}", file=sys.stderr)
        return 1


def toolset_url(url: str, toolset: str) -> str:
    """The MCP URL of a toolset: `/mcp/` becomes `/mcp/<toolset>/`."""
    base = url.rstrip("/")
    return f"{base.rsplit('/mcp', 1)[0]}/mcp/{toolset}/"


def estimated_tokens(size: int) -> int:
    """Tokens a JSON listing costs a model, estimated at ~4 bytes a token (what GPT and Claude
    tokenizers average on schema JSON)."""
    return (size + 3) // 4


def _root_cause(exc: BaseException) -> str:
    """The error a person can act on: the innermost of task-group wrappers, with its kind."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) or type(exc).__name__ in ("ConnectError", "ConnectTimeout"):
        return f"{text} (is `toolmux serve` running there?)"
    return text


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
        async def progress(progress: float, total: float | None, message: str | None) -> None:
            print(f"progress {progress:g}{'/' + format(total, 'g') if total else ''} {message or ''}", file=sys.stderr)

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
        print(f"toolmux call: {_root_cause(exc)}", file=sys.stderr)
        return 1


def cmd_clients(args: argparse.Namespace) -> int:
    from aggregator import datadir
    from clients import configs

    url = args.url or configs.DEFAULT_MCP_URL
    if args.app == "claude-desktop":
        # The launched hub must find the same data dir whatever directory the app starts it in.
        data_dir = None if args.http else datadir.resolve(args.data_dir)
        print(configs.claude_desktop(url=url, config_path=args.config, use_stdio=not args.http, data_dir=data_dir))
    elif args.app == "librechat":
        print(configs.librechat(url=url))
    elif args.app == "librechat-endpoint":
        print(configs.librechat_endpoint(url=url, model=args.model))
    elif args.app == "open-webui":
        print(configs.open_webui(url=url))
    elif args.app == "continue":
        print(configs.continue_dev(url=url, model=args.model))
    else:
        print(configs.openai_env(url=url))
    return 0


# The apps clients/configs.py generates for (listed here so that building the parser imports no client code).
CLIENT_APPS = ("claude-desktop", "librechat", "librechat-endpoint", "open-webui", "continue", "openai-env")

DATA_DIR_HELP = (
    "data directory (default: $TOOLMUX_DATA_DIR, else the config's server.data_dir, else the user data dir, "
    "e.g. ~/.local/share/toolmux)"
)


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
    server.add_argument("--data-dir", help=DATA_DIR_HELP)
    server.set_defaults(func=cmd_server)

    serve = sub.add_parser("serve", help="run the hub over HTTP: MCP at /mcp/, OpenAI-compatible /v1, facades")
    serve.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 4000; 0 picks a free one)")
    serve.add_argument("--data-dir", help=DATA_DIR_HELP)
    serve.set_defaults(func=cmd_serve)

    config_cmd = sub.add_parser("config", help="work with config files")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file; print precise errors")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    doctor = sub.add_parser("doctor", help="check this machine and config: extras, system packages, sandbox, ...")
    doctor.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    doctor.add_argument("--data-dir", help=DATA_DIR_HELP)
    doctor.set_defaults(func=lambda args: __import__("aggregator.doctor").doctor.run(args.config, args.data_dir))

    def hub_target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="hub MCP URL (default $TOOLMUX_URL or http://127.0.0.1:4000/mcp/)")
        p.add_argument("--key", help="API key (default $TOOLMUX_API_KEY, $TOOLMUX_MASTER_KEY, or the data dir's)")
        p.add_argument("--data-dir", help="where to find master.key; " + DATA_DIR_HELP)

    tools = sub.add_parser("tools", help="list the live catalog of a running hub")
    hub_target(tools)
    tools.add_argument("--json", action="store_true")
    tools.add_argument("--toolset", help="list what a client of this toolset receives (/mcp/<toolset>/)")
    tools.add_argument("--size", action="store_true", help="print the listing's bytes and estimated tokens")
    tools.set_defaults(func=cmd_tools)

    call = sub.add_parser("call", help="call one tool on a running hub")
    call.add_argument("tool")
    call.add_argument("--arg", action="append", default=[], help="key=value (value parsed as JSON when it is)")
    call.add_argument("--json", help="all arguments as one JSON object")
    hub_target(call)
    call.set_defaults(func=cmd_call)

    clients = sub.add_parser("clients", help="print ready-to-paste config for MCP and OpenAI-compatible apps")
    clients.add_argument("app", choices=CLIENT_APPS)
    clients.add_argument("--url", help="the hub's MCP URL or root URL (default http://127.0.0.1:4000/mcp/)")
    clients.add_argument("--config", help="claude-desktop stdio: the toolmux config to launch with")
    clients.add_argument("--data-dir", help="claude-desktop stdio: data dir to pin; " + DATA_DIR_HELP)
    clients.add_argument("--http", action="store_true", help="claude-desktop: connect over HTTP instead of stdio")
    clients.add_argument("--model", default="main", help="model alias for /v1 apps (default main)")
    clients.set_defaults(func=cmd_clients)

    stdio = sub.add_parser("stdio", help="serve the aggregated MCP server over stdin/stdout")
    stdio.add_argument("--config", help="toolmux YAML config (default: the embedded default)")
    stdio.add_argument("--data-dir", help=DATA_DIR_HELP)
    stdio.add_argument("--key", help="act with this named key's tool scope instead of the master key's")
    stdio.add_argument("--toolset", help="serve only this toolset of the config (narrows the key, never widens)")
    stdio.add_argument(
        "--startup-timeout", type=float, help="seconds to wait for upstreams before serving (default 30)"
    )
    stdio.set_defaults(func=cmd_stdio)
    from servers.models import usage_cli  # models domain: `toolmux usage`

    usage_cli.add_parser(sub)
    from aggregator.state import cli as state_cli  # `toolmux db upgrade`

    state_cli.add_parser(sub)
    from aggregator.console import keys_cli  # `toolmux keys create|list|rotate|revoke`

    keys_cli.add_parser(sub)
    try:  # `toolmux upstream login` needs the oauth extra (authlib)
        from aggregator.oauth.upstream import login as upstream_login
    except ImportError:
        pass
    else:
        upstream_login.add_parser(sub)
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
