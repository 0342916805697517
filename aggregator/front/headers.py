"""HTTP request-metadata headers of the stateless revision: `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`.

The server must reject (400, -32020 HeaderMismatch) a request whose headers are missing or
disagree with its body, so that a load balancer routing on headers and the hub executing the
body can never be told different stories.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aggregator import jsonrpc
from aggregator.jsonrpc import RpcError

_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="
NAMED_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def mismatch(message: str) -> RpcError:
    return RpcError(jsonrpc.HEADER_MISMATCH, f"Header mismatch: {message}")


def decode_value(raw: str, header: str) -> str:
    """A header value with the Base64 sentinel encoding undone."""
    if raw.startswith(_SENTINEL_START) and raw.endswith(_SENTINEL_END) and len(raw) >= 11:
        body = raw[len(_SENTINEL_START) : -len(_SENTINEL_END)]
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise mismatch(f"{header} has an invalid Base64 value") from None
    if any((ord(c) < 0x20 and c != "\t") or ord(c) > 0x7E for c in raw):
        raise mismatch(f"{header} contains characters not allowed in a header value")
    return raw


def x_mcp_headers(schema: Any) -> dict[str, tuple[str, ...]]:
    """{header name (lowercase): property path} for every `x-mcp-header` reachable via `properties`."""
    found: dict[str, tuple[str, ...]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        props = node.get("properties")
        if not isinstance(props, dict):
            return
        for key, child in props.items():
            if not isinstance(child, dict):
                continue
            header = child.get("x-mcp-header")
            if isinstance(header, str) and header:
                found[header.lower()] = (*path, key)
            walk(child, (*path, key))

    walk(schema, ())
    return found


def _value_at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _matches(header_value: str, body_value: Any) -> bool:
    if isinstance(body_value, bool):
        return header_value == ("true" if body_value else "false")
    if isinstance(body_value, int | float):
        try:
            return float(header_value) == float(body_value)
        except ValueError:
            return False
    return isinstance(body_value, str) and header_value == body_value


def validate_version(headers: Mapping[str, str], version: str) -> None:
    header_version = headers.get("mcp-protocol-version")
    if header_version is None:
        raise mismatch("the MCP-Protocol-Version header is required")
    if header_version != version:
        raise mismatch(f"MCP-Protocol-Version header {header_version!r} does not match _meta value {version!r}")


def validate(
    headers: Mapping[str, str], message: dict[str, Any], param_headers: dict[str, tuple[str, ...]] | None = None
) -> None:
    """Raise RpcError(-32020) when the request's Mcp-Method/Name/Param headers disagree with the body."""
    method = message["method"]
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    header_method = headers.get("mcp-method")
    if header_method is None:
        raise mismatch("the Mcp-Method header is required")
    if header_method != method:
        raise mismatch(f"Mcp-Method header {header_method!r} does not match body method {method!r}")
    field = NAMED_METHODS.get(method)
    if field is not None and isinstance(params.get(field), str):
        raw = headers.get("mcp-name")
        if raw is None:
            raise mismatch(f"the Mcp-Name header is required for {method}")
        if decode_value(raw, "Mcp-Name") != params[field]:
            raise mismatch(f"Mcp-Name header does not match params.{field}")
    if method == "tools/call" and param_headers:
        arguments = params.get("arguments")
        for header, path in param_headers.items():
            name = f"mcp-param-{header}"
            value = _value_at(arguments, path)
            raw = headers.get(name)
            if value is None:
                continue
            if raw is None:
                raise mismatch(f"the Mcp-Param-{header} header is required (arguments.{'.'.join(path)} is set)")
            if not _matches(decode_value(raw, f"Mcp-Param-{header}"), value):
                raise mismatch(f"Mcp-Param-{header} header does not match arguments.{'.'.join(path)}")
