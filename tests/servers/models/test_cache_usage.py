"""Answer cache, usage records, budgets, model listing and health probes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from servers.kit import ToolError
from servers.models.config import ModelsConfig
from servers.models.service import ModelsService
from tests.servers.models.conftest import USER, one, service_for
from tests.servers.models.fakes import FakeBackend, fake_backend

pytestmark = pytest.mark.anyio

CACHED = {
    "main": {"deployments": [one("a", prices={"input": 1.0, "output": 2.0})], "cache": {"enabled": True, "ttl": 60}}
}
WEATHER_TOOL = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


async def test_same_request_twice_is_answered_from_the_cache_the_second_time(
    tmp_path: Path, openai_fake: FakeBackend
) -> None:
    service = service_for(tmp_path, {"a": openai_fake}, CACHED)
    try:
        first = await service.chat({"model": "main", "messages": USER, "temperature": 0})
        second = await service.chat({"model": "main", "messages": USER, "temperature": 0, "user": "someone-else"})
        different = await service.chat({"model": "main", "messages": USER, "temperature": 1})
    finally:
        await service.aclose()
    assert first["toolmux"]["cache_hit"] is False and second["toolmux"]["cache_hit"] is True
    assert second["choices"] == first["choices"] and second["toolmux"]["cost"] == 0.0
    assert different["toolmux"]["cache_hit"] is False
    assert len(openai_fake.chat_requests) == 2


async def test_no_store_bypasses_the_cache(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(tmp_path, {"a": openai_fake}, CACHED)
    try:
        await service.chat({"model": "main", "messages": USER})
        bypass = await service.chat({"model": "main", "messages": USER, "cache": "no-store"})
    finally:
        await service.aclose()
    assert bypass["toolmux"]["cache_hit"] is False and len(openai_fake.chat_requests) == 2


async def test_tool_call_answers_and_errors_are_never_cached(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(tmp_path, {"a": openai_fake}, CACHED, retries={"max_retries": 0})
    try:
        openai_fake.fail(500)
        with pytest.raises(ToolError):
            await service.chat({"model": "main", "messages": USER})
        ok = await service.chat({"model": "main", "messages": USER})
        openai_fake.tool_call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
        for _ in range(2):
            await service.chat({"model": "main", "messages": USER, "tools": WEATHER_TOOL})
    finally:
        await service.aclose()
    assert ok["toolmux"]["cache_hit"] is False
    assert len(openai_fake.chat_requests) == 4


async def test_cache_is_off_unless_the_alias_enables_it(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}})
    try:
        for _ in range(2):
            await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert len(openai_fake.chat_requests) == 2


async def test_embeddings_are_cached_too(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(
        tmp_path, {"a": openai_fake}, {"emb": {"deployments": [one("a", "embed-model")], "cache": {"enabled": True}}}
    )
    try:
        first = await service.embed({"model": "emb", "input": ["x", "y"]})
        second = await service.embed({"model": "emb", "input": ["x", "y"]})
    finally:
        await service.aclose()
    assert second["data"] == first["data"] and second["toolmux"]["cache_hit"] is True
    assert len([r for r in openai_fake.requests if r.path.endswith("/embeddings")]) == 1


async def test_every_call_is_recorded_with_metadata_but_no_prompt_text(
    tmp_path: Path, openai_fake: FakeBackend
) -> None:
    service = service_for(tmp_path, {"a": openai_fake}, CACHED)
    secret = [{"role": "user", "content": "my secret prompt"}]
    try:
        await service.chat({"model": "main", "messages": secret}, caller="alice", request_id="r1")
        await service.chat({"model": "main", "messages": secret}, caller="alice", request_id="r2")
        await service.usage.flush()
        rows = await service.usage.recent()
    finally:
        await service.aclose()
    first = rows[1]
    assert (first["key"], first["model"], first["deployment"], first["status"]) == (
        "alice",
        "main",
        "a/fake-model",
        "ok",
    )
    assert (first["prompt_tokens"], first["completion_tokens"]) == (10, 5)
    assert first["cost"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert first["latency_ms"] > 0 and first["cache_hit"] == 0 and first["request_id"] == "r1"
    assert rows[0]["cache_hit"] == 1 and rows[0]["cost"] == 0
    database = (tmp_path / "models" / "usage.sqlite3").read_bytes()
    assert b"my secret prompt" not in database
    assert first["prompt"] is None and first["response"] is None


async def test_prompt_logging_stores_text_only_when_enabled(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(
        tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}}, usage={"log_prompts": True}
    )
    try:
        await service.chat({"model": "main", "messages": [{"role": "user", "content": "remember me"}]})
        rows = await service.usage.recent()
    finally:
        await service.aclose()
    assert "remember me" in rows[0]["prompt"] and "Hello from the fake backend" in rows[0]["response"]


async def test_failed_calls_are_recorded_with_their_failover_path(tmp_path: Path, openai_fake: FakeBackend) -> None:
    openai_fake.fail(500).fail(500)
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}})
    try:
        with pytest.raises(ToolError):
            await service.chat({"model": "main", "messages": USER}, caller="bob")
        rows = await service.usage.recent()
    finally:
        await service.aclose()
    assert rows[0]["status"] == "error" and rows[0]["error_code"] == "upstream_error"
    assert rows[0]["attempts"] == 2 and rows[0]["failover_path"] == '["a/fake-model","a/fake-model"]'


async def test_usage_report_groups_by_model_key_and_day(tmp_path: Path, openai_fake: FakeBackend) -> None:
    aliases = {
        "main": {"deployments": [one("a", prices={"input": 1.0, "output": 1.0})]},
        "fast": {"deployments": [one("a", "m2")]},
    }
    service = service_for(tmp_path, {"a": openai_fake}, aliases)
    try:
        await service.chat({"model": "main", "messages": USER}, caller="alice")
        await service.chat({"model": "main", "messages": USER}, caller="bob")
        await service.chat({"model": "fast", "messages": USER}, caller="alice")
        by_model = await service.usage_report({"group_by": ["model"]})
        by_key_day = await service.usage_report({"group_by": ["key", "day"]})
        alice_only = await service.usage_report({}, caller="alice")
        with pytest.raises(ToolError) as caught:
            await service.usage_report({"key": "bob"}, caller="alice")
        future = await service.usage_report({"since": "2999-01-01"})
    finally:
        await service.aclose()
    assert [(r["model"], r["requests"]) for r in by_model["rows"]] == [("fast", 1), ("main", 2)]
    assert by_model["totals"]["requests"] == 3 and by_model["totals"]["cost"] == pytest.approx(30 / 1e6)
    assert {r["key"] for r in by_key_day["rows"]} == {"alice", "bob"} and all(
        len(r["day"]) == 10 for r in by_key_day["rows"]
    )
    assert alice_only["totals"]["requests"] == 2
    assert caught.value.code == "forbidden"
    assert future["rows"] == []


async def test_a_spent_budget_refuses_further_calls_with_a_clear_error(
    tmp_path: Path, openai_fake: FakeBackend
) -> None:
    aliases = {"main": {"deployments": [one("a", prices={"input": 1000.0, "output": 1000.0})]}}
    service = service_for(
        tmp_path, {"a": openai_fake}, aliases, budgets={"alice": {"max_cost": 0.02, "period": "month"}}
    )
    try:
        await service.chat({"model": "main", "messages": USER}, caller="alice")  # costs 0.015
        await service.chat({"model": "main", "messages": USER}, caller="alice")  # 0.03: over
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER}, caller="alice")
        await service.chat({"model": "main", "messages": USER}, caller="bob")  # no budget: fine
        report = await service.usage_report({"group_by": ["key"]})
    finally:
        await service.aclose()
    assert caught.value.code == "payment_required" and "alice" in caught.value.message
    assert report["budgets"][0]["exhausted"] is True and report["budgets"][0]["spent"] == pytest.approx(0.03)
    assert len(openai_fake.chat_requests) == 3


async def test_spend_survives_a_restart(tmp_path: Path, openai_fake: FakeBackend) -> None:
    aliases = {"main": {"deployments": [one("a", prices={"input": 1000.0, "output": 1000.0})]}}
    budgets = {"alice": {"max_cost": 0.01, "period": "day"}}
    first = service_for(tmp_path, {"a": openai_fake}, aliases, budgets=budgets)
    await first.chat({"model": "main", "messages": USER}, caller="alice")
    await first.aclose()
    second = service_for(tmp_path, {"a": openai_fake}, aliases, budgets=budgets)
    try:
        with pytest.raises(ToolError) as caught:
            await second.chat({"model": "main", "messages": USER}, caller="alice")
    finally:
        await second.aclose()
    assert caught.value.code == "payment_required"


async def test_without_config_there_are_no_models_and_errors_say_how_to_add_one(tmp_path: Path) -> None:
    service = ModelsService(ModelsConfig(), data_dir=tmp_path)
    try:
        listing = service.list_models()
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "gpt-4", "messages": USER})
    finally:
        await service.aclose()
    assert listing["data"] == [] and "docs/models.md" in listing["hint"]
    assert caught.value.code == "not_found" and caught.value.field == "model"
    assert "aliases" in caught.value.message and "docs/models.md" in caught.value.message


async def test_an_unknown_alias_lists_the_available_ones(tmp_path: Path, openai_fake: FakeBackend) -> None:
    service = service_for(
        tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}, "fast": {"deployments": [one("a")]}}
    )
    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "gpt-5", "messages": USER})
    finally:
        await service.aclose()
    assert caught.value.code == "not_found" and "fast, main" in caught.value.message


async def test_list_models_shows_aliases_and_optionally_deployments(tmp_path: Path, openai_fake: FakeBackend) -> None:
    aliases = {
        "main": {
            "deployments": [one("a", context_window=8192), one("a", "m2", context_window=32768)],
            "description": "general",
        }
    }
    service = service_for(tmp_path, {"a": openai_fake}, aliases)
    flat = service_for(tmp_path, {"a": openai_fake}, aliases, list_aliases_only=False)
    try:
        listing = service.list_models(include_deployments=True)
        flat_ids = [m["id"] for m in flat.list_models()["data"]]
    finally:
        await service.aclose()
        await flat.aclose()
    entry = listing["data"][0]
    assert (entry["id"], entry["context_window"], entry["description"]) == ("main", 32768, "general")
    assert [d["id"] for d in entry["deployments"]] == ["a/fake-model", "a/m2"]
    assert flat_ids == ["main", "main/a/fake-model", "main/a/m2"]


async def test_health_probes_report_each_deployment_with_a_reason(tmp_path: Path, ollama_fake: FakeBackend) -> None:
    async with fake_backend("openai") as gone:
        dead_url = gone.url
    aliases = {
        "main": {"deployments": [one("o"), one("o", "not-pulled")]},
        "remote": {"deployments": [one("dead")]},
    }
    service = service_for(
        tmp_path, {"o": ollama_fake, "dead": gone}, aliases, backend_options={"o": {"required": True}}
    )
    service.adapters["dead"].config.base_url = dead_url
    try:
        await service.health.probe_all()
        report = service.health.report()
    finally:
        await service.aclose()
    by_id = {d["deployment"]: d for d in report["details"]["deployments"]}
    assert by_id["o/fake-model"]["healthy"] is True
    assert by_id["o/not-pulled"]["healthy"] is False and "does not list model" in by_id["o/not-pulled"]["reason"]
    assert by_id["dead/fake-model"]["healthy"] is False and "connection failed" in by_id["dead/fake-model"]["reason"]
    # Only a required backend being down turns the server red; the optional one does not.
    assert report["healthy"] is True


async def test_a_required_backend_down_turns_health_red(tmp_path: Path) -> None:
    async with fake_backend("openai") as gone:
        pass
    service = service_for(
        tmp_path, {"a": gone}, {"main": {"deployments": [one("a")]}}, backend_options={"a": {"required": True}}
    )
    try:
        await service.health.probe_all()
        report = service.health.report()
    finally:
        await service.aclose()
    assert report["healthy"] is False and report["details"]["required_down"] == ["a"]


def test_usage_database_is_plain_sqlite(tmp_path: Path) -> None:
    from servers.models.usage import connect

    conn = connect(tmp_path / "u.sqlite3")
    assert {r[1] for r in conn.execute("PRAGMA table_info(calls)")} >= {
        "key",
        "model",
        "cost",
        "ttft_ms",
        "failover_path",
    }
    conn.close()
    assert sqlite3.connect(tmp_path / "u.sqlite3").execute("SELECT COUNT(*) FROM calls").fetchone() == (0,)
