"""Benchmark: CPU that shared state (Redis + PostgreSQL) adds to a chat completion, vs embedded state.

    .venv/bin/python bench/scaleout.py [--requests 400] [--rounds 3] [--quick] [--no-hub]
        [--redis redis://127.0.0.1:6379/0] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Method (printed with the results):
- `state ops`: the state operations one non-stream chat completion performs, driven through the
  models domain's own classes exactly as `Failover` and `ModelsService` call them: the rpm/tpm
  admission, the circuit breaker's acquire and success, the token count, the budget check and the
  usage record (rows are batched: the flush cost is included as it falls). Embedded: in-process
  deques + the SQLite writer. Shared: Redis Lua scripts + the PostgreSQL ledger.
- `chat`: a whole `ModelsService.chat` (non-stream) against a mock OpenAI upstream running in its
  own process (bench/models_proxy.py's), embedded vs shared, in this process.
- Each case runs for a key without a budget and (`+budget`) for a key with one: a budget adds
  a spend read before the call and a spend update after it (PostgreSQL when shared).
- CPU is this process's user+system time (`time.process_time`, all threads) per request: the
  hub-side cost. Redis and PostgreSQL's own CPU is on their side and not counted. Requests are
  sequential; rounds alternate which mode goes first; the median round is reported.
- `hub chat` / `hub tools/call`: whole requests through a real hub, `toolmux serve` in its own
  process, once with embedded state and once with `state:` on Redis + PostgreSQL (both hubs run
  side by side): `POST /v1/chat/completions` (master key, no budget) to the mock upstream, and a
  2025-11-25 session's `tools/call` of a stdio child's `echo` (tests/fixtures/probe_server.py).
  CPU is the hub process's user+system time (psutil) per request; the client, the mock upstream
  and the child are other processes and not counted.
- Goal from issue 14: shared state adds <= 0.15 ms CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aggregator.state import State, StateConfig, open_state  # noqa: E402
from servers.models.config import ModelsConfig  # noqa: E402
from servers.models.service import ModelsService  # noqa: E402
from servers.models.usage import UsageRecord  # noqa: E402

GOAL_MS = 0.15
MASTER_KEY = "bench-master-key-0123456789"
USER = [{"role": "user", "content": "Say hello"}]


def models_config(upstream: str, *, budgets: bool) -> ModelsConfig:
    return ModelsConfig.model_validate(
        {
            "backends": {"mock": {"type": "openai", "base_url": upstream}},
            "aliases": {
                "main": {
                    "deployments": [
                        {
                            "backend": "mock",
                            "model": "mock",
                            "rpm": 10_000_000,
                            "tpm": 10_000_000_000,
                            "prices": {"input": 0.001, "output": 0.001},
                        }
                    ]
                }
            },
            "budgets": {"bench": {"max_cost": 1e9}} if budgets else {},
            "health": {"enabled": False},
            "usage": {"flush_interval": 0.5},
        }
    )


async def state_ops(service: ModelsService, key: str) -> None:
    """What one successful non-stream chat does to state, in the order the models domain does it."""
    dep = service.config.aliases["main"].deployments[0]
    dep_state = service.states[dep.id]
    await service.usage.budget(key)
    await dep_state.enter(dep, service.clock())
    await dep_state.started()
    dep_state.requests.append(service.clock())
    await dep_state.ended()
    await dep_state.breaker.succeeded()
    await dep_state.count_tokens(service.clock(), 20)
    await service.usage.record(UsageRecord(key=key, model="main", kind="chat", status="ok", cost=1e-6))


async def measure(run: Callable[[], Awaitable[Any]], requests: int) -> float:
    """CPU milliseconds per request."""
    for _ in range(max(requests // 10, 10)):
        await run()
    began = time.process_time()
    for _ in range(requests):
        await run()
    return (time.process_time() - began) * 1000 / requests


async def main(args: argparse.Namespace) -> None:
    from proxy_rig import free_port, run_mock

    port = free_port()
    mock = multiprocessing.Process(target=run_mock, args=(port,), daemon=True)
    mock.start()
    upstream = f"http://127.0.0.1:{port}/v1"
    tag = uuid.uuid4().hex[:10]
    shared_config = StateConfig.model_validate(
        {"redis": args.redis, "postgres": args.postgres, "prefix": f"bench:{tag}:", "schema": f"bench_{tag}"}
    )
    workdir = Path(tempfile.mkdtemp(prefix="scaleout-"))
    shared: State = await open_state(shared_config, data_dir=workdir / "shared", replica_id="bench")
    services: dict[str, ModelsService] = {
        "embedded": ModelsService(models_config(upstream, budgets=True), data_dir=workdir / "embedded"),
        "shared": ModelsService(models_config(upstream, budgets=True), data_dir=workdir / "shared", state=shared),
    }
    for _ in range(100):  # wait for the mock to listen
        try:
            await services["embedded"].chat({"model": "main", "messages": USER}, caller="bench")
            break
        except Exception:
            await asyncio.sleep(0.05)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for round_no in range(args.rounds):
            order = ["embedded", "shared"] if round_no % 2 == 0 else ["shared", "embedded"]
            for mode in order:
                service = services[mode]

                for key, label in (("free", ""), ("bench", " +budget")):

                    async def ops(service: ModelsService = service, key: str = key) -> None:
                        await state_ops(service, key)

                    async def chat(service: ModelsService = service, key: str = key) -> None:
                        await service.chat({"model": "main", "messages": USER}, caller=key)

                    results.setdefault(("state ops" + label, mode), []).append(await measure(ops, args.requests))
                    results.setdefault(("chat" + label, mode), []).append(await measure(chat, args.requests))
        if not args.no_hub:
            hub_results(args, upstream, shared_config, workdir, results)
    finally:
        for service in services.values():
            await service.aclose()
        await shared.aclose()
        mock.terminate()
        await drop(shared_config, args)

    print(__doc__.split("Method (printed with the results):")[1].split("- Goal")[0].rstrip())
    hub_note = "" if args.no_hub else f" ({args.requests * 5} for the hub cases)"
    print(f"\n{args.requests} requests{hub_note} x {args.rounds} rounds; CPU ms per request (median round)\n")
    print(f"{'case':<18} {'embedded':>10} {'shared':>10} {'added':>10}   goal <= {GOAL_MS} ms added")
    cases = ["state ops", "chat", "state ops +budget", "chat +budget"]
    cases += [] if args.no_hub else ["hub chat", "hub tools/call"]
    for case in cases:
        embedded = statistics.median(results[(case, "embedded")])
        shared_ms = statistics.median(results[(case, "shared")])
        added = shared_ms - embedded
        verdict = "met" if added <= GOAL_MS else "NOT met"
        print(f"{case:<18} {embedded:>10.3f} {shared_ms:>10.3f} {added:>+10.3f}   {verdict}")


# --- whole requests through `toolmux serve` -----------------------------------------------------
def start_hub(workdir: Path, name: str, upstream: str, state: dict[str, Any] | None) -> tuple[str, Any]:
    """A `toolmux serve` process with the models domain and a stdio probe child; its URL and process."""
    import subprocess

    import yaml

    config: dict[str, Any] = {
        "builtins": ["models"],
        "server": {"data_dir": str(workdir / name), "startup_timeout": 60},
        "auth": {"master_key": MASTER_KEY},
        "mcpServers": {
            "models": {"config": models_config(upstream, budgets=False).model_dump(exclude_defaults=True)},
            "probe": {
                "command": sys.executable,
                "args": ["-m", "tests.fixtures.probe_server", "--name", "probe"],
                "cwd": str(ROOT),
                "protocol": "legacy",
            },
        },
    }
    if state is not None:
        config["state"] = state
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / f"{name}.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOOLMUX_")}, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "aggregator", "serve", "--port", "0", "--config", str(path)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=ROOT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"ready in .*MCP at (http://127\.0\.0\.1:\d+)/mcp/", text)
        if found:
            return found.group(1), process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the {name} hub did not start:\n{log.read_text(errors='replace')}")


def legacy_session(http: Any, url: str) -> dict[str, str]:
    headers = {
        "authorization": f"Bearer {MASTER_KEY}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-11-25",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    response = http.post(f"{url}/mcp/", json=init, headers=headers)
    headers["mcp-session-id"] = response.headers["mcp-session-id"]
    http.post(f"{url}/mcp/", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


def hub_cpu_ms(process: Any, run: Callable[[], None], requests: int) -> float:
    for _ in range(max(requests // 10, 10)):
        run()
    before = process.cpu_times()
    for _ in range(requests):
        run()
    after = process.cpu_times()
    return ((after.user - before.user) + (after.system - before.system)) * 1000 / requests


def hub_results(
    args: argparse.Namespace,
    upstream: str,
    shared_config: StateConfig,
    workdir: Path,
    results: dict[tuple[str, str], list[float]],
) -> None:
    import httpx2
    import psutil

    state = shared_config.model_dump(by_alias=True, exclude_none=True)
    hubs = {"embedded": start_hub(workdir, "hub-embedded", upstream, None)}
    try:
        hubs["shared"] = start_hub(workdir, "hub-shared", upstream, state)
        with httpx2.Client(timeout=30) as http:
            sessions = {mode: legacy_session(http, url) for mode, (url, _) in hubs.items()}
            for round_no in range(args.rounds):
                order = ["embedded", "shared"] if round_no % 2 == 0 else ["shared", "embedded"]
                for mode in order:
                    url, process = hubs[mode]
                    hub = psutil.Process(process.pid)

                    def chat(url: str = url) -> None:
                        response = http.post(
                            f"{url}/v1/chat/completions",
                            json={"model": "main", "messages": USER},
                            headers={"authorization": f"Bearer {MASTER_KEY}"},
                        )
                        assert response.status_code == 200, response.text

                    def call(url: str = url, headers: dict[str, str] = sessions[mode]) -> None:
                        body = {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "tools/call",
                            "params": {"name": "probe-echo", "arguments": {"text": "hi"}},
                        }
                        response = http.post(f"{url}/mcp/", json=body, headers=headers)
                        assert response.status_code == 200 and b'"result"' in response.content, response.text

                    # psutil counts CPU in clock ticks (10 ms): many requests keep that error small.
                    requests = args.requests * 5
                    results.setdefault(("hub chat", mode), []).append(hub_cpu_ms(hub, chat, requests))
                    results.setdefault(("hub tools/call", mode), []).append(hub_cpu_ms(hub, call, requests))
    finally:
        for _, process in hubs.values():
            process.terminate()
            process.wait(timeout=30)


async def drop(config: StateConfig, args: argparse.Namespace) -> None:
    import psycopg
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(args.redis)
    keys = [k async for k in client.scan_iter(match=f"{config.prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    async with await psycopg.AsyncConnection.connect(args.postgres, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{config.schema_name}" CASCADE')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 requests, 2 rounds")
    parser.add_argument("--no-hub", action="store_true", help="skip the cases through `toolmux serve`")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.requests, parsed.rounds = 100, 2
    asyncio.run(main(parsed))
