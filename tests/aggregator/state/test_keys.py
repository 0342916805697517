"""Managed keys: hashed at rest, created on one replica and honoured (or refused) on every replica."""

from __future__ import annotations

import pytest

from aggregator.state import KeyExists, KeyNotFound
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_a_key_created_through_one_replica_authenticates_through_the_other(pair: Pair) -> None:
    record, secret = await pair.a.keys.create(
        "librechat", tools=["models-*"], budget=5.0, rpm=60, tpm=10_000, metadata={"team": "web"}
    )
    assert secret.startswith(record.prefix) and record.tools == ("models-*",)
    seen = await pair.b.keys.verify(secret)
    assert seen is not None and seen.name == "librechat" and seen.rpm == 60 and seen.metadata == {"team": "web"}
    assert await pair.b.keys.verify(secret + "x") is None


async def test_the_secret_is_never_stored(pair: Pair) -> None:
    _, secret = await pair.a.keys.create("k")
    stored = repr(await pair.b.keys.list())
    assert secret not in stored and secret[12:] not in stored


async def test_a_taken_name_is_refused(pair: Pair) -> None:
    await pair.a.keys.create("dup")
    with pytest.raises(KeyExists):
        await pair.b.keys.create("dup")


async def test_rotating_a_key_stops_the_old_secret_at_once(pair: Pair) -> None:
    _, old = await pair.a.keys.create("ci")
    _, new = await pair.b.keys.rotate("ci")
    assert await pair.a.keys.verify(old) is None
    assert (await pair.a.keys.verify(new)) is not None
    with pytest.raises(KeyNotFound):
        await pair.a.keys.rotate("missing")


async def test_revoked_and_expired_keys_are_refused_but_still_listed(pair: Pair) -> None:
    _, revoked = await pair.a.keys.create("team-a-1")
    _, expiring = await pair.a.keys.create("team-a-2", expires_at=pair.clock() + 60)
    await pair.a.keys.create("other")
    assert await pair.b.keys.revoke("team-a-1") is True
    assert await pair.b.keys.revoke("team-a-1") is False
    assert await pair.a.keys.verify(revoked) is None
    assert await pair.a.keys.verify(expiring) is not None
    pair.clock.advance(61)
    assert await pair.b.keys.verify(expiring) is None
    assert [k.name for k in await pair.b.keys.list("team-a-*")] == ["team-a-1", "team-a-2"]
    assert [k.name for k in await pair.b.keys.list("Team-*")] == []
    assert len(await pair.a.keys.list()) == 3


async def test_a_key_keeps_its_model_allow_list_and_scopes_and_the_mirror_sees_only_active_keys(pair: Pair) -> None:
    record, secret = await pair.a.keys.create("ops", models=["gpt-*"], scopes=["metrics"])
    await pair.a.keys.create("gone")
    await pair.a.keys.revoke("gone")
    assert record.models == ("gpt-*",) and record.scopes == ("metrics",)
    mirrored = await pair.b.keys.active_hashes()
    assert [(r.name, r.models) for r, _ in mirrored] == [("ops", ("gpt-*",))]
    assert mirrored[0][1] != secret and len(mirrored[0][1]) == 64
