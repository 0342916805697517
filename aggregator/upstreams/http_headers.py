"""Request headers of the streamable HTTP transport, per era.

Handshake era (2025-03-26 … 2025-11-25): `Mcp-Session-Id` and `MCP-Protocol-Version` (the
negotiated version) on every request after `initialize`.
Stateless era (2026-07-28): no session; `MCP-Protocol-Version` from the message's `_meta`,
`Mcp-Method`, and `Mcp-Name` for the methods that name a tool, prompt or resource.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from aggregator.front.eras import META_PROTOCOL_VERSION
from aggregator.front.headers import NAMED_METHODS

SESSION_ID = "Mcp-Session-Id"
PROTOCOL_VERSION = "MCP-Protocol-Version"
METHOD = "Mcp-Method"
NAME = "Mcp-Name"
LAST_EVENT_ID = "Last-Event-ID"

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7E]*")
_SENTINEL = re.compile(r"=\?base64\?.*\?=")


def modern_version(message: dict[str, Any]) -> str | None:
    """The stateless revision's protocol version when the message carries it in `params._meta`."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
    return version if isinstance(version, str) and version else None


def encode_header_value(value: str) -> str:
    """The value verbatim when it survives an HTTP header round trip, else the Base64 sentinel form."""
    if _PRINTABLE_ASCII.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def safe_header_value(value: str) -> str:
    """A caller-given header value: kept as given (maybe already encoded) unless it cannot be sent as is."""
    return value if _PRINTABLE_ASCII.fullmatch(value) else encode_header_value(value)


def modern_headers(message: dict[str, Any], version: str) -> dict[str, str]:
    headers = {PROTOCOL_VERSION: version}
    method = message.get("method")
    if isinstance(method, str):
        headers[METHOD] = method
        field = NAMED_METHODS.get(method)
        params = message.get("params")
        value = params.get(field) if field is not None and isinstance(params, dict) else None
        if isinstance(value, str):
            headers[NAME] = encode_header_value(value)
    return headers
