"""Audio to and from the storage server, through the hub's tool calls.

`transcribe` reads its input from a storage object (`object`, or a /storage/... `url` on this
hub) with `storage-get_object`; `speak` saves its audio with `storage-put_object` and answers
with the URL storage gives back. Arbitrary URLs are never fetched: only this hub's storage.
"""

from __future__ import annotations

import binascii
from typing import Any
from urllib.parse import unquote, urlsplit

from servers.kit import HubCaller, ToolError, error_from_result

PUT_TOOL = "storage-put_object"
GET_TOOL = "storage-get_object"
STORAGE_TIMEOUT_SECONDS = 120.0
STORAGE_PATH_PREFIX = "/storage/"


def require_hub(hub: HubCaller | None, field: str) -> HubCaller:
    if hub is None:
        raise ToolError(
            f"'{field}' needs the storage server, reached through a toolmux hub; this speech server runs alone "
            "(no hub): send the audio as 'audio_base64' instead",
            code="unavailable",
            field=field,
        )
    return hub


def _structured(result: dict[str, Any], action: str, field: str) -> dict[str, Any]:
    error = error_from_result(result)
    if error is not None:
        raise ToolError(f"{action}: {error.message}", code=error.code, field=field, retryable=error.retryable)
    structured = result.get("structuredContent")
    if not isinstance(structured, dict):
        raise ToolError(f"{action}: the storage server returned no structured result", code="upstream_error")
    return structured


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
    arguments = {"bucket": bucket, "key": key, "max_bytes": max_bytes, "encoding": "base64"}
    result = await hub.call_tool(GET_TOOL, arguments, timeout=STORAGE_TIMEOUT_SECONDS)
    error = error_from_result(result)
    if error is not None and error.code == "too_large":
        raise ToolError(
            f"storage object {bucket}/{key} is larger than the {max_bytes} bytes transcribe accepts",
            code="too_large",
            field=field,
        )
    stored = _structured(result, f"reading storage object {bucket}/{key} failed", field)
    encoded = stored.get("base64")
    if not isinstance(encoded, str):
        raise ToolError(f"storage object {bucket}/{key} came back without content", code="upstream_error")
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ToolError(f"storage object {bucket}/{key} came back garbled", code="upstream_error") from None


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
    arguments: dict[str, Any] = {
        "bucket": bucket,
        "key": key,
        "base64": binascii.b2a_base64(data, newline=False).decode("ascii"),
        "content_type": content_type,
        "metadata": metadata,
    }
    if ttl_seconds is not None:
        arguments["ttl_seconds"] = ttl_seconds
    result = await hub.call_tool(PUT_TOOL, arguments, timeout=STORAGE_TIMEOUT_SECONDS)
    error = error_from_result(result)
    field = "bucket" if error is not None and error.code == "not_found" else "key"
    return _structured(result, f"saving the audio to storage {bucket}/{key} failed", field)
