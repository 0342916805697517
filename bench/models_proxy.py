"""Benchmark: an OpenAI-compatible mock upstream called directly vs through toolmux's /v1 facade.

    .venv/bin/python bench/models_proxy.py [--requests 400] [--quick]

Runs non-stream and streaming chat at concurrency 1 and 32 against a fast local mock upstream
(its own process), first directly, then through toolmux (its own process: uvicorn, one worker,
the OpenAI facade over the in-process models server), and, when the `litellm` package is
importable, through LiteLLM's proxy with one worker. Prints RPS, p50/p99 latency and the
time to first token (TTFT) of streams, and the overhead toolmux adds at concurrency 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "bench-key"
CHUNKS = 8
WARMUP = 20

try:
    import psutil  # the proxy process's own CPU time per request
except ImportError:  # pragma: no cover - psutil comes with the test extra
    psutil = None

# --- the mock upstream: a minimal HTTP/1.1 keep-alive server speaking the OpenAI chat API --------


def _answer_bodies() -> tuple[bytes, list[bytes]]:
    usage = {"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS}
    message = {"role": "assistant", "content": "word " * CHUNKS}
    plain = json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "mock",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }
    ).encode()
    events = []
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "mock"}
    events.append(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    )
    events += [
        {**base, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]} for _ in range(CHUNKS)
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": usage})
    frames = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    return plain, frames


class MockUpstream(asyncio.Protocol):
    plain, frames = _answer_bodies()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self.respond(head.split(" ", 2)[1], body)

    def respond(self, path: str, body: bytes) -> None:
        if path.endswith("/models"):
            payload = b'{"object":"list","data":[{"id":"mock","object":"model"}]}'
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload)
                + payload
            )
            return
        if b'"stream":true' in body.replace(b" ", b""):
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for frame in self.frames:  # one write per event, as a generating model would
                self.transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.transport.write(b"0\r\n\r\n")
        else:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(self.plain)
                + self.plain
            )


def run_mock(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(MockUpstream, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


# --- toolmux: the OpenAI facade over an in-process models server ---------------------------------


def run_toolmux(port: int, upstream: str, data_dir: str) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from aggregator.facade import openai as openai_facade
    from aggregator.facade.base import DirectFacadeContext
    from servers.kit import ServerSettings
    from servers.models.server import create

    config = {
        "backends": {"mock": {"type": "openai", "base_url": upstream}},
        "aliases": {"main": {"deployments": [{"backend": "mock", "model": "mock"}]}},
        "health": {"enabled": False},
    }
    domain = create(ServerSettings(name="models", config=config, data_dir=Path(data_dir)))
    ctx = DirectFacadeContext({"models": domain}, master_key=KEY)
    app = Starlette(routes=openai_facade.routes(ctx))
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools", access_log=False
    )


# --- load generator ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {KEY}"}) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "/models")).status_code < 500:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def load(base: str, model: str, *, stream: bool, concurrency: int, total: int) -> dict[str, float]:
    import httpx2

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}).encode()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=60, verify=False) as client:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            if stream:
                async with client.stream("POST", base + "/chat/completions", content=body, headers=headers) as response:
                    first = None
                    async for line in response.aiter_lines():
                        if first is None and line.startswith("data: ") and '"content":"word' in line.replace(" ", ""):
                            first = time.perf_counter() - start
                    ok = response.status_code == 200
                if first is not None:
                    ttfts.append(first)
            else:
                response = await client.post(base + "/chat/completions", content=body, headers=headers)
                ok = response.status_code == 200
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

        for _ in range(WARMUP):  # warm up connections and caches
            await one()
        latencies.clear()
        ttfts.clear()
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 0.5) * 1000,
        "p99": pct(latencies, 0.99) * 1000,
        "ttft": (statistics.median(ttfts) * 1000) if ttfts else float("nan"),
        "errors": errors,
    }


def start_litellm(upstream: str, port: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    if importlib.util.find_spec("litellm") is None or shutil.which("litellm") is None:
        return None
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: main\n    litellm_params:\n"
        f"      model: openai/mock\n      api_base: {upstream}\n      api_key: none\n"
        f"general_settings:\n  master_key: {KEY}\n"
    )
    return subprocess.Popen(
        ["litellm", "--config", str(config), "--port", str(port), "--num_workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(total: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    mock_port, toolmux_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    workdir = Path(tempfile.mkdtemp(prefix="toolmux-bench-"))
    processes = [ctx.Process(target=run_mock, args=(mock_port,), daemon=True)]
    processes.append(ctx.Process(target=run_toolmux, args=(toolmux_port, upstream, str(workdir)), daemon=True))
    for process in processes:
        process.start()
    targets = [("direct", upstream, "mock"), ("toolmux", f"http://127.0.0.1:{toolmux_port}/v1", "main")]
    litellm = None
    litellm_port = free_port()
    litellm = start_litellm(upstream, litellm_port, workdir)
    if litellm is not None:
        targets.append(("litellm", f"http://127.0.0.1:{litellm_port}", "main"))
    try:
        for _, url, _ in targets:
            await wait_ready(url, timeout=120 if "litellm" in url else 30)
        results: dict[tuple[str, bool, int], dict[str, float]] = {}
        toolmux_process = psutil.Process(processes[1].pid) if psutil is not None else None
        header = f"{'mode':8} {'stream':6} {'conc':>4} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} {'TTFT ms':>8}"
        print(header + "  proxy CPU ms/request")
        for stream in (False, True):
            for concurrency in (1, 32):
                for name, url, model in targets:
                    n = total if concurrency == 1 else total * 4
                    watched = toolmux_process if name == "toolmux" else None
                    cpu_before = sum(watched.cpu_times()[:2]) if watched is not None else 0.0
                    figures = await load(url, model, stream=stream, concurrency=concurrency, total=n)
                    cpu = None
                    if watched is not None:
                        cpu = (sum(watched.cpu_times()[:2]) - cpu_before) * 1000 / (n + WARMUP)
                    results[(name, stream, concurrency)] = figures
                    ttft = f"{figures['ttft']:8.2f}" if stream else f"{'-':>8}"
                    errors = f"  ({int(figures['errors'])} errors)" if figures["errors"] else ""
                    row = f"{name:8} {stream!s:6} {concurrency:>4} {figures['rps']:8.0f}"
                    row += f" {figures['p50']:8.2f} {figures['p99']:8.2f} {ttft}"
                    row += f"  {cpu:8.2f}" if cpu is not None else f"  {'':8}"
                    row += errors
                    print(row)
        print()
        for stream in (False, True):
            added = results[("toolmux", stream, 1)]["p50"] - results[("direct", stream, 1)]["p50"]
            kind = "stream" if stream else "non-stream"
            print(f"toolmux adds {added:.2f} ms p50 at concurrency 1 ({kind}; target <= 1 ms)")
            if litellm is not None:
                ratio = results[("toolmux", stream, 32)]["rps"] / max(results[("litellm", stream, 32)]["rps"], 1e-9)
                print(f"toolmux serves {ratio:.1f}x LiteLLM's RPS at concurrency 32 ({kind}; target >= 20x)")
        print("(other load on the machine moves every figure here: compare runs on a quiet machine)")
        if litellm is None:
            print("LiteLLM is not installed: its proxy was not measured (optional; pip install 'litellm[proxy]').")
    finally:
        for process in processes:
            process.terminate()
        if litellm is not None:
            litellm.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per run at concurrency 1 (x4 at 32)")
    parser.add_argument("--quick", action="store_true", help="a short run (100 requests)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    asyncio.run(run(100 if args.quick else args.requests))


if __name__ == "__main__":
    main()
