"""The rig the proxy benchmarks share: an OpenAI-compatible mock upstream in its own process, and the
real toolmux hub started as `python -m aggregator serve` (optionally under cProfile).

Used by bench/models_proxy.py, bench/api_faces.py, bench/official_clients.py and bench/scaleout.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

KEY = "bench-master-key-0123456789"
CHUNKS = 8

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the hub under test ---------------------------------------------------------------------------

# The hub under cProfile, switched on (SIGUSR1) and off (SIGUSR2, which writes PREFIX.N) around each
# timed loop, so start-up and warm-up stay out of the profile. The clock is the event-loop thread's
# CPU time: on a busy machine a wall clock charges whatever runs when the process is preempted.
PROFILED_HUB = """
import cProfile, os, runpy, signal, sys, time
prefix, sys.argv = sys.argv[1], ["aggregator", *sys.argv[2:]]
state = {"profiler": None, "count": 0}

def start(*_):
    state["profiler"] = cProfile.Profile(time.thread_time)
    state["profiler"].enable()

def stop(*_):
    profiler, state["profiler"] = state["profiler"], None
    if profiler is not None:
        profiler.disable()
        state["count"] += 1
        path = f"{prefix}.{state['count']}"
        profiler.dump_stats(path + ".tmp")
        os.replace(path + ".tmp", path)

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
try:
    runpy.run_module("aggregator", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
"""


def write_hub_config(workdir: Path, upstream: str) -> Path:
    config = {
        "builtins": ["models"],
        "server": {"data_dir": str(workdir / "data"), "startup_timeout": 60},
        "auth": {"master_key": KEY},
        "mcpServers": {
            "models": {
                "config": {
                    "backends": {"mock": {"type": "openai", "base_url": upstream}},
                    "aliases": {"main": {"deployments": [{"backend": "mock", "model": "mock"}]}},
                    "health": {"enabled": False},
                }
            }
        },
    }
    path = workdir / "toolmux.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@contextlib.contextmanager
def hub_process(config: Path, log_path: Path, profile_prefix: Path | None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m aggregator serve --port 0`; yields its OpenAI base URL (from the stderr banner)."""
    args = ["serve", "--config", str(config), "--port", "0"]
    command = [PYTHON, "-m", "aggregator", *args]
    if profile_prefix is not None:
        command = [PYTHON, "-c", PROFILED_HUB, str(profile_prefix), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            match = re.search(r"OpenAI-compatible API at (http://\S+/v1)", log_path.read_text(errors="replace"))
            if match:
                yield match.group(1), process
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)  # graceful: flushes usage, lets cProfile finish
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
