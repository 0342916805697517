"""Object keys: what is accepted, and why traversal-shaped keys are refused.

Object bytes are stored under generated names, never under the key, so a key cannot reach
outside the data directory whatever it holds. Keys that *look* like traversal are still refused
(400): a client sending them is confused or probing, and the same key must mean the same
object on every face (HTTP, S3, MCP) and on any future file-per-key backend.
"""

from __future__ import annotations

import re

from servers.kit import ToolError

MAX_KEY_BYTES = 1024  # S3's limit
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key(key: str, field: str = "key") -> str:
    """Return `key` when it is a safe object key, else raise ToolError(invalid_argument)."""
    if not key:
        raise ToolError("object key must not be empty", field=field)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ToolError(f"object key is longer than {MAX_KEY_BYTES} bytes", field=field)
    if _CONTROL.search(key):
        raise ToolError("object key must not contain NUL or control characters", field=field)
    if key.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", key):
        raise ToolError("object key must be relative (no leading '/' or drive letter)", field=field)
    segments = re.split(r"[\\/]", key)
    if any(segment in (".", "..") for segment in segments):
        raise ToolError("object key must not contain '.' or '..' path segments", field=field)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolError("object key must be valid UTF-8", field=field) from None
    return key


def check_prefix(prefix: str, field: str = "prefix") -> str:
    """Prefixes may be empty or end mid-segment, but never hold NUL or control characters."""
    if _CONTROL.search(prefix):
        raise ToolError("prefix must not contain NUL or control characters", field=field)
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ToolError(f"prefix is longer than {MAX_KEY_BYTES} bytes", field=field)
    return prefix
