"""MCP protocol revisions (both eras) and the `_meta` keys of the stateless revision."""

from __future__ import annotations

from typing import Any

from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError

LEGACY_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
# The stateless revision: no handshake, every request carries its envelope in `_meta`.
MODERN_VERSION = "2026-07-28"
MODERN_VERSIONS = (MODERN_VERSION,)
LATEST_LEGACY = LEGACY_VERSIONS[-1]
ALL_VERSIONS = (*LEGACY_VERSIONS, *MODERN_VERSIONS)

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def log_rank(level: Any) -> int:
    try:
        return LOG_LEVELS.index(str(level))
    except ValueError:
        return 0


def modern_meta(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request's `_meta` when it carries the stateless revision's envelope."""
    if not params:
        return None
    meta = params.get("_meta")
    if isinstance(meta, dict) and (META_PROTOCOL_VERSION in meta or META_CLIENT_CAPABILITIES in meta):
        return meta
    return None


def envelope_version(params: dict[str, Any] | None) -> str:
    """The protocol version a stateless request declares; RpcError(-32602) when the envelope is incomplete."""
    meta = (params or {}).get("_meta")
    if not isinstance(meta, dict):
        raise RpcError(jsonrpc.INVALID_PARAMS, "params._meta is required (protocolVersion, clientCapabilities)")
    version = meta.get(META_PROTOCOL_VERSION)
    if not isinstance(version, str):
        raise RpcError(jsonrpc.INVALID_PARAMS, f"params._meta['{META_PROTOCOL_VERSION}'] is required")
    if not isinstance(meta.get(META_CLIENT_CAPABILITIES), dict):
        raise RpcError(jsonrpc.INVALID_PARAMS, f"params._meta['{META_CLIENT_CAPABILITIES}'] is required")
    return version


def unsupported_version(requested: Any) -> RpcError:
    """The error for a stateless request in a revision the hub does not speak; it lists those it does."""
    return RpcError(
        jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        {"supported": list(MODERN_VERSIONS) + list(reversed(LEGACY_VERSIONS)), "requested": requested},
    )
