"""How storage's HTTP face answers errors: one mapping from error code to status and S3 `<Code>`.

Every failure becomes a `StorageHTTPError`; `error_response` renders it as S3 XML for S3 clients
and as JSON (`{"error": {code, message, request_id, field?}}`) for the plain API, both with the
request id. Tool-level failures (`ToolError`) map through `status_for_code`, keyed by the error
codes of `servers/kit/errors.py` (and a finer `reason`) so the hub's one error tree can take it
over unchanged. Two answers are storage's own, on purpose:

    busy                  503 + Retry-After, S3 SlowDown (a key held too long by other writers:
                          S3 SDKs retry SlowDown with backoff; a 409 would not be retried)
    unavailable with reason insufficient_storage
                          507 + Retry-After, S3 InsufficientStorage (a full disk; S3 has no code
                          of its own for it, its SDKs retry any 5xx; nothing is half-written).
                          Other faces, which know no 507, show it as `unavailable` (503, retryable).
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse, Response

from servers.kit import ToolError
from servers.kit.errors import HTTP_STATUS_BY_CODE
from servers.storage.blobs import INSUFFICIENT_STORAGE
from servers.storage.http import s3xml

_STATUS_BY_CODE: dict[str, int] = {**HTTP_STATUS_BY_CODE, "busy": 503}
_STATUS_BY_REASON: dict[str, int] = {INSUFFICIENT_STORAGE: 507}
_S3_CODE_BY_STATUS = {
    400: "InvalidArgument",
    401: "AccessDenied",
    403: "AccessDenied",
    404: "NoSuchKey",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "OperationAborted",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    413: "EntityTooLarge",
    415: "InvalidRequest",
    416: "InvalidRange",
    429: "SlowDown",
    500: "InternalError",
    501: "NotImplemented",
    502: "InternalError",
    503: "SlowDown",
    504: "RequestTimeout",
    507: "InsufficientStorage",
}
_RETRY_STATUSES = frozenset({429, 503, 507})


def status_for_code(code: str, reason: str | None = None) -> int:
    """The HTTP status of an error code (`servers/kit/errors.py` codes), or of its finer reason."""
    if reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[reason]
    return _STATUS_BY_CODE.get(code, 400)


class StorageHTTPError(Exception):
    """An error the storage face answers with: JSON for the plain API, S3 XML for S3 clients."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        s3_code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.s3_code = s3_code or _S3_CODE_BY_STATUS.get(status, "InvalidRequest")
        self.field = field
        self.headers = headers or {}


def from_tool_error(error: ToolError) -> StorageHTTPError:
    data = error.data or {}
    reason = data.get("reason")
    status = status_for_code(str(error.code), reason if isinstance(reason, str) else None)
    headers = None
    if status in _RETRY_STATUSES:
        headers = {"Retry-After": str(math.ceil(error.retry_after or 1))}
    s3_code = data.get("s3_code")
    return StorageHTTPError(status, error.message, s3_code=s3_code, field=error.field, headers=headers)


def error_response(
    error: StorageHTTPError, *, s3: bool, request_id: str, resource: str, head: bool = False, own_id: bool = True
) -> Response:
    """The error as the client expects it. `own_id`: also send `x-request-id` (the hub sends its own)."""
    headers = {"x-amz-request-id": request_id, **error.headers}
    if own_id:
        headers["x-request-id"] = request_id
    if head:
        return Response(status_code=error.status, headers=headers)
    if s3:
        body = s3xml.error_body(error.s3_code, error.message, resource, request_id)
        return Response(body, status_code=error.status, media_type=s3xml.XML_TYPE, headers=headers)
    payload: dict[str, object] = {"code": error.s3_code, "message": error.message, "request_id": request_id}
    if error.field:
        payload["field"] = error.field
    return JSONResponse({"error": payload}, status_code=error.status, headers=headers)
