"""HTTP headers of the streamable HTTP transport, both sides: names, the value codec, the rules.

Handshake era (2025-03-26 … 2025-11-25): `Mcp-Session-Id` and `MCP-Protocol-Version` (the
negotiated version) on every request after `initialize`.
Stateless era (2026-07-28): no session; `MCP-Protocol-Version` from the message's `_meta`,
`Mcp-Method`, `Mcp-Name` for the methods that name a tool, prompt or resource, and
`Mcp-Param-*` for the tool parameters a schema marks with `x-mcp-header`.

A server must reject (400, -32020 HeaderMismatch) a request whose headers are missing or
disagree with its body, so that a load balancer routing on headers and the hub executing the
body can never be told different stories. Values that cannot travel in a header verbatim use
the Base64 sentinel form `=?base64?…?=`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_PROTOCOL_VERSION
from aggregator.protocol.jsonrpc import RpcError

SESSION_ID = "Mcp-Session-Id"
PROTOCOL_VERSION = "MCP-Protocol-Version"
METHOD = "Mcp-Method"
NAME = "Mcp-Name"
PARAM_PREFIX = "Mcp-Param-"
LAST_EVENT_ID = "Last-Event-ID"

# The params field each named method mirrors in `Mcp-Name`.
NAMED_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7E]*")
_SENTINEL = re.compile(r"=\?base64\?.*\?=")


# --- the value codec ------------------------------------------------------------------------------
def encode_value(value: str) -> str:
    """The value verbatim when it survives an HTTP header round trip, else the Base64 sentinel form."""
    if _PRINTABLE_ASCII.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return f"{_SENTINEL_START}{base64.b64encode(value.encode('utf-8')).decode('ascii')}{_SENTINEL_END}"


def safe_value(value: str) -> str:
    """A caller-given header value: kept as given (maybe already encoded) unless it cannot be sent as is."""
    return value if _PRINTABLE_ASCII.fullmatch(value) else encode_value(value)


def decode_value(raw: str, header: str) -> str:
    """A header value with the Base64 sentinel encoding undone; RpcError(-32020) when it is malformed."""
    if raw.startswith(_SENTINEL_START) and raw.endswith(_SENTINEL_END) and len(raw) >= 11:
        body = raw[len(_SENTINEL_START) : -len(_SENTINEL_END)]
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise mismatch(f"{header} has an invalid Base64 value") from None
    if any((ord(c) < 0x20 and c != "\t") or ord(c) > 0x7E for c in raw):
        raise mismatch(f"{header} contains characters not allowed in a header value")
    return raw


# --- what a request declares ----------------------------------------------------------------------
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


def _header_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# --- the client side: headers to send -------------------------------------------------------------
def modern_version(message: dict[str, Any]) -> str | None:
    """The stateless revision's protocol version when the message carries it in `params._meta`."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
    return version if isinstance(version, str) and version else None


def modern_headers(message: dict[str, Any], version: str) -> dict[str, str]:
    """`MCP-Protocol-Version`, `Mcp-Method` and (for named methods) `Mcp-Name` of a stateless request."""
    headers = {PROTOCOL_VERSION: version}
    method = message.get("method")
    if isinstance(method, str):
        headers[METHOD] = method
        field = NAMED_METHODS.get(method)
        params = message.get("params")
        value = params.get(field) if field is not None and isinstance(params, dict) else None
        if isinstance(value, str):
            headers[NAME] = encode_value(value)
    return headers


def param_headers(declared: dict[str, tuple[str, ...]], arguments: dict[str, Any]) -> dict[str, str] | None:
    """The `Mcp-Param-*` headers of a tools/call whose tool declares `x-mcp-header` parameters."""
    if not declared:
        return None
    out: dict[str, str] = {}
    for name, path in declared.items():
        value = _value_at(arguments, path)
        if value is not None:
            out[f"{PARAM_PREFIX}{name}"] = encode_value(_header_text(value))
    return out or None


# --- the server side: headers to check ------------------------------------------------------------
def mismatch(message: str) -> RpcError:
    return RpcError(jsonrpc.HEADER_MISMATCH, f"Header mismatch: {message}")


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
    params = jsonrpc.obj(message.get("params"))
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
