"""Attachments to and from the storage server, through the hub's tool calls.

The mail server keeps no message content itself: saving an attachment puts it in a storage
bucket with `storage-put_object`, and sending one reads it with `storage-get_object`
(`servers.kit.storage_link` makes the calls).
"""

from __future__ import annotations

from typing import Any

from servers.kit import HubCaller
from servers.kit import storage_link as storage


def require_hub(hub: HubCaller | None, field: str) -> HubCaller:
    return storage.require_hub(
        hub,
        field,
        f"'{field}' needs the storage server, reached through a toolmux hub; this mail server runs "
        "alone (no hub), so attachments cannot be moved to or from storage",
    )


async def put_object(
    hub: HubCaller, *, bucket: str, key: str, data: bytes, content_type: str, field: str
) -> dict[str, Any]:
    """Store `data`; returns storage's {bucket, key, etag, size, content_type, url}."""
    result = await storage.put_object(hub, bucket=bucket, key=key, data=data, content_type=content_type)
    stored = storage.stored_result(result, f"saving to storage {bucket}/{key} failed", field)
    keep = ("bucket", "key", "etag", "size", "content_type", "url")
    return {k: stored.get(k) for k in keep if k in stored}


async def get_object(hub: HubCaller, *, bucket: str, key: str, field: str) -> tuple[bytes, str | None]:
    """(bytes, content_type) of a stored object."""
    result = await storage.get_object(hub, bucket=bucket, key=key)
    stored = storage.stored_result(result, f"reading storage object {bucket}/{key} failed", field)
    content_type = stored.get("content_type")
    return storage.object_bytes(stored, bucket, key), content_type if isinstance(content_type, str) else None
