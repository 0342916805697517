"""Hub CPU per request as the official clients see it: the `mcp` Python client and the `openai` SDK.

    .venv/bin/python bench/official_clients.py [-n 600] [--rounds 6] [--warmup 40] [--only mcp,chat,floor]

Method (printed with the results):
- The hub is the real thing in its own process: `python -m aggregator serve --config <json> --port 0`,
  with the in-process `demo` built-in (`demo-echo`), the probe fixture as a real stdio child
  (`probe-echo`) and the in-process models server pointing at a fake OpenAI-compatible backend.
- The fake backend is its own process (bench/models_proxy.py's keep-alive asyncio server), answering
  a fixed chat completion or a stream of 20 content chunks (plus a finish chunk, a usage chunk and
  `[DONE]`).
- The floor is a bare ASGI app on uvicorn + httptools (uvloop when installed, as the hub runs) in its
  own process, answering the same completion or 20-chunk stream from memory. The `openai` SDK drives
  it exactly like the hub, so "floor" is what one HTTP request costs a Python server here.
- Clients (this process, sequential, one request in flight): the official `mcp.Client` over streamable
  HTTP, in the 2025-11-25 session era (`mode="legacy"`) and the stateless 2026-07-28 era (default
  `mode="auto"`), calling each tool; `openai.AsyncOpenAI` doing non-streamed chat completions and
  streamed ones (every chunk read). Every answer is checked.
- CPU per request is user+system time of the server process only (all its threads, not its children),
  from /proc via psutil, read around each timed block, divided by its requests. The hub's idle rate is
  measured first and printed, not subtracted.
- Contention control: the probe child's and the fake backend's CPU per request (the same work in
  every round), the floor itself, and the load average before and after. On a busy machine every
  CPU figure is inflated about alike; compare the hub with the floor of the same run.
- `--baseline DIR` runs a second hub from another checkout (its cases tagged with the directory's
  name) in the same interleaved rounds: before and after under the same load.
- Every case is warmed up, then measured in interleaved rounds (blocks of n/rounds, the order rotated
  each round), so load changing during the run touches every case alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from hub_overhead import HubProfiler, hub_command  # noqa: E402
from proxy_rig import MockUpstream  # noqa: E402

PYTHON = sys.executable
KEY = "bench-master-key-0123456789"
CHUNKS = 20
PROBE_COMMAND = [PYTHON, "-m", "tests.fixtures.probe_server", "--name", "probe"]
GOALS_MS = {"tools/call": 0.5, "chat": 0.6, "stream": 1.5}


# --- the fake backend and the floor: the same answers ------------------------------------------------


def answer_bodies(chunks: int = CHUNKS) -> tuple[bytes, list[bytes]]:
    """A chat completion, and the SSE frames of a stream of `chunks` content chunks."""
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    base = {"id": "c1", "created": 1, "model": "fake"}
    message = {"role": "assistant", "content": "word " * chunks}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    plain = json.dumps({**base, "object": "chat.completion", "choices": [choice], "usage": usage}).encode()
    chunk = {**base, "object": "chat.completion.chunk"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "word "}, "finish_reason": None}]}
    ]
    events += [
        {**chunk, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
        for _ in range(chunks - 1)
    ]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**chunk, "choices": [], "usage": usage})
    frames = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    return plain, frames


class FakeBackend(MockUpstream):
    plain, frames = answer_bodies()


def run_fake_backend(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FakeBackend, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: a bare ASGI app answering what the fake backend answers, from memory."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if b'"stream":true' in body.replace(b" ", b""):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for frame in FakeBackend.frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(FakeBackend.plain)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": FakeBackend.plain})


def run_floor(port: int) -> None:
    import importlib.util

    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    uvicorn.run(
        floor_app,
        host="127.0.0.1",
        port=port,
        loop=loop,
        http="httptools",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        lifespan="off",
    )


def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the hub ------------------------------------------------------------------------------------------


def hub_config(data_dir: Path, backend: str, tree: Path = ROOT) -> dict[str, Any]:
    return {
        "builtins": ["demo", "models"],
        "server": {"data_dir": str(data_dir), "startup_timeout": 60},
        "auth": {"master_key": KEY},
        "mcpServers": {
            "probe": {"command": PROBE_COMMAND[0], "args": PROBE_COMMAND[1:], "cwd": str(tree)},
            "models": {
                "config": {
                    "backends": {"fake": {"type": "openai", "base_url": backend}},
                    "aliases": {"main": {"deployments": [{"backend": "fake", "model": "fake"}]}},
                    "health": {"enabled": False},
                }
            },
        },
    }


@contextlib.contextmanager
def hub_process(
    config: Path, log_path: Path, profile: Path | None, tree: Path = ROOT
) -> Iterator[tuple[str, psutil.Process]]:
    """`python -m aggregator serve --port 0` of the checkout `tree`; yields the base URL from its ready
    line, and the process."""
    command = hub_command(profile, "serve", "--config", str(config), "--port", "0")
    env = {**os.environ, "PYTHONPATH": str(tree), "TOOLMUX_LOG_LEVEL": "WARNING"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=tree, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            match = re.search(r"MCP at (http://\S+)/mcp/", log_path.read_text(errors="replace"))
            if match:
                yield match.group(1), psutil.Process(process.pid)
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def probe_child(hub: psutil.Process) -> psutil.Process:
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "tests.fixtures.probe_server" in child.cmdline():
                return child
    raise RuntimeError("the hub has no probe child")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --- the official clients -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mcp_client(url: str, mode: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=None)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, read_timeout_seconds=60) as client,
    ):
        yield client


def tool_call(client: Any, tool: str) -> Callable[[int], Awaitable[None]]:
    async def call(i: int) -> None:
        text = f"hello {i}"
        result = await client.call_tool(tool, {"text": text})
        if result.is_error or (result.structured_content or {}).get("text") != text:
            raise RuntimeError(f"{tool} answered {str(result)[:300]}")

    return call


def chat_call(client: Any, model: str, *, stream: bool) -> Callable[[int], Awaitable[None]]:
    messages = [{"role": "user", "content": "hi"}]

    async def plain(_: int) -> None:
        answer = await client.chat.completions.create(model=model, messages=messages)
        if answer.choices[0].message.content != "word " * CHUNKS:
            raise RuntimeError(f"chat answered {str(answer)[:300]}")

    async def streamed(_: int) -> None:
        words = 0
        async for chunk in await client.chat.completions.create(model=model, messages=messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                words += 1
        if words != CHUNKS:
            raise RuntimeError(f"the stream carried {words} content chunks, not {CHUNKS}")

    return streamed if stream else plain


# --- measurement --------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    kind: str  # tools/call, chat, stream, or floor-*
    call: Callable[[int], Awaitable[None]]
    server: psutil.Process  # whose CPU is the figure
    controls: dict[str, psutil.Process] = field(default_factory=dict)  # same work every request
    n: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    client_cpu: float = 0.0
    control_cpu: dict[str, float] = field(default_factory=dict)
    profiler: HubProfiler | None = None

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.n if self.n else float("nan")

    def p50_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2] * 1000 if ordered else float("nan")


async def measure_block(case: Case, calls: int, start: int, me: psutil.Process) -> None:
    if case.profiler is not None:
        case.profiler.start()
    before = cpu_seconds(case.server)
    controls_before = {name: cpu_seconds(p) for name, p in case.controls.items()}
    client_before = cpu_seconds(me)
    clock = time.perf_counter
    for i in range(start, start + calls):
        began = clock()
        await case.call(i)
        case.latencies.append(clock() - began)
    case.client_cpu += cpu_seconds(me) - client_before
    case.cpu += cpu_seconds(case.server) - before
    for name, process in case.controls.items():
        case.control_cpu[name] = case.control_cpu.get(name, 0.0) + cpu_seconds(process) - controls_before[name]
    case.n += calls
    if case.profiler is not None:
        case.profiler.stop(case.name)


async def run_rounds(cases: list[Case], *, n: int, rounds: int, warmup: int) -> None:
    me = psutil.Process()
    for case in cases:
        for i in range(warmup):
            await case.call(-1 - i)
    block = max(1, n // rounds)
    for number in range(rounds):
        calls = block if number < rounds - 1 else n - block * (rounds - 1)
        shift = number % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            await measure_block(case, calls, number * block, me)


def idle_rate(process: psutil.Process, seconds: float = 2.0) -> float:
    before = cpu_seconds(process)
    time.sleep(seconds)
    return (cpu_seconds(process) - before) * 1000 / seconds


def print_table(cases: list[Case]) -> None:
    header = ["case", "p50 ms", "server CPU ms/req", "client CPU ms/req", "controls CPU ms/req", "goal"]
    lines = []
    for case in cases:
        controls = ", ".join(f"{name} {case.per_request_ms(s):.3f}" for name, s in case.control_cpu.items()) or "-"
        cpu = case.per_request_ms(case.cpu)
        goal = GOALS_MS.get(case.kind)
        verdict = "-" if goal is None else f"{'met' if cpu <= goal else 'MISS'} (<= {goal})"
        client = f"{case.per_request_ms(case.client_cpu):.2f}"
        lines.append([case.name, f"{case.p50_ms():.2f}", f"{cpu:.3f}", client, controls, verdict])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *lines]:
        cells = enumerate(zip(row, widths, strict=True))
        print("  ".join(c.ljust(w) if i in (0, 4, 5) else c.rjust(w) for i, (c, w) in cells))


async def run(args: argparse.Namespace) -> int:
    import openai

    parts = set(args.only.split(",")) if args.only else {"mcp", "chat", "floor"}
    ctx = multiprocessing.get_context("spawn")
    backend_port, floor_port = free_port(), free_port()
    backend = ctx.Process(target=run_fake_backend, args=(backend_port,), daemon=True)
    floor = ctx.Process(target=run_floor, args=(floor_port,), daemon=True)
    backend.start()
    floor.start()
    wait_listening(backend_port)
    wait_listening(floor_port)
    load_before = os.getloadavg()
    print(
        f"official clients: {args.n} sequential requests per case after {args.warmup} warm-up ones,"
        f" {args.rounds} interleaved rounds; {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
        f" load average {load_before[0]:.2f}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="official-clients-") as scratch_dir:
            async with contextlib.AsyncExitStack() as stack:
                scratch = Path(scratch_dir)
                prefix = scratch / "hub.prof" if args.profile else None
                fake = psutil.Process(backend.pid)
                floor_process = psutil.Process(floor.pid)
                sdk_options: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "timeout": 60}
                trees = [("", ROOT)] + ([(f"[{args.baseline.name}] ", args.baseline)] if args.baseline else [])
                cases: list[Case] = []
                hubs: list[psutil.Process] = []
                for tag, tree in trees:
                    work = scratch / (tag.strip("[] ") or "hub")
                    work.mkdir()
                    config = work / "toolmux.json"
                    config.write_text(
                        json.dumps(hub_config(work / "data", f"http://127.0.0.1:{backend_port}/v1", tree))
                    )
                    log = work / "hub.log"
                    base, hub = stack.enter_context(hub_process(config, log, prefix if not tag else None, tree))
                    hubs.append(hub)
                    child = probe_child(hub)
                    if "mcp" in parts:
                        for mode, era in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
                            client = await stack.enter_async_context(mcp_client(f"{base}/mcp/", mode))
                            if client.protocol_version != era:
                                raise RuntimeError(f"mode {mode} negotiated {client.protocol_version}, not {era}")
                            for tool, target in (("demo-echo", "in-process"), ("probe-echo", "stdio child")):
                                controls = {"probe": child} if tool == "probe-echo" else {}
                                name = f"{tag}mcp {era} tools/call -> {target}"
                                cases.append(Case(name, "tools/call", tool_call(client, tool), hub, controls))
                    if "chat" in parts:
                        hub_sdk = openai.AsyncOpenAI(base_url=f"{base}/v1", **sdk_options)
                        stack.push_async_callback(hub_sdk.close)
                        for stream, kind in ((False, "chat"), (True, "stream")):
                            label = f"{tag}openai {'20-chunk stream' if stream else 'chat completion'}"
                            call = chat_call(hub_sdk, "main", stream=stream)
                            cases.append(Case(f"{label} -> hub -> fake", kind, call, hub, {"fake": fake}))
                if "floor" in parts:
                    floor_sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{floor_port}/v1", **sdk_options)
                    stack.push_async_callback(floor_sdk.close)
                    for stream, kind in ((False, "chat"), (True, "stream")):
                        label = f"openai {'20-chunk stream' if stream else 'chat completion'}"
                        call = chat_call(floor_sdk, "fake", stream=stream)
                        cases.append(Case(f"{label} -> floor (bare uvicorn)", f"floor-{kind}", call, floor_process))
                hub = hubs[0]
                if prefix is not None:
                    profiler = HubProfiler(hub, prefix, args.profile_top, "hub", args.n)
                    for case in cases:
                        if case.server is hub:
                            case.profiler = profiler
                idle = ", ".join(f"{idle_rate(h):.2f}" for h in hubs)
                await run_rounds(cases, n=args.n, rounds=args.rounds, warmup=args.warmup)
    finally:
        for process in (backend, floor):
            process.terminate()
    print()
    print_table(cases)
    load_after = os.getloadavg()
    print(
        f"\nserver CPU: user+system time of the hub (or the floor) process over the timed requests / requests."
        f"\nclient CPU: this process (the official client) per request. controls: the probe child's or the fake"
        f"\nbackend's CPU per request, the same work in every round: a contention gauge, as is the floor."
        f"\nhub idle: {idle} ms CPU per second (not subtracted). load average before {load_before[0]:.2f},"
        f" after {load_after[0]:.2f} (1 min)."
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=600, help="timed requests per case (default 600)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--warmup", type=int, default=40, help="untimed requests per case first (default 40)")
    parser.add_argument("--only", default="", help="comma-separated parts: mcp, chat, floor (default all)")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (e.g. /work/main) whose hub runs in the same rounds"
    )
    parser.add_argument("--profile", action="store_true", help="profile the hub (cProfile, one round)")
    parser.add_argument("--profile-top", type=int, default=30, help="rows per profile listing (default 30)")
    parser.add_argument("--method", action="store_true", help="print how the figures are taken")
    args = parser.parse_args()
    if args.profile:
        args.rounds = 1
    if args.method:
        print(__doc__.split("Method (printed with the results):\n")[1])
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
