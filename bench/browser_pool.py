"""Browser pool benchmark: launch time, and goto+get_text throughput with 1 vs N sessions.

    .venv/bin/python bench/browser_pool.py [--rounds 30] [--sessions 4] [--browsers 2]

Serves a small page on loopback (allow-listed), drives the real browser server in-process
(Playwright + Debian's Chromium, every request through the filtering proxy) and prints:
  - driver start + first Chromium launch, and a relaunch after the process is killed
  - per configuration: total actions/s and p50/p95 latency of one goto+get_text pair
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.kit import Domain
from tests.support.browser_site import browser_domain, call, ok, serve_site


async def launch_times(data_dir: Path, url: str) -> tuple[float, float]:
    domain = browser_domain(data_dir, with_storage=False)
    try:
        started = time.perf_counter()
        await ok(domain, "get_text", {"session": "first"})
        cold = time.perf_counter() - started
        slot = domain.service.pool.slots[0]
        assert slot.pid is not None
        os.kill(slot.pid, signal.SIGKILL)
        await call(domain, "get_text", {"session": "first"})  # reports the lost session once
        started = time.perf_counter()
        await ok(domain, "get_text", {"session": "first"})
        relaunch = time.perf_counter() - started
        return cold, relaunch
    finally:
        await domain.service.aclose()


async def throughput(domain: Domain, url: str, sessions: int, rounds: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def worker(name: str) -> None:
        for i in range(rounds):
            started = time.perf_counter()
            await ok(domain, "goto", {"session": name, "url": f"{url}/article?i={i}"})
            page = await ok(domain, "get_text", {"session": name, "max_chars": 2000})
            assert page["title"] == "Article"
            latencies.append(time.perf_counter() - started)

    for s in range(sessions):  # open every session (and launch browsers) outside the timing
        await ok(domain, "goto", {"session": f"s{s}", "url": f"{url}/form"})
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for s in range(sessions):
            tg.start_soon(worker, f"s{s}")
    elapsed = time.perf_counter() - started
    return 2 * sessions * rounds / elapsed, latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="goto+get_text pairs per session")
    parser.add_argument("--sessions", type=int, default=4, help="parallel sessions in the N-session runs")
    parser.add_argument("--browsers", type=int, default=2, help="browser processes in the pooled run")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        async with serve_site() as site:
            cold, relaunch = await launch_times(Path(tmp) / "launch", site.url)
            print(f"driver start + first Chromium launch + first session: {cold * 1000:7.0f} ms")
            print(f"relaunch after the browser process was killed:        {relaunch * 1000:7.0f} ms")
            print()
            print(f"goto + get_text on a local 12 kB page, {options.rounds} pairs per session")
            print(f"{'browsers':>8} {'sessions':>8} {'actions/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
            configs = [(1, 1), (1, options.sessions), (options.browsers, options.sessions)]
            for browsers, sessions in configs:
                domain = browser_domain(
                    Path(tmp) / f"b{browsers}s{sessions}", {"browsers": browsers}, with_storage=False
                )
                try:
                    rate, latencies = await throughput(domain, site.url, sessions, options.rounds)
                finally:
                    await domain.service.aclose()
                p50, p95 = quantile(latencies, 0.5) * 1000, quantile(latencies, 0.95) * 1000
                print(f"{browsers:>8} {sessions:>8} {rate:>10.1f} {p50:>8.1f} {p95:>8.1f}")
    print(f"\n(machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    anyio.run(main)
