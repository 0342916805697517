"""Benchmark: CPU that shared state (Redis + PostgreSQL) adds to a chat completion, vs embedded state.

    .venv/bin/python bench/scaleout.py [--requests 400] [--rounds 3] [--quick]
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
- Goal from issue 14: shared state adds <= 0.15 ms CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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
    from models_proxy import free_port, run_mock

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
    finally:
        for service in services.values():
            await service.aclose()
        await shared.aclose()
        mock.terminate()
        await drop(shared_config, args)

    print(__doc__.split("Method (printed with the results):")[1].split("- Goal")[0].rstrip())
    print(f"\n{args.requests} requests x {args.rounds} rounds; CPU ms per request (median round)\n")
    print(f"{'case':<18} {'embedded':>10} {'shared':>10} {'added':>10}   goal <= {GOAL_MS} ms added")
    for case in ("state ops", "chat", "state ops +budget", "chat +budget"):
        embedded = statistics.median(results[(case, "embedded")])
        shared_ms = statistics.median(results[(case, "shared")])
        added = shared_ms - embedded
        verdict = "met" if added <= GOAL_MS else "NOT met"
        print(f"{case:<18} {embedded:>10.3f} {shared_ms:>10.3f} {added:>+10.3f}   {verdict}")


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
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.requests, parsed.rounds = 100, 2
    asyncio.run(main(parsed))
