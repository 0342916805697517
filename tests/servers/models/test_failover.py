"""Retries, failover modes, circuit breaking, and what a stream may and may not fail over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from servers.kit import ToolError
from tests.servers.models.conftest import USER, FakeClock, SleepRecorder, one, service_for
from tests.servers.models.fakes import FakeBackend, fake_backend

pytestmark = pytest.mark.anyio

NO_RETRY = {"retries": {"max_retries": 0}}


async def test_a_500_fails_over_to_the_backup_deployment(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(500)
    service = service_for(
        tmp_path, {"a": openai_fake, "b": openai_fake_2}, {"main": {"deployments": [one("a"), one("b")]}}, **NO_RETRY
    )
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["deployment"] == "b/fake-model"
    assert answer["toolmux"]["failover_path"] == ["a/fake-model", "b/fake-model"]
    assert answer["toolmux"]["attempts"] == 2


async def test_429_is_retried_after_the_retry_after_the_backend_asked_for(
    tmp_path: Path, openai_fake: FakeBackend
) -> None:
    openai_fake.fail(429, retry_after="0.25")
    sleep = SleepRecorder()
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}}, sleep=sleep)
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert sleep.waits == [0.25]
    assert answer["toolmux"]["attempts"] == 2 and len(openai_fake.chat_requests) == 2


async def test_a_retry_after_longer_than_allowed_moves_on_without_waiting(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(429, retry_after="120")
    sleep = SleepRecorder()
    service = service_for(
        tmp_path, {"a": openai_fake, "b": openai_fake_2}, {"main": {"deployments": [one("a"), one("b")]}}, sleep=sleep
    )
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert sleep.waits == [] and answer["toolmux"]["deployment"] == "b/fake-model"


async def test_client_errors_are_not_retried_nor_failed_over(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(400, body='{"error": {"message": "temperature too high"}}')
    service = service_for(
        tmp_path, {"a": openai_fake, "b": openai_fake_2}, {"main": {"deployments": [one("a"), one("b")]}}
    )
    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert caught.value.code == "invalid_argument" and "temperature too high" in caught.value.message
    assert openai_fake_2.requests == [] and len(openai_fake.requests) == 1


async def test_a_hanging_backend_times_out_and_the_next_one_answers(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.hang()
    service = service_for(
        tmp_path,
        {"a": openai_fake, "b": openai_fake_2},
        {"main": {"deployments": [one("a"), one("b")]}},
        backend_options={"a": {"read_timeout": 0.2}},
        **NO_RETRY,
    )
    try:
        with anyio.fail_after(10):
            answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["failover_path"] == ["a/fake-model", "b/fake-model"]


async def test_malformed_json_is_a_502_naming_the_backend(tmp_path: Path, openai_fake: FakeBackend) -> None:
    openai_fake.garbage()
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}})
    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert (
        caught.value.code == "upstream_error"
        and "malformed JSON" in caught.value.message
        and "'a'" in caught.value.message
    )


async def test_a_stream_fails_over_when_the_backend_fails_before_any_chunk(
    tmp_path: Path, openai_fake: FakeBackend, ollama_fake: FakeBackend
) -> None:
    openai_fake.fail(503)
    service = service_for(
        tmp_path, {"a": openai_fake, "b": ollama_fake}, {"main": {"deployments": [one("a"), one("b")]}}, **NO_RETRY
    )
    chunks: list[dict[str, Any]] = []

    async def emit(chunk: dict[str, Any]) -> None:
        chunks.append(chunk)

    try:
        answer = await service.chat({"model": "main", "messages": USER, "stream": True}, emit=emit)
    finally:
        await service.aclose()
    assert answer["toolmux"]["deployment"] == "b/fake-model"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from the fake backend"


async def test_a_stream_never_fails_over_after_the_first_chunk_reached_the_caller(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.disconnect_mid_stream()
    service = service_for(
        tmp_path, {"a": openai_fake, "b": openai_fake_2}, {"main": {"deployments": [one("a"), one("b")]}}
    )
    chunks: list[dict[str, Any]] = []

    async def emit(chunk: dict[str, Any]) -> None:
        chunks.append(chunk)

    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER, "stream": True}, emit=emit)
    finally:
        await service.aclose()
    assert chunks and chunks[0]["choices"][0]["delta"]["content"] == "Hello"
    assert caught.value.code == "unavailable" and "connection" in caught.value.message
    assert openai_fake_2.requests == [] and len(openai_fake.chat_requests) == 1


async def test_backup_mode_walks_fallback_aliases_after_its_own_deployments(
    tmp_path: Path, openai_fake: FakeBackend, ollama_fake: FakeBackend
) -> None:
    openai_fake.fail(500).fail(500)
    aliases = {
        "main": {"deployments": [one("a"), one("a", "other-model")], "fallbacks": ["local"]},
        "local": {"deployments": [one("o")]},
    }
    service = service_for(tmp_path, {"a": openai_fake, "o": ollama_fake}, aliases, **NO_RETRY)
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["failover_path"] == ["a/fake-model", "a/other-model", "o/fake-model"]
    assert answer["toolmux"]["alias"] == "local" and answer["model"] == "main"


async def test_rotational_mode_starts_each_call_one_further_along(tmp_path: Path, openai_fake: FakeBackend) -> None:
    deps = [one("a", "m1"), one("a", "m2"), one("a", "m3")]
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": deps, "failover": "rotational"}})
    try:
        used = [(await service.chat({"model": "main", "messages": USER}))["toolmux"]["model"] for _ in range(4)]
        openai_fake.fail(500).fail(500)  # the next call starts at m2, m2 fails (retry fails too), m3 answers
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert used == ["m1", "m2", "m3", "m1"]
    assert answer["toolmux"]["failover_path"] == ["a/m2", "a/m2", "a/m3"]


async def test_duplicate_mode_fails_over_to_other_aliases_serving_the_same_model(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(502)
    aliases = {
        "main": {"deployments": [one("a", "llama-3")], "failover": "duplicate"},
        "other": {"deployments": [one("b", "llama-3"), one("b", "unrelated")]},
    }
    service = service_for(tmp_path, {"a": openai_fake, "b": openai_fake_2}, aliases, **NO_RETRY)
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["failover_path"] == ["a/llama-3", "b/llama-3"]


async def test_failover_none_gives_up_after_the_first_deployment(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(500)
    aliases = {"main": {"deployments": [one("a"), one("b")], "failover": "none"}}
    service = service_for(tmp_path, {"a": openai_fake, "b": openai_fake_2}, aliases, **NO_RETRY)
    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert caught.value.code == "upstream_error" and caught.value.data["failover_path"] == ["a/fake-model"]
    assert openai_fake_2.requests == []


async def test_circuit_opens_after_repeated_failures_then_half_open_probe_closes_it(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    clock = FakeClock()
    for _ in range(2):
        openai_fake.fail(500)
    settings = {**NO_RETRY, "circuit_breaker": {"failure_threshold": 2, "window": 60, "cooldown": 30}}
    aliases = {"main": {"deployments": [one("a"), one("b")]}}
    service = service_for(tmp_path, {"a": openai_fake, "b": openai_fake_2}, aliases, clock=clock, **settings)
    state = service.states["a/fake-model"]
    try:
        for _ in range(2):
            await service.chat({"model": "main", "messages": USER})
        assert state.breaker.state == "open"
        skipped = await service.chat({"model": "main", "messages": USER})
        assert skipped["toolmux"]["failover_path"] == ["b/fake-model"]
        assert "circuit open" in skipped["toolmux"]["skipped"][0]
        assert service.health.report()["details"]["deployments"][0]["healthy"] is False

        clock.advance(30)
        assert state.breaker.state == "half-open"
        openai_fake.fail(500)  # the probe fails: open again for another cooldown
        await service.chat({"model": "main", "messages": USER})
        assert state.breaker.state == "open"

        clock.advance(30)
        probe = await service.chat({"model": "main", "messages": USER})  # the probe succeeds
        assert probe["toolmux"]["deployment"] == "a/fake-model"
        assert state.breaker.state == "closed"
    finally:
        await service.aclose()
    assert len(openai_fake.chat_requests) == 4


async def test_all_circuits_open_is_unavailable_with_a_retry_hint(tmp_path: Path, openai_fake: FakeBackend) -> None:
    clock = FakeClock()
    openai_fake.fail(500)
    settings = {**NO_RETRY, "circuit_breaker": {"failure_threshold": 1, "cooldown": 30}}
    service = service_for(tmp_path, {"a": openai_fake}, {"main": {"deployments": [one("a")]}}, clock=clock, **settings)
    try:
        with pytest.raises(ToolError):
            await service.chat({"model": "main", "messages": USER})
        clock.advance(10)
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert caught.value.code == "unavailable" and caught.value.retry_after == 20.0


async def test_context_window_fallback_takes_long_prompts_to_a_bigger_model(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    aliases = {
        "main": {"deployments": [one("a", context_window=100)], "context_fallback": "long"},
        "long": {"deployments": [one("b", "big-model", context_window=100_000)]},
    }
    service = service_for(tmp_path, {"a": openai_fake, "b": openai_fake_2}, aliases)
    long_prompt = [{"role": "user", "content": "word " * 400}]
    try:
        short = await service.chat({"model": "main", "messages": USER})
        long = await service.chat({"model": "main", "messages": long_prompt})
    finally:
        await service.aclose()
    assert short["toolmux"]["deployment"] == "a/fake-model"
    assert long["toolmux"]["deployment"] == "b/big-model" and "context window" in long["toolmux"]["skipped"][0]


async def test_a_context_length_error_from_the_backend_also_takes_the_fallback(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    openai_fake.fail(400, body='{"error": {"message": "This model\'s maximum context length is 8192 tokens"}}')
    aliases = {
        "main": {"deployments": [one("a")], "context_fallback": "long"},
        "long": {"deployments": [one("b", "big")]},
    }
    service = service_for(tmp_path, {"a": openai_fake, "b": openai_fake_2}, aliases)
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["failover_path"] == ["a/fake-model", "b/big"]


async def test_rpm_cap_sends_the_overflow_to_the_next_deployment(
    tmp_path: Path, openai_fake: FakeBackend, openai_fake_2: FakeBackend
) -> None:
    service = service_for(
        tmp_path, {"a": openai_fake, "b": openai_fake_2}, {"main": {"deployments": [one("a", rpm=2), one("b")]}}
    )
    try:
        used = [(await service.chat({"model": "main", "messages": USER}))["toolmux"]["deployment"] for _ in range(3)]
    finally:
        await service.aclose()
    assert used == ["a/fake-model", "a/fake-model", "b/fake-model"]


async def test_connection_refused_fails_over(tmp_path: Path, openai_fake: FakeBackend) -> None:
    async with fake_backend("openai") as gone:
        dead_url = gone.url
    aliases = {"main": {"deployments": [one("dead"), one("a")]}}
    service = service_for(tmp_path, {"dead": gone, "a": openai_fake}, aliases, **NO_RETRY)
    service.adapters["dead"].config.base_url = dead_url
    try:
        answer = await service.chat({"model": "main", "messages": USER})
    finally:
        await service.aclose()
    assert answer["toolmux"]["failover_path"] == ["dead/fake-model", "a/fake-model"]
