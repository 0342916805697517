"""HTTP plumbing of the storage face: object headers, Range, conditions, request bodies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import anyio
from starlette.requests import Request

from servers.storage.http import s3xml
from servers.storage.http.errors import StorageHTTPError
from servers.storage.metadata import ObjectRecord

BODY_IDLE_TIMEOUT = 60.0  # seconds a request body may stall before the upload is abandoned
BODY_DONE = "toolmux.storage.body_done"  # scope flag: the request body was read to its end

_ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/xml", "application/xml", "image/svg+xml"})


def object_headers(record: ObjectRecord, request_id: str) -> dict[str, str]:
    # x-request-id is the hub's to send (once); the S3 header is the face's own.
    headers = {
        "ETag": s3xml.quoted_etag(record.etag),
        "Last-Modified": s3xml.http_date(record.modified),
        "Content-Type": record.content_type,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "x-amz-request-id": request_id,
    }
    base_type = record.content_type.split(";", 1)[0].strip().lower()
    if base_type in _ACTIVE_TYPES or base_type.endswith("+xml"):
        # Uploaded HTML or SVG opened from the hub's origin must not run scripts with that origin.
        headers["Content-Security-Policy"] = "sandbox"
    for name, value in record.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    return headers


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range to serve, None for the whole object; 416 when unsatisfiable.

    Multiple ranges and malformed headers are ignored (the whole object is served), as RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> StorageHTTPError:
    return StorageHTTPError(
        416,
        "the requested range is not satisfiable",
        s3_code="InvalidRange",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}


def _date(header: str) -> float | None:
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


def precondition_status(request: Request, record: ObjectRecord) -> int | None:
    """304 or 412 when the request's If-* headers say so, else None (RFC 9110 order)."""
    if_match = request.headers.get("if-match")
    if if_match and "*" not in _etags(if_match) and record.etag not in _etags(if_match):
        return 412
    since = request.headers.get("if-unmodified-since")
    if not if_match and since and (date := _date(since)) is not None and int(record.modified) > date:
        return 412
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and ("*" in _etags(if_none_match) or record.etag in _etags(if_none_match)):
        return 304
    modified_since = request.headers.get("if-modified-since")
    modified_date = _date(modified_since) if modified_since and not if_none_match else None
    if modified_date is not None and int(record.modified) <= modified_date:
        return 304
    return None


async def body_stream(request: Request, idle_timeout: float = BODY_IDLE_TIMEOUT) -> AsyncIterator[bytes]:
    """The request body, failing with 408 when the client stalls longer than `idle_timeout`."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(idle_timeout):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            request.scope[BODY_DONE] = True
            return
        except TimeoutError:
            raise StorageHTTPError(408, f"the request body stalled for more than {idle_timeout:g}s") from None
        if chunk:
            yield chunk


async def read_small_body(request: Request, limit: int) -> bytes:
    """A whole small body (XML documents, JSON), refusing more than `limit` bytes with 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise StorageHTTPError(413, f"request body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for chunk in body_stream(request):
        body += chunk
        if len(body) > limit:
            raise StorageHTTPError(413, f"request body is larger than the limit of {limit} bytes")
    return bytes(body)
