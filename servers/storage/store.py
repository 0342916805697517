"""`ObjectStore`: everything storage's HTTP/S3 face asks of the storage service, and nothing more.

The face (`servers/storage/http/`) is written against this interface only; `StorageService`
(local files + SQLite metadata) is the implementation today. A second one — metadata in
PostgreSQL and per-object locks that hold across hub replicas — slots in behind the same
methods without the face changing. Bytes travel as async iterables in and an open file out, so
nothing is ever held whole in memory.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, Mapping
from typing import Protocol, runtime_checkable

from servers.storage.buckets import Bucket, OpenedObject
from servers.storage.listing import Listing
from servers.storage.metadata import ObjectRecord, PartRecord

Source = bytes | AsyncIterable[bytes]


@runtime_checkable
class ObjectStore(Protocol):
    @property
    def buckets(self) -> Mapping[str, Bucket]:
        """The configured buckets by name."""
        ...

    @property
    def started_at(self) -> float:
        """When the store was created (S3's bucket CreationDate)."""
        ...

    def bucket_for_key(self, presented: str) -> str | None:
        """The bucket whose own key this is (bucket keys guard only their bucket)."""
        ...

    def url(
        self, bucket: str, key: str, *, minter: str, method: str = "GET", expires_in: float | None = None
    ) -> tuple[str, int | None]:
        """A plain (public GET) or presigned URL bound to the hub key `minter`; `(url, expires_at)`."""
        ...

    def verify_presigned(
        self, method: str, bucket: str, key: str, *, expires: str, signature: str, minter: str
    ) -> str | None:
        """None when a toolmux presigned URL's signature and expiry hold, else why not."""
        ...

    async def put(
        self,
        bucket: str,
        key: str,
        source: Source,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        ttl_seconds: int | None = None,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        expected_crc32: int | None = None,
    ) -> ObjectRecord: ...

    async def open(self, bucket: str, key: str) -> OpenedObject: ...

    async def delete(self, bucket: str, key: str) -> bool: ...

    async def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectRecord: ...

    async def list(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
        continuation_token: str | None = None,
        start_after: str | None = None,
    ) -> Listing: ...

    async def create_upload(
        self, bucket: str, key: str, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> str: ...

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source: Source,
        *,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        expected_crc32: int | None = None,
    ) -> str: ...

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: builtins.list[tuple[int, str]]
    ) -> ObjectRecord: ...

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> builtins.list[PartRecord]: ...
