"""The session directory: which replica owns a session, and the secrets every replica shares."""

from __future__ import annotations

import pytest

from aggregator.state import ReplicaInfo
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_a_session_claimed_by_one_replica_is_found_by_every_replica_until_released(pair: Pair) -> None:
    await pair.a.sessions.claim("session-1", "replica-a", ttl=60)
    assert await pair.b.sessions.owner("session-1") == "replica-a"
    assert await pair.b.sessions.owner("session-2") is None
    await pair.a.sessions.release("session-1")
    assert await pair.b.sessions.owner("session-1") is None


async def test_every_replica_gets_the_same_shared_secret_and_names_keep_secrets_apart(pair: Pair) -> None:
    first = await pair.a.sessions.shared_secret("request-state")
    assert await pair.b.sessions.shared_secret("request-state") == first
    assert await pair.a.sessions.shared_secret("request-state") == first
    assert len(first) == 32
    assert await pair.b.sessions.shared_secret("other") != first


async def test_a_replica_reports_where_the_others_reach_it(pair: Pair) -> None:
    await pair.a.registry.heartbeat(ReplicaInfo("a", "1.0", url="http://10.0.0.1:4000"), ttl=15)
    assert [(r.id, r.url) for r in await pair.b.registry.fleet()] == [("a", "http://10.0.0.1:4000")]
