"""The stateless revision's HTTP headers: one codec and one rule set for both sides of the hub."""

from __future__ import annotations

import pytest

from aggregator.protocol import headers, jsonrpc
from aggregator.protocol.jsonrpc import RpcError


@pytest.mark.parametrize("value", ["plain", "été", " padded ", "line\nbreak", "=?base64?aGk=?=", ""])
def test_every_value_survives_the_header_round_trip(value: str) -> None:
    encoded = headers.encode_value(value)
    assert encoded.isascii() and encoded.isprintable()
    assert headers.decode_value(encoded, "Mcp-Name") == value


def test_a_plain_value_is_sent_verbatim() -> None:
    assert headers.encode_value("storage-put_object") == "storage-put_object"


def test_a_malformed_base64_value_is_a_header_mismatch() -> None:
    with pytest.raises(RpcError) as caught:
        headers.decode_value("=?base64?not base64!?=", "Mcp-Name")
    assert caught.value.code == jsonrpc.HEADER_MISMATCH


def test_a_stateless_request_names_its_method_and_target_in_headers() -> None:
    message = jsonrpc.request(1, "tools/call", {"name": "été"})
    sent = headers.modern_headers(message, "2026-07-28")
    assert sent == {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "=?base64?w6l0w6k=?="}
    received = {name.lower(): value for name, value in sent.items()}
    headers.validate(received, message)


def test_param_headers_mirror_the_declared_arguments_and_the_server_accepts_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
        },
    }
    declared = headers.x_mcp_headers(schema)
    arguments = {"region": "zürich", "opts": {"dry": True}}
    sent = headers.param_headers(declared, arguments)
    assert sent == {"Mcp-Param-region": "=?base64?esO8cmljaA==?=", "Mcp-Param-dry": "true"}
    message = jsonrpc.request(1, "tools/call", {"name": "t", "arguments": arguments})
    received = {"mcp-method": "tools/call", "mcp-name": "t", **{k.lower(): v for k, v in sent.items()}}
    headers.validate(received, message, declared)


def test_a_param_header_that_disagrees_with_the_body_is_a_mismatch() -> None:
    declared: dict[str, tuple[str, ...]] = {"region": ("region",)}
    message = jsonrpc.request(1, "tools/call", {"name": "t", "arguments": {"region": "eu"}})
    with pytest.raises(RpcError) as caught:
        headers.validate({"mcp-method": "tools/call", "mcp-name": "t", "mcp-param-region": "us"}, message, declared)
    assert caught.value.code == jsonrpc.HEADER_MISMATCH
