"""Benchmark: hub CPU of one model answer asked through each API face, in one run.

    .venv/bin/python bench/api_faces.py [--requests 400] [--rounds 4] [--stream]

The same question ("hi" -> the mock's fixed answer) through `/v1/chat/completions`,
`/v1/responses` (stored, and with `store: false`) and `/v1/messages`: every face ends in the same
`models-chat` tool call, so the difference in hub CPU per request is the cost of the face's
translation (and, for a stored response, the SQLite write). Goal: each face within +0.2 ms of chat.

Method: the parts of `bench/models_proxy.py` (its mock upstream process, the real hub as a process
with the models server in-process, the lean keep-alive client). Sequential requests (concurrency
1); `--rounds` interleaved rounds, each face measured once per round in a rotating order so load
changing during the run hits all alike. Hub CPU per request is the hub process's user+system time
(psutil) over the timed requests of a face; the figure printed is the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models_proxy import Connection, psutil
from proxy_rig import free_port, hub_process, run_mock, write_hub_config

GOAL_MS = 0.2
WARMUP = 40


def faces(stream: bool) -> dict[str, tuple[str, bytes]]:
    user = [{"role": "user", "content": "hi"}]
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "chat completions": ("/chat/completions", {"model": "main", "messages": user}),
        "responses (store: false)": ("/responses", {"model": "main", "input": "hi", "store": False}),
        "responses (stored)": ("/responses", {"model": "main", "input": "hi"}),
        "messages": ("/messages", {"model": "main", "max_tokens": 64, "messages": user}),
    }
    return {name: (path, json.dumps({**body, "stream": stream}).encode()) for name, (path, body) in bodies.items()}


async def measure(base: str, path: str, body: bytes, requests: int, process: Any) -> tuple[float, float, int]:
    """`(hub CPU ms per request, p50 latency ms, errors)` of `requests` sequential requests."""
    conn = Connection(base)
    conn.path = urlsplit(base).path.rstrip("/") + path
    for _ in range(WARMUP):
        await conn.post(body, time.perf_counter())
    latencies: list[float] = []
    errors = 0
    cpu_before = process.cpu_times()
    for _ in range(requests):
        started = time.perf_counter()
        status, _ = await conn.post(body, started)
        latencies.append(time.perf_counter() - started)
        errors += status != 200
    cpu_after = process.cpu_times()
    conn.close()
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return cpu * 1000 / requests, statistics.median(latencies) * 1000, errors


async def run(args: argparse.Namespace) -> None:
    mock_port = free_port()
    mock = multiprocessing.Process(target=run_mock, args=(mock_port,), daemon=True)
    mock.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = write_hub_config(workdir, f"http://127.0.0.1:{mock_port}/v1")
            with hub_process(config, workdir / "hub.log", None) as (base, popen):
                process = psutil.Process(popen.pid)
                cases = faces(args.stream)
                cpu: dict[str, list[float]] = {name: [] for name in cases}
                p50: dict[str, list[float]] = {name: [] for name in cases}
                failed = 0
                names = list(cases)
                for round_number in range(args.rounds):
                    order = names[round_number % len(names) :] + names[: round_number % len(names)]
                    for name in order:
                        path, body = cases[name]
                        per_request, latency, errors = await measure(base, path, body, args.requests, process)
                        cpu[name].append(per_request)
                        p50[name].append(latency)
                        failed += errors
    finally:
        mock.terminate()
    report(cpu, p50, failed, args)


def report(cpu: dict[str, list[float]], p50: dict[str, list[float]], failed: int, args: argparse.Namespace) -> None:
    kind = "streamed" if args.stream else "non-stream"
    print(f"hub CPU per request, {kind}, concurrency 1, {args.requests} requests x {args.rounds} rounds (median)")
    base = statistics.median(cpu["chat completions"])
    print(f"{'face':28} {'hub CPU ms':>11} {'vs chat':>9} {'p50 ms':>8}")
    for name, figures in cpu.items():
        ms = statistics.median(figures)
        delta = ms - base
        verdict = "" if name == "chat completions" else ("  ok" if delta <= GOAL_MS else f"  over +{GOAL_MS} ms")
        print(f"{name:28} {ms:11.3f} {delta:+9.3f} {statistics.median(p50[name]):8.3f}{verdict}")
    if failed:
        print(f"errors: {failed} requests did not answer 200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--stream", action="store_true", help="streamed answers instead of whole ones")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
