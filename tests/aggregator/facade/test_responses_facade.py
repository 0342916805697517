"""`/v1/responses`, driven by the real `openai` package: text, streaming, function tools, stored turns,
and the hub running its own tools for the model (`mcp` tools), streamed or not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import agents
import httpx2
import openai
import pytest

from servers.kit import ToolError
from tests.aggregator.facade.api_faces import (
    MASTER_KEY,
    MODELS_ONLY_KEY,
    FacesHub,
    PolicyBackend,
    Reply,
    faces_hub,
    policy_backend,
    tool_outputs,
)

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HUB_STORAGE = {
    "type": "mcp",
    "server_label": "toolmux",
    "allowed_tools": ["storage-put_object"],
    "require_approval": "never",
}
NOTE = {"bucket": "default", "key": "notes/hello.txt", "text": "hello from the model"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def _hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FacesHub]:
    async with policy_backend() as fake, faces_hub(tmp_path_factory.mktemp("faces"), fake) as hub:
        yield hub


@pytest.fixture
def hub(_hub: FacesHub) -> FacesHub:
    _hub.fake.reset()
    return _hub


@pytest.fixture
def fake(hub: FacesHub) -> PolicyBackend:
    assert isinstance(hub.fake, PolicyBackend)
    return hub.fake


@pytest.fixture
async def client(hub: FacesHub) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20) as sdk:
        yield sdk


def store_then_answer(body: dict[str, Any], key: str = "notes/hello.txt") -> Reply:
    """Call storage-put_object first; once its result is in, answer with what it said."""
    outputs = tool_outputs(body)
    if not outputs:
        return Reply(call=("storage-put_object", {**NOTE, "key": key}))
    return Reply(text=f"stored; the tool said: {outputs[-1][:200]}")


async def stored_text(hub: FacesHub, key: str) -> str:
    _, data = await hub.domains["storage"].service.read("default", key, 1000)
    return bytes(data).decode()


def weather_round_trip(body: dict[str, Any]) -> Reply:
    outputs = tool_outputs(body)
    if not outputs:
        return Reply(call=("get_weather", {"city": "Paris"}))
    return Reply(text=f"The weather: {outputs[-1]}")


async def test_a_string_input_gets_a_text_response_with_usage(client: openai.AsyncOpenAI, fake: PolicyBackend) -> None:
    response = await client.responses.create(model="main", input="Say hello", instructions="Be brief.")
    assert response.output_text == "Hello from the fake backend"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens == 10 and response.usage.total_tokens == 15
    sent = fake.chat_requests[-1].body["messages"]
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


async def test_a_stored_response_can_be_retrieved_listed_and_deleted(client: openai.AsyncOpenAI) -> None:
    created = await client.responses.create(model="main", input=[{"role": "user", "content": "Say hello"}])
    again = await client.responses.retrieve(created.id)
    assert again.output_text == created.output_text
    items = await client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    await client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)


async def test_previous_response_id_sends_the_earlier_turns_to_the_model(
    client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    first = await client.responses.create(model="main", input="My name is Ada.", instructions="Be brief.")
    await client.responses.create(model="main", input="What is my name?", previous_response_id=first.id)
    sent = fake.chat_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada." and sent[1]["content"] == "Hello from the fake backend"


async def test_a_response_stored_false_cannot_be_continued(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(model="main", input="hi", store=False)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(model="main", input="again", previous_response_id=first.id)
    assert caught.value.body is not None


async def test_another_key_cannot_read_a_stored_response(hub: FacesHub, client: openai.AsyncOpenAI) -> None:
    created = await client.responses.create(model="main", input="hi")
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MODELS_ONLY_KEY, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(created.id)


async def test_a_function_tool_round_trip_continues_from_the_stored_turn(
    client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = weather_round_trip
    first = await client.responses.create(model="main", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert fake.chat_requests[-1].body["tools"][0]["function"]["name"] == "get_weather"
    second = await client.responses.create(
        model="main",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "The weather: sunny, 21 C"
    roles = [m["role"] for m in fake.chat_requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "tool"]


async def test_streaming_sends_the_typed_events_in_order_and_the_final_response(
    client: openai.AsyncOpenAI,
) -> None:
    async with client.responses.stream(model="main", input="Say hello") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Hello from the fake backend"
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds.count("response.output_text.delta") == 5
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_stream_events_are_numbered_in_sequence(hub: FacesHub) -> None:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20) as http:
        response = await http.post(hub.url + "/v1/responses", json={"model": "main", "input": "hi", "stream": True})
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_a_streamed_function_call_arrives_as_argument_deltas(
    client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = weather_round_trip
    async with client.responses.stream(model="main", input="Weather?", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert kinds.count("response.function_call_arguments.delta") == 2
    assert "response.function_call_arguments.done" in kinds


async def test_an_unknown_alias_is_an_openai_404_before_any_stream(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        async with client.responses.stream(model="nope", input="hi") as stream:
            async for _ in stream:
                pass


async def test_an_unsupported_tool_type_is_a_400_naming_the_field(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="main", input="hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"


# ---- the hub's own tools, run for the model ------------------------------------------------------


async def test_the_hub_runs_its_storage_tool_for_the_model_and_the_answer_arrives(
    hub: FacesHub, client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = store_then_answer
    response = await client.responses.create(model="main", input="Save a note", tools=[HUB_STORAGE])  # type: ignore[list-item]
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    listed, called = response.output[0], response.output[1]
    assert [t.name for t in listed.tools] == ["storage-put_object"]  # type: ignore[union-attr]
    assert called.name == "storage-put_object" and called.error is None  # type: ignore[union-attr]
    assert response.output_text.startswith("stored; the tool said:")
    assert await stored_text(hub, "notes/hello.txt") == "hello from the model"
    assert response.usage is not None and response.usage.total_tokens == 30  # two model calls


async def test_the_hub_tool_loop_streams_its_items(client: openai.AsyncOpenAI, fake: PolicyBackend) -> None:
    fake.policy = store_then_answer
    async with client.responses.stream(model="main", input="Save a note", tools=[HUB_STORAGE]) as stream:  # type: ignore[list-item]
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert "response.mcp_call.completed" in kinds and kinds[-1] == "response.completed"
    assert final.output_text.startswith("stored; the tool said:")


async def test_a_key_scoped_away_from_storage_sees_the_tool_refused_inside_the_loop(
    hub: FacesHub, fake: PolicyBackend
) -> None:
    fake.policy = store_then_answer
    async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MODELS_ONLY_KEY, max_retries=0) as scoped:
        response = await scoped.responses.create(model="main", input="Save a note", tools=[HUB_STORAGE])  # type: ignore[list-item]
    called = next(item for item in response.output if item.type == "mcp_call")
    assert called.error is not None and called.error.startswith("not_found")  # type: ignore[union-attr]
    assert response.status == "completed" and response.output_text.startswith("stored; the tool said: error")
    assert [t.name for t in response.output[0].tools] == []  # type: ignore[union-attr]


async def test_a_tool_that_needs_approval_waits_for_it_and_runs_once_approved(
    hub: FacesHub, client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = lambda body: store_then_answer(body, "notes/approved.txt")
    asking = {**HUB_STORAGE, "require_approval": "always"}
    first = await client.responses.create(model="main", input="Save a note", tools=[asking])  # type: ignore[list-item]
    request = next(item for item in first.output if item.type == "mcp_approval_request")
    assert request.name == "storage-put_object"
    with pytest.raises(ToolError):  # nothing ran yet
        await stored_text(hub, "notes/approved.txt")
    second = await client.responses.create(
        model="main",
        previous_response_id=first.id,
        tools=[asking],  # type: ignore[list-item]
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    assert second.output[0].approval_request_id == request.id  # type: ignore[union-attr]
    assert second.output_text.startswith("stored; the tool said:")
    assert await stored_text(hub, "notes/approved.txt") == "hello from the model"


async def test_a_loop_that_never_ends_stops_at_the_round_bound(client: openai.AsyncOpenAI, fake: PolicyBackend) -> None:
    fake.policy = lambda body: Reply(call=("storage-put_object", NOTE))
    response = await client.responses.create(model="main", input="loop", tools=[HUB_STORAGE])  # type: ignore[list-item]
    assert response.status == "incomplete"
    assert len(fake.chat_requests) == 8  # facades.hub_tools.max_rounds


async def test_the_agents_sdk_runs_an_agent_with_its_default_responses_model(
    hub: FacesHub, fake: PolicyBackend
) -> None:
    fake.policy = weather_round_trip
    sdk = openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0)

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    model = agents.OpenAIResponsesModel(model="main", openai_client=sdk)
    agent = agents.Agent(name="weather", instructions="Answer briefly.", model=model, tools=[get_weather])
    result = await agents.Runner.run(agent, "Weather in Paris?", run_config=agents.RunConfig(tracing_disabled=True))
    assert result.final_output == "The weather: sunny in Paris"
    await sdk.close()


# ---- the same loop on /v1/chat/completions, opted into -------------------------------------------


async def test_chat_completions_run_hub_tools_when_the_request_opts_in(
    hub: FacesHub, client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = lambda body: store_then_answer(body, "notes/chat.txt")
    completion = await client.chat.completions.create(
        model="main",
        messages=[{"role": "user", "content": "Save a note"}],
        extra_body={"toolmux_tools": {"allowed_tools": ["storage-put_object"]}},
    )
    assert (completion.choices[0].message.content or "").startswith("stored; the tool said:")
    assert completion.usage is not None and completion.usage.total_tokens == 30
    assert await stored_text(hub, "notes/chat.txt") == "hello from the model"


async def test_streamed_chat_with_hub_tools_streams_the_text_without_the_hubs_calls(
    client: openai.AsyncOpenAI, fake: PolicyBackend
) -> None:
    fake.policy = lambda body: store_then_answer(body, "notes/chat-stream.txt")
    stream = await client.chat.completions.create(
        model="main",
        messages=[{"role": "user", "content": "Save a note"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"toolmux_tools": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("stored; the tool said:")
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)  # the hub's calls stay inside
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 30  # both rounds


async def test_chat_without_the_opt_in_never_runs_a_hub_tool(client: openai.AsyncOpenAI, fake: PolicyBackend) -> None:
    fake.policy = lambda body: store_then_answer(body, "notes/never.txt")
    completion = await client.chat.completions.create(model="main", messages=[{"role": "user", "content": "Save"}])
    assert completion.choices[0].finish_reason == "tool_calls" and len(fake.chat_requests) == 1


async def test_an_input_item_missing_a_field_is_a_400_naming_it(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="main", input=[{"type": "function_call_output", "output": "x"}])
    assert caught.value.param == "input[0].call_id"
