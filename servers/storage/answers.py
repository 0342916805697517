"""The JSON answers storage gives about objects, shared by its MCP tools and its HTTP face."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from servers.storage.listing import Listing
from servers.storage.metadata import ObjectRecord
from servers.storage.store import ObjectStore


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_fields(record: ObjectRecord) -> dict[str, Any]:
    """What every answer about one object starts with."""
    return {
        "bucket": record.bucket,
        "key": record.key,
        "size": record.size,
        "etag": record.etag,
        "content_type": record.content_type,
    }


def object_info(record: ObjectRecord) -> dict[str, Any]:
    return {
        **record_fields(record),
        "last_modified": iso(record.modified),
        "expires_at": iso(record.expires_at),
        "metadata": record.metadata,
    }


def stored_object(store: ObjectStore, record: ObjectRecord, minter: str) -> dict[str, Any]:
    """The answer to a write (put or copy): the object and the URL to fetch it by (bound to `minter`)."""
    url, url_expires_at = store.url(record.bucket, record.key, minter=minter)
    return {
        **record_fields(record),
        "url": url,
        "url_expires_at": iso(url_expires_at),
        "expires_at": iso(record.expires_at),
    }


def listing_answer(bucket: str, prefix: str, delimiter: str, listing: Listing) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": prefix,
        "delimiter": delimiter,
        "objects": [
            {
                "key": r.key,
                "size": r.size,
                "etag": r.etag,
                "content_type": r.content_type,
                "last_modified": iso(r.modified),
            }
            for r in listing.objects
        ],
        "common_prefixes": listing.common_prefixes,
        "is_truncated": listing.is_truncated,
        "next_continuation_token": listing.next_token,
    }


def presigned_answer(url: str, method: str, expires_in: float, expires_at: float | None) -> dict[str, Any]:
    """A link's answer; a public bucket's link never expires (no `expires_at`)."""
    public = expires_at is None
    return {
        "url": url,
        "method": method,
        "public": public,
        "expires_in": None if public else expires_in,
        "expires_at": iso(expires_at),
    }
