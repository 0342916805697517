"""Object metadata in PostgreSQL, for hub replicas that share one storage directory.

The second implementation of `MetadataStore` (next to `SqliteMetadata`), used when the hub's
`state:` names PostgreSQL. Its tables (`storage_objects`, `storage_uploads`, `storage_parts`) come
from the state layer's versioned migrations (`aggregator/state/migrations.py`), applied when a
replica starts or by `toolmux db upgrade`. Like the SQLite store it uses a blocking driver in
worker threads (psycopg 3 with a connection pool): the interface has synchronous members
(`recovery_snapshot`, `close`) that run while the service is built, outside any event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg_pool import ConnectionPool

from servers.kit import ToolError
from servers.storage.metadata import _OBJECT_COLUMNS, ObjectRecord, PartRecord, SqlMetadata, _object_values, _record

T = TypeVar("T")


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


class PostgresMetadata(SqlMetadata):
    mark = "%s"
    objects = "storage_objects"
    uploads = "storage_uploads"
    parts_table = "storage_parts"
    # COLLATE "C": byte order of the UTF-8 keys, S3's listing order (and SQLite's BINARY).
    key_prefix = "left(key, ?)"

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
                    _object_values(record),
                )
            return _record(row) if row else None

        return await self._run(upsert)

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

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        def upsert(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO storage_parts (upload_id, part_number, etag, size, modified) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = EXCLUDED.etag, size = EXCLUDED.size,"
                " modified = EXCLUDED.modified",
                (upload_id, part.part_number, part.etag, part.size, part.modified),
            )

        await self._run(upsert)

    async def delete_upload(self, upload_id: str) -> None:
        def remove(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("DELETE FROM storage_parts WHERE upload_id = %s", (upload_id,))
                conn.execute("DELETE FROM storage_uploads WHERE upload_id = %s", (upload_id,))

        await self._run(remove)

    def recovery_snapshot(self) -> tuple[set[str], set[str]]:
        with self.pool.connection() as conn:
            blobs = {row[0] for row in conn.execute("SELECT blob FROM storage_objects")}
            uploads = {row[0] for row in conn.execute("SELECT upload_id FROM storage_uploads")}
        return blobs, uploads

    def close(self) -> None:
        self.pool.close()
