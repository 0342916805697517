"""OpenAI <-> Anthropic and OpenAI <-> Ollama shapes, both ways, tool calls included."""

from __future__ import annotations

import orjson
import pytest

from servers.models import translate_anthropic as anth
from servers.models import translate_ollama as oll
from servers.models.errors import UpstreamProtocolError, UpstreamStatusError

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
    }
]


def test_openai_request_becomes_anthropic_with_system_tools_and_merged_turns() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ],
        "tools": TOOLS,
        "tool_choice": "required",
        "stop": "END",
        "temperature": 0.5,
    }
    body = anth.request_to_anthropic("claude-x", request)
    assert body["system"] == "Be brief." and body["max_tokens"] == anth.DEFAULT_MAX_TOKENS
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"},
    }
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["tools"] == [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any"} and body["stop_sequences"] == ["END"] and body["temperature"] == 0.5


def test_anthropic_answer_and_openai_answer_translate_into_each_other() -> None:
    answer = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 4},
    }
    openai = anth.response_from_anthropic(answer, created=1)
    message = openai["choices"][0]["message"]
    assert message["content"] == "Let me look." and openai["choices"][0]["finish_reason"] == "tool_calls"
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}
    assert openai["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 3,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    back = anth.response_to_anthropic(openai)
    assert back["content"] == answer["content"] and back["stop_reason"] == "tool_use"
    assert back["usage"] == {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 4}


def test_anthropic_stream_events_become_chunks_and_errors_become_upstream_errors() -> None:
    translator = anth.StreamTranslator("m", 1)
    chunks = translator.feed(
        "message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}
    )
    chunks += translator.feed(
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f"}},
    )
    chunks += translator.feed(
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
    )
    chunks += translator.feed(
        "message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}
    )
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0,
        "id": "t1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"a"'
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls" and translator.finish() == []
    assert translator.openai_usage()["total_tokens"] == 7
    with pytest.raises(UpstreamStatusError) as caught:
        translator.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    assert caught.value.status == 529 and caught.value.retryable


def test_openai_request_becomes_ollama_and_back() -> None:
    request = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18 C"},
        ],
        "tools": TOOLS,
        "max_tokens": 9,
        "stop": "END",
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    }
    body = oll.request_to_ollama("qwen3", request, stream=True)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert body["messages"][2]["tool_name"] == "get_weather"
    assert body["options"] == {"num_predict": 9, "stop": ["END"]} and body["format"] == {"type": "object"}
    again = oll.request_from_ollama(body)
    assert again["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert orjson.loads(again["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert again["max_tokens"] == 9 and again["stop"] == ["END"] and again["tools"] == TOOLS


def test_ollama_answer_and_openai_answer_translate_into_each_other() -> None:
    answer = {
        "model": "qwen3",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 2,
    }
    openai = oll.response_from_ollama(answer, created=1)
    assert openai["choices"][0]["finish_reason"] == "tool_calls"
    assert openai["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x":1}'}
    assert openai["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    back = oll.response_to_ollama(openai, "main", started=0.0)
    assert back["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {"x": 1}}}]
    assert (back["done"], back["prompt_eval_count"], back["eval_count"]) == (True, 3, 2)


def test_ollama_stream_lines_become_chunks_with_tool_call_indexes() -> None:
    translator = oll.ChunkTranslator("m", 1)
    chunks = translator.feed({"message": {"content": "Hi"}, "done": False})
    chunks += translator.feed(
        {"message": {"content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}, "done": False}
    )
    chunks += translator.feed({"message": {"content": ""}, "done": True, "done_reason": "stop", "eval_count": 4})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and translator.usage["completion_tokens"] == 4
    with pytest.raises(UpstreamProtocolError):
        oll.ChunkTranslator("m", 1).feed({"error": "model not found"})


def test_answers_without_the_expected_fields_are_protocol_errors() -> None:
    with pytest.raises(UpstreamProtocolError):
        anth.response_from_anthropic({"id": "x"}, created=1)
    with pytest.raises(UpstreamProtocolError):
        oll.response_from_ollama(["not", "an", "object"], created=1)
