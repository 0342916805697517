"""S3 multipart uploads: parts land as separate files, completion joins them into one object.

The object's ETag follows S3: MD5 of the concatenated binary part MD5s, then `-<part count>`,
which is what S3 clients expect back. Uploads left unfinished are dropped by the sweeper after
`multipart_expiry_seconds`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Protocol

import anyio

from servers.kit import ToolError
from servers.storage.blobs import BlobStore, too_large
from servers.storage.buckets import Bucket, check_digests
from servers.storage.config import StorageConfig
from servers.storage.locks import ObjectLocks
from servers.storage.metadata import MetadataStore, ObjectRecord, PartRecord, UploadRecord
from servers.storage.names import check_key
from servers.storage.sniff import SNIFF_BYTES, sniff

MAX_PARTS = 10000


class Installer(Protocol):
    """What completing an upload needs of the service: make a finished temp file the object."""

    async def __call__(
        self,
        bucket: Bucket,
        key: str,
        temp_path: Path,
        *,
        size: int,
        etag: str,
        content_type: str,
        metadata: dict[str, str],
    ) -> ObjectRecord: ...


def _s3_error(message: str, s3_code: str, code: str = "invalid_argument", field: str | None = None) -> ToolError:
    return ToolError(message, code=code, field=field, data={"s3_code": s3_code})


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


class MultipartUploads:
    """Uploads over the service's stores; handed plain parts, it never refers back to the service."""

    def __init__(
        self,
        *,
        config: StorageConfig,
        meta: MetadataStore,
        blobs: BlobStore,
        locks: ObjectLocks,
        bucket: Callable[[str], Bucket],
        install: Installer,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.meta = meta
        self.blobs = blobs
        self.locks = locks
        self.bucket = bucket
        self.install = install
        self.clock = clock

    async def _upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        upload = await self.meta.get_upload(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise _s3_error(f"no multipart upload {upload_id!r} for this object", "NoSuchUpload", code="not_found")
        return upload

    async def create(
        self, bucket: str, key: str, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> str:
        self.bucket(bucket)
        check_key(key)
        upload_id = uuid.uuid4().hex
        await self.meta.create_upload(UploadRecord(upload_id, bucket, key, content_type, self.clock(), metadata or {}))
        return upload_id

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
        """Store one part; returns its ETag (hex MD5)."""
        target = self.bucket(bucket)
        if not 1 <= part_number <= MAX_PARTS:
            raise _s3_error(f"partNumber must be 1-{MAX_PARTS}", "InvalidArgument", field="partNumber")
        await self._upload(bucket, key, upload_id)
        written = await self.blobs.write(source, target.max_object_size, sha256=expected_sha256 is not None)
        try:
            check_digests(written, expected_md5, expected_sha256, expected_crc32)
            await self.blobs.commit_part(written.temp_path, upload_id, part_number)
        except BaseException:
            await self.blobs.discard(written.temp_path)
            raise
        part = PartRecord(part_number, written.md5_hex, written.size, self.clock())
        await self.meta.put_part(upload_id, part)
        return written.md5_hex

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartRecord]:
        await self._upload(bucket, key, upload_id)
        return await self.meta.parts(upload_id)

    async def complete(self, bucket: str, key: str, upload_id: str, requested: list[tuple[int, str]]) -> ObjectRecord:
        """Join the listed parts (ascending part numbers, matching ETags) into the object."""
        target = self.bucket(bucket)
        async with self.locks.write(("\0upload", upload_id)):
            upload = await self._upload(bucket, key, upload_id)
            if not requested:
                raise _s3_error("the upload lists no parts", "MalformedXML")
            numbers = [n for n, _ in requested]
            if numbers != sorted(set(numbers)):
                raise _s3_error("parts must be listed in ascending order, each once", "InvalidPartOrder")
            stored = {p.part_number: p for p in await self.meta.parts(upload_id)}
            chosen: list[PartRecord] = []
            for number, etag in requested:
                part = stored.get(number)
                if part is None or part.etag != etag.strip('"').lower():
                    raise _s3_error(f"part {number} was not uploaded or its ETag differs", "InvalidPart")
                chosen.append(part)
            for part in chosen[:-1]:
                if part.size < self.config.min_part_size:
                    raise _s3_error(
                        f"part {part.part_number} is {part.size} bytes; every part but the last must be at least "
                        f"{self.config.min_part_size} bytes",
                        "EntityTooSmall",
                    )
            total = sum(p.size for p in chosen)
            if total > target.max_object_size:
                raise too_large(target.max_object_size)
            joined = await self.blobs.concatenate([self.blobs.part_path(upload_id, p.part_number) for p in chosen])
            digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen), usedforsecurity=False)
            head = await anyio.to_thread.run_sync(_read_head, joined)
            record = await self.install(
                target,
                key,
                joined,
                size=total,
                etag=f"{digest.hexdigest()}-{len(chosen)}",
                content_type=upload.content_type or sniff(head, key),
                metadata=upload.metadata,
            )
            await self._drop(upload_id)
            return record

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        async with self.locks.write(("\0upload", upload_id)):
            await self._upload(bucket, key, upload_id)
            await self._drop(upload_id)

    async def _drop(self, upload_id: str) -> None:
        await self.meta.delete_upload(upload_id)
        await self.blobs.remove_upload(upload_id)

    async def sweep_stale(self) -> int:
        stale = await self.meta.stale_uploads(self.clock() - self.config.multipart_expiry_seconds)
        for upload_id in stale:
            await self._drop(upload_id)
        return len(stale)
