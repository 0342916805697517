"""Benchmark: an OpenAI-compatible mock upstream called directly vs through the real toolmux hub.

    .venv/bin/python bench/models_proxy.py [--requests 400] [--rounds 4] [--quick] [--large]
                                            [--profile [--profile-top 30]]

Method (printed with the results):
- The mock upstream is its own process: a minimal HTTP/1.1 keep-alive server speaking the OpenAI
  chat API (a JSON answer, or 8 SSE content chunks plus finish and usage chunks).
- toolmux is the real hub in its own process: `python -m aggregator serve --config <yaml> --port 0`
  with `builtins: [models]` pointing at the mock (the models server in-process, called through the
  hub's dispatch; usage recording on, health probes off). Its URL is read from its stderr banner.
- The client is this process: a lean hand-written HTTP/1.1 keep-alive client (one connection per
  concurrent worker, TCP_NODELAY), so client cost stays small and the same for every target.
- Cases: non-stream and streaming chat at concurrency 1 and 32 (with `--large`, also non-stream at
  concurrency 1 with a large request: 40 messages and 16 tools, to show per-byte costs). Each case
  runs `--rounds` interleaved rounds, alternating which target goes first, so that load changing
  during the run hits both alike; latencies of all rounds are pooled.
- Latency is wall time per request in the client; TTFT is the time to the first chunk carrying
  content. Hub CPU per request is the hub process's user+system time (all threads) from psutil over
  its timed requests; the hub's idle CPU rate is measured first and printed (not subtracted).
- With the `litellm` package importable (not installed by toolmux), its proxy is measured too.
- `--profile` runs the hub under cProfile (clock: event-loop thread CPU time; worker threads are not
  profiled), switched on only around the timed toolmux requests, and prints its top functions per
  case. The profiler slows Python down: use its rows for where time goes, not for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy_rig import KEY, PYTHON, free_port, hub_process, run_mock, write_hub_config  # noqa: E402

WARMUP = 30
TARGET_ADDED_P50_MS = 1.0

try:
    import psutil  # the hub process's own CPU time per request
except ImportError:  # pragma: no cover - psutil comes with the test extra
    psutil = None


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


# --- a lean HTTP/1.1 keep-alive client ------------------------------------------------------------


class Connection:
    """One keep-alive connection; `post` returns (status, seconds to the first content chunk)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path.rstrip("/") + "/chat/completions"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def post(self, body: bytes, started: float) -> tuple[int, float | None]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {self.path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nauthorization: Bearer {KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        reader = self.reader
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        first: float | None = None
        if "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(size + 2)
                if first is None and b"word" in data:
                    first = time.perf_counter() - started
        if headers.get("connection") == "close":
            self.close()
        return status, first


def chat_body(model: str, *, stream: bool, large: bool) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if large:  # a long agent conversation: a system prompt, 40 turns, 16 tool definitions
        messages[:] = [{"role": "system", "content": "You are a careful assistant. " * 40}]
        for turn in range(20):
            messages.append({"role": "user", "content": f"question {turn}: " + "lorem ipsum dolor sit amet " * 20})
            messages.append({"role": "assistant", "content": f"answer {turn}: " + "consectetur adipiscing " * 20})
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": f"tool_{i}",
                    "description": "Does one thing well. " * 5,
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                        "required": ["city"],
                    },
                },
            }
            for i in range(16)
        ]
        body["temperature"] = 0.2
        body["max_tokens"] = 256
    return json.dumps(body).encode()


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    cpu: float = 0.0  # hub CPU seconds over the timed requests
    sys_cpu: float = 0.0  # the kernel's part of it (socket writes and reads, wake-ups)
    requests: int = 0

    def row(self) -> dict[str, float]:
        def pct(q: float) -> float:
            ordered = sorted(self.latencies)
            return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000 if ordered else float("nan")

        return {
            "rps": len(self.latencies) / self.elapsed if self.elapsed else float("nan"),
            "p50": pct(0.5),
            "p99": pct(0.99),
            "ttft": statistics.median(self.ttfts) * 1000 if self.ttfts else float("nan"),
            "cpu": self.cpu * 1000 / self.requests if self.requests else float("nan"),
            "sys": self.sys_cpu * 100 / self.cpu if self.cpu else float("nan"),
        }


async def load(base: str, body: bytes, *, concurrency: int, total: int, figures: Figures, warmup: int) -> None:
    connections = [Connection(base) for _ in range(concurrency)]

    async def one(conn: Connection, record: bool) -> None:
        started = time.perf_counter()
        try:
            status, first = await conn.post(body, started)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn.close()
            status, first = 0, None
        if not record:
            return
        if status == 200:
            figures.latencies.append(time.perf_counter() - started)
            if first is not None:
                figures.ttfts.append(first)
        else:
            figures.errors += 1

    try:
        for conn in connections:  # open and warm every connection
            for _ in range(max(warmup // concurrency, 1)):
                await one(conn, record=False)
        remaining = total

        async def worker(conn: Connection) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(conn, record=True)

        began = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        figures.elapsed += time.perf_counter() - began
    finally:
        for conn in connections:
            conn.close()


async def wait_ready(base: str, model: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    conn = Connection(base)
    body = chat_body(model, stream=False, large=False)
    while True:
        try:
            status, _ = await conn.post(body, time.perf_counter())
            if status == 200:
                conn.close()
                return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not answer a chat in {timeout} s")
        await asyncio.sleep(0.1)


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the profiled hub wrote no profile at {path}")
        time.sleep(0.05)


def spy_files(workdir: Path, key: str) -> list[Path]:
    return sorted(workdir.glob(f"spy.{key}.*"))


def cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return times.user + times.system


def print_profile(title: str, path: Path, top: int, requests: int) -> None:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n--- hub profile: {title} ({total * 1000 / max(requests, 1):.3f} ms loop-thread CPU per request)")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)[:top]  # type: ignore[attr-defined]
    print(f"{'cum %':>6} {'own %':>6} {'calls/req':>9}  function")
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in rows:
        where = filename.replace(str(ROOT) + "/", "")
        where = re.sub(r".*/site-packages/", "", where)
        print(f"{ct * 100 / total:6.1f} {tt * 100 / total:6.1f} {nc / max(requests, 1):9.2f}  {where}:{line}({name})")
    own = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    print("  by own time:")
    for (filename, line, name), (_cc, nc, tt, _ct, _callers) in own:
        where = re.sub(r".*/site-packages/", "", filename.replace(str(ROOT) + "/", ""))
        print(f"  {tt * 100 / total:6.1f}%  {nc / max(requests, 1):7.2f}/req  {where}:{line}({name})")


def start_sampler(spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the hub (GIL-holding samples only, so idle waits stay out) until stopped."""
    command = [spy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw", "--gil", "-o", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attaching takes a moment
    return process


def stop_sampler(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _frame_name(frame: str) -> str:
    """`function (path/to/file.py:line)` with the interpreter and site-packages prefixes cut."""
    frame = frame.replace(str(ROOT) + "/", "")
    return re.sub(r"\((?:/[^)]*/(?:site-packages|lib/python3\.\d+)/)", "(", frame)


def print_samples(title: str, paths: list[Path], top: int) -> None:
    """Top functions by inclusive and own share of the hub's samples (py-spy collapsed stacks)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame_name(f) for f in stack.split(";")[1:]]  # the first frame names the thread
            total += count
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
            if frames:
                own[frames[-1]] = own.get(frames[-1], 0) + count
    print(f"\n--- hub samples (py-spy, GIL held): {title}: {total} samples")
    if not total:
        return
    for label, table in (("inclusive", inclusive), ("own", own)):
        print(f"  by {label} share:")
        for frame, count in sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:top]:
            print(f"  {count * 100 / total:6.1f}%  {frame}")


@dataclass(frozen=True)
class Case:
    stream: bool
    concurrency: int
    large: bool = False

    @property
    def key(self) -> str:
        return f"{'large' if self.large else 'stream' if self.stream else 'plain'}{self.concurrency}"

    @property
    def label(self) -> str:
        return f"{'stream' if self.stream else 'plain':6} {'large' if self.large else 'small':5} {self.concurrency:>4}"


async def run(args: argparse.Namespace) -> None:
    ctx = multiprocessing.get_context("spawn")
    mock_port = free_port()
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    workdir = Path(tempfile.mkdtemp(prefix="toolmux-bench-"))
    mock = ctx.Process(target=run_mock, args=(mock_port,), daemon=True)
    mock.start()
    litellm_port = free_port()
    litellm = start_litellm(upstream, litellm_port, workdir)
    profile_prefix = workdir / "hub.prof" if args.profile else None
    cases = [Case(s, c) for s in (False, True) for c in (1, 32)]
    if args.large or "large1" in args.only:
        cases.append(Case(False, 1, large=True))
    if args.only:
        cases = [c for c in cases if c.key in args.only.split(",")]
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent) + os.pathsep + os.environ.get("PATH", ""))
    if args.py_spy and spy is None:
        raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy, into your own environment)")
    try:
        with hub_process(write_hub_config(workdir, upstream), workdir / "hub.log", profile_prefix) as (hub_url, hub):
            targets = [("direct", upstream, "mock"), ("toolmux", hub_url, "main")]
            if litellm is not None:
                targets.append(("litellm", f"http://127.0.0.1:{litellm_port}", "main"))
            for name, url, model in targets:
                await wait_ready(url, model, timeout=120 if name == "litellm" else 60)
            watched = psutil.Process(hub.pid) if psutil is not None else None
            if args.method:
                print(__doc__.split("Method (printed with the results):\n")[1].split("\n\n")[0])
            if watched is not None:
                before = cpu_seconds(watched)
                await asyncio.sleep(1.0)
                print(f"hub idle CPU: {(cpu_seconds(watched) - before) * 1000:.1f} ms per second")
            results: dict[tuple[str, Case], Figures] = {}
            profile_count = 0
            header = f"{'target':8} {'kind':6} {'body':5} {'conc':>4} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8}"
            print(header + f" {'TTFT ms':>8} {'hub CPU ms/req':>14} {'(sys %)':>7}")
            for case in cases:
                per_round = args.requests // args.rounds * (4 if case.concurrency > 1 else 1)
                body_of = {name: chat_body(model, stream=case.stream, large=case.large) for name, _, model in targets}
                for name, _, _ in targets:
                    results[(name, case)] = Figures()
                if profile_prefix is not None and watched is not None:
                    watched.send_signal(signal.SIGUSR1)
                    await asyncio.sleep(0.3)  # the handler runs when the hub's loop next wakes
                for round_no in range(args.rounds):
                    order = targets if round_no % 2 == 0 else list(reversed(targets))
                    for name, url, _ in order:
                        figures = results[(name, case)]
                        is_hub = name == "toolmux" and watched is not None
                        sampler = None
                        if is_hub and args.py_spy:
                            sampler = start_sampler(spy, hub.pid, workdir / f"spy.{case.key}.{round_no}")
                        cpu_before = cpu_seconds(watched) if is_hub else 0.0
                        sys_before = watched.cpu_times().system if is_hub else 0.0
                        await load(
                            url,
                            body_of[name],
                            concurrency=case.concurrency,
                            total=per_round,
                            figures=figures,
                            warmup=WARMUP if round_no == 0 else case.concurrency,
                        )
                        if sampler is not None:
                            stop_sampler(sampler)
                        if is_hub:
                            figures.cpu += cpu_seconds(watched) - cpu_before
                            figures.sys_cpu += watched.cpu_times().system - sys_before
                            figures.requests += per_round + (WARMUP if round_no == 0 else case.concurrency)
                if profile_prefix is not None and watched is not None:
                    watched.send_signal(signal.SIGUSR2)
                    profile_count += 1
                    # Wait for the file, else the next case's SIGUSR1 could overtake this SIGUSR2.
                    await asyncio.to_thread(wait_for_file, Path(f"{profile_prefix}.{profile_count}"))
                for name, _, _ in targets:
                    row = results[(name, case)].row()
                    ttft = f"{row['ttft']:8.2f}" if case.stream else f"{'-':>8}"
                    cpu = f"{row['cpu']:14.3f} {row['sys']:6.0f}%" if name == "toolmux" and watched is not None else ""
                    errors = results[(name, case)].errors
                    line = f"{name:8} {case.label} {row['rps']:8.0f} {row['p50']:8.2f} {row['p99']:8.2f} {ttft} {cpu}"
                    print(line + (f"  ({errors} errors)" if errors else ""), flush=True)
            print()
            for case in cases:
                if case.concurrency != 1:
                    continue
                added = results[("toolmux", case)].row()["p50"] - results[("direct", case)].row()["p50"]
                kind = ("stream" if case.stream else "non-stream") + (", large request" if case.large else "")
                target = f"target <= {TARGET_ADDED_P50_MS:g} ms"
                line = f"toolmux adds {added:.2f} ms p50 at concurrency 1 ({kind}; {target})"
                if case.stream:
                    ttft_added = results[("toolmux", case)].row()["ttft"] - results[("direct", case)].row()["ttft"]
                    line += f"; TTFT +{ttft_added:.2f} ms"
                print(line)
            if litellm is not None:
                for case in cases:
                    if case.concurrency == 32:
                        litellm_rps = max(results[("litellm", case)].row()["rps"], 1e-9)
                        ratio = results[("toolmux", case)].row()["rps"] / litellm_rps
                        kind = "stream" if case.stream else "non-stream"
                        print(f"toolmux serves {ratio:.1f}x LiteLLM's RPS at concurrency 32 ({kind}; target >= 20x)")
            print("(other load on the machine moves every figure here: compare runs on a quiet machine)")
            if litellm is None:
                print("LiteLLM is not installed: its proxy was not measured (optional; pip install 'litellm[proxy]').")
        if args.py_spy:
            for case in cases:
                print_samples(case.label, spy_files(workdir, case.key), args.profile_top)
        if profile_prefix is not None:
            for number, case in enumerate(cases, start=1):
                path = Path(f"{profile_prefix}.{number}")
                print_profile(case.label, path, args.profile_top, results[("toolmux", case)].requests)
    finally:
        mock.terminate()
        if litellm is not None:
            litellm.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per case at concurrency 1 (x4 at 32)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per case")
    parser.add_argument("--quick", action="store_true", help="a short run (100 requests)")
    parser.add_argument("--large", action="store_true", help="add a case with a large chat request")
    parser.add_argument("--method", action="store_true", help="print how the figures are taken")
    parser.add_argument("--profile", action="store_true", help="profile the hub (cProfile) per case")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the hub with py-spy (when installed) per case instead"
    )
    parser.add_argument("--only", default="", help="comma-separated cases to run, e.g. plain1,stream1,large1")
    args = parser.parse_args()
    if args.quick:
        args.requests = 100
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
