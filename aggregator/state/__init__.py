"""Where a hub keeps state: embedded (in-process + SQLite) by default, shared (Redis + PostgreSQL)
when several replicas run behind a balancer. See docs/scale-out.md.

Imports nothing from the rest of `aggregator`, so `servers/` may use it too.
"""

from aggregator.state.config import StateConfig
from aggregator.state.factory import State, open_state, upgrade
from aggregator.state.interfaces import (
    CHANNEL_CONFIG_RELOAD,
    CHANNEL_LIST_CHANGED,
    BreakerSettings,
    BreakerStatus,
    KeyExists,
    KeyNotFound,
    KeyRecord,
    Refusal,
    ReplicaInfo,
    RoutingStats,
    SpendResult,
    StateUnavailable,
)

__all__ = [
    "CHANNEL_CONFIG_RELOAD",
    "CHANNEL_LIST_CHANGED",
    "BreakerSettings",
    "BreakerStatus",
    "KeyExists",
    "KeyNotFound",
    "KeyRecord",
    "Refusal",
    "ReplicaInfo",
    "RoutingStats",
    "SpendResult",
    "State",
    "StateConfig",
    "StateUnavailable",
    "open_state",
    "upgrade",
]
