"""Each backend adapter against a fake speaking its real protocol: answers, streams, tools, embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from servers.kit import ToolError
from tests.servers.models.conftest import USER, Backends, one, service_for
from tests.servers.models.fakes import FakeBackend

pytestmark = pytest.mark.anyio

WEATHER_TOOL = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


async def collect(service: Any, args: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    chunks: list[dict[str, Any]] = []

    async def emit(chunk: dict[str, Any]) -> None:
        chunks.append(chunk)

    result = await service.chat(args, emit=emit)
    return result, chunks


@pytest.mark.parametrize("protocol", ["openai", "ollama", "anthropic"])
async def test_chat_answers_in_openai_shape_with_usage_and_metadata(
    backends: Backends, protocol: str, tmp_path: Path
) -> None:
    async with backends(protocol) as fake:
        service = service_for(tmp_path, {"b": fake}, {"main": {"deployments": [one("b")]}})
        try:
            answer = await service.chat({"model": "main", "messages": USER})
        finally:
            await service.aclose()
    assert answer["object"] == "chat.completion" and answer["model"] == "main"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the fake backend"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]) == (10, 5)
    assert answer["toolmux"]["deployment"] == "b/fake-model" and answer["toolmux"]["attempts"] == 1


@pytest.mark.parametrize("protocol", ["openai", "ollama", "anthropic"])
async def test_stream_chunks_have_role_first_and_finish_reason_only_last(
    backends: Backends, protocol: str, tmp_path: Path
) -> None:
    async with backends(protocol) as fake:
        service = service_for(tmp_path, {"b": fake}, {"main": {"deployments": [one("b")]}})
        try:
            answer, chunks = await collect(service, {"model": "main", "messages": USER, "stream": True})
        finally:
            await service.aclose()
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    assert "".join(d.get("content", "") for d in deltas) == "Hello from the fake backend"
    reasons = [c["choices"][0]["finish_reason"] for c in chunks]
    assert reasons[-1] == "stop" and all(r is None for r in reasons[:-1])
    assert {c["id"] for c in chunks} == {answer["id"]} and {c["model"] for c in chunks} == {"main"}
    assert answer["choices"][0]["message"]["content"] == "Hello from the fake backend"
    assert answer["usage"]["completion_tokens"] == 5
    assert answer["toolmux"]["ttft_ms"] is not None


@pytest.mark.parametrize("protocol", ["openai", "ollama", "anthropic"])
async def test_native_tool_calls_come_back_as_openai_tool_calls_streamed_with_index(
    backends: Backends, protocol: str, tmp_path: Path
) -> None:
    async with backends(protocol, tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}) as fake:
        service = service_for(tmp_path, {"b": fake}, {"main": {"deployments": [one("b")]}})
        try:
            plain = await service.chat({"model": "main", "messages": USER, "tools": WEATHER_TOOL})
            streamed, chunks = await collect(
                service, {"model": "main", "messages": USER, "tools": WEATHER_TOOL, "stream": True}
            )
        finally:
            await service.aclose()
    for answer in (plain, streamed):
        call = answer["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert call["id"] and answer["choices"][0]["finish_reason"] == "tool_calls"
    call_deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert call_deltas and all(d["index"] == 0 for d in call_deltas)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_results_in_the_conversation_reach_anthropic_as_tool_result_blocks(
    backends: Backends, tmp_path: Path
) -> None:
    async with backends("anthropic") as fake:
        service = service_for(
            tmp_path,
            {"b": fake},
            {"main": {"deployments": [one("b")]}},
        )
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_9", "content": "18 C"},
        ]
        try:
            await service.chat({"model": "main", "messages": messages, "tools": WEATHER_TOOL, "max_tokens": 50})
        finally:
            await service.aclose()
    sent = fake.chat_requests[0]
    assert sent.headers["anthropic-version"] and sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 50
    assert sent.body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_9",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert sent.body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "18 C"}],
    }
    assert sent.body["tools"][0]["input_schema"] == {"type": "object"}


async def test_backend_api_key_is_sent_as_each_protocol_expects(backends: Backends, tmp_path: Path) -> None:
    async with backends("openai") as oa, backends("anthropic") as an:
        service = service_for(
            tmp_path,
            {"oa": oa, "an": an},
            {"a": {"deployments": [one("oa")]}, "b": {"deployments": [one("an")]}},
            backend_options={"oa": {"api_key": "sk-oa"}, "an": {"api_key": "sk-an"}},
        )
        try:
            await service.chat({"model": "a", "messages": USER})
            await service.chat({"model": "b", "messages": USER})
        finally:
            await service.aclose()
    assert oa.chat_requests[0].headers["authorization"] == "Bearer sk-oa"
    assert an.chat_requests[0].headers["x-api-key"] == "sk-an"


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
async def test_embeddings_come_back_in_input_order(backends: Backends, protocol: str, tmp_path: Path) -> None:
    async with backends(protocol) as fake:
        service = service_for(tmp_path, {"b": fake}, {"emb": {"deployments": [one("b", "embed-model")]}})
        try:
            answer = await service.embed({"model": "emb", "input": ["a", "bbb"]})
        finally:
            await service.aclose()
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert [d["embedding"][0] for d in answer["data"]] == [1.0, 3.0]
    assert answer["model"] == "emb"


async def test_old_ollama_without_api_embed_falls_back_to_api_embeddings(backends: Backends, tmp_path: Path) -> None:
    async with backends("ollama", legacy_embeddings_only=True) as fake:
        service = service_for(tmp_path, {"b": fake}, {"emb": {"deployments": [one("b", "embed-model")]}})
        try:
            answer = await service.embed({"model": "emb", "input": ["xy", "z"]})
        finally:
            await service.aclose()
    assert [d["embedding"][0] for d in answer["data"]] == [2.0, 1.0]
    assert [r.path for r in fake.requests] == ["/api/embed", "/api/embeddings", "/api/embeddings"]


async def test_anthropic_embeddings_are_refused_naming_the_model(tmp_path: Path, anthropic_fake: FakeBackend) -> None:
    service = service_for(tmp_path, {"b": anthropic_fake}, {"emb": {"deployments": [one("b")]}})
    try:
        with pytest.raises(ToolError) as caught:
            await service.embed({"model": "emb", "input": "x"})
    finally:
        await service.aclose()
    assert caught.value.field == "model" and "cannot compute embeddings" in caught.value.message


async def test_ollama_request_carries_options_format_and_images(tmp_path: Path, ollama_fake: FakeBackend) -> None:
    service = service_for(tmp_path, {"b": ollama_fake}, {"main": {"deployments": [one("b")]}})
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    try:
        await service.chat(
            {
                "model": "main",
                "messages": messages,
                "temperature": 0.2,
                "max_tokens": 7,
                "response_format": {"type": "json_object"},
            }
        )
    finally:
        await service.aclose()
    body = ollama_fake.chat_requests[0].body
    assert body["options"] == {"temperature": 0.2, "num_predict": 7}
    assert body["format"] == "json" and body["stream"] is False
    assert body["messages"][0] == {"role": "user", "content": "What is this?", "images": ["AAAA"]}


async def test_unknown_fields_pass_through_only_when_the_alias_allows(tmp_path: Path, openai_fake: FakeBackend) -> None:
    aliases = {"open": {"deployments": [one("b")], "passthrough": True}, "closed": {"deployments": [one("b")]}}
    service = service_for(tmp_path, {"b": openai_fake}, aliases)
    try:
        await service.chat({"model": "open", "messages": USER, "extra": {"optillm_approach": "moa"}})
        await service.chat({"model": "closed", "messages": USER, "extra": {"optillm_approach": "moa"}})
    finally:
        await service.aclose()
    assert openai_fake.chat_requests[0].body["optillm_approach"] == "moa"
    assert "optillm_approach" not in openai_fake.chat_requests[1].body
