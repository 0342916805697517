"""Objects to and from the storage server through the hub (`ctx.hub`), for servers that keep no
files themselves: mail attachments, speech audio, browser screenshots and uploads.

`put_object` / `get_object` make the call and return the raw result; `stored_result` turns it
into storage's structured answer, or a ToolError saying what failed (`action`) in the caller's
words, with storage's code and retryability, naming the caller's `field`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from servers.kit.context import HubCaller
from servers.kit.errors import ToolError, error_from_result

PUT_TOOL = "storage-put_object"
GET_TOOL = "storage-get_object"
STORAGE_TIMEOUT_S = 120.0


def require_hub(hub: HubCaller | None, field: str, message: str) -> HubCaller:
    """`hub`, or an `unavailable` ToolError (`message`, naming `field`) when the server runs alone."""
    if hub is None:
        raise ToolError(message, code="unavailable", field=field)
    return hub


def stored_result(result: dict[str, Any], action: str, field: str | None = None) -> dict[str, Any]:
    """Storage's structured answer; a ToolError `"<action>: <storage's message>"` when it failed."""
    error = error_from_result(result)
    if error is not None:
        raise ToolError(f"{action}: {error.message}", code=error.code, field=field, retryable=error.retryable)
    structured = result.get("structuredContent")
    if not isinstance(structured, dict):
        raise ToolError(f"{action}: the storage server returned no structured result", code="upstream_error")
    return structured


async def put_object(
    hub: HubCaller,
    *,
    bucket: str,
    key: str,
    data: bytes,
    content_type: str,
    metadata: dict[str, str] | None = None,
    ttl_seconds: int | None = None,
    timeout: float = STORAGE_TIMEOUT_S,
) -> dict[str, Any]:
    """Store `data` with `storage-put_object`; the raw result (see `stored_result`)."""
    arguments: dict[str, Any] = {
        "bucket": bucket,
        "key": key,
        "base64": base64.b64encode(data).decode("ascii"),
        "content_type": content_type,
    }
    if metadata is not None:
        arguments["metadata"] = metadata
    if ttl_seconds is not None:
        arguments["ttl_seconds"] = ttl_seconds
    return await hub.call_tool(PUT_TOOL, arguments, timeout=timeout)


async def get_object(hub: HubCaller, *, bucket: str, key: str, **options: Any) -> dict[str, Any]:
    """Read an object with `storage-get_object` (`options`: max_bytes, encoding); the raw result."""
    return await hub.call_tool(GET_TOOL, {"bucket": bucket, "key": key, **options}, timeout=STORAGE_TIMEOUT_S)


def object_bytes(stored: dict[str, Any], bucket: str, key: str, field: str | None = None) -> bytes:
    """The content of a `get_object` answer (base64 or text), or an upstream_error naming `field`."""
    if isinstance(stored.get("base64"), str):
        try:
            return base64.b64decode(stored["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ToolError(f"storage object {bucket}/{key} came back garbled", code="upstream_error") from None
    text = stored.get("text")
    if isinstance(text, str):
        return text.encode("utf-8")
    raise ToolError(f"storage object {bucket}/{key} came back without content", code="upstream_error", field=field)
