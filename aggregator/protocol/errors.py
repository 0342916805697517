"""toolmux's one error tree, and how each wire format shows it.

Every failure a caller can act on is a `ToolmuxError`. What it means is its `code`, one of
`ErrorCode`; everything a face shows (HTTP status, OpenAI `type`, JSON-RPC error code, ...) is
looked up from the code in one table per face below, never from the message text.

    Exception
    └── ToolmuxError            code · message · field · retryable · retry_after · data · reason
        ├── ToolError           a tool's answer: travels as an `isError` result whose
        │                       `_meta["toolmux/error"]` carries the fields (servers.kit.errors)
        └── RequestError        the HTTP request itself is refused by a facade before any tool
                                runs: missing key, body too large, not JSON, wrong content type

Third-party exceptions are translated where they enter, each in one place:

    aggregator.protocol.jsonrpc.RpcError → `from_rpc_error`  (dispatch: unknown tool, upstream down/timeout)
    TimeoutError                 → `timeout_error`     (a facade's own bound on a request)
    json.JSONDecodeError,
    RecursionError               → `RequestError(invalid_argument, reason="invalid_json")` (facade kit)
    starlette ClientDisconnect   → no answer at all (the client is gone; 499 in logs)
    anything else                → `internal` (logged with the request id; the message never leaks)

One mapping per face (`FACES` names them all; a test checks every code maps on each):

    code                    HTTP  JSON-RPC  OpenAI type              Anthropic type
    invalid_argument        400   -32602    invalid_request_error    invalid_request_error
    unauthenticated         401   -32013    authentication_error     authentication_error
    payment_required        402   -32603    insufficient_quota       billing_error
    forbidden               403   -32013    permission_error         permission_error
    not_found               404   -32602    invalid_request_error    not_found_error
    method_not_allowed      405   -32601    invalid_request_error    invalid_request_error
    conflict                409   -32603    invalid_request_error    invalid_request_error
    too_large               413   -32602    invalid_request_error    request_too_large
    unsupported_media_type  415   -32602    invalid_request_error    invalid_request_error
    unsupported             415   -32602    invalid_request_error    invalid_request_error
    rate_limited            429   -32603    rate_limit_error         rate_limit_error
    internal                500   -32603    api_error                api_error
    upstream_error          502   -32603    api_error                api_error
    unavailable             503   -32010    api_error                overloaded_error
    busy                    503   -32010    api_error                overloaded_error
    timeout                 504   -32011    api_error                timeout_error

Tool `isError` results keep their `_meta["toolmux/error"]` form (children and clients built
before this tree read it unchanged); Ollama's body is `{"error": message}`; toolmux's plain JSON
body is `{"error": {code, message, field?, retryable, request_id}}`. Every HTTP error answer
carries the request id: in the body where the format has room for it (plain JSON, Anthropic),
in the `x-request-id` header always (OpenAI and Ollama clients compare their bodies' keys).

Why `busy` is 503 (it was 409 in the kit's table, 503 on the storage face): a busy engine, a
locked object or a workspace running another job is a transient condition of the server, not a
conflict in what the client asked. 503 with `Retry-After` is what HTTP clients and SDKs retry by
themselves (the OpenAI and AWS SDKs do; both treat 409 as final), and it is what the storage
face already answered. `conflict` (409) stays for states only the client can change (an object
that exists, a directory that is not empty).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Final

ERROR_META_KEY: Final = "toolmux/error"


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PAYMENT_REQUIRED = "payment_required"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED = "unsupported"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    UPSTREAM_ERROR = "upstream_error"
    UNAVAILABLE = "unavailable"
    BUSY = "busy"
    TIMEOUT = "timeout"


C = ErrorCode

HTTP_STATUS: Final[dict[ErrorCode, int]] = {
    C.INVALID_ARGUMENT: 400,
    C.UNAUTHENTICATED: 401,
    C.PAYMENT_REQUIRED: 402,
    C.FORBIDDEN: 403,
    C.NOT_FOUND: 404,
    C.METHOD_NOT_ALLOWED: 405,
    C.CONFLICT: 409,
    C.TOO_LARGE: 413,
    C.UNSUPPORTED_MEDIA_TYPE: 415,
    C.UNSUPPORTED: 415,
    C.RATE_LIMITED: 429,
    C.INTERNAL: 500,
    C.UPSTREAM_ERROR: 502,
    C.UNAVAILABLE: 503,
    C.BUSY: 503,
    C.TIMEOUT: 504,
}

# JSON-RPC error codes (values of aggregator.protocol.jsonrpc constants; this module imports nothing of ours).
INVALID_PARAMS: Final = -32602
METHOD_NOT_FOUND: Final = -32601
INTERNAL_ERROR: Final = -32603
UPSTREAM_UNAVAILABLE: Final = -32010
UPSTREAM_TIMEOUT: Final = -32011
UNAUTHORIZED: Final = -32013

JSONRPC_CODE: Final[dict[ErrorCode, int]] = {
    C.INVALID_ARGUMENT: INVALID_PARAMS,
    C.UNAUTHENTICATED: UNAUTHORIZED,
    C.PAYMENT_REQUIRED: INTERNAL_ERROR,
    C.FORBIDDEN: UNAUTHORIZED,
    C.NOT_FOUND: INVALID_PARAMS,
    C.METHOD_NOT_ALLOWED: METHOD_NOT_FOUND,
    C.CONFLICT: INTERNAL_ERROR,
    C.TOO_LARGE: INVALID_PARAMS,
    C.UNSUPPORTED_MEDIA_TYPE: INVALID_PARAMS,
    C.UNSUPPORTED: INVALID_PARAMS,
    C.RATE_LIMITED: INTERNAL_ERROR,
    C.INTERNAL: INTERNAL_ERROR,
    C.UPSTREAM_ERROR: INTERNAL_ERROR,
    C.UNAVAILABLE: UPSTREAM_UNAVAILABLE,
    C.BUSY: UPSTREAM_UNAVAILABLE,
    C.TIMEOUT: UPSTREAM_TIMEOUT,
}

# As OpenAI's API answers (its SDKs pick the exception class from the HTTP status alone).
OPENAI_TYPE: Final[dict[ErrorCode, str]] = {
    C.INVALID_ARGUMENT: "invalid_request_error",
    C.UNAUTHENTICATED: "authentication_error",
    C.PAYMENT_REQUIRED: "insufficient_quota",
    C.FORBIDDEN: "permission_error",
    C.NOT_FOUND: "invalid_request_error",
    C.METHOD_NOT_ALLOWED: "invalid_request_error",
    C.CONFLICT: "invalid_request_error",
    C.TOO_LARGE: "invalid_request_error",
    C.UNSUPPORTED_MEDIA_TYPE: "invalid_request_error",
    C.UNSUPPORTED: "invalid_request_error",
    C.RATE_LIMITED: "rate_limit_error",
    C.INTERNAL: "api_error",
    C.UPSTREAM_ERROR: "api_error",
    C.UNAVAILABLE: "api_error",
    C.BUSY: "api_error",
    C.TIMEOUT: "api_error",
}

# OpenAI's `code` field where it differs from ours (its SDKs and clients look for these names).
OPENAI_CODE: Final[dict[ErrorCode, str]] = {
    C.PAYMENT_REQUIRED: "budget_exceeded",
    C.RATE_LIMITED: "rate_limit_exceeded",
    C.UNAUTHENTICATED: "unauthorized",
}

ANTHROPIC_TYPE: Final[dict[ErrorCode, str]] = {
    C.INVALID_ARGUMENT: "invalid_request_error",
    C.UNAUTHENTICATED: "authentication_error",
    C.PAYMENT_REQUIRED: "billing_error",
    C.FORBIDDEN: "permission_error",
    C.NOT_FOUND: "not_found_error",
    C.METHOD_NOT_ALLOWED: "invalid_request_error",
    C.CONFLICT: "invalid_request_error",
    C.TOO_LARGE: "request_too_large",
    C.UNSUPPORTED_MEDIA_TYPE: "invalid_request_error",
    C.UNSUPPORTED: "invalid_request_error",
    C.RATE_LIMITED: "rate_limit_error",
    C.INTERNAL: "api_error",
    C.UPSTREAM_ERROR: "api_error",
    C.UNAVAILABLE: "overloaded_error",
    C.BUSY: "overloaded_error",
    C.TIMEOUT: "timeout_error",
}

# Every per-code table, by face name: the completeness test walks this.
FACES: Final[dict[str, dict[ErrorCode, Any]]] = {
    "http": HTTP_STATUS,
    "jsonrpc": JSONRPC_CODE,
    "openai": OPENAI_TYPE,
    "anthropic": ANTHROPIC_TYPE,
}


def as_code(value: str | ErrorCode) -> ErrorCode:
    """The ErrorCode named `value`; an unknown name (from an older or foreign child) is `upstream_error`."""
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.UPSTREAM_ERROR


class ToolmuxError(Exception):
    """A failure the caller can act on. `code` decides how every face shows it.

    `field` names the offending input (a dotted path, a query parameter, a header); `retryable`
    and `retry_after` (seconds) tell clients whether and when to try again; `data` is extra
    machine-readable detail; `reason` is a finer, stable name some faces show in place of the
    code (OpenAI's `code` field: `missing_required_parameter`, `model_not_found`, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | ErrorCode = ErrorCode.INVALID_ARGUMENT,
        field: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        data: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = as_code(code)
        self.field = field
        self.retryable = retryable if retryable is not None else self.code in _RETRYABLE
        self.retry_after = retry_after
        self.data = data
        self.reason = reason

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        """The `_meta["toolmux/error"]` wire form (also the core of toolmux's plain JSON body)."""
        out: dict[str, Any] = {"code": self.code.value, "message": self.message, "retryable": self.retryable}
        if self.field is not None:
            out["field"] = self.field
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.data:
            out["data"] = self.data
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> ToolmuxError:
        return cls(
            str(info.get("message", "tool failed")),
            code=str(info.get("code", "internal")),
            field=info.get("field"),
            retryable=bool(info.get("retryable", False)),
            retry_after=info.get("retry_after"),
            data=info.get("data"),
            reason=info.get("reason"),
        )


class RequestError(ToolmuxError):
    """A facade refuses the HTTP request itself (before or instead of a tool call)."""


_RETRYABLE = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.BUSY, ErrorCode.TIMEOUT, ErrorCode.RATE_LIMITED})


# ---- one function per face -------------------------------------------------------------------


def tool_result(error: ToolmuxError) -> dict[str, Any]:
    """The `isError` tool result reporting `error`."""
    return {
        "content": [{"type": "text", "text": f"Error: {error.message}"}],
        "isError": True,
        "resultType": "complete",
        "_meta": {ERROR_META_KEY: error.to_dict()},
    }


def jsonrpc_error(error: ToolmuxError) -> dict[str, Any]:
    """The JSON-RPC `error` member for `error`."""
    return {"code": JSONRPC_CODE[error.code], "message": error.message, "data": error.to_dict()}


def retry_headers(error: ToolmuxError) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1): the error's own hint, or 1 for a retryable 429/503."""
    if error.retry_after is not None:
        return {"retry-after": str(max(math.ceil(error.retry_after), 1))}
    if error.retryable and error.status in (429, 503):
        return {"retry-after": "1"}
    return {}


def plain_body(error: ToolmuxError, request_id: str) -> dict[str, Any]:
    """toolmux's own JSON error body (REST routes, /health, /metrics, the Origin check)."""
    body = error.to_dict()
    if error.reason and isinstance(error, RequestError):  # a facade's own name for what it refused
        body["code"] = error.reason
        del body["reason"]
    body["request_id"] = request_id
    return {"error": body}


def openai_body(error: ToolmuxError, request_id: str) -> dict[str, Any]:
    """OpenAI's `{"error": {message, type, param, code}}`, exactly those keys as OpenAI sends them
    (strict clients compare the set); the request id travels in `x-request-id`, as OpenAI's does."""
    code: str | None = error.reason or OPENAI_CODE.get(error.code) or error.code.value
    if error.reason is None and error.code is ErrorCode.NOT_FOUND and error.field == "model":
        code = "model_not_found"
    elif error.reason is None and error.code is ErrorCode.TOO_LARGE and isinstance(error, RequestError):
        code = "request_too_large"  # the HTTP body itself (a tool's own limit stays `too_large`)
    elif error.reason is None and error.code is ErrorCode.INVALID_ARGUMENT:
        code = "invalid_value" if error.field else None  # OpenAI's own codes for a bad parameter
    return {
        "error": {
            "message": error.message,
            "type": OPENAI_TYPE[error.code],
            "param": error.field,
            "code": code,
        }
    }


def ollama_body(error: ToolmuxError, request_id: str) -> dict[str, Any]:
    """Ollama's `{"error": message}` (its clients read nothing else)."""
    return {"error": error.message}


def anthropic_body(error: ToolmuxError, request_id: str) -> dict[str, Any]:
    """Anthropic's `{"type": "error", "error": {type, message}, "request_id"}`."""
    return {
        "type": "error",
        "error": {"type": ANTHROPIC_TYPE[error.code], "message": error.message},
        "request_id": request_id,
    }


# ---- translations of third-party exceptions --------------------------------------------------

_CODE_BY_RPC: Final[dict[int, ErrorCode]] = {
    INVALID_PARAMS: ErrorCode.NOT_FOUND,  # dispatch's "unknown tool" (also a tool out of scope)
    UPSTREAM_UNAVAILABLE: ErrorCode.UNAVAILABLE,
    UPSTREAM_TIMEOUT: ErrorCode.TIMEOUT,
    UNAUTHORIZED: ErrorCode.FORBIDDEN,
}


def from_rpc_error(code: int, message: str, data: Any = None) -> ToolmuxError:
    """A JSON-RPC error (from dispatch or an upstream) as a tree error.

    A `data` member in our own wire form wins (the error came from toolmux and keeps its code);
    otherwise the JSON-RPC code decides, and a code we do not know is an `upstream_error`.
    """
    if isinstance(data, dict) and isinstance(data.get("code"), str) and "message" in data:
        return ToolmuxError.from_dict(data)
    return ToolmuxError(message, code=_CODE_BY_RPC.get(code, ErrorCode.UPSTREAM_ERROR))


def code_for_status(status: int) -> ErrorCode:
    """The code an HTTP status stands for (the first in the table; 4xx/5xx others by class)."""
    for code, known in HTTP_STATUS.items():
        if known == status:
            return code
    return ErrorCode.INVALID_ARGUMENT if status < 500 else ErrorCode.INTERNAL


def timeout_error(seconds: float, what: str = "an answer") -> ToolmuxError:
    return ToolmuxError(f"no {what} within {seconds:g} s", code=ErrorCode.TIMEOUT)


def internal_error(request_id: str) -> ToolmuxError:
    """What an unexpected exception becomes on the wire: nothing of its text leaks."""
    return ToolmuxError(f"internal error (request id {request_id})", code=ErrorCode.INTERNAL, retryable=False)
