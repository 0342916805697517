"""The OpenAI-compatible face, driven by the real `openai` Python package over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import openai
import orjson
import pytest

from aggregator.config import FacadeLimit, FacadesConfig
from servers.models.usage import UsageRecord
from tests.aggregator.facade.conftest import LIMITED_KEY, MASTER_KEY, Hub, start_hub
from tests.servers.models.fakes import fake_backend

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10) as sdk:
        yield sdk


async def test_models_lists_the_aliases(client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == ["main", "embed"]
    assert (await client.models.retrieve("main")).id == "main"


async def test_chat_completion_answers_with_overhead_attempts_and_cost_headers(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="main", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake backend"
    assert completion.model == "main" and completion.usage is not None and completion.usage.total_tokens == 15
    assert raw.headers["x-toolmux-attempts"] == "1" and float(raw.headers["x-toolmux-overhead-ms"]) >= 0
    assert float(raw.headers["x-toolmux-cost"]) == pytest.approx(20 / 1e6)
    assert raw.headers["x-toolmux-deployment"] == "local/fake-model" and raw.headers["x-request-id"]


async def test_streaming_chat_arrives_chunk_by_chunk_with_usage_and_done(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.gate = gate = anyio.Event()
    stream = await client.chat.completions.create(
        model="main", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 1:
            # The backend is still holding the rest: this chunk came through before the answer was complete.
            assert not gate.is_set()
            gate.set()
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == "Hello from the fake backend"
    assert chunks[0].choices[0].delta.role == "assistant"
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "stop" and all(r is None for r in reasons[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_raw_sse_ends_with_done_and_has_no_usage_chunk_unless_asked(hub: Hub) -> None:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {MASTER_KEY}"}) as http:
        response = await http.post(
            hub.url + "/v1/chat/completions", json={"model": "main", "messages": USER, "stream": True}
        )
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert all(orjson.loads(e)["choices"] for e in events[:-1])


async def test_tool_call_round_trip(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    first = await client.chat.completions.create(model="main", messages=USER, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"city": "Paris"}

    hub.fake.tool_call = None
    follow_up = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
    ]
    second = await client.chat.completions.create(model="main", messages=follow_up, tools=[WEATHER])
    assert second.choices[0].message.content == "Hello from the fake backend"
    sent = hub.fake.chat_requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "18 C",
    }


async def test_streamed_tool_call_deltas_carry_their_index(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.tool_call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    stream = await client.chat.completions.create(model="main", messages=USER, tools=[WEATHER], stream=True)
    deltas = [tc async for chunk in stream for tc in (chunk.choices[0].delta.tool_calls or [])]
    assert {d.index for d in deltas} == {0}
    assert deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}


async def test_embeddings_as_floats_and_as_base64(client: openai.AsyncOpenAI) -> None:
    floats = await client.embeddings.create(model="embed", input=["ab", "c"], encoding_format="float")
    assert [d.embedding for d in floats.data] == [[2.0, 0.0, 0.5], [1.0, 1.0, 0.5]]
    default = await client.embeddings.create(model="embed", input="abcd")  # the SDK asks for base64
    assert default.data[0].embedding == [4.0, 0.0, 0.5]


async def test_legacy_completions(client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(model="main", prompt="Say hello")
    assert completion.choices[0].text == "Hello from the fake backend" and completion.object == "text_completion"
    stream = await client.completions.create(model="main", prompt="Say hello", stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices]) == "Hello from the fake backend"


async def test_cache_hit_and_no_store_bypass(hub: Hub, client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.with_raw_response.create(model="main", messages=USER)
    second = await client.chat.completions.with_raw_response.create(model="main", messages=USER)
    bypass = await client.chat.completions.with_raw_response.create(
        model="main", messages=USER, extra_headers={"Cache-Control": "no-store"}
    )
    assert [r.headers["x-toolmux-cache"] for r in (first, second, bypass)] == ["miss", "hit", "miss"]
    assert len(hub.fake.chat_requests) == 2


async def test_unknown_request_fields_do_not_break_the_call(hub: Hub, client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="main", messages=USER, extra_body={"optillm_approach": "moa"}
    )
    assert completion.choices[0].message.content
    assert "optillm_approach" not in hub.fake.chat_requests[-1].body  # passthrough is off by default


# --- errors ------------------------------------------------------------------------------------


async def test_unknown_alias_is_404_listing_the_available_ones(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-9", messages=USER)
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model" and "embed, main" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "main"}, "messages"),
        ({"model": "main", "messages": "hello"}, "messages"),
        ({"model": "main", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "main", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "main", "messages": []}, "messages"),
    ],
)
async def test_bad_requests_are_400_naming_the_param(hub: Hub, body: dict[str, object], param: str) -> None:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {MASTER_KEY}"}) as http:
        response = await http.post(hub.url + "/v1/chat/completions", json=body)
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


async def test_invalid_json_and_non_object_bodies_are_400(hub: Hub) -> None:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {MASTER_KEY}"}) as http:
        broken = await http.post(hub.url + "/v1/chat/completions", content=b"{not json")
        listed = await http.post(hub.url + "/v1/chat/completions", json=[1, 2])
    assert broken.status_code == listed.status_code == 400
    assert "not valid JSON" in broken.json()["error"]["message"]


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    async with fake_backend("openai") as fake:
        async for hub in start_hub(
            tmp_path, fake, facades=FacadesConfig(llm=FacadeLimit(timeout=600, max_body_bytes=4096))
        ):
            async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
                with pytest.raises(openai.APIStatusError) as caught:
                    await sdk.chat.completions.create(
                        model="main", messages=[{"role": "user", "content": "x" * 10_000}]
                    )
    assert caught.value.status_code == 413 and caught.value.body["code"] == "request_too_large"


async def test_upstream_garbage_is_502_with_a_clear_message(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.garbage()
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="main", messages=USER)
    assert caught.value.status_code == 502
    assert "malformed JSON" in caught.value.body["message"] and caught.value.body["type"] == "api_error"


async def test_upstream_rate_limit_is_429_with_retry_after(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.fail(429, retry_after="7")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="main", messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"


async def test_a_stream_whose_backend_fails_before_output_gets_a_proper_status(
    hub: Hub, client: openai.AsyncOpenAI
) -> None:
    hub.fake.fail(503)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="main", messages=USER, stream=True)
    assert caught.value.status_code == 502


async def test_a_stream_that_breaks_mid_way_ends_with_an_error_event(hub: Hub, client: openai.AsyncOpenAI) -> None:
    hub.fake.disconnect_mid_stream()
    stream = await client.chat.completions.create(model="main", messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.content == "Hello"
    assert "connection" in caught.value.message


async def test_missing_and_wrong_keys_are_401(hub: Hub) -> None:
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key="wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.models.list()
    assert caught.value.body["type"] == "authentication_error"
    async with httpx2.AsyncClient() as http:
        response = await http.get(hub.url + "/v1/models")
    assert response.status_code == 401 and response.json()["error"]["message"]


async def test_a_key_without_the_chat_tool_in_scope_cannot_chat(hub: Hub) -> None:
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=LIMITED_KEY, max_retries=0) as sdk:
        assert [m.id for m in (await sdk.models.list()).data] == ["main", "embed"]
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="main", messages=USER)


async def test_a_spent_budget_is_402_and_not_retried_by_the_sdk(tmp_path: Path) -> None:
    async with fake_backend("openai") as fake:
        async for hub in start_hub(tmp_path, fake, budgets={"master": {"max_cost": 0.00001}}):
            async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=2) as sdk:
                await sdk.chat.completions.create(model="main", messages=USER)  # spends 0.00002
                with pytest.raises(openai.APIStatusError) as caught:
                    await sdk.chat.completions.create(
                        model="main", messages=USER, extra_headers={"Cache-Control": "no-store"}
                    )
    assert caught.value.status_code == 402 and caught.value.body["code"] == "budget_exceeded"
    assert len(fake.chat_requests) == 1


async def test_a_client_leaving_mid_stream_cancels_the_upstream_call(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.fake.gate = anyio.Event()  # the backend holds the answer after its first words
    recorded: list[UsageRecord] = []
    call_ended = anyio.Event()
    record = hub.service.usage.record

    async def watched(entry: UsageRecord) -> None:
        await record(entry)
        recorded.append(entry)
        call_ended.set()

    monkeypatch.setattr(hub.service.usage, "record", watched)
    body = {"model": "main", "messages": USER, "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        http.stream("POST", hub.url + "/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk
    with anyio.fail_after(5):
        await call_ended.wait()
    assert (recorded[0].status, recorded[0].error_code, recorded[0].stream) == ("error", "cancelled", True)
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        assert (await sdk.models.list()).data  # the hub is fine afterwards
