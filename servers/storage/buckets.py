"""The plain types storage's modules share: buckets, an opened object, digest checks, file reads.

They sit below `service`, `multipart` and the HTTP face so that none of those imports another
to reach them (the service builds multipart uploads and the sweeper; nothing points back).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

import anyio

from servers.kit import ToolError
from servers.storage.blobs import WrittenBlob
from servers.storage.metadata import ObjectRecord

READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Bucket:
    name: str
    visibility: str
    max_object_size: int
    ttl_seconds: int | None
    key: str

    @property
    def public(self) -> bool:
        return self.visibility == "public-read"


@dataclass
class OpenedObject:
    """A record and an open file of exactly that version; the caller closes `file`."""

    record: ObjectRecord
    file: IO[bytes]


def no_such_key(bucket: str, key: str) -> ToolError:
    return ToolError(f"no object {key!r} in bucket {bucket!r}", code="not_found", data={"s3_code": "NoSuchKey"})


def check_digests(written: WrittenBlob, md5: str | None, sha256: str | None, crc32: int | None) -> None:
    """Refuse bytes whose digests differ from what the client declared."""
    if md5 is not None and md5.lower() != written.md5_hex:
        raise ToolError("the body does not match its Content-MD5", field="Content-MD5", data={"s3_code": "BadDigest"})
    if sha256 is not None and sha256.lower() != written.sha256_hex:
        raise ToolError(
            "the body does not match its x-amz-content-sha256",
            field="x-amz-content-sha256",
            data={"s3_code": "XAmzContentSHA256Mismatch"},
        )
    if crc32 is not None and crc32 != written.crc32:
        raise ToolError(
            "the body does not match its x-amz-checksum-crc32",
            field="x-amz-checksum-crc32",
            data={"s3_code": "BadDigest"},
        )


async def iter_file(file: IO[bytes], start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    """Read `length` bytes from `start` in worker threads (the whole rest when length is None)."""
    await anyio.to_thread.run_sync(file.seek, start)
    remaining = length
    while remaining is None or remaining > 0:
        size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
        chunk = await anyio.to_thread.run_sync(file.read, size)
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk
