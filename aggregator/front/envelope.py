"""Validation of the stateless revision's per-request envelope (`_meta`), shared by every face."""

from __future__ import annotations

from typing import Any

from aggregator.front.core import negotiate_unsupported
from aggregator.front.session import FrontSession
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSIONS
from aggregator.protocol.jsonrpc import RpcError


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


def modern_session(principal: Principal, params: dict[str, Any] | None) -> FrontSession:
    """A one-request session from the request's `_meta`; RpcError when the envelope is invalid."""
    version = envelope_version(params)
    if version not in MODERN_VERSIONS:
        raise negotiate_unsupported(version)
    meta = (params or {})["_meta"]
    capabilities = meta[META_CLIENT_CAPABILITIES]
    info = meta.get(META_CLIENT_INFO)
    session = FrontSession(
        principal=principal,
        protocol_version=version,
        modern=True,
        client_capabilities=capabilities,
        client_info=info if isinstance(info, dict) else {},
    )
    session.initialized = True
    return session
