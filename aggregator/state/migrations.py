"""Versioned schema migrations for the durable stores (SQLite embedded, PostgreSQL shared).

Each step has a number and a name; `schema_migrations` records the steps applied, so running
them again is a no-op and a newer replica only applies what is missing. Steps are append-only:
never edit a released one, add the next number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    sqlite: str
    postgres: str


_USAGE_COLUMNS = """
    ts {real} NOT NULL,
    day TEXT NOT NULL,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment TEXT,
    kind TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cost {real} NOT NULL DEFAULT 0,
    latency_ms {real},
    ttft_ms {real},
    status TEXT NOT NULL,
    error_code TEXT,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    failover_path TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    prompt TEXT,
    response TEXT,
    replica TEXT
"""

_SPEND = """
CREATE TABLE budget_spend (
    key TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start {real} NOT NULL,
    spent {real} NOT NULL DEFAULT 0,
    PRIMARY KEY (key, period, period_start)
);
"""

_KEYS = """
CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    tools TEXT NOT NULL,
    budget {real},
    budget_period TEXT NOT NULL DEFAULT 'month',
    rpm INTEGER,
    tpm INTEGER,
    expires_at {real},
    metadata TEXT NOT NULL DEFAULT '{{}}',
    created_at {real} NOT NULL,
    revoked_at {real}
);
"""

# models: a JSON list of alias globs, NULL for every alias; scopes: a JSON list ("admin", "metrics").
_KEY_MODELS_SCOPES = """
ALTER TABLE api_keys ADD COLUMN models TEXT;
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]'
"""

_STORAGE = """
CREATE TABLE storage_objects (
    bucket TEXT NOT NULL,
    key TEXT {collate} NOT NULL,
    blob TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    modified {real} NOT NULL,
    expires_at {real},
    metadata TEXT NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (bucket, key)
);
CREATE INDEX storage_objects_expiry ON storage_objects (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE storage_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    content_type TEXT,
    created {real} NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE storage_parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size BIGINT NOT NULL,
    modified {real} NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
"""

STEPS: tuple[Step, ...] = (
    Step(
        1,
        "usage rows and budget spend",
        f"CREATE TABLE usage_calls (id INTEGER PRIMARY KEY, {_USAGE_COLUMNS.format(real='REAL')});"
        "CREATE INDEX usage_calls_day ON usage_calls(day);"
        "CREATE INDEX usage_calls_key_ts ON usage_calls(key, ts);" + _SPEND.format(real="REAL"),
        "CREATE TABLE usage_calls (id BIGSERIAL PRIMARY KEY,"
        f" {_USAGE_COLUMNS.format(real='DOUBLE PRECISION')});"
        "CREATE INDEX usage_calls_day ON usage_calls(day);"
        "CREATE INDEX usage_calls_key_ts ON usage_calls(key, ts);" + _SPEND.format(real="DOUBLE PRECISION"),
    ),
    Step(2, "managed API keys", _KEYS.format(real="REAL"), _KEYS.format(real="DOUBLE PRECISION")),
    Step(3, "managed keys: model allow-list and scopes", _KEY_MODELS_SCOPES, _KEY_MODELS_SCOPES),
    # Shared storage only (embedded storage keeps its own metadata.sqlite3 next to its objects).
    # Keys compare as bytes, S3's listing order: COLLATE "C".
    Step(
        4,
        "storage object metadata",
        "-- embedded: storage keeps its metadata in <storage root>/metadata.sqlite3",
        _STORAGE.format(real="DOUBLE PRECISION", collate='COLLATE "C"'),
    ),
)

LATEST = STEPS[-1].version
