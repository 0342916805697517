"""A stateless (2026-07-28) request's front session, built from its envelope (`_meta`), for every face."""

from __future__ import annotations

from typing import Any

from aggregator.front.session import FrontSession
from aggregator.principal import Principal
from aggregator.protocol.eras import (
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    MODERN_VERSIONS,
    envelope_version,
    unsupported_version,
)


def modern_session(principal: Principal, params: dict[str, Any] | None) -> FrontSession:
    """A one-request session from the request's `_meta`; RpcError when the envelope is invalid."""
    version = envelope_version(params)
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version)
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
