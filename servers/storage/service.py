"""The storage service: buckets, objects, URLs. Plain async Python, shared by every face.

MCP tools call it with whole payloads; its HTTP/S3 face (`servers/storage/http/`) streams bytes
through the `ObjectStore` interface it implements. Concurrency model: bytes are written to a
temp file with no lock held; the short switch of the metadata to the new version happens under
the object's write lock; a read takes the read lock only to look up the record and open the
file. Every version is its own file and is unlinked only after the metadata has moved on, so an
open reader always finishes the complete version it started with, however slowly it streams.
"""

from __future__ import annotations

import builtins
import hmac
import logging
import time
from collections.abc import AsyncIterable, Callable
from pathlib import Path

import anyio

from servers.kit import ToolError
from servers.storage.blobs import BlobStore
from servers.storage.buckets import Bucket, OpenedObject, check_digests, iter_file, no_such_key
from servers.storage.config import StorageConfig, first_start_lock, resolve_bucket_keys, server_secret
from servers.storage.listing import Listing, decode_token, list_objects
from servers.storage.locks import KeyLocks, ObjectLocks
from servers.storage.metadata import MetadataStore, ObjectRecord, PartRecord, SqliteMetadata
from servers.storage.multipart import MultipartUploads
from servers.storage.names import check_key, check_prefix
from servers.storage.presign import Presigner, clamp_expiry, object_path
from servers.storage.sniff import sniff
from servers.storage.sweeper import Sweeper

_log = logging.getLogger("toolmux.storage")

Clock = Callable[[], float]
SHARED_GARBAGE_AGE = 24 * 3600.0  # seconds: no write or multipart upload in progress is older
__all__ = ["Bucket", "OpenedObject", "StorageService", "iter_file", "no_such_key"]


class StorageService:
    def __init__(
        self,
        config: StorageConfig,
        root: Path,
        *,
        public_url: str | None = None,
        clock: Clock = time.time,
        metadata: MetadataStore | None = None,
        locks: ObjectLocks | None = None,
        shared: bool = False,
    ) -> None:
        self.config = config
        self.root = root
        self.public_url = (public_url or "").rstrip("/")
        self.clock = clock
        root.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(root)
        self.meta: MetadataStore = metadata or SqliteMetadata(root / "metadata.sqlite3")
        configured = config.effective_buckets()
        with first_start_lock(root):  # replicas sharing `root` must agree on the generated secrets
            keys = resolve_bucket_keys(configured, root)
            presign_secret = server_secret(root)
        self.buckets: dict[str, Bucket] = {
            b.name: Bucket(
                b.name, b.visibility, b.max_object_size or config.max_object_size, b.ttl_seconds, keys[b.name]
            )
            for b in configured
        }
        self.presigner = Presigner(presign_secret)
        self.on_close: builtins.list[Callable[[], object]] = []
        self.locks: ObjectLocks = locks or KeyLocks(
            timeout=config.lock_timeout_seconds, max_waiters=config.lock_max_waiters
        )
        referenced, uploads = self.meta.recovery_snapshot()
        # With replicas sharing the directory, a fresh file may be another replica's write in progress.
        removed = self.blobs.collect_garbage(referenced, uploads, min_age=SHARED_GARBAGE_AGE if shared else 0.0)
        if removed:
            _log.warning("storage: removed %d leftover file(s) from an interrupted run", removed)
        self.started_at = root.stat().st_ctime
        self.multipart = MultipartUploads(
            config=config,
            meta=self.meta,
            blobs=self.blobs,
            locks=self.locks,
            bucket=self.bucket,
            install=self.install,
            clock=self.now,
        )
        self.sweeper = Sweeper(
            [self.sweep_expired, self.multipart.sweep_stale],
            next_expiry=self.meta.next_expiry,
            interval=config.sweep_interval_seconds,
            clock=self.now,
        )

    def close(self) -> None:
        self.meta.close()
        for close in self.on_close:
            close()

    def now(self) -> float:
        """The service's clock, read late: tests swap `clock` after construction."""
        return self.clock()

    # --- buckets and credentials ----------------------------------------------------------------
    def bucket(self, name: str, field: str = "bucket") -> Bucket:
        try:
            return self.buckets[name]
        except KeyError:
            known = ", ".join(sorted(self.buckets))
            raise ToolError(
                f"no bucket {name!r}; buckets: {known}",
                code="not_found",
                field=field,
                data={"s3_code": "NoSuchBucket"},
            ) from None

    def bucket_for_key(self, presented: str) -> str | None:
        """The bucket whose own key was presented (constant-time against every bucket)."""
        found = None
        for bucket in self.buckets.values():
            if hmac.compare_digest(presented.encode(), bucket.key.encode()):
                found = bucket.name
        return found

    async def bucket_stats(self) -> dict[str, tuple[int, int]]:
        return await self.meta.stats(self.clock())

    # --- writing --------------------------------------------------------------------------------
    async def put(
        self,
        bucket: str,
        key: str,
        source: bytes | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        ttl_seconds: int | None = None,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        expected_crc32: int | None = None,
    ) -> ObjectRecord:
        """Store one complete object; an over-size source raises too_large and stores nothing."""
        target = self.bucket(bucket)
        check_key(key)
        written = await self.blobs.write(source, target.max_object_size, sha256=expected_sha256 is not None)
        try:
            check_digests(written, expected_md5, expected_sha256, expected_crc32)
        except BaseException:
            await self.blobs.discard(written.temp_path)
            raise
        return await self.install(
            target,
            key,
            written.temp_path,
            size=written.size,
            etag=written.md5_hex,
            content_type=content_type or sniff(written.head, key),
            metadata=metadata or {},
            ttl_seconds=ttl_seconds,
        )

    async def install(
        self,
        bucket: Bucket,
        key: str,
        temp_path: Path,
        *,
        size: int,
        etag: str,
        content_type: str,
        metadata: dict[str, str],
        ttl_seconds: int | None = None,
    ) -> ObjectRecord:
        """Make a finished temp file the current version of `key` (atomically, under the write lock)."""
        name = self.blobs.new_name(bucket.name)
        try:
            await self.blobs.commit(temp_path, name)
        except BaseException:
            await self.blobs.discard(temp_path)
            raise
        now = self.clock()
        ttl = ttl_seconds or bucket.ttl_seconds
        record = ObjectRecord(
            bucket=bucket.name,
            key=key,
            blob=name,
            size=size,
            etag=etag,
            content_type=content_type,
            modified=now,
            expires_at=now + ttl if ttl else None,
            metadata=metadata,
        )
        try:
            async with self.locks.write((bucket.name, key)):
                # Once the switch starts it must finish: a cancelled caller must not leave the
                # metadata pointing at a file this function is about to remove.
                with anyio.CancelScope(shield=True):
                    previous = await self.meta.put(record)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.blobs.remove(name)
            raise
        with anyio.CancelScope(shield=True):
            if previous is not None:
                await self.blobs.remove(previous.blob)
        if record.expires_at is not None:
            self.sweeper.expiry_set(record.expires_at)
        return record

    async def delete(self, bucket: str, key: str) -> bool:
        """Remove an object; False when there was none (deleting is idempotent, as in S3)."""
        self.bucket(bucket)
        check_key(key)
        async with self.locks.write((bucket, key)):
            with anyio.CancelScope(shield=True):
                previous = await self.meta.delete(bucket, key)
                if previous is not None:
                    await self.blobs.remove(previous.blob)
        return previous is not None and (previous.expires_at is None or previous.expires_at > self.clock())

    async def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectRecord:
        """Copy an object (metadata kept unless replacement `content_type`/`metadata` are given)."""
        target = self.bucket(bucket)
        check_key(key)
        opened = await self.open(source_bucket, source_key)
        try:
            written = await self.blobs.write(iter_file(opened.file), target.max_object_size)
        finally:
            opened.file.close()
        source = opened.record
        return await self.install(
            target,
            key,
            written.temp_path,
            size=written.size,
            # A multipart source keeps its composite ETag in S3; a fresh MD5 is at least as useful.
            etag=written.md5_hex,
            content_type=content_type or source.content_type,
            metadata=source.metadata if metadata is None else metadata,
        )

    # --- reading --------------------------------------------------------------------------------
    async def _current(self, bucket: str, key: str) -> ObjectRecord:
        """The object's live record; not_found when there is none (or it has expired)."""
        record = await self.meta.get(bucket, key, self.clock())
        if record is None:
            raise no_such_key(bucket, key)
        return record

    async def head(self, bucket: str, key: str) -> ObjectRecord:
        self.bucket(bucket)
        check_key(key)
        return await self._current(bucket, key)

    async def open(self, bucket: str, key: str) -> OpenedObject:
        """Look up and open the current version under the read lock; the caller closes the file."""
        self.bucket(bucket)
        check_key(key)
        async with self.locks.read((bucket, key)):
            with anyio.CancelScope(shield=True):
                record = await self._current(bucket, key)
                file = await self.blobs.open(record.blob)
        return OpenedObject(record, file)

    async def read(self, bucket: str, key: str, max_bytes: int) -> tuple[ObjectRecord, bytes]:
        """The whole object, refusing (too_large) one bigger than `max_bytes`."""
        self.bucket(bucket)
        check_key(key)
        async with self.locks.read((bucket, key)):
            record = await self._current(bucket, key)
            if record.size > max_bytes:
                raise ToolError(
                    f"object is {record.size} bytes, more than the {max_bytes} bytes returned inline; "
                    "fetch it by URL (presign_url) instead",
                    code="too_large",
                    data={"limit": max_bytes, "size": record.size},
                )
            data = await anyio.to_thread.run_sync((self.blobs.path(record.blob)).read_bytes)
        return record, data

    async def list(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
        continuation_token: str | None = None,
        start_after: str | None = None,
    ) -> Listing:
        self.bucket(bucket)
        check_prefix(prefix)
        if continuation_token:
            start = decode_token(continuation_token)
        elif start_after:
            start = start_after + "\0"
        else:
            start = ""
        return await list_objects(
            self.meta, bucket, self.clock(), prefix=prefix, delimiter=delimiter, max_keys=max_keys, start=start
        )

    # --- URLs -----------------------------------------------------------------------------------
    def url(
        self, bucket: str, key: str, *, minter: str, method: str = "GET", expires_in: float | None = None
    ) -> tuple[str, int | None]:
        """A URL for `key`: plain for reading a public bucket, else presigned and bound to the
        hub key named `minter` (it dies with that key). `(url, expires_at)`."""
        target = self.bucket(bucket)
        check_key(key)
        path = self.public_url + object_path(bucket, key)
        if method == "GET" and target.public:
            return path, None
        seconds = clamp_expiry(self.config.url_expiry_seconds if expires_in is None else expires_in)
        expires_at = int(self.clock()) + seconds
        return f"{path}?{self.presigner.query(method, bucket, key, expires_at, minter)}", expires_at

    def verify_presigned(
        self, method: str, bucket: str, key: str, *, expires: str, signature: str, minter: str
    ) -> str | None:
        """None when the URL's signature and expiry hold (whether its minter may still act is the face's check)."""
        return self.presigner.verify(
            method, bucket, key, expires=expires, signature=signature, minter=minter, now=self.clock()
        )

    # --- multipart uploads (the ObjectStore interface; the work is in `multipart`) ---------------
    async def create_upload(
        self, bucket: str, key: str, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> str:
        return await self.multipart.create(bucket, key, content_type=content_type, metadata=metadata)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source: bytes | AsyncIterable[bytes],
        *,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        expected_crc32: int | None = None,
    ) -> str:
        return await self.multipart.upload_part(
            bucket,
            key,
            upload_id,
            part_number,
            source,
            expected_md5=expected_md5,
            expected_sha256=expected_sha256,
            expected_crc32=expected_crc32,
        )

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: builtins.list[tuple[int, str]]
    ) -> ObjectRecord:
        return await self.multipart.complete(bucket, key, upload_id, parts)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.multipart.abort(bucket, key, upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> builtins.list[PartRecord]:
        return await self.multipart.list_parts(bucket, key, upload_id)

    # --- expiry ---------------------------------------------------------------------------------
    async def sweep_expired(self, batch: int = 500) -> int:
        """Delete every object whose TTL has passed; returns how many went."""
        removed = 0
        while True:
            due = await self.meta.expired(self.clock(), batch)
            for bucket, key in due:
                async with self.locks.write((bucket, key)):
                    with anyio.CancelScope(shield=True):
                        # Re-checked under the lock: an overwrite may have re-armed the TTL.
                        record = await self.meta.delete_if_expired(bucket, key, self.clock())
                        if record is not None:
                            await self.blobs.remove(record.blob)
                            removed += 1
            if len(due) < batch:
                return removed
