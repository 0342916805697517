"""Errors a tool handler raises to give the caller a clear, machine-readable answer.

`ToolError` becomes an `isError` tool result whose text is the message and whose
`_meta["toolmux/error"]` carries `{code, message, field?, retryable, retry_after?}` so the
hub's HTTP facades can pick the right status code without parsing text.

Error codes and the HTTP status each face maps them to:

    invalid_argument  400    not_found       404    forbidden       403
    too_large         413    conflict        409    busy            409
    unavailable       503    rate_limited    429    timeout         504
    upstream_error    502    internal        500    unsupported     415
"""

from __future__ import annotations

from typing import Any

ERROR_META_KEY = "toolmux/error"

HTTP_STATUS_BY_CODE: dict[str, int] = {
    "invalid_argument": 400,
    "not_found": 404,
    "forbidden": 403,
    "too_large": 413,
    "conflict": 409,
    "busy": 409,
    "unavailable": 503,
    "rate_limited": 429,
    "timeout": 504,
    "upstream_error": 502,
    "internal": 500,
    "unsupported": 415,
    "payment_required": 402,
}


class ToolError(Exception):
    """A failure the caller can act on: bad input, a missing object, a busy resource."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_argument",
        field: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.retryable = retryable
        self.retry_after = retry_after
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.field is not None:
            out["field"] = self.field
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.data:
            out["data"] = self.data
        return out


def error_result(error: ToolError) -> dict[str, Any]:
    """The wire form of a tool result reporting `error`."""
    return {
        "content": [{"type": "text", "text": f"Error: {error.message}"}],
        "isError": True,
        "resultType": "complete",
        "_meta": {ERROR_META_KEY: error.to_dict()},
    }


def error_from_result(result: dict[str, Any]) -> ToolError | None:
    """Rebuild the `ToolError` carried by an `isError` result (None when the result succeeded)."""
    if not result.get("isError"):
        return None
    info = (result.get("_meta") or {}).get(ERROR_META_KEY)
    if isinstance(info, dict):
        return ToolError(
            str(info.get("message", "tool failed")),
            code=str(info.get("code", "internal")),
            field=info.get("field"),
            retryable=bool(info.get("retryable", False)),
            retry_after=info.get("retry_after"),
            data=info.get("data"),
        )
    texts = [c.get("text", "") for c in result.get("content", []) if isinstance(c, dict) and c.get("type") == "text"]
    message = " ".join(t for t in texts if t).removeprefix("Error: ") or "tool failed"
    return ToolError(message, code="upstream_error")
