"""Errors a tool handler raises to give the caller a clear, machine-readable answer.

`ToolError` is the tool branch of toolmux's one error tree (`aggregator.protocol.errors`, where
the tree, the codes and every face's mapping are drawn). It becomes an `isError` tool result
whose text is the message and whose `_meta["toolmux/error"]` carries `{code, message, field?,
retryable, retry_after?, data?, reason?}`, so the hub's HTTP facades pick the right status
without parsing text.
"""

from __future__ import annotations

from typing import Any

import orjson

from aggregator.protocol.errors import ERROR_META_KEY, HTTP_STATUS, ErrorCode, ToolmuxError, tool_result

__all__ = ["ERROR_META_KEY", "HTTP_STATUS_BY_CODE", "ErrorCode", "ToolError", "error_from_result", "error_result"]

# Kept for callers that look a status up by the code's string.
HTTP_STATUS_BY_CODE: dict[str, int] = {code.value: status for code, status in HTTP_STATUS.items()}


class ToolError(ToolmuxError):
    """A failure the caller can act on: bad input, a missing object, a busy resource."""

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> ToolError:
        error = ToolmuxError.from_dict(info)
        return cls(
            error.message,
            code=error.code,
            field=error.field,
            retryable=error.retryable,
            retry_after=error.retry_after,
            data=error.data,
            reason=error.reason,
        )


def error_result(error: ToolmuxError) -> dict[str, Any]:
    """The wire form of a tool result reporting `error`."""
    return tool_result(error)


def error_from_result(result: dict[str, Any]) -> ToolError | None:
    """Rebuild the `ToolError` carried by an `isError` result (None when the result succeeded)."""
    if not result.get("isError"):
        return None
    info = (result.get("_meta") or {}).get(ERROR_META_KEY)
    if isinstance(info, dict):
        return ToolError.from_dict(info)
    texts = [c.get("text", "") for c in result.get("content", []) if isinstance(c, dict) and c.get("type") == "text"]
    message = " ".join(t for t in texts if t).removeprefix("Error: ") or "tool failed"
    return ToolError(message, code=ErrorCode.UPSTREAM_ERROR)


def structured_of(result: dict[str, Any], name: str) -> dict[str, Any]:
    """A successful result's structured content; a JSON text block when that is all an upstream sent."""
    data = result.get("structuredContent")
    if isinstance(data, dict):
        return data
    for block in result.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text":
            try:
                parsed = orjson.loads(block["text"])
            except orjson.JSONDecodeError:
                break
            if isinstance(parsed, dict):
                return parsed
    raise ToolError(f"{name} returned no structured result", code=ErrorCode.UPSTREAM_ERROR)
