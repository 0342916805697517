"""The server kit: contracts enforced, errors shaped, a real stdio child served."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from servers.demo.server import create
from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result

pytestmark = pytest.mark.anyio


def demo() -> Domain:
    return create(ServerSettings(name="demo"))


def ctx(tool: str = "t") -> ToolContext:
    return ToolContext(tool=tool, request_id="req-1")


async def test_valid_call_returns_structured_content_and_json_text() -> None:
    result = await demo().call("add", {"a": 2, "b": 3.5}, ctx())
    assert result["isError"] is False
    assert result["structuredContent"] == {"sum": 5.5}
    assert result["content"][0]["text"] == '{"sum":5.5}'


async def test_missing_field_is_named_in_an_error_result() -> None:
    result = await demo().call("add", {"a": 1}, ctx())
    error = error_from_result(result)
    assert error is not None and error.code == "invalid_argument"
    assert error.field == "b"
    assert "missing required field 'b'" in result["content"][0]["text"]


async def test_wrong_type_names_field_and_rule() -> None:
    error = error_from_result(await demo().call("count", {"to": "ten"}, ctx()))
    assert error is not None and error.field == "to"
    assert "rule: type" in error.message


async def test_unexpected_field_is_refused() -> None:
    error = error_from_result(await demo().call("echo", {"text": "x", "txt": "y"}, ctx()))
    assert error is not None and error.field == "txt"


async def test_unknown_tool_lists_known_tools() -> None:
    error = error_from_result(await demo().call("ech", {}, ctx()))
    assert error is not None and error.code == "not_found"
    assert "echo" in error.message and "add" in error.message


async def test_handler_crash_is_internal_error_with_request_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    domain = demo()

    async def boom(args: dict[str, Any], c: ToolContext) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    domain.add_tool("echo", boom)
    result = await domain.call("echo", {"text": "x"}, ctx())
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert "req-1" in text and "secret detail" not in text and "Traceback" not in text
    assert "secret detail" in caplog.text  # the operator still sees it in the log


async def test_result_outside_output_schema_is_reported_as_internal_error() -> None:
    domain = demo()

    async def wrong(args: dict[str, Any], c: ToolContext) -> dict[str, Any]:
        return {"total": 1}

    domain.add_tool("add", wrong)
    error = error_from_result(await domain.call("add", {"a": 1, "b": 2}, ctx()))
    assert error is not None and error.code == "internal"


async def test_tool_error_keeps_code_field_and_retry_hint() -> None:
    domain = demo()

    async def busy(args: dict[str, Any], c: ToolContext) -> dict[str, Any]:
        raise ToolError("object is locked", code="busy", field="key", retryable=True, retry_after=1.5)

    domain.add_tool("echo", busy)
    error = error_from_result(await domain.call("echo", {"text": "x"}, ctx()))
    assert error is not None
    assert (error.code, error.field, error.retryable, error.retry_after) == ("busy", "key", True, 1.5)


async def test_hidden_tools_leave_the_listing() -> None:
    domain = demo()
    domain.hide("count", "not configured")
    assert [t["name"] for t in domain.list_tools()] == ["echo", "add"]


async def test_contract_without_handler_is_caught_at_build_time() -> None:
    domain = Domain("demo")
    with pytest.raises(RuntimeError, match="echo"):
        domain.check_complete()


async def test_in_process_mcp_session_lists_and_calls_with_progress() -> None:
    server = demo().build_server()
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with Client(server, mode="legacy") as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == {"echo", "add", "count"}
        assert tools.tools[0].output_schema is not None
        result = await client.call_tool("count", {"to": 3, "interval": 0}, progress_callback=on_progress)
        assert result.structured_content == {"counted": 3}
    assert steps == [1, 2, 3]


async def test_toolmux_server_runs_a_domain_as_a_stdio_child() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "aggregator", "server", "demo", "--stdio"])
    with anyio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            result = await client.call_tool("echo", {"text": "über"})
            assert result.structured_content == {"text": "über"}
            bad = await client.call_tool("echo", {})
            assert bad.is_error
