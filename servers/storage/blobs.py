"""Object bytes on disk: written to a temp file, fsynced, renamed into place, never torn.

Each stored version is a file with a generated name (`<bucket>/<2 hex>/<32 hex>`), so the key
never becomes a path. A write lands in `tmp/` first; only a complete, fsynced file is renamed
under `objects/`, and only then does the metadata point at it. A crash leaves at most an
unreferenced file, which `collect_garbage()` removes on the next start.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
import uuid
import zlib
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio

from servers.kit import ToolError
from servers.storage.sniff import SNIFF_BYTES

# Chunks are gathered to about this size before a worker thread writes and hashes them.
BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WrittenBlob:
    temp_path: Path
    size: int
    md5_hex: str
    sha256_hex: str | None
    crc32: int
    head: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def too_large(limit: int, what: str = "object") -> ToolError:
    return ToolError(f"{what} is larger than the limit of {limit} bytes", code="too_large", data={"limit": limit})


# Errors of a full disk or an exhausted quota: the write is refused whole and may be retried later.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# A full disk is `unavailable` (retryable, 503 on faces that know no better) with this finer reason,
# which storage's HTTP face answers as 507 Insufficient Storage (S3 <Code>InsufficientStorage).
INSUFFICIENT_STORAGE = "insufficient_storage"


def insufficient_storage() -> ToolError:
    return ToolError(
        "the storage volume is full; nothing was stored, retry once space is freed",
        code="unavailable",
        retryable=True,
        retry_after=30,
        data={"s3_code": "InsufficientStorage", "reason": INSUFFICIENT_STORAGE},
    )


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class BlobWriter:
    """Receives an object's bytes, hashing as it goes; `finish()` fsyncs and returns the temp file."""

    def __init__(self, tmp_dir: Path, max_size: int, *, sha256: bool = False) -> None:
        self.max_size = max_size
        self.path = tmp_dir / f"{uuid.uuid4().hex}.part"
        self._file: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 - closed in finish/abort
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256() if sha256 else None
        self._crc32 = 0
        self._size = 0
        self._head = b""
        self._pending: list[bytes] = []
        self._pending_size = 0

    def _write_batch(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self._file.write(chunk)
            self._md5.update(chunk)
            if self._sha256 is not None:
                self._sha256.update(chunk)
            self._crc32 = zlib.crc32(chunk, self._crc32)

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if self._size > self.max_size:
            raise too_large(self.max_size)
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending, self._pending_size = self._pending, [], 0
        if batch:
            await anyio.to_thread.run_sync(self._write_batch, batch)

    async def finish(self) -> WrittenBlob:
        await self._flush()

        def sync_and_close() -> None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

        await anyio.to_thread.run_sync(sync_and_close)
        return WrittenBlob(
            temp_path=self.path,
            size=self._size,
            md5_hex=self._md5.hexdigest(),
            sha256_hex=self._sha256.hexdigest() if self._sha256 is not None else None,
            crc32=self._crc32,
            head=self._head,
        )

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()  # may flush buffered bytes, and fail again on a full disk
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.multipart = root / "multipart"
        for path in (self.objects, self.tmp, self.multipart):
            path.mkdir(parents=True, exist_ok=True)

    def writer(self, max_size: int, *, sha256: bool = False) -> BlobWriter:
        return BlobWriter(self.tmp, max_size, sha256=sha256)

    async def write(self, source: bytes | AsyncIterable[bytes], max_size: int, *, sha256: bool = False) -> WrittenBlob:
        """Write `source` to a fsynced temp file (raises too_large past `max_size`, leaving nothing)."""
        writer = self.writer(max_size, sha256=sha256)
        try:
            if isinstance(source, bytes | bytearray | memoryview):
                await writer.write(bytes(source))
            else:
                async for chunk in source:
                    await writer.write(chunk)
            return await writer.finish()
        except BaseException as exc:
            writer.abort()
            if disk_full(exc):
                raise insufficient_storage() from None
            raise

    @staticmethod
    def new_name(bucket: str) -> str:
        blob_id = uuid.uuid4().hex
        return f"{bucket}/{blob_id[:2]}/{blob_id}"

    def path(self, name: str) -> Path:
        return self.objects / name

    async def commit(self, written: Path, name: str) -> None:
        """Move a finished temp file to its final name atomically, and make the rename durable."""

        def move() -> None:
            target = self.objects / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, target)
            _fsync_dir(target.parent)

        try:
            await anyio.to_thread.run_sync(move)
        except OSError as exc:
            if disk_full(exc):
                raise insufficient_storage() from None
            raise

    async def open(self, name: str) -> IO[bytes]:
        return await anyio.to_thread.run_sync(lambda: open(self.objects / name, "rb"))

    async def remove(self, name: str) -> None:
        await anyio.to_thread.run_sync(lambda: (self.objects / name).unlink(missing_ok=True))

    async def discard(self, temp_path: Path) -> None:
        await anyio.to_thread.run_sync(lambda: temp_path.unlink(missing_ok=True))

    # --- multipart parts ------------------------------------------------------------------------
    def part_path(self, upload_id: str, part_number: int) -> Path:
        return self.multipart / upload_id / f"{part_number:05d}"

    async def commit_part(self, written: Path, upload_id: str, part_number: int) -> None:
        def move() -> None:
            target = self.part_path(upload_id, part_number)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, target)

        await anyio.to_thread.run_sync(move)

    async def concatenate(self, paths: Iterable[Path]) -> Path:
        """Join part files into one fsynced temp file (a multipart upload's object)."""

        def join() -> Path:
            target = self.tmp / f"{uuid.uuid4().hex}.part"
            try:
                with open(target, "xb") as out:
                    for path in paths:
                        with open(path, "rb") as part:
                            shutil.copyfileobj(part, out, 4 * 1024 * 1024)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            return target

        try:
            return await anyio.to_thread.run_sync(join)
        except OSError as exc:
            if disk_full(exc):
                raise insufficient_storage() from None
            raise

    async def remove_upload(self, upload_id: str) -> None:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(self.multipart / upload_id, ignore_errors=True))

    # --- recovery -------------------------------------------------------------------------------
    def collect_garbage(self, referenced: set[str], live_uploads: set[str], *, min_age: float = 0.0) -> int:
        """Remove temp files and unreferenced blobs left by a crash (call before serving); with `min_age`,
        only those untouched for that many seconds (other replicas may be writing the newer ones)."""
        removed = 0
        cutoff = time.time() - min_age

        def old(path: Path) -> bool:
            try:
                return min_age <= 0 or path.stat().st_mtime < cutoff
            except FileNotFoundError:
                return False

        for path in self.tmp.iterdir():
            if old(path):
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.objects.glob("*/*/*"):
            if path.is_file() and path.relative_to(self.objects).as_posix() not in referenced and old(path):
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.multipart.iterdir():
            if path.name not in live_uploads and old(path):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed
