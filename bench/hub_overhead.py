"""What the hub costs per tools/call: direct-to-child vs through the hub, sequential round trips.

    .venv/bin/python bench/hub_overhead.py [-n 2000] [--warmup 200] [--profile [--profile-top 25]]

Method (printed with the results):
- The hub runs as its own process (`python -m aggregator serve --port 0` for HTTP, `python -m
  aggregator stdio` for the stdio face), fronting the probe fixture (tests/fixtures/probe_server.py)
  as a real stdio child plus the in-process `demo` built-in. The client is this process: a lean
  hand-written JSON-RPC client (newline-delimited JSON over pipes; raw http.client keep-alive with
  TCP_NODELAY), so client cost stays small and, above all, outside the measured processes.
- CPU per call is the user+system time of the hub process (all its threads, not its children) from
  /proc via psutil, read before and after the timed loop, divided by the number of calls. The
  child's CPU is read the same way. Both include whatever else the process did meanwhile; the idle
  rate of the hub is measured first and printed so it can be judged (it is not subtracted). The
  probe child does the same work per call in (a), (b) and (c): its CPU per call is printed as a
  control for contention, which inflates every CPU time on a busy machine.
- Every case is set up first, warmed up, then measured in interleaved rounds (blocks of N/rounds
  calls, case order rotated each round), so that load changing during the run hits all alike.
- Latency is wall time per round trip in the client (time.perf_counter_ns), sequential, after a
  warm-up; every response is checked (right id, echoed text, not an error).
- Cases: (a) the probe child reached directly over stdio (the baseline); (b) the same child through
  the hub over streamable HTTP, legacy 2025-11-25 session era and stateless 2026-07-28 era; (c) the
  hub's stdio face (both eras); (d) the in-process `demo-echo` built-in for reference.
- `--profile` runs the hub processes under cProfile instead (clock: the event-loop thread's CPU
  time; worker threads are not profiled) and prints their top functions by own and cumulative time.
  The profiler slows Python code down, so its rows show where time goes, not the real figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lean_peers import LEGACY, MODERN, BenchError, HttpPeer, StdioPeer, modern_meta, wait_for_tools

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MASTER_KEY = "bench-master-key-0123456789"
TARGET_CPU_MS = 0.5
TARGET_P50_MS = 1.0
PROBE_COMMAND = [PYTHON, "-m", "tests.fixtures.probe_server", "--name", "probe"]


def hub_config(data_dir: Path) -> dict[str, Any]:
    return {
        "builtins": ["demo"],
        "server": {"data_dir": str(data_dir), "startup_timeout": 60},
        "auth": {"master_key": MASTER_KEY},
        "mcpServers": {"probe": {"command": PROBE_COMMAND[0], "args": PROBE_COMMAND[1:], "cwd": str(ROOT)}},
    }


# The hub under cProfile, switched on (SIGUSR1) and off (SIGUSR2, which writes PREFIX.N) by the
# bench around each timed loop, so start-up and warm-up stay out of the profile. The clock is the
# event-loop thread's CPU time: on a busy machine a wall clock charges whatever function happens to
# be running when the process is preempted.
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


def hub_command(profile_prefix: Path | None, *args: str) -> list[str]:
    if profile_prefix is None:
        return [PYTHON, "-m", "aggregator", *args]
    return [PYTHON, "-c", PROFILED_HUB, str(profile_prefix), *args]


class HubProfiler:
    """Switches the profiled hub's profiler on and off around one timed loop."""

    def __init__(self, process: psutil.Process, prefix: Path, top: int, title: str, calls: int) -> None:
        self.process, self.prefix, self.top, self.title, self.calls = process, prefix, top, title, calls
        self.count = 0

    def start(self) -> None:
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.3)  # the handler runs when the event loop next wakes; let it

    def stop(self, case: str) -> None:
        self.process.send_signal(signal.SIGUSR2)
        self.count += 1
        path = Path(f"{self.prefix}.{self.count}")
        deadline = time.monotonic() + 30
        while not path.exists():
            if time.monotonic() > deadline:
                raise BenchError(f"the profiled hub wrote no profile at {path}")
            time.sleep(0.05)
        print_profile(f"{self.title}: {case}", path, self.top, self.calls)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def probe_child(hub: psutil.Process) -> psutil.Process:
    """The hub's probe child (the hub's only child process running the probe fixture)."""
    for child in hub.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "tests.fixtures.probe_server" in child.cmdline():
                return child
    raise BenchError("the hub has no probe child")


@contextlib.contextmanager
def http_hub(config_path: Path, log_path: Path, profile_prefix: Path | None) -> Iterator[tuple[str, subprocess.Popen]]:
    command = hub_command(profile_prefix, "serve", "--config", str(config_path), "--port", "0")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            match = re.search(r"MCP at (http://\S+/mcp/)", log_path.read_text(errors="replace"))
            if match:
                url = match.group(1)
            elif process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the hub did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.05)
        wait_for_tools(url, MASTER_KEY, {"probe-echo", "demo-echo"}, deadline)
        yield url, process
    finally:
        process.send_signal(signal.SIGINT)  # graceful: lets cProfile write its file
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- measurement ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One path under test: how to make one call, and which processes to account CPU to."""

    case: str
    path: str
    call: Callable[[str], None]
    hub: psutil.Process | None
    child: psutil.Process | None
    profiler: HubProfiler | None = None


@dataclass
class Row:
    case: str
    path: str
    n: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    hub_cpu_s: float | None = None
    child_cpu_s: float | None = None

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    @property
    def hub_cpu_ms(self) -> float | None:
        return None if self.hub_cpu_s is None else self.hub_cpu_s * 1000 / self.n

    @property
    def child_cpu_ms(self) -> float | None:
        return None if self.child_cpu_s is None else self.child_cpu_s * 1000 / self.n


def measure_block(case: Case, row: Row, calls: int, label: str) -> None:
    """Time `calls` sequential calls of one case and add them, and the CPU they cost, to its row."""
    if case.profiler:
        case.profiler.start()
    hub_before = cpu_seconds(case.hub) if case.hub else 0.0
    child_before = cpu_seconds(case.child) if case.child else 0.0
    latencies = row.latencies_ns
    clock = time.perf_counter_ns
    call = case.call
    for i in range(calls):
        started = clock()
        call(f"{label} {i}")
        latencies.append(clock() - started)
    if case.hub:
        row.hub_cpu_s = (row.hub_cpu_s or 0.0) + cpu_seconds(case.hub) - hub_before
    if case.child:
        row.child_cpu_s = (row.child_cpu_s or 0.0) + cpu_seconds(case.child) - child_before
    row.n += calls
    if case.profiler:
        case.profiler.stop(case.path)


def run_cases(cases: list[Case], *, n: int, warmup: int, rounds: int) -> list[Row]:
    """Warm every case up, then measure them in `rounds` interleaved blocks, so that a change in the
    machine's load during the run touches every case alike instead of whichever ran at that moment."""
    for case in cases:
        for i in range(warmup):
            case.call(f"warm {i}")
    rows = [Row(case.case, case.path) for case in cases]
    block = max(1, n // rounds)
    for round_number in range(rounds):
        calls = block if round_number < rounds - 1 else n - block * (rounds - 1)
        # Rotate the order too: the case after a process switch pays for cold caches.
        shift = round_number % len(cases)
        for index in [*range(shift, len(cases)), *range(shift)]:
            measure_block(cases[index], rows[index], calls, f"r{round_number}")
    return rows


def echo_checker(tool: str) -> Callable[[dict[str, Any], str], None]:
    def check(result: dict[str, Any], text: str) -> None:
        if result.get("isError") or (result.get("structuredContent") or {}).get("text") != text:
            raise BenchError(f"{tool} answered {str(result)[:300]}")

    return check


def stdio_echo(peer: StdioPeer, tool: str, *, modern: bool) -> Callable[[str], None]:
    check = echo_checker(tool)

    def call(text: str) -> None:
        params: dict[str, Any] = {"name": tool, "arguments": {"text": text}}
        if modern:
            params["_meta"] = modern_meta()
        check(peer.request("tools/call", params), text)

    return call


def http_echo(peer: HttpPeer, tool: str, *, modern: bool) -> Callable[[str], None]:
    check = echo_checker(tool)

    def call(text: str) -> None:
        params = {"name": tool, "arguments": {"text": text}}
        check(peer.request("tools/call", params, modern=modern, name=tool), text)

    return call


def idle_cpu_ms_per_s(process: psutil.Process, seconds: float = 2.0) -> float:
    before = cpu_seconds(process)
    time.sleep(seconds)
    return (cpu_seconds(process) - before) * 1000 / seconds


def stdio_peer(stack: contextlib.ExitStack, command: list[str], log_path: Path | None) -> StdioPeer:
    with log_path.open("wb") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as log:
        peer = StdioPeer(command, cwd=ROOT, stderr=log)
    stack.callback(peer.close)
    peer.initialize()
    return peer


def direct_cases(stack: contextlib.ExitStack) -> list[Case]:
    peer = stdio_peer(stack, PROBE_COMMAND, None)
    call = stdio_echo(peer, "echo", modern=False)
    child = psutil.Process(peer.process.pid)
    return [Case("a", "client -> probe child (stdio), no hub", call, hub=None, child=child)]


def target_name(tool: str) -> str:
    return "probe child (stdio)" if tool == "probe-echo" else "in-process demo built-in"


def http_cases(stack: contextlib.ExitStack, args: argparse.Namespace, scratch: Path, notes: list[str]) -> list[Case]:
    config = scratch / "hub.json"
    config.write_text(json.dumps(hub_config(scratch / "data-http")))
    prefix = (args.profile_dir or scratch) / "http.prof" if args.profile else None
    url, process = stack.enter_context(http_hub(config, scratch / "http-hub.log", prefix))
    hub = psutil.Process(process.pid)
    child = probe_child(hub)
    profiler = HubProfiler(hub, prefix, args.profile_top, "HTTP hub", args.n) if prefix else None
    notes.append(f"HTTP hub idle: {idle_cpu_ms_per_s(hub):.2f} ms CPU per second")
    cases = []
    for tool, case in (("probe-echo", "b"), ("demo-echo", "d")):
        for modern, era in ((False, f"legacy {LEGACY}, session"), (True, f"stateless {MODERN}")):
            peer = HttpPeer(url, MASTER_KEY)
            stack.callback(peer.close)
            if not modern:
                peer.initialize()
            path = f"client -> hub HTTP {era} -> {target_name(tool)}"
            probe = child if case == "b" else None
            cases.append(Case(case, path, http_echo(peer, tool, modern=modern), hub, probe, profiler))
    return cases


def stdio_face_cases(
    stack: contextlib.ExitStack, args: argparse.Namespace, scratch: Path, notes: list[str]
) -> list[Case]:
    config = scratch / "hub-stdio.json"
    config.write_text(json.dumps(hub_config(scratch / "data-stdio")))
    prefix = (args.profile_dir or scratch) / "stdio.prof" if args.profile else None
    command = hub_command(prefix, "stdio", "--config", str(config), "--startup-timeout", "60")
    peer = stdio_peer(stack, command, scratch / "stdio-hub.log")
    names = {t["name"] for t in peer.request("tools/list", {})["tools"]}
    if not {"probe-echo", "demo-echo"} <= names:
        raise BenchError(f"the stdio hub lists {sorted(names)}")
    hub = psutil.Process(peer.process.pid)
    child = probe_child(hub)
    profiler = HubProfiler(hub, prefix, args.profile_top, "stdio hub", args.n) if prefix else None
    notes.append(f"stdio hub idle: {idle_cpu_ms_per_s(hub):.2f} ms CPU per second")
    cases = []
    for tool, case in (("probe-echo", "c"), ("demo-echo", "d")):
        for modern, era in ((False, f"legacy {LEGACY}"), (True, f"stateless {MODERN}")):
            path = f"client -> hub stdio face {era} -> {target_name(tool)}"
            probe = child if case == "c" else None
            cases.append(Case(case, path, stdio_echo(peer, tool, modern=modern), hub, probe, profiler))
    return cases


# --- output -----------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row], baseline: Row) -> None:
    base_p50 = baseline.percentile(0.5)
    base_child = baseline.child_cpu_ms
    header = ["", "path", "p50 ms", "p99 ms", "+p50 ms", "hub CPU ms/call", "child CPU ms/call", "child x"]
    lines = [
        [
            row.case,
            row.path,
            fmt(row.percentile(0.5)),
            fmt(row.percentile(0.99)),
            "-" if row is baseline else fmt(row.percentile(0.5) - base_p50),
            fmt(row.hub_cpu_ms),
            fmt(row.child_cpu_ms),
            fmt(row.child_cpu_ms / base_child, 2) if row.child_cpu_ms is not None and base_child else "-",
        ]
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, ["-" * w for w in widths], *lines]:
        cells = [
            str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells))


def print_verdict(rows: list[Row], baseline: Row) -> None:
    print(f"\nTarget (issue 2): the hub adds at most {TARGET_CPU_MS} ms CPU and {TARGET_P50_MS} ms p50 per call.")
    base_p50 = baseline.percentile(0.5)
    for row in rows:
        if row.case not in ("b", "c"):
            continue
        added = row.percentile(0.5) - base_p50
        cpu = row.hub_cpu_ms or 0.0
        ok = cpu <= TARGET_CPU_MS and added <= TARGET_P50_MS
        print(f"  {'MET ' if ok else 'MISS'} {row.path}: +{cpu:.3f} ms CPU, +{added:.3f} ms p50")


def where(filename: str) -> str:
    """A profile row's file as a reader finds it: project-relative, or package-relative in site-packages."""
    site = "site-packages" + os.sep
    if site in filename:
        return filename.split(site, 1)[1]
    if filename.startswith(str(ROOT) + os.sep):
        return filename[len(str(ROOT)) + 1 :]
    stdlib = os.sep + "lib" + os.sep + "python3"
    if stdlib in filename:
        return "stdlib/" + filename.split(stdlib, 1)[1].split(os.sep, 1)[-1]
    return filename


def package_of(filename: str) -> str:
    place = where(filename)
    if place.startswith("~") or place.startswith("<"):
        return "builtins (C)"
    if place.startswith("stdlib/"):
        return "stdlib " + place.removeprefix("stdlib/").split(os.sep)[0].removesuffix(".py")
    return place.split(os.sep)[0].removesuffix(".py")


def print_profile(title: str, path: Path, top: int, calls: int) -> None:
    """Own time grouped by package, then the top functions by own and by cumulative time (file:line)."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values()) or 1e-9
    function_calls = sum(row[1] for row in stats.values())
    print(f"\n=== cProfile of the {title} ===")
    print(
        f"{total * 1000 / calls:.3f} ms profiled CPU and {function_calls / calls:.0f} Python function calls"
        f" per tools/call in the event-loop thread"
    )
    by_package: dict[str, list[float]] = {}
    for (filename, _, _), (_, ncalls, tottime, _, _) in stats.items():
        entry = by_package.setdefault(package_of(filename), [0.0, 0.0])
        entry[0] += tottime
        entry[1] += ncalls
    print("own time by package:")
    for package, (tottime, ncalls) in sorted(by_package.items(), key=lambda item: -item[1][0])[:12]:
        print(f"  {100 * tottime / total:5.1f}%  {ncalls / calls:7.1f} calls/call  {package}")
    for key, label in ((2, "own time"), (3, "cumulative time")):
        print(f"top {top} by {label} (ncalls counts each resumption of a coroutine):")
        rows = sorted(stats.items(), key=lambda item: -item[1][key])[:top]
        for (filename, line, function), (_, ncalls, tottime, cumtime, _) in rows:
            print(
                f"  {100 * tottime / total:5.1f}% own {100 * cumtime / total:5.1f}% cum {ncalls / calls:6.1f}/call"
                f"  {where(filename)}:{line}({function})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="timed calls per case (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each case (default 200)")
    parser.add_argument("--profile", action="store_true", help="run the hubs under cProfile and print hot spots")
    parser.add_argument("--profile-top", type=int, default=25, help="rows per profile listing (default 25)")
    parser.add_argument("--profile-dir", type=Path, help="keep the profiles (http.prof.N, stdio.prof.N) here")
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved blocks each case is measured in (default 10)"
    )
    parser.add_argument("--only", choices=["http", "stdio"], action="append", help="run only these faces")
    args = parser.parse_args(argv)
    parts = args.only or ["http", "stdio"]
    notes: list[str] = []
    rounds = 1 if args.profile else max(1, args.rounds)
    os.environ.setdefault("TOOLMUX_LOG_LEVEL", "WARNING")
    print(
        f"hub overhead: {args.n} sequential tools/call per case after {args.warmup} warm-up calls,"
        f" measured in {rounds} interleaved rounds",
        flush=True,
    )
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="hub-overhead-") as scratch_dir, contextlib.ExitStack() as stack:
        scratch = Path(scratch_dir)
        try:
            cases = direct_cases(stack)
            if "http" in parts:
                cases += http_cases(stack, args, scratch, notes)
            if "stdio" in parts:
                cases += stdio_face_cases(stack, args, scratch, notes)
            rows = run_cases(cases, n=args.n, warmup=args.warmup, rounds=rounds)
        except BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    baseline = rows[0]
    print()
    print_table(rows, baseline)
    print(
        "\n+p50: added to the direct baseline (a). hub CPU: user+system time of the hub process (all threads,"
        "\nnot children) over the timed calls / calls. child CPU: the probe child's, the same way. child x: the"
        "\nchild's CPU per call relative to (a), for the same work: a control; well above 1.00 means the machine"
        "\nwas contended (other processes, 3 of ours on few cores) and every CPU figure is inflated about as much."
    )
    for note in notes:
        print(f"  {note}")
    if args.profile:
        print(
            "\n(cProfile was on: the figures above are inflated by the profiler; run without --profile for real ones)"
        )
    else:
        print_verdict(rows, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
