"""Attachments to and from the storage server, through the hub's tool calls.

The mail server keeps no message content itself: saving an attachment puts it in a storage
bucket with `storage-put_object`, and sending one reads it with `storage-get_object`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from servers.kit import HubCaller, ToolError, error_from_result

PUT_TOOL = "storage-put_object"
GET_TOOL = "storage-get_object"
STORAGE_TIMEOUT = 120.0


def require_hub(hub: HubCaller | None, field: str) -> HubCaller:
    if hub is None:
        raise ToolError(
            f"'{field}' needs the storage server, reached through a toolmux hub; this mail server runs "
            "alone (no hub), so attachments cannot be moved to or from storage",
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


async def put_object(
    hub: HubCaller, *, bucket: str, key: str, data: bytes, content_type: str, field: str
) -> dict[str, Any]:
    """Store `data`; returns storage's {bucket, key, etag, size, content_type, url}."""
    arguments = {
        "bucket": bucket,
        "key": key,
        "base64": base64.b64encode(data).decode("ascii"),
        "content_type": content_type,
    }
    result = await hub.call_tool(PUT_TOOL, arguments, timeout=STORAGE_TIMEOUT)
    stored = _structured(result, f"saving to storage {bucket}/{key} failed", field)
    keep = ("bucket", "key", "etag", "size", "content_type", "url")
    return {k: stored.get(k) for k in keep if k in stored}


async def get_object(hub: HubCaller, *, bucket: str, key: str, field: str) -> tuple[bytes, str | None]:
    """(bytes, content_type) of a stored object."""
    result = await hub.call_tool(GET_TOOL, {"bucket": bucket, "key": key}, timeout=STORAGE_TIMEOUT)
    stored = _structured(result, f"reading storage object {bucket}/{key} failed", field)
    if isinstance(stored.get("base64"), str):
        try:
            data = base64.b64decode(stored["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ToolError(f"storage object {bucket}/{key} came back garbled", code="upstream_error") from None
    elif isinstance(stored.get("text"), str):
        data = stored["text"].encode("utf-8")
    else:
        raise ToolError(f"storage object {bucket}/{key} came back without content", code="upstream_error")
    content_type = stored.get("content_type")
    return data, content_type if isinstance(content_type, str) else None
