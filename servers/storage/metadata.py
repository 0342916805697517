"""Object metadata behind one small async interface; SQLite is the embedded implementation.

`MetadataStore` is what the service needs (PostgreSQL can implement it for several hub
replicas). Every SQLite call runs in a worker thread so the event loop never blocks on disk.
Keys compare as UTF-8 bytes (SQLite's BINARY collation), which is also S3's listing order.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from servers.storage.blobs import insufficient_storage

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectRecord:
    bucket: str
    key: str
    blob: str  # the stored file's name relative to the blob root; never derived from the key
    size: int
    etag: str  # hex MD5 (or S3's "<md5 of part md5s>-<parts>" after a multipart upload)
    content_type: str
    modified: float
    expires_at: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    bucket: str
    key: str
    content_type: str | None
    created: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartRecord:
    part_number: int
    etag: str
    size: int
    modified: float


class MetadataStore(Protocol):
    async def get(self, bucket: str, key: str, now: float) -> ObjectRecord | None: ...
    async def put(self, record: ObjectRecord) -> ObjectRecord | None:
        """Insert or replace; return the record it replaced."""
        ...

    async def delete(self, bucket: str, key: str) -> ObjectRecord | None: ...
    async def delete_if_expired(self, bucket: str, key: str, now: float) -> ObjectRecord | None: ...
    async def list(self, bucket: str, start: str, prefix: str, limit: int, now: float) -> builtins.list[ObjectRecord]:
        """Live records with key >= start and starting with prefix, in key order."""
        ...

    async def expired(self, now: float, limit: int) -> builtins.list[tuple[str, str]]: ...
    async def next_expiry(self) -> float | None: ...
    async def stats(self, now: float) -> dict[str, tuple[int, int]]: ...
    async def create_upload(self, upload: UploadRecord) -> None: ...
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...
    async def put_part(self, upload_id: str, part: PartRecord) -> None: ...
    async def parts(self, upload_id: str) -> builtins.list[PartRecord]: ...
    async def delete_upload(self, upload_id: str) -> None: ...
    async def stale_uploads(self, before: float) -> builtins.list[str]: ...
    def recovery_snapshot(self) -> tuple[set[str], set[str]]:
        """Blob names still referenced and multipart upload ids still open (at start, before serving)."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, content_type TEXT NOT NULL, modified REAL NOT NULL, expires_at REAL,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_expiry ON objects (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, content_type TEXT,
    created REAL NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    modified REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
"""

_OBJECT_COLUMNS = "bucket, key, blob, size, etag, content_type, modified, expires_at, metadata"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _record(row: tuple[Any, ...]) -> ObjectRecord:
    bucket, key, blob, size, etag, content_type, modified, expires_at, metadata = row
    return ObjectRecord(bucket, key, blob, size, etag, content_type, modified, expires_at, json.loads(metadata))


class SqlMetadata:
    """The dialect-free part of a SQL `MetadataStore`: statements written once over a blocking DB-API
    connection run in a worker thread. A subclass names its tables and parameter mark and supplies
    `_run` plus the statements whose syntax differs (upserts, deletes, transactions)."""

    mark = "?"
    objects = "objects"
    uploads = "uploads"
    parts_table = "parts"
    key_prefix = "substr(key, 1, ?)"  # the first N characters of a key

    async def _run(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        """`statement` with `?` as this dialect's mark and `{objects}`, `{uploads}`, `{parts}` as its tables."""
        return statement.format(objects=self.objects, uploads=self.uploads, parts=self.parts_table).replace(
            "?", self.mark
        )

    async def _rows(self, statement: str, params: Sequence[Any] = ()) -> builtins.list[tuple[Any, ...]]:
        sql = self._sql(statement)
        return await self._run(lambda conn: list(conn.execute(sql, params).fetchall()))

    async def _execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        sql = self._sql(statement)
        await self._run(lambda conn: conn.execute(sql, params))

    async def _row(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        sql = self._sql(statement)
        row: tuple[Any, ...] | None = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return row

    # --- objects --------------------------------------------------------------------------------
    async def get(self, bucket: str, key: str, now: float) -> ObjectRecord | None:
        row = await self._row(
            f"SELECT {_OBJECT_COLUMNS} FROM {{objects}} WHERE bucket = ? AND key = ? AND {_LIVE}", (bucket, key, now)
        )
        return _record(row) if row else None

    async def delete(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self._delete(bucket, key, None)

    async def delete_if_expired(self, bucket: str, key: str, now: float) -> ObjectRecord | None:
        return await self._delete(bucket, key, now)

    async def _delete(self, bucket: str, key: str, expired_by: float | None) -> ObjectRecord | None:
        raise NotImplementedError

    async def list(self, bucket: str, start: str, prefix: str, limit: int, now: float) -> builtins.list[ObjectRecord]:
        upper = prefix_upper_bound(prefix)
        sql = f"SELECT {_OBJECT_COLUMNS} FROM {{objects}} WHERE bucket = ? AND key >= ? AND {_LIVE}"
        params: builtins.list[Any] = [bucket, max(start, prefix), now]
        if upper is not None:
            # A range on the primary key lets the database stop at the end of the prefix.
            sql += " AND key < ?"
            params.append(upper)
        sql += f" AND {self.key_prefix} = ? ORDER BY key LIMIT ?"
        params += [len(prefix), prefix, limit]
        return [_record(r) for r in await self._rows(sql, params)]

    async def expired(self, now: float, limit: int) -> builtins.list[tuple[str, str]]:
        rows = await self._rows(
            "SELECT bucket, key FROM {objects} WHERE expires_at IS NOT NULL AND expires_at <= ?"
            " ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [(b, k) for b, k in rows]

    async def next_expiry(self) -> float | None:
        row = await self._row("SELECT min(expires_at) FROM {objects} WHERE expires_at IS NOT NULL")
        return row[0] if row else None

    async def stats(self, now: float) -> dict[str, tuple[int, int]]:
        rows = await self._rows(
            f"SELECT bucket, count(*), coalesce(sum(size), 0) FROM {{objects}} WHERE {_LIVE} GROUP BY bucket", (now,)
        )
        return {b: (int(n), int(total)) for b, n, total in rows}

    # --- multipart uploads ----------------------------------------------------------------------
    async def create_upload(self, upload: UploadRecord) -> None:
        await self._execute(
            "INSERT INTO {uploads} (upload_id, bucket, key, content_type, created, metadata) VALUES (?, ?, ?, ?, ?, ?)",
            (
                upload.upload_id,
                upload.bucket,
                upload.key,
                upload.content_type,
                upload.created,
                json.dumps(upload.metadata),
            ),
        )

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._row(
            "SELECT upload_id, bucket, key, content_type, created, metadata FROM {uploads} WHERE upload_id = ?",
            (upload_id,),
        )
        if row is None:
            return None
        upload, bucket, key, content_type, created, metadata = row
        return UploadRecord(upload, bucket, key, content_type, created, json.loads(metadata))

    async def parts(self, upload_id: str) -> builtins.list[PartRecord]:
        rows = await self._rows(
            "SELECT part_number, etag, size, modified FROM {parts} WHERE upload_id = ? ORDER BY part_number",
            (upload_id,),
        )
        return [PartRecord(*r) for r in rows]

    async def stale_uploads(self, before: float) -> builtins.list[str]:
        return [r[0] for r in await self._rows("SELECT upload_id FROM {uploads} WHERE created < ?", (before,))]


def _object_values(record: ObjectRecord) -> tuple[Any, ...]:
    """An `ObjectRecord` as the parameters of an insert into `_OBJECT_COLUMNS`."""
    return (
        record.bucket,
        record.key,
        record.blob,
        record.size,
        record.etag,
        record.content_type,
        record.modified,
        record.expires_at,
        json.dumps(record.metadata),
    )


class SqliteMetadata(SqlMetadata):
    """`MetadataStore` on one SQLite file (WAL, synchronous=FULL: a commit survives power loss)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._conn)

        try:
            return await anyio.to_thread.run_sync(locked)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise insufficient_storage() from None
            raise

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return run

    async def put(self, record: ObjectRecord) -> ObjectRecord | None:
        def upsert(conn: sqlite3.Connection) -> ObjectRecord | None:
            row = conn.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (record.bucket, record.key)
            ).fetchone()
            conn.execute(
                f"INSERT OR REPLACE INTO objects ({_OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _object_values(record),
            )
            return _record(row) if row else None

        return await self._run(self._transaction(upsert))

    async def _delete(self, bucket: str, key: str, expired_by: float | None) -> ObjectRecord | None:
        def remove(conn: sqlite3.Connection) -> ObjectRecord | None:
            row = conn.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            if row is None:
                return None
            record = _record(row)
            if expired_by is not None and (record.expires_at is None or record.expires_at > expired_by):
                return None
            conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
            return record

        return await self._run(self._transaction(remove))

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO parts (upload_id, part_number, etag, size, modified) VALUES (?,?,?,?,?)",
                (upload_id, part.part_number, part.etag, part.size, part.modified),
            )
        )

    async def delete_upload(self, upload_id: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

        await self._run(self._transaction(remove))

    def recovery_snapshot(self) -> tuple[set[str], set[str]]:
        with self._lock:
            blobs = {row[0] for row in self._conn.execute("SELECT blob FROM objects")}
            uploads = {row[0] for row in self._conn.execute("SELECT upload_id FROM uploads")}
        return blobs, uploads

    def close(self) -> None:
        with self._lock:
            self._conn.close()
