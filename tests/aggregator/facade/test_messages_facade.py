"""`/v1/messages`, driven by the real `anthropic` package: text, streaming, a tool_use round trip, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from tests.aggregator.facade.api_faces import (
    MASTER_KEY,
    FacesHub,
    PolicyBackend,
    Reply,
    faces_hub,
    policy_backend,
    tool_outputs,
)

pytestmark = pytest.mark.anyio

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def _hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FacesHub]:
    async with policy_backend() as fake, faces_hub(tmp_path_factory.mktemp("faces"), fake) as hub:
        yield hub


@pytest.fixture
def fake(_hub: FacesHub) -> PolicyBackend:
    _hub.fake.reset()
    assert isinstance(_hub.fake, PolicyBackend)
    return _hub.fake


@pytest.fixture
async def client(_hub: FacesHub, fake: PolicyBackend) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=_hub.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as sdk:
        yield sdk


def weather_round_trip(body: dict[str, Any]) -> Reply:
    outputs = tool_outputs(body)
    if not outputs:
        return Reply(call=("get_weather", {"city": "Paris"}))
    return Reply(text=f"The weather: {outputs[-1]}")


async def test_a_message_gets_a_text_answer_with_stop_reason_and_usage(
    client: anthropic.AsyncAnthropic, fake: PolicyBackend
) -> None:
    message = await client.messages.create(
        model="main", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from the fake backend"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.input_tokens == 10 and message.usage.output_tokens == 5
    sent = fake.chat_requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["max_tokens"] == 100


async def test_a_streamed_message_arrives_as_anthropic_events_in_order(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="main", max_tokens=100, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0].text == "Hello from the fake backend"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    raw = [k for k in kinds if k not in ("text",)]
    assert raw[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert raw[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_a_tool_use_round_trip(client: anthropic.AsyncAnthropic, fake: PolicyBackend) -> None:
    fake.policy = weather_round_trip
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    first = await client.messages.create(model="main", max_tokens=100, messages=[question], tools=[WEATHER])  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    second = await client.messages.create(
        model="main",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert second.content[0].text == "The weather: sunny"  # type: ignore[union-attr]
    roles = [m["role"] for m in fake.chat_requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "tool"]


async def test_a_streamed_tool_use_arrives_as_input_json_deltas(
    client: anthropic.AsyncAnthropic, fake: PolicyBackend
) -> None:
    fake.policy = weather_round_trip
    async with client.messages.stream(
        model="main",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"


async def test_an_unknown_alias_is_an_anthropic_not_found_error(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def test_a_wrong_key_is_an_anthropic_authentication_error(_hub: FacesHub) -> None:
    async with anthropic.AsyncAnthropic(base_url=_hub.url, api_key="wrong", max_retries=0) as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await sdk.messages.create(model="main", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_a_message_without_messages_is_an_invalid_request_error(_hub: FacesHub) -> None:
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(headers=headers) as http:
        response = await http.post(_hub.url + "/v1/messages", json={"model": "main", "max_tokens": 5})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_count_tokens_gives_an_estimate(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="main", messages=[{"role": "user", "content": "hello " * 40}])
    assert 40 <= counted.input_tokens <= 200
