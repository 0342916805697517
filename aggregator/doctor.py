"""`toolmux doctor`: is this machine ready to run toolmux with this config? Each problem with its fix.

A finding is `ok`, `warn` (works, with less: e.g. a domain left out of `builtins: auto`) or
`fail` (something a person asked for cannot work). The command exits 1 when anything failed.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2

from aggregator import datadir
from aggregator.config import ConfigError, HubConfig, load
from aggregator.config import default as default_config

Level = Literal["ok", "warn", "fail"]

# Debian package that provides each executable a built-in needs.
DEBIAN_PACKAGE = {"chromium": "chromium", "ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "bwrap": "bubblewrap"}


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.level.upper():<4}  {self.topic}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix and self.level != "ok" else text


def check_config(path: str | None) -> tuple[HubConfig | None, list[Finding]]:
    if path is None:
        return default_config(), [Finding("ok", "config", "none given: the embedded default")]
    try:
        config = load(path, builtins=True)
    except ConfigError as exc:
        fix = "correct the file (toolmux config check lists every problem)"
        return None, [Finding("fail", "config", problem, fix) for problem in exc.problems]
    return config, [Finding("ok", "config", f"{path} is valid")]


def check_domains(config: HubConfig) -> list[Finding]:
    from aggregator.hub import plan_servers
    from servers import registry

    planned, unavailable = plan_servers(config)
    findings = [Finding("ok", f"server {name}", "can run here") for name, (_, b) in planned.items() if b is not None]
    for name, reason in unavailable.items():
        builtin = registry.BUILTINS.get(name)
        fix = None
        if builtin is not None:
            missing = [exe for exe in builtin.executables if shutil.which(exe) is None]
            if missing:
                packages = sorted({DEBIAN_PACKAGE.get(exe, exe) for exe in missing})
                fix = f"apt-get install {' '.join(packages)}"
            elif builtin.extra:
                fix = f"pip install 'toolmux[{builtin.extra}]'"
        # Under `builtins: auto` a missing domain is simply left out; one asked for by name cannot work.
        asked = (config.builtins != "auto" and name in config.builtins) or name in config.servers
        findings.append(Finding("fail" if asked else "warn", f"server {name}", f"left out: {reason}", fix))
    if "speech" in planned and shutil.which("espeak-ng") is None:
        findings.append(
            Finding("warn", "server speech", "espeak-ng is missing: only piper voices", "apt-get install espeak-ng")
        )
    return findings


async def check_sandbox(config: HubConfig) -> list[Finding]:
    from aggregator.hub import plan_servers

    if "workspaces" not in plan_servers(config)[0]:
        return []
    from servers.workspaces.config import WorkspacesConfig
    from servers.workspaces.doctor import shell_isolation

    entry = config.servers.get("workspaces")
    section = entry.config if entry else {}
    # The workspaces server's own probe: it tries the sandbox the way a run would.
    isolation = await anyio.to_thread.run_sync(shell_isolation, section, Path(config.data_dir))
    if isolation["shell"] == "bubblewrap":
        return [Finding("ok", "workspace sandbox", "bubblewrap isolates commands here")]
    if isolation["ok"]:
        return [Finding("warn", "workspace sandbox", f"{isolation['shell']}: {isolation['reason']}")]
    bwrap_path = WorkspacesConfig.model_validate(dict(section or {})).shell.bwrap_path
    fix = (
        "apt-get install bubblewrap"
        if shutil.which(bwrap_path) is None
        else "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; in Docker run with "
        "--security-opt seccomp=unconfined or a seccomp profile allowing clone/unshare), or choose "
        "shell.sandbox: none (commands then run as a separate unprivileged user; needs the hub to run as root)"
    )
    return [Finding("fail", "workspace sandbox", f"the agent's shell is off: {isolation['reason']}", fix)]


def check_web(config: HubConfig) -> list[Finding]:
    from aggregator.hub import plan_servers

    if "web" not in plan_servers(config)[0]:
        return []
    from servers.web.config import search_unavailable_reason

    entry = config.servers.get("web")
    reason = search_unavailable_reason(entry.config if entry else None)
    if reason is None:
        return [Finding("ok", "web search", "a search backend is configured")]
    return [Finding("warn", "web search", f"web-search is absent: {reason}", "see docs/web.md (servers.web.config)")]


def check_data_dir(config: HubConfig) -> list[Finding]:
    path = config.data_dir
    try:
        datadir.ensure_usable(path)
    except datadir.DataDirError as exc:
        return [Finding("fail", "data dir", str(exc).removeprefix("toolmux: "), f"mkdir -p {path} && chmod 700 {path}")]
    findings = [Finding("ok", "data dir", f"{path} is writable")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        findings.append(
            Finding("warn", "data dir", f"{path} is readable by others (mode {mode:o})", f"chmod 700 {path}")
        )
    key = path / "master.key"
    if key.exists() and stat.S_IMODE(key.stat().st_mode) & 0o077:
        findings.append(Finding("fail", "master key", f"{key} is readable by others", f"chmod 600 {key}"))
    return findings


async def check_port(config: HubConfig) -> list[Finding]:
    host, port = config.server.host, config.server.port
    if port == 0:
        return [Finding("ok", "port", "0: a free port is picked at start")]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return [Finding("ok", "port", f"{host}:{port} is free")]
        except OSError as exc:
            why = exc.strerror or str(exc)
    shown = f"[{host}]" if ":" in host else host
    try:
        async with httpx2.AsyncClient(timeout=2) as http:
            if (await http.get(f"http://{shown}:{port}/health/liveliness")).status_code == 200:
                return [Finding("ok", "port", f"{host}:{port}: a toolmux hub is already running there")]
    except httpx2.HTTPError:
        pass
    return [Finding("fail", "port", f"cannot listen on {host}:{port}: {why}", "stop what uses it, or --port N")]


def backend_urls(config: HubConfig) -> dict[str, str]:
    """{what: base URL} of every remote the config names: remote MCP servers and models backends."""
    urls = {f"mcpServers.{name}": entry.url for name, entry in config.servers.items() if entry.url and entry.enabled}
    models = config.servers.get("models")
    backends: Any = (models.config if models else {}).get("backends", {})
    if isinstance(backends, dict):
        for name, backend in backends.items():
            if isinstance(backend, dict) and isinstance(backend.get("base_url"), str):
                urls[f"models backend {name}"] = backend["base_url"]
    return urls


async def check_backends(config: HubConfig) -> list[Finding]:
    findings: list[Finding] = []

    async def probe(what: str, url: str, http: httpx2.AsyncClient) -> None:
        try:
            response = await http.get(url)
            findings.append(Finding("ok", what, f"{url} answers (HTTP {response.status_code})"))
        except httpx2.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            fix = f"start the service, or correct the URL in the config ({what})"
            findings.append(Finding("fail", what, f"{url} cannot be reached: {why}", fix))

    async with httpx2.AsyncClient(timeout=5) as http, anyio.create_task_group() as tg:
        for what, url in backend_urls(config).items():
            tg.start_soon(probe, what, url, http)
    return sorted(findings, key=lambda f: f.topic)


async def diagnose(config_path: str | None, data_dir: str | None = None) -> list[Finding]:
    config, findings = check_config(config_path)
    if config is None:
        return findings
    config.server.data_dir = str(datadir.resolve(data_dir, config.server.data_dir, config_file=config.source))
    findings += check_domains(config)
    findings += await check_sandbox(config)
    findings += check_web(config)
    findings += check_data_dir(config)
    findings += await check_port(config)
    findings += await check_backends(config)
    return findings


def run(config_path: str | None, data_dir: str | None = None) -> int:
    # The doctor's own probes must not pick up a proxy from the environment for loopback backends.
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost,::1")
    findings = anyio.run(diagnose, config_path, data_dir)
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if f.level == "fail"]
    warned = [f for f in findings if f.level == "warn"]
    print(f"\n{len(failed)} problem(s), {len(warned)} warning(s)" if failed or warned else "\nall good")
    return 1 if failed else 0
