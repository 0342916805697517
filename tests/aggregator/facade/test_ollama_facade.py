"""The Ollama-compatible face for clients that only speak Ollama, over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import orjson
import pytest

from tests.aggregator.facade.conftest import MASTER_KEY, Hub

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def http(ollama_hub: Hub) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=ollama_hub.url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    ) as client:
        yield client


async def test_tags_lists_the_aliases_as_ollama_models(http: httpx2.AsyncClient) -> None:
    response = await http.get("/api/tags")
    assert [m["name"] for m in response.json()["models"]] == ["main", "embed"]
    assert (await http.get("/api/version")).json()["version"]


async def test_chat_streams_ndjson_by_default_and_ends_with_done(http: httpx2.AsyncClient) -> None:
    response = await http.post("/api/chat", json={"model": "main:latest", "messages": USER})
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "".join(line["message"]["content"] for line in lines) == "Hello from the fake backend"
    assert [line["done"] for line in lines][-1] is True and not any(line["done"] for line in lines[:-1])
    assert lines[-1]["eval_count"] == 5 and lines[-1]["prompt_eval_count"] == 10


async def test_chat_without_stream_answers_once_with_tool_calls_as_objects(
    ollama_hub: Hub, http: httpx2.AsyncClient
) -> None:
    ollama_hub.fake.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = await http.post("/api/chat", json={"model": "main", "messages": USER, "tools": tools, "stream": False})
    body = response.json()
    assert body["done"] is True
    assert body["message"]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert response.headers["x-toolmux-attempts"] == "1"


async def test_generate_answers_a_prompt(ollama_hub: Hub, http: httpx2.AsyncClient) -> None:
    plain = await http.post(
        "/api/generate", json={"model": "main", "prompt": "hi", "system": "Be kind.", "stream": False}
    )
    assert plain.json()["response"] == "Hello from the fake backend"
    sent = ollama_hub.fake.chat_requests[-1].body["messages"]
    assert sent == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]
    streamed = await http.post("/api/generate", json={"model": "main", "prompt": "hi"})
    lines = [orjson.loads(line) for line in streamed.text.splitlines()]
    assert "".join(line["response"] for line in lines) == "Hello from the fake backend" and lines[-1]["done"]


async def test_embed_and_legacy_embeddings(http: httpx2.AsyncClient) -> None:
    embed = await http.post("/api/embed", json={"model": "embed", "input": ["ab", "c"]})
    assert embed.json()["embeddings"] == [[2.0, 0.0, 0.5], [1.0, 1.0, 0.5]]
    legacy = await http.post("/api/embeddings", json={"model": "embed", "prompt": "abc"})
    assert legacy.json()["embedding"] == [3.0, 0.0, 0.5]


async def test_errors_use_ollamas_error_body(http: httpx2.AsyncClient) -> None:
    unknown = await http.post("/api/chat", json={"model": "nope", "messages": USER, "stream": False})
    assert unknown.status_code == 404 and "available models: embed, main" in unknown.json()["error"]
    missing = await http.post("/api/chat", json={"messages": USER})
    assert missing.status_code == 400 and missing.json() == {"error": "model is required"}
    async with httpx2.AsyncClient(base_url=str(http.base_url)) as anonymous:
        assert (await anonymous.get("/api/tags")).status_code == 401
