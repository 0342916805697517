"""Tool calls written as text by a model become real tool_calls, streaming or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from servers.models.config import ToolCallParsingConfig, ToolCallPattern
from servers.models.normalise import StreamNormaliser, ToolCallParser, normalise_message
from tests.servers.models.conftest import USER, Backends, one, service_for

QWEN = (
    "I will check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def parser(**config: Any) -> ToolCallParser:
    return ToolCallParser(ToolCallParsingConfig(**config), ["get_weather", "search"])


def args_of(call: dict[str, Any]) -> Any:
    return orjson.loads(call["function"]["arguments"])


def test_qwen_xml_tool_call_becomes_a_tool_call_with_typed_parameters() -> None:
    text, calls = parser().parse(QWEN)
    assert text == "I will check."
    assert calls[0]["function"]["name"] == "get_weather" and args_of(calls[0]) == {"city": "Paris", "days": 3}
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"


@pytest.mark.parametrize(
    "written",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        'Sure:\n```json\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```',
    ],
)
def test_hermes_bracket_and_fenced_json_calls_are_recognised(written: str) -> None:
    _, calls = parser().parse(written)
    assert [c["function"]["name"] for c in calls] == ["get_weather"] and args_of(calls[0]) == {"city": "Paris"}


def test_several_calls_in_one_answer_are_all_found() -> None:
    text = QWEN + "\n<tool_call><function=search><parameter=q>rain</parameter></function></tool_call>"
    _, calls = parser().parse(text)
    assert [c["function"]["name"] for c in calls] == ["get_weather", "search"]


def test_calls_to_tools_the_request_did_not_declare_stay_text() -> None:
    written = '```json\n{"name": "rm_rf", "arguments": {}}\n```'
    assert parser().parse(written) == (written, [])


def test_names_and_parameters_are_remapped() -> None:
    written = "<tool_call><function=weather><parameter=town>Oslo</parameter></function></tool_call>"
    _, calls = parser(
        rename_tools={"weather": "get_weather"}, rename_parameters={"get_weather": {"town": "city"}}
    ).parse(written)
    assert calls[0]["function"]["name"] == "get_weather" and args_of(calls[0]) == {"city": "Oslo"}


def test_patterns_are_tried_in_the_configured_order() -> None:
    fenced = '```json\n{"name": "search", "arguments": {"q": "a"}}\n```\n'
    both = fenced + "<tool_call><function=get_weather></function></tool_call>"
    fenced_first = parser(patterns=[ToolCallPattern(kind="fenced_json"), ToolCallPattern(kind="qwen_xml")])
    assert [c["function"]["name"] for c in fenced_first.parse(both)[1]] == ["search"]
    assert [c["function"]["name"] for c in parser().parse(both)[1]] == ["get_weather"]


def test_a_custom_regex_pattern_works() -> None:
    custom = parser(
        patterns=[ToolCallPattern(kind="regex", regex=r"CALL (?P<name>\w+) (?P<arguments>\{.*?\})", start="CALL ")]
    )
    _, calls = custom.parse('CALL search {"q": "x"}')
    assert calls[0]["function"]["name"] == "search"


def test_non_stream_message_is_rewritten_in_place() -> None:
    message = {"role": "assistant", "content": QWEN}
    assert normalise_message(parser(), message) is True
    assert message["content"] == "I will check." and message["tool_calls"][0]["function"]["name"] == "get_weather"


def test_stream_passes_plain_text_through_and_holds_back_a_split_marker() -> None:
    stream = StreamNormaliser(parser())
    pieces = [
        "I will ",
        "check.\n<tool",
        "_call>\n<function=get_weather>",
        "<parameter=city>Paris</parameter>",
        "</function></tool_call>",
    ]
    emitted = [stream.feed(p) for p in pieces]
    assert emitted[0] == "I will " and emitted[1] == "check.\n" and emitted[2:] == ["", "", ""]
    text, calls = stream.finish()
    assert text == "" and args_of(calls[0]) == {"city": "Paris"}


def test_stream_releases_held_text_when_it_was_not_a_call() -> None:
    stream = StreamNormaliser(parser())
    out = stream.feed("Use ```print(1)``` in Python")
    text, calls = stream.finish()
    assert out + text == "Use ```print(1)``` in Python" and calls == []


@pytest.mark.anyio
async def test_a_model_writing_qwen_xml_is_answered_with_tool_calls_in_both_modes(
    backends: Backends, tmp_path: Path
) -> None:
    async with backends("ollama", reply=QWEN) as fake:
        service = service_for(tmp_path, {"o": fake}, {"main": {"deployments": [one("o")]}})
        chunks: list[dict[str, Any]] = []

        async def emit(chunk: dict[str, Any]) -> None:
            chunks.append(chunk)

        try:
            plain = await service.chat({"model": "main", "messages": USER, "tools": TOOLS})
            streamed = await service.chat(
                {"model": "main", "messages": USER, "tools": TOOLS, "stream": True}, emit=emit
            )
            untouched = await service.chat({"model": "main", "messages": USER})  # no tools declared: text stays
        finally:
            await service.aclose()
    for answer in (plain, streamed):
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert args_of(choice["message"]["tool_calls"][0]) == {"city": "Paris", "days": 3}
        assert "<tool_call>" not in (choice["message"]["content"] or "")
    streamed_text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "<tool_call>" not in streamed_text and streamed_text.startswith("I will check.")
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert untouched["choices"][0]["message"]["content"] == QWEN
