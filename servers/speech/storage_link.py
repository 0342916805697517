"""Audio to and from the storage server, through the hub's tool calls.

`transcribe` reads its input from a storage object (`object`, or a /storage/... `url` on this
hub) with `storage-get_object`; `speak` saves its audio with `storage-put_object` and answers
with the URL storage gives back. Arbitrary URLs are never fetched: only this hub's storage.
`servers.kit.storage_link` makes the calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from servers.kit import HubCaller, ToolError, error_from_result
from servers.kit import storage_link as storage

STORAGE_PATH_PREFIX = "/storage/"


def require_hub(hub: HubCaller | None, field: str) -> HubCaller:
    return storage.require_hub(
        hub,
        field,
        f"'{field}' needs the storage server, reached through a toolmux hub; this speech server runs alone "
        "(no hub): send the audio as 'audio_base64' instead",
    )


def object_from_url(url: str, public_url: str | None) -> tuple[str, str]:
    """`(bucket, key)` of a storage URL on this hub; a ToolError naming `url` for anything else."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https"):
            raise ToolError(f"'url' must be an http(s) storage URL on this hub, not {parts.scheme!r}", field="url")
        if public_url:
            hub = urlsplit(public_url)
            if (parts.scheme, parts.netloc) != (hub.scheme, hub.netloc):
                raise ToolError(
                    f"'url' must point at this hub ({hub.scheme}://{hub.netloc}); other hosts are never fetched",
                    field="url",
                )
    path = parts.path
    if not path.startswith(STORAGE_PATH_PREFIX):
        raise ToolError(
            "'url' must be a storage URL on this hub, like /storage/<bucket>/<key> (what storage tools return)",
            field="url",
        )
    bucket, _, key = path[len(STORAGE_PATH_PREFIX) :].partition("/")
    if not bucket or not key:
        raise ToolError("'url' names no object: expected /storage/<bucket>/<key>", field="url")
    return unquote(bucket), unquote(key)


async def get_audio(hub: HubCaller, bucket: str, key: str, *, max_bytes: int, field: str) -> bytes:
    result = await storage.get_object(hub, bucket=bucket, key=key, max_bytes=max_bytes, encoding="base64")
    error = error_from_result(result)
    if error is not None and error.code == "too_large":
        raise ToolError(
            f"storage object {bucket}/{key} is larger than the {max_bytes} bytes transcribe accepts",
            code="too_large",
            field=field,
        )
    stored = storage.stored_result(result, f"reading storage object {bucket}/{key} failed", field)
    return storage.object_bytes(stored, bucket, key)


async def put_audio(
    hub: HubCaller,
    *,
    bucket: str,
    key: str,
    data: bytes,
    content_type: str,
    ttl_seconds: int | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """Store `data`; storage's structured answer ({bucket, key, size, url, url_expires_at, ...})."""
    result = await storage.put_object(
        hub, bucket=bucket, key=key, data=data, content_type=content_type, metadata=metadata, ttl_seconds=ttl_seconds
    )
    error = error_from_result(result)
    field = "bucket" if error is not None and error.code == "not_found" else "key"
    return storage.stored_result(result, f"saving the audio to storage {bucket}/{key} failed", field)
