"""/metrics after real chat traffic: streamed and not, failed, cached — the LLM families count it right."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.aggregator.console.support import MASTER, USER, console_hub

pytestmark = pytest.mark.anyio

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "toolmux.json"
CALL_COST = (10 * 1.0 + 5 * 2.0) / 1e6  # the fake's usage (10 in, 5 out) at the alias's prices per million
DEPLOYMENT = "local/fake-model"


class Scrape:
    def __init__(self, text: str) -> None:
        families = list(text_string_to_metric_families(text))
        self.samples = [s for family in families for s in family.samples]
        # Every name a query may use: samples seen, and each declared family's series names.
        self.names = {s.name for s in self.samples}
        for family in families:
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
            self.names |= {family.name + suffix for suffix in suffixes}

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())


async def traffic(http: httpx2.AsyncClient, fake: object) -> None:
    chat = {"model": "main", "messages": USER}
    assert (await http.post("/v1/chat/completions", json=chat, headers=MASTER)).status_code == 200
    cached = await http.post("/v1/chat/completions", json=chat, headers=MASTER)
    assert cached.headers["x-toolmux-cache"] == "hit"
    streamed = await http.post("/v1/chat/completions", json={**chat, "stream": True}, headers=MASTER)
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    fake.fail(500)  # type: ignore[attr-defined]
    failed = await http.post("/v1/chat/completions", json={**chat, "cache": "no-store"}, headers=MASTER)
    assert failed.status_code == 502


async def test_the_llm_families_count_requests_failures_tokens_spend_cache_hits_and_latencies(tmp_path: Path) -> None:
    async with (
        console_hub(tmp_path, metrics={"litellm_names": True}) as (running, fake),
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        await traffic(http, fake)
        scrape = Scrape((await http.get("/metrics", headers=MASTER)).text)

    ok = {"model": "main", "deployment": DEPLOYMENT, "kind": "chat"}
    assert scrape.value("toolmux_llm_requests_total", **ok, status="ok") == 3
    assert scrape.value("toolmux_llm_requests_total", model="main", status="error") == 1
    assert scrape.value("toolmux_llm_failures_total", model="main", reason="upstream_error") == 1
    assert scrape.value("toolmux_llm_cache_hits_total", model="main") == 1
    assert scrape.value("toolmux_llm_tokens_total", model="main", direction="in") == 20
    assert scrape.value("toolmux_llm_tokens_total", model="main", direction="out") == 10
    assert scrape.value("toolmux_llm_spend_usd_total", model="main", key="master") == pytest.approx(2 * CALL_COST)
    assert scrape.value("toolmux_llm_request_seconds_count", model="main") == 3  # the cache hit took no time
    assert scrape.value("toolmux_llm_time_to_first_token_seconds_count", model="main") == 1
    assert scrape.value("toolmux_llm_active_streams", model="main") == 0
    assert scrape.value("toolmux_llm_buffered_response_bytes") == 0
    assert scrape.value("toolmux_llm_deployment_state", model="main", deployment=DEPLOYMENT) == 0
    # The same events under LiteLLM's names.
    assert scrape.value("litellm_requests_metric_total", model="main", api_key_alias="master") == 4
    assert scrape.value("litellm_proxy_failed_requests_metric_total", model="main") == 1
    assert scrape.value("litellm_total_tokens_metric_total", model="main") == 30
    assert scrape.value("litellm_spend_metric_total", model="main") == pytest.approx(2 * CALL_COST)
    assert scrape.value("litellm_deployment_failure_responses_total", model_id=DEPLOYMENT) == 1
    # The tool and HTTP families stay.
    assert scrape.value("toolmux_tool_calls_total", tool="models-chat", outcome="ok") >= 3


async def test_a_spent_budget_and_an_open_circuit_show_on_the_gauges(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, fake), httpx2.AsyncClient(base_url=running.url) as http:
        created = await http.post(
            "/admin/keys", json={"name": "app", "tools": ["models-*"], "budget": 1.0}, headers=MASTER
        )
        app = {"Authorization": f"Bearer {created.json()['secret']}"}
        other = {"model": "other", "messages": USER}
        assert (await http.post("/v1/chat/completions", json=other, headers=app)).is_success
        service = running.hub.models_service()
        for _ in range(service.config.circuit_breaker.failure_threshold):
            fake.fail(500)
            await http.post("/v1/chat/completions", json=other, headers=MASTER)
        scrape = Scrape((await http.get("/metrics", headers=MASTER)).text)
    assert scrape.value("toolmux_llm_budget_remaining_usd", key="app", period="month") == pytest.approx(1.0)
    assert scrape.value("toolmux_llm_deployment_state", model="other", deployment=DEPLOYMENT) == 2
    assert "litellm_deployment_state" not in scrape.names  # LiteLLM's names only when switched on


def dashboard_metric_names() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    functions = {"sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg"}
    names: set[str] = set()
    for expr in exprs:
        without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|by \([^)]*\)", "", expr)
        names |= {n for n in re.findall(r"[a-z_][a-z0-9_]*", without_labels) if n not in functions}
    return names


async def test_every_query_of_the_grafana_dashboard_names_a_metric_the_hub_exports(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, fake), httpx2.AsyncClient(base_url=running.url) as http:
        await traffic(http, fake)
        scrape = Scrape((await http.get("/metrics", headers=MASTER)).text)
    missing = dashboard_metric_names() - scrape.names
    assert not missing, f"the dashboard queries metrics the hub does not export: {sorted(missing)}"
