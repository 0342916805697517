"""Benchmark: what the workspaces agent adds per turn, what a sandboxed command costs, file API speed.

    .venv/bin/python bench/workspaces_runs.py [--turns 20] [--runs 5] [--quick]

Everything runs in this process on loopback, like the tests: the real models domain in front of a
scripted fake OpenAI upstream (answers at once), the real workspaces domain calling it through an
in-process hub. Prints:

- model call: one `models-chat` through the hub to the fake (the floor an agent turn cannot beat);
- agent turn: a run of N turns that each call a cheap file tool (list_files), per turn, and the
  overhead per turn over the model call (tool dispatch, transcript append, events);
- shell turn: the same with `run_shell true`, under bubblewrap (when it works here) and as a separate
  user (sandbox none);
- file API: write_file/read_file through the tool path and PUT/GET over HTTP, small and large files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.aggregator.facade.workspaces_support import AUTH, serve_workspaces  # noqa: E402
from tests.servers.workspaces.conftest import Env, workspaces_env  # noqa: E402
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn, scripted_openai, tool_results  # noqa: E402


def turns_policy(tool: str, arguments: dict[str, Any], turns: int) -> Callable[[dict[str, Any]], Turn]:
    def policy(body: dict[str, Any]) -> Turn:
        done = len(tool_results(body))
        if done < turns - 1:
            return Turn(calls=[(tool, arguments)])
        return Turn(content=f"done after {done} tool calls")

    return policy


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.2f} ms"


async def model_call_floor(env: Env, n: int) -> float:
    args = {"model": "main", "messages": [{"role": "user", "content": "hi"}]}
    env.fake.policy = lambda body: Turn(content="hi")
    await env.hub.call_tool("models-chat", args)
    return statistics.median(await timed(n, lambda: env.hub.call_tool("models-chat", args)))


async def per_turn(env: Env, tool: str, arguments: dict[str, Any], turns: int, runs: int) -> float:
    env.fake.policy = turns_policy(tool, arguments, turns)
    counter = iter(range(10**6))

    async def one_run() -> None:
        result = await env.ok("run", {"prompt": "go", "workspace": f"bench{next(counter)}", "no_continue": True})
        assert result["num_turns"] == turns, result

    await one_run()
    return statistics.median(await timed(runs, one_run)) / turns


async def agent_figures(fake: ScriptedOpenAI, data: Path, turns: int, runs: int) -> None:
    async with workspaces_env(data / "a", fake) as env:
        floor = await model_call_floor(env, 50)
        file_turn = await per_turn(env, "list_files", {}, turns, runs)
        isolation = (await env.ok("status", {}))["isolation"]["shell"]
        shell_turn = await per_turn(env, "run_shell", {"command": "true"}, turns, runs)
    async with workspaces_env(data / "b", fake, shell={"sandbox": "none"}) as env:
        plain_shell_turn = await per_turn(env, "run_shell", {"command": "true"}, turns, runs)
    rows = [
        ("model call through the hub (floor)", floor),
        ("agent turn with list_files", file_turn),
        (f"agent turn with run_shell ({isolation})", shell_turn),
        ("agent turn with run_shell (sandbox none: separate user)", plain_shell_turn),
    ]
    for label, seconds in rows:
        extra = "" if seconds is floor else f"  (+{(seconds - floor) * 1000:.2f} ms over the model call)"
        print(f"{label:40s} {seconds * 1000:8.2f} ms{extra}")


async def file_figures(fake: ScriptedOpenAI, data: Path, quick: bool) -> None:
    cases = [("4 KiB", 4 * 1024, 100 if quick else 500), ("4 MiB", 4 * 1024 * 1024, 5 if quick else 20)]
    async with serve_workspaces(data / "f", fake, max_file_bytes=64 * 1024 * 1024) as face:
        env = face.env
        async with httpx2.AsyncClient(base_url=face.url, headers=AUTH, timeout=60) as http:
            for label, size, count in cases:
                write_args = {"workspace": "files", "path": "t.txt", "text": "x" * size}
                blob = b"y" * size
                write_tool = await timed(count, lambda args=write_args: env.ok("write_file", args))
                read_tool = await timed(count, lambda: env.ok("read_file", {"workspace": "files", "path": "t.txt"}))
                put = await timed(count, lambda body=blob: http.put("/workspaces/files/files/h.bin", content=body))
                get = await timed(count, lambda: http.get("/workspaces/files/files/h.bin"))
                for name, values in (
                    ("tool write_file", write_tool),
                    ("tool read_file", read_tool),
                    ("HTTP PUT", put),
                    ("HTTP GET", get),
                ):
                    median = statistics.median(values)
                    rate = size / median / (1024 * 1024)
                    print(f"{name:16s} {label:6s}  {ms(values)}  {1 / median:8.0f} ops/s  {rate:8.1f} MiB/s")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="toolmux-bench-ws-") as tmp:
        async with scripted_openai() as fake:
            turns = 5 if args.quick else args.turns
            runs = 2 if args.quick else args.runs
            print(f"== agent turns ({turns} turns a run, median of {runs} runs, fake upstream answers at once)")
            await agent_figures(fake, Path(tmp), turns, runs)
            print("== file API (median per operation)")
            await file_figures(fake, Path(tmp), args.quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    anyio.run(main, parser.parse_args())
