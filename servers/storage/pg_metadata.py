"""Object metadata in PostgreSQL, for hub replicas that share one storage directory.

The second implementation of `MetadataStore` (next to `SqliteMetadata`), used when the hub's
`state:` names PostgreSQL. Its tables (`storage_objects`, `storage_uploads`, `storage_parts`) come
from the state layer's versioned migrations (`aggregator/state/migrations.py`), applied when a
replica starts or by `toolmux db upgrade`. Like the SQLite store it uses a blocking driver in
worker threads (psycopg 3 with a connection pool): the interface has synchronous members
(`recovery_snapshot`, `close`) that run while the service is built, outside any event loop.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg_pool import ConnectionPool

from servers.kit import ToolError
from servers.storage.metadata import ObjectRecord, PartRecord, UploadRecord, prefix_upper_bound

T = TypeVar("T")
_OBJECT_COLUMNS = "bucket, key, blob, size, etag, content_type, modified, expires_at, metadata"
_LIVE = "(expires_at IS NULL OR expires_at > %s)"


def _record(row: tuple[Any, ...]) -> ObjectRecord:
    bucket, key, blob, size, etag, content_type, modified, expires_at, metadata = row
    return ObjectRecord(bucket, key, blob, size, etag, content_type, modified, expires_at, json.loads(metadata))


def open_pool(url: str, schema: str, size: int) -> ConnectionPool:
    """A blocking pool whose connections see toolmux's schema first (autocommit; explicit transactions)."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "options": f"-c search_path={schema}"},
        open=True,
        timeout=10,
    )


class PostgresMetadata:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    async def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        def pooled() -> T:
            with self.pool.connection() as conn:
                return fn(conn)

        try:
            return await anyio.to_thread.run_sync(pooled)
        except psycopg.OperationalError as exc:
            raise ToolError(f"object metadata is unavailable: {exc}", code="unavailable", retryable=True) from None

    # --- objects --------------------------------------------------------------------------------
    async def get(self, bucket: str, key: str, now: float) -> ObjectRecord | None:
        def query(conn: psycopg.Connection[Any]) -> ObjectRecord | None:
            row = conn.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM storage_objects WHERE bucket = %s AND key = %s AND {_LIVE}",
                (bucket, key, now),
            ).fetchone()
            return _record(row) if row else None

        return await self._run(query)

    async def put(self, record: ObjectRecord) -> ObjectRecord | None:
        def upsert(conn: psycopg.Connection[Any]) -> ObjectRecord | None:
            with conn.transaction():
                row = conn.execute(
                    f"SELECT {_OBJECT_COLUMNS} FROM storage_objects WHERE bucket = %s AND key = %s FOR UPDATE",
                    (record.bucket, record.key),
                ).fetchone()
                conn.execute(
                    f"INSERT INTO storage_objects ({_OBJECT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (bucket, key) DO UPDATE SET blob = EXCLUDED.blob, size = EXCLUDED.size,"
                    " etag = EXCLUDED.etag, content_type = EXCLUDED.content_type, modified = EXCLUDED.modified,"
                    " expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata",
                    (
                        record.bucket,
                        record.key,
                        record.blob,
                        record.size,
                        record.etag,
                        record.content_type,
                        record.modified,
                        record.expires_at,
                        json.dumps(record.metadata),
                    ),
                )
            return _record(row) if row else None

        return await self._run(upsert)

    async def delete(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self._delete(bucket, key, None)

    async def delete_if_expired(self, bucket: str, key: str, now: float) -> ObjectRecord | None:
        return await self._delete(bucket, key, now)

    async def _delete(self, bucket: str, key: str, expired_by: float | None) -> ObjectRecord | None:
        def remove(conn: psycopg.Connection[Any]) -> ObjectRecord | None:
            sql = "DELETE FROM storage_objects WHERE bucket = %s AND key = %s"
            params: list[Any] = [bucket, key]
            if expired_by is not None:
                sql += " AND expires_at IS NOT NULL AND expires_at <= %s"
                params.append(expired_by)
            row = conn.execute(sql + f" RETURNING {_OBJECT_COLUMNS}", params).fetchone()
            return _record(row) if row else None

        return await self._run(remove)

    async def list(self, bucket: str, start: str, prefix: str, limit: int, now: float) -> builtins.list[ObjectRecord]:
        upper = prefix_upper_bound(prefix)
        # COLLATE "C": byte order of the UTF-8 keys, S3's listing order (and SQLite's BINARY).
        sql = f"SELECT {_OBJECT_COLUMNS} FROM storage_objects WHERE bucket = %s AND key >= %s AND {_LIVE}"
        params: builtins.list[Any] = [bucket, max(start, prefix), now]
        if upper is not None:
            sql += " AND key < %s"
            params.append(upper)
        sql += " AND left(key, %s) = %s ORDER BY key LIMIT %s"
        params += [len(prefix), prefix, limit]

        def query(conn: psycopg.Connection[Any]) -> builtins.list[ObjectRecord]:
            return [_record(r) for r in conn.execute(sql.encode(), params).fetchall()]

        return await self._run(query)

    async def expired(self, now: float, limit: int) -> builtins.list[tuple[str, str]]:
        def query(conn: psycopg.Connection[Any]) -> builtins.list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT bucket, key FROM storage_objects WHERE expires_at IS NOT NULL AND expires_at <= %s"
                " ORDER BY expires_at LIMIT %s",
                (now, limit),
            ).fetchall()
            return [(b, k) for b, k in rows]

        return await self._run(query)

    async def next_expiry(self) -> float | None:
        def query(conn: psycopg.Connection[Any]) -> float | None:
            row = conn.execute("SELECT min(expires_at) FROM storage_objects WHERE expires_at IS NOT NULL").fetchone()
            return row[0] if row else None

        return await self._run(query)

    async def stats(self, now: float) -> dict[str, tuple[int, int]]:
        def query(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
            rows = conn.execute(
                f"SELECT bucket, count(*), coalesce(sum(size), 0) FROM storage_objects WHERE {_LIVE} GROUP BY bucket",
                (now,),
            ).fetchall()
            return {b: (int(n), int(total)) for b, n, total in rows}

        return await self._run(query)

    # --- multipart uploads ----------------------------------------------------------------------
    async def create_upload(self, upload: UploadRecord) -> None:
        def insert(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO storage_uploads (upload_id, bucket, key, content_type, created, metadata)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    upload.upload_id,
                    upload.bucket,
                    upload.key,
                    upload.content_type,
                    upload.created,
                    json.dumps(upload.metadata),
                ),
            )

        await self._run(insert)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        def query(conn: psycopg.Connection[Any]) -> UploadRecord | None:
            row = conn.execute(
                "SELECT upload_id, bucket, key, content_type, created, metadata FROM storage_uploads"
                " WHERE upload_id = %s",
                (upload_id,),
            ).fetchone()
            if row is None:
                return None
            upload, bucket, key, content_type, created, metadata = row
            return UploadRecord(upload, bucket, key, content_type, created, json.loads(metadata))

        return await self._run(query)

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        def upsert(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO storage_parts (upload_id, part_number, etag, size, modified) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = EXCLUDED.etag, size = EXCLUDED.size,"
                " modified = EXCLUDED.modified",
                (upload_id, part.part_number, part.etag, part.size, part.modified),
            )

        await self._run(upsert)

    async def parts(self, upload_id: str) -> builtins.list[PartRecord]:
        def query(conn: psycopg.Connection[Any]) -> builtins.list[PartRecord]:
            rows = conn.execute(
                "SELECT part_number, etag, size, modified FROM storage_parts WHERE upload_id = %s ORDER BY part_number",
                (upload_id,),
            ).fetchall()
            return [PartRecord(*r) for r in rows]

        return await self._run(query)

    async def delete_upload(self, upload_id: str) -> None:
        def remove(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("DELETE FROM storage_parts WHERE upload_id = %s", (upload_id,))
                conn.execute("DELETE FROM storage_uploads WHERE upload_id = %s", (upload_id,))

        await self._run(remove)

    async def stale_uploads(self, before: float) -> builtins.list[str]:
        def query(conn: psycopg.Connection[Any]) -> builtins.list[str]:
            rows = conn.execute("SELECT upload_id FROM storage_uploads WHERE created < %s", (before,)).fetchall()
            return [r[0] for r in rows]

        return await self._run(query)

    def recovery_snapshot(self) -> tuple[set[str], set[str]]:
        with self.pool.connection() as conn:
            blobs = {row[0] for row in conn.execute("SELECT blob FROM storage_objects")}
            uploads = {row[0] for row in conn.execute("SELECT upload_id FROM storage_uploads")}
        return blobs, uploads

    def close(self) -> None:
        self.pool.close()
