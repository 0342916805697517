"""Where the built-in authorization server keeps clients, codes and tokens.

Secrets (client secrets, codes, access and refresh tokens) are stored as SHA-256 digests only, so
a copy of the database signs nobody in. `OAuthStore` is the interface; `SqliteOAuthStore` the
embedded one in the data dir (a PostgreSQL one can implement the same methods for replicas).
Calls are synchronous and local: a token check is one indexed SELECT (tens of microseconds).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class StoredClient:
    client_id: str
    secret_digest: str | None
    metadata: dict[str, Any]
    issued_at: int


@dataclass(frozen=True)
class StoredCode:
    client_id: str
    redirect_uri: str
    scope: str
    resource: str
    subject: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float


@dataclass(frozen=True)
class StoredToken:
    family: str  # one authorization's chain of rotated refresh tokens
    client_id: str
    subject: str
    scope: str
    resource: str
    access_expires_at: float
    refresh_expires_at: float
    revoked: bool


class OAuthStore(Protocol):
    def save_client(self, client: StoredClient) -> None: ...
    def client(self, client_id: str) -> StoredClient | None: ...
    def save_code(self, code: str, record: StoredCode) -> None: ...
    def take_code(self, code: str) -> StoredCode | None: ...
    def save_token(self, access: str, refresh: str | None, record: StoredToken) -> None: ...
    def by_access(self, access: str) -> StoredToken | None: ...
    def by_refresh(self, refresh: str) -> StoredToken | None: ...
    def revoke_family(self, family: str) -> None: ...
    def revoke_refresh(self, refresh: str) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY, secret_digest TEXT, metadata TEXT NOT NULL, issued_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_codes (
    digest TEXT PRIMARY KEY, record TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_tokens (
    access_digest TEXT PRIMARY KEY, refresh_digest TEXT UNIQUE, family TEXT NOT NULL, client_id TEXT NOT NULL,
    subject TEXT NOT NULL, scope TEXT NOT NULL, resource TEXT NOT NULL, access_expires_at REAL NOT NULL,
    refresh_expires_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS oauth_tokens_family ON oauth_tokens (family);
"""


class SqliteOAuthStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _run(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # --- clients ----------------------------------------------------------------------------
    def save_client(self, client: StoredClient) -> None:
        self._run(
            "INSERT INTO oauth_clients VALUES (?, ?, ?, ?)",
            client.client_id,
            client.secret_digest,
            json.dumps(client.metadata),
            client.issued_at,
        )

    def client(self, client_id: str) -> StoredClient | None:
        row = self._one(
            "SELECT client_id, secret_digest, metadata, issued_at FROM oauth_clients WHERE client_id = ?", client_id
        )
        return None if row is None else StoredClient(row[0], row[1], json.loads(row[2]), row[3])

    # --- codes: single use ------------------------------------------------------------------
    def save_code(self, code: str, record: StoredCode) -> None:
        self._run("DELETE FROM oauth_codes WHERE expires_at < ?", time.time())
        self._run(
            "INSERT INTO oauth_codes VALUES (?, ?, ?)", digest(code), json.dumps(record.__dict__), record.expires_at
        )

    def take_code(self, code: str) -> StoredCode | None:
        with self._lock:
            row = self._db.execute(
                "DELETE FROM oauth_codes WHERE digest = ? RETURNING record", (digest(code),)
            ).fetchone()
        if row is None:
            return None
        record = StoredCode(**json.loads(row[0]))
        return record if record.expires_at > time.time() else None

    # --- tokens ------------------------------------------------------------------------------
    def save_token(self, access: str, refresh: str | None, record: StoredToken) -> None:
        self._run(
            "INSERT INTO oauth_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            digest(access),
            digest(refresh) if refresh else None,
            record.family,
            record.client_id,
            record.subject,
            record.scope,
            record.resource,
            record.access_expires_at,
            record.refresh_expires_at,
        )

    _COLUMNS = "family, client_id, subject, scope, resource, access_expires_at, refresh_expires_at, revoked"

    def by_access(self, access: str) -> StoredToken | None:
        return _token(self._one(f"SELECT {self._COLUMNS} FROM oauth_tokens WHERE access_digest = ?", digest(access)))

    def by_refresh(self, refresh: str) -> StoredToken | None:
        return _token(self._one(f"SELECT {self._COLUMNS} FROM oauth_tokens WHERE refresh_digest = ?", digest(refresh)))

    def revoke_family(self, family: str) -> None:
        self._run("UPDATE oauth_tokens SET revoked = 1 WHERE family = ?", family)

    def revoke_refresh(self, refresh: str) -> None:
        """A rotated refresh token: spent, while the access token issued with it stays valid."""
        self._run("UPDATE oauth_tokens SET refresh_digest = NULL WHERE refresh_digest = ?", digest(refresh))


def _token(row: tuple[Any, ...] | None) -> StoredToken | None:
    if row is None:
        return None
    family, client_id, subject, scope, resource, access_expires_at, refresh_expires_at, revoked = row
    return StoredToken(
        family, client_id, subject, scope, resource, access_expires_at, refresh_expires_at, bool(revoked)
    )
