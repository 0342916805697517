"""Managed API keys: secrets are generated here and only their SHA-256 is ever stored."""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from aggregator.state.interfaces import BudgetPeriod, KeyRecord

SECRET_PREFIX = "tmx-"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # A fast hash is right here: the secret has 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 6]


def glob_to_like(pattern: str) -> str:
    """A shell glob (`*`, `?`) as a SQL LIKE pattern with `\\` as the escape character."""
    out = []
    for ch in pattern:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


KEY_COLUMNS = (
    "name, prefix, tools, budget, budget_period, rpm, tpm, expires_at, metadata, created_at, revoked_at, models, scopes"
)
INSERT_KEY = (
    "INSERT INTO api_keys (name, prefix, secret_hash, tools, budget, budget_period, rpm, tpm, expires_at, metadata,"
    " created_at, models, scopes) VALUES ({marks})"
)


def insert_values(
    name: str,
    secret: str,
    now: float,
    *,
    tools: Sequence[str],
    budget: float | None,
    budget_period: BudgetPeriod,
    rpm: int | None,
    tpm: int | None,
    expires_at: float | None,
    metadata: Mapping[str, Any] | None,
    models: Sequence[str] | None,
    scopes: Sequence[str],
) -> tuple[Any, ...]:
    """The `INSERT_KEY` parameters of a new key (13 of them)."""
    return (
        name,
        display_prefix(secret),
        hash_secret(secret),
        orjson.dumps(list(tools)).decode(),
        budget,
        budget_period,
        rpm,
        tpm,
        expires_at,
        orjson.dumps(dict(metadata or {})).decode(),
        now,
        None if models is None else orjson.dumps(list(models)).decode(),
        orjson.dumps(list(scopes)).decode(),
    )


def record_from_row(row: tuple[Any, ...]) -> KeyRecord:
    name, prefix, tools, budget, period, rpm, tpm, expires_at, metadata, created_at, revoked_at, models, scopes = row
    budget_period: BudgetPeriod = period if period in ("day", "month", "total") else "month"
    return KeyRecord(
        name=name,
        prefix=prefix,
        tools=tuple(orjson.loads(tools)),
        budget=budget,
        budget_period=budget_period,
        rpm=rpm,
        tpm=tpm,
        expires_at=expires_at,
        metadata=orjson.loads(metadata),
        created_at=created_at,
        revoked_at=revoked_at,
        models=None if models is None else tuple(orjson.loads(models)),
        scopes=tuple(orjson.loads(scopes)),
    )
