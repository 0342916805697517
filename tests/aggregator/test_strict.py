"""Lean contracts: every built-in tool is listed in a form the OpenAI Agents SDK converts to a
strict function schema without a fall-back, and callers of either form are served."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from agents.strict_schema import ensure_strict_json_schema

import schemas
from aggregator.lazy import lazy_tools
from aggregator.strict import NotStrict, strict_view
from servers.kit.contract import ToolContract
from servers.kit.errors import ToolError
from tests.aggregator.hubkit import running_hub

BUILTIN_TOOLS = [(domain, tool) for domain in schemas.domains() for tool in schemas.load(domain)["tools"]]


def sdk_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """What the Agents SDK does with an MCP tool's schema (agents.mcp.util.MCPUtil.to_function_tool,
    convert_schemas_to_strict=True): any exception there is a fall-back to non-strict mode."""
    return ensure_strict_json_schema(copy.deepcopy(schema), _reject_open_objects=True)


@pytest.mark.parametrize(("domain", "tool"), BUILTIN_TOOLS, ids=[f"{d}-{t['name']}" for d, t in BUILTIN_TOOLS])
def test_every_builtin_contract_converts_to_strict_mode_unchanged(domain: str, tool: dict[str, Any]) -> None:
    view, _shape = strict_view(tool["inputSchema"])
    # The SDK accepts it, and needs to change nothing: every property required, every object closed.
    assert sdk_strict(view) == view


@pytest.mark.parametrize("tool", lazy_tools(), ids=lambda t: t["name"])
def test_the_lazy_modes_tools_are_strict_as_listed(tool: dict[str, Any]) -> None:
    assert sdk_strict(tool["inputSchema"]) == tool["inputSchema"]


def test_strict_form_arguments_map_back_onto_the_contract_as_written() -> None:
    contract = schemas.tool("storage", "put_object")
    view, shape = strict_view(contract["inputSchema"])
    assert set(view["required"]) == set(view["properties"])
    strict_call = {
        "bucket": "default",
        "key": "notes/a.txt",
        "text": "hello",
        "base64": None,
        "content_type": None,
        "ttl_seconds": None,
        "metadata": [{"key": "author", "value": "ada"}],
    }
    arguments = shape.apply(strict_call)
    ToolContract.from_dict(contract).validate_input(arguments)
    assert arguments == {"bucket": "default", "key": "notes/a.txt", "text": "hello", "metadata": {"author": "ada"}}


def test_the_hub_still_enforces_what_the_strict_view_leaves_out() -> None:
    contract = schemas.tool("storage", "put_object")
    _view, shape = strict_view(contract["inputSchema"])
    with pytest.raises(ToolError) as bad:
        ToolContract.from_dict(contract).validate_input(shape.apply({"bucket": "x", "key": "k", "text": "t"}))
    assert bad.value.field == "bucket"  # minLength 3 is not listed, still checked


def test_a_free_form_object_is_listed_as_a_json_string_and_decoded_back() -> None:
    schema = {"type": "object", "properties": {"extra": {"type": "object", "description": "Anything."}}}
    view, shape = strict_view(schema)
    assert view["properties"]["extra"]["type"] == ["string", "null"]
    assert shape.apply({"extra": '{"a": 1}'}) == {"extra": {"a": 1}}
    assert shape.apply({"extra": {"a": 1}}) == {"extra": {"a": 1}}
    assert shape.apply({"extra": None}) == {}


def test_a_schema_the_view_cannot_express_is_refused() -> None:
    with pytest.raises(NotStrict):
        strict_view({"anyOf": [{"type": "object"}, {"type": "string"}]})


@pytest.mark.anyio
async def test_a_builtin_is_listed_strict_and_answers_strict_and_lenient_callers(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, builtins=["storage"]) as hub, hub.client() as client:
        listed = {t.name: t for t in await client.list_tools()}["storage-put_object"]
        strict = await client.call(
            "storage-put_object",
            bucket="default",
            key="a.txt",
            text="strict",
            base64=None,
            content_type=None,
            ttl_seconds=None,
            metadata=[{"key": "by", "value": "test"}],
        )
        lenient = await client.call("storage-put_object", bucket="default", key="b.txt", text="lenient")
        head = await client.call("storage-head_object", bucket="default", key="a.txt")
    assert listed.input_schema["additionalProperties"] is False
    assert set(listed.input_schema["required"]) == set(listed.input_schema["properties"])
    assert strict["size"] == 6 and lenient["size"] == 7
    assert head["metadata"] == {"by": "test"}
