"""The storage server's config section, its embedded default, and the secrets it persists.

    servers:
      storage:
        config:
          buckets:
            - {name: default, visibility: private}
            - {name: uploads, visibility: public-read, ttl_seconds: 604800}
          max_object_size: 1073741824

A bucket without a `key` gets one generated on first start and kept in `<data>/storage/bucket-keys.json`
(mode 0600), so restarts keep working URLs and credentials.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_log = logging.getLogger("toolmux.storage")

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# S3's bucket naming rules (lowercase, digits, '.', '-', 3-63 chars, alphanumeric at both ends).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Path segments the HTTP face uses itself.
RESERVED_BUCKET_NAMES = frozenset({"presign"})

Visibility = Literal["public-read", "private"]


class BucketConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Bucket name (S3 rules: 3-63 chars of a-z 0-9 . -)")
    visibility: Visibility = "private"
    key: str | None = Field(default=None, min_length=16, description="Secret for this bucket only")
    max_object_size: int | None = Field(default=None, gt=0, description="Bytes; default: the server's")
    ttl_seconds: int | None = Field(default=None, gt=0, description="Objects expire this long after each write")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not BUCKET_NAME.match(name) or ".." in name:
            raise ValueError(f"bucket name {name!r} must be 3-63 chars of a-z, 0-9, '.', '-' (S3 rules)")
        if name in RESERVED_BUCKET_NAMES:
            raise ValueError(f"bucket name {name!r} is reserved by the HTTP API")
        return name


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buckets: list[BucketConfig] = Field(default_factory=list)
    max_object_size: int = Field(default=GiB, gt=0, description="Default per-object limit in bytes")
    max_inline_bytes: int = Field(
        default=8 * MiB, gt=0, description="Largest object get_object returns inline (text or base64)"
    )
    url_expiry_seconds: int = Field(
        default=3600, ge=1, le=MAX_PRESIGN_SECONDS, description="Lifetime of presigned URLs in tool results"
    )
    root: str | None = Field(
        default=None,
        description="Directory of the objects, bucket keys and URL secret (default: <data dir>/storage). "
        "Replicas sharing state must all mount the same directory here",
    )
    lock_timeout_seconds: float = Field(default=10.0, gt=0, description="Wait this long for a busy object")
    lock_max_waiters: int = Field(default=64, ge=1, description="Callers queued on one object before 'busy'")
    sweep_interval_seconds: float = Field(default=60.0, gt=0, description="Longest pause between TTL sweeps")
    multipart_expiry_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="Unfinished multipart uploads are dropped after this"
    )
    min_part_size: int = Field(default=5 * MiB, ge=1, description="S3's minimum size of every part but the last")

    @model_validator(mode="after")
    def _unique_names(self) -> StorageConfig:
        seen: set[str] = set()
        for bucket in self.buckets:
            if bucket.name in seen:
                raise ValueError(f"bucket {bucket.name!r} is configured twice")
            seen.add(bucket.name)
        return self

    def effective_buckets(self) -> list[BucketConfig]:
        """The configured buckets, or the embedded default: `default` (private) and `uploads` (public-read)."""
        if self.buckets:
            return list(self.buckets)
        return [BucketConfig(name="default"), BucketConfig(name="uploads", visibility="public-read")]


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def resolve_bucket_keys(buckets: list[BucketConfig], server_dir: Path) -> dict[str, str]:
    """Each bucket's secret: from config, else generated once and persisted under the data dir."""
    path = server_dir / "bucket-keys.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
    generated = False
    keys: dict[str, str] = {}
    for bucket in buckets:
        if bucket.key:
            keys[bucket.name] = bucket.key
            continue
        if bucket.name not in stored:
            stored[bucket.name] = "tmxb_" + secrets.token_urlsafe(32)
            generated = True
        keys[bucket.name] = stored[bucket.name]
    if generated:
        _write_private(path, json.dumps(stored, indent=2, sort_keys=True))
        _log.warning("storage: generated bucket keys, kept in %s", path)
    return keys


def server_secret(server_dir: Path) -> bytes:
    """The secret behind toolmux presigned URLs, generated once (0600) so URLs survive restarts."""
    path = server_dir / "presign.secret"
    if not path.exists():
        _write_private(path, secrets.token_hex(32))
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())


@contextmanager
def first_start_lock(server_dir: Path) -> Iterator[None]:
    """Held while secrets are read or generated, so replicas sharing the directory generate them once."""
    server_dir.mkdir(parents=True, exist_ok=True)
    with open(server_dir / ".init.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
