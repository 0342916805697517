"""Two hub replicas behind HAProxy share the models domain's limits, budgets, cache, circuits and usage.

One fleet per module (starting two hubs and a balancer costs a few seconds); each test has its
own alias (own deployment, own windows and circuit) or key, so the tests do not see each other.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tests.servers.models.fakes import FakeBackend, fake_backend
from tests.support.replicas import PROJECT_ROOT, Fleet, replica_fleet

pytestmark = pytest.mark.anyio

CAPPED_KEY = "capped-key-0123456789abcdef"
USER = [{"role": "user", "content": "Say hello"}]


def models_config(fake_url: str) -> dict[str, Any]:
    def alias(name: str, **extra: Any) -> dict[str, Any]:
        deployment = {"backend": "fake", "model": "fake-model", "name": f"fake/{name}"}
        return {"deployments": [{**deployment, **extra.pop("deployment", {})}], **extra}

    return {
        "backends": {"fake": {"type": "openai", "base_url": fake_url}},
        "aliases": {
            "limited": alias("limited", deployment={"rpm": 10}),
            "cached": alias("cached", cache={"enabled": True, "ttl": 300}),
            "flaky": alias("flaky"),
            "priced": alias("priced", deployment={"prices": {"input": 1000, "output": 0}}),  # 0.01 USD a call
            "plain": alias("plain"),
            "counted": alias("counted"),
        },
        "retries": {"max_retries": 0},
        "circuit_breaker": {"failure_threshold": 2, "window": 60, "cooldown": 120},
        "budgets": {"capped": {"max_cost": 0.03, "period": "day"}},
        "usage": {"flush_interval": 0.1},
        "health": {"enabled": False},
    }


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def backend(anyio_backend: str) -> AsyncIterator[FakeBackend]:
    async with fake_backend("openai") as fake:
        yield fake


@pytest.fixture(scope="module")
async def fleet(backend: FakeBackend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    config = {
        "builtins": ["models"],
        "mcpServers": {"models": {"config": models_config(backend.url)}},
        "auth": {"keys": [{"name": "capped", "key": CAPPED_KEY, "tools": ["models-*"]}]},
    }
    async with replica_fleet(tmp_path_factory.mktemp("fleet"), config) as running:
        yield running


@pytest.fixture
def fake(backend: FakeBackend) -> FakeBackend:
    backend.reset()
    return backend


async def chat(fleet: Fleet, model: str, *, url: str | None = None, key: str | None = None) -> tuple[int, Any, Any]:
    """(status, body, headers) of one chat completion through the balancer (or one replica's `url`)."""
    async with fleet.http() as http:
        response = await http.post(
            f"{url or fleet.url}/v1/chat/completions",
            json={"model": model, "messages": USER},
            headers=fleet.headers(key),
        )
    return response.status_code, response.json(), response.headers


def chat_requests(fake: FakeBackend) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


async def test_the_eleventh_request_of_an_rpm_10_alias_is_refused_whichever_replica_takes_it(
    fleet: Fleet, fake: FakeBackend
) -> None:
    served: list[str] = []
    for _ in range(10):
        status, body, headers = await chat(fleet, "limited")
        assert status == 200, body
        served.append(headers["x-served-by"])
    refusals = []
    for _ in range(2):  # round robin: the 11th and the 12th land on different replicas
        status, body, headers = await chat(fleet, "limited")
        refusals.append((status, body["error"]["code"], headers["x-served-by"]))
    assert set(served) == {"r0", "r1"}
    assert [(s, c) for s, c, _ in refusals] == [(429, "rate_limit_exceeded")] * 2
    assert {r for _, _, r in refusals} == {"r0", "r1"}
    assert chat_requests(fake) == 10


async def test_a_budget_is_enforced_across_both_replicas(fleet: Fleet, fake: FakeBackend) -> None:
    served = []
    for _ in range(3):  # 0.01 USD each: the budget of 0.03 is spent
        status, body, headers = await chat(fleet, "priced", key=CAPPED_KEY)
        assert status == 200, body
        served.append(headers["x-served-by"])
    refused = [await chat(fleet, "priced", key=CAPPED_KEY) for _ in range(2)]
    assert set(served) == {"r0", "r1"}
    assert [(status, body["error"]["code"]) for status, body, _ in refused] == [(402, "budget_exceeded")] * 2
    assert {headers["x-served-by"] for _, _, headers in refused} == {"r0", "r1"}
    assert chat_requests(fake) == 3


async def test_a_cache_miss_on_one_replica_is_a_hit_on_the_other(fleet: Fleet, fake: FakeBackend) -> None:
    first, second = fleet.replicas
    status, body, headers = await chat(fleet, "cached", url=first.url)
    assert status == 200 and headers["x-toolmux-cache"] == "miss"
    status, again, headers = await chat(fleet, "cached", url=second.url)
    assert status == 200 and headers["x-toolmux-cache"] == "hit"
    assert again["choices"] == body["choices"]
    assert chat_requests(fake) == 1


async def test_a_circuit_opened_by_failures_on_one_replica_is_open_on_the_other(
    fleet: Fleet, fake: FakeBackend
) -> None:
    first, second = fleet.replicas
    fake.fail(status=500).fail(status=500)
    for _ in range(2):  # the failure threshold
        status, body, _ = await chat(fleet, "flaky", url=first.url)
        assert status == 502, body
    status, body, _ = await chat(fleet, "flaky", url=second.url)
    assert status == 503 and body["error"]["type"] == "api_error"
    status, body, _ = await chat(fleet, "flaky")  # and through the balancer, whichever replica
    assert status == 503
    assert chat_requests(fake) == 2  # the open circuit kept both replicas off the backend
    status, _, _ = await chat(fleet, "plain", url=second.url)
    assert status == 200  # other deployments of the same backend are not affected


async def test_toolmux_usage_counts_the_calls_of_both_replicas(fleet: Fleet, fake: FakeBackend) -> None:
    served = [(await chat(fleet, "counted"))[2]["x-served-by"] for _ in range(4)]
    assert sorted(served) == ["r0", "r0", "r1", "r1"]
    # The replicas flush usage rows every 0.1 s (usage.flush_interval); a report asks until they are in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLMUX_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    config = fleet.replicas[0].config_path
    command = [sys.executable, "-m", "aggregator", "usage", "--config", str(config), "--by", "model,replica"]
    report: dict[str, Any] = {}
    with anyio.fail_after(20):
        while True:
            done = await anyio.run_process([*command, "--model", "counted", "--json"], env=env, check=False)
            assert done.returncode == 0, done.stderr.decode()
            report = json.loads(done.stdout)
            if report["totals"]["requests"] >= 4:
                break
            await anyio.sleep(0.1)  # rows reach PostgreSQL at the replicas' next flush: no event to wait on
    table = await anyio.run_process([*command, "--model", "counted"], env=env)
    assert report["totals"]["requests"] == 4
    assert len({row["replica"] for row in report["rows"]}) == 2  # both replicas' rows
    assert b"TOTAL" in table.stdout


async def test_health_through_the_balancer_shows_the_whole_fleet(fleet: Fleet) -> None:
    async with fleet.http() as http:
        answers = [(await http.get(f"{fleet.url}/health", headers=fleet.headers())).json() for _ in range(2)]
    replica_urls = {r.url for r in fleet.replicas}
    for health in answers:  # whichever replica answers
        assert health["state"]["mode"] == "shared"
        assert health["state"]["stores"] == {"postgres": {"healthy": True}, "redis": {"healthy": True}}
        assert {r["url"] for r in health["state"]["fleet"]} == replica_urls
        assert all(r["version"] and r["last_heartbeat"] for r in health["state"]["fleet"])
    assert answers[0]["state"]["replica"] != answers[1]["state"]["replica"]
