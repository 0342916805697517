"""`toolmux doctor` says what is wrong here, each problem with its fix, and exits 1 when something is."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from aggregator.doctor import diagnose
from tests.support.asgi import bound_socket, serve_asgi

pytestmark = pytest.mark.anyio


def backend_app() -> Starlette:
    async def models(request: object) -> JSONResponse:
        return JSONResponse({"data": []})

    return Starlette(routes=[Route("/v1/models", models)])


def write_config(tmp_path: Path, base_url: str, data_dir: Path, port: int) -> str:
    config = {
        "builtins": ["storage", "models"],
        "server": {"data_dir": str(data_dir), "port": port},
        "mcpServers": {"models": {"config": {"backends": {"local": {"type": "openai", "base_url": base_url}}}}},
    }
    path = tmp_path / "toolmux.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_ready_machine_gets_no_problem(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    async with serve_asgi(backend_app()) as base:
        findings = await diagnose(write_config(tmp_path, f"{base}/v1", data, 0))
    failed = [f for f in findings if f.level == "fail"]
    assert failed == []
    topics = {f.topic for f in findings if f.level == "ok"}
    assert {"config", "server storage", "server models", "data dir", "port", "models backend local"} <= topics


async def test_each_problem_is_reported_with_its_fix_and_the_command_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aggregator.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    busy = bound_socket()  # a listener that is not a toolmux hub
    try:
        path = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}/v1", blocker / "data", busy.getsockname()[1])
        code = await _run_cli(main, ["doctor", "--config", path])
    finally:
        busy.close()
    out = capsys.readouterr().out
    assert code == 1
    failing = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert {line.split(":")[0].removeprefix("FAIL").strip() for line in failing} == {
        "data dir",
        "port",
        "models backend local",
    }
    assert out.count("fix: ") >= 3


async def test_an_invalid_config_is_a_problem_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: seventy\n")
    findings = await diagnose(str(path))
    assert [(f.level, f.topic) for f in findings] == [("fail", "config")]
    assert f"{path}:2: server.port" in findings[0].detail


async def _run_cli(main: object, argv: list[str]) -> int:
    import anyio

    # The CLI runs its own event loop: call it from a worker thread.
    return int(await anyio.to_thread.run_sync(main, argv))  # type: ignore[arg-type]


async def test_web_search_without_a_backend_is_a_warning_naming_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config: dict[str, object] = {"builtins": ["web"], "server": {"data_dir": str(data), "port": 0}}
    path = tmp_path / "toolmux.yaml"
    path.write_text(yaml.safe_dump(config))
    findings = {f.topic: f for f in await diagnose(str(path))}
    assert findings["web search"].level == "warn"
    assert "search.searxng.url" in findings["web search"].detail

    config["mcpServers"] = {"web": {"config": {"search": {"searxng": {"url": "http://127.0.0.1:9/"}}}}}
    path.write_text(yaml.safe_dump(config))
    findings = {f.topic: f for f in await diagnose(str(path))}
    assert findings["web search"].level == "ok"
