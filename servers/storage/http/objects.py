"""Object-level handlers of the storage face: get/head/put/delete, copy, listing, multipart."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, Any
from urllib.parse import unquote

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from servers.kit import ToolError
from servers.storage.answers import listing_answer, stored_object
from servers.storage.buckets import iter_file
from servers.storage.http import s3xml
from servers.storage.http.auth import Access, authorize, is_s3_request
from servers.storage.http.errors import StorageHTTPError
from servers.storage.http.plumbing import (
    body_stream,
    object_headers,
    parse_range,
    precondition_status,
    read_small_body,
)
from servers.storage.http.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_UNSIGNED_TRAILER,
    AwsChunkedDecoder,
    b64_digest,
    crc32_base64,
    crc32_header,
)
from servers.storage.names import check_key
from servers.storage.store import ObjectStore

SMALL_BODY_LIMIT = 4 * 1024 * 1024  # DeleteObjects and CompleteMultipartUpload documents
WHOLE_READ_LIMIT = 256 * 1024  # objects (or ranges) up to this size are answered from memory
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-disposition": "Content-Disposition",
    "response-content-language": "Content-Language",
    "response-content-encoding": "Content-Encoding",
    "response-cache-control": "Cache-Control",
    "response-expires": "Expires",
}


def _read_range(file: IO[bytes], start: int, length: int) -> bytes:
    file.seek(start)
    return file.read(length)


async def stream_file(file: IO[bytes], start: int, length: int) -> AsyncIterator[bytes]:
    try:
        async for chunk in iter_file(file, start, length):
            yield chunk
    finally:
        file.close()


def copy_source(header: str) -> tuple[str, str]:
    """(bucket, key) of an `x-amz-copy-source` header ("/bucket/key" or "bucket/key", URL-encoded)."""
    value = unquote(header.split("?", 1)[0]).lstrip("/")
    bucket, _, key = value.partition("/")
    if not bucket or not key:
        raise StorageHTTPError(400, "x-amz-copy-source must be <bucket>/<key>", field="x-amz-copy-source")
    return bucket, check_key(key, "x-amz-copy-source")


def user_metadata(request: Request) -> dict[str, str]:
    return {
        name[len("x-amz-meta-") :]: value
        for name, value in request.headers.items()
        if name.startswith("x-amz-meta-") and len(name) > len("x-amz-meta-")
    }


def content_md5(request: Request) -> str | None:
    value = request.headers.get("content-md5")
    if value is None:
        return None
    raw = b64_digest(value, 16)
    if raw is None:
        raise StorageHTTPError(
            400, "Content-MD5 is not a base64 MD5 digest", s3_code="InvalidDigest", field="Content-MD5"
        )
    return raw.hex()


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StorageHTTPError(400, f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise StorageHTTPError(400, f"{name} must be {low}-{high}", field=name)
    return value


class ObjectHandlers:
    """One request's object operations, with its store, access and request id at hand."""

    def __init__(self, store: ObjectStore, access: Access, request: Request, request_id: str) -> None:
        self.store = store
        self.access = access
        self.request = request
        self.request_id = request_id
        self.s3 = is_s3_request(request)

    async def handle(self, bucket: str, key: str) -> Response:
        method, query = self.request.method, self.request.query_params
        if method in ("GET", "HEAD"):
            if "uploadId" in query:
                return await self.list_parts(bucket, key)
            return await self.get(bucket, key)
        if method == "PUT":
            if "uploadId" in query or "partNumber" in query:
                return await self.upload_part(bucket, key)
            if "x-amz-copy-source" in self.request.headers:
                return await self.copy(bucket, key)
            return await self.put(bucket, key)
        if method == "POST":
            if "uploads" in query:
                return await self.create_upload(bucket, key)
            if "uploadId" in query:
                return await self.complete_upload(bucket, key)
            raise StorageHTTPError(501, "POST on an object is only supported for multipart uploads")
        if "uploadId" in query:
            return await self.abort_upload(bucket, key)
        return await self.delete(bucket, key)

    # --- bodies ---------------------------------------------------------------------------------
    def _declared_size(self, limit: int) -> None:
        declared = self.request.headers.get("x-amz-decoded-content-length") or self.request.headers.get(
            "content-length"
        )
        if declared and declared.isdigit() and int(declared) > limit:
            raise StorageHTTPError(
                413, f"object of {declared} bytes is larger than the limit of {limit} bytes", s3_code="EntityTooLarge"
            )

    def _source(self) -> tuple[AsyncIterable[bytes], dict[str, Any]]:
        """The object bytes of this request (aws-chunked decoded) and the digests to check them by."""
        body: AsyncIterable[bytes] = body_stream(self.request)
        expected: dict[str, Any] = {
            "expected_md5": content_md5(self.request),
            "expected_crc32": crc32_header(self.request.headers.get("x-amz-checksum-crc32")),
        }
        sigv4 = self.access.sigv4
        if sigv4 is not None:
            if sigv4.payload_hash in (STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER):
                decoded = self.request.headers.get("x-amz-decoded-content-length")
                decoder = AwsChunkedDecoder(
                    sigv4, self.access.secret, decoded_length=int(decoded) if decoded and decoded.isdigit() else None
                )
                body = decoder.decode(body)
            elif len(sigv4.payload_hash) == 64:
                expected["expected_sha256"] = sigv4.payload_hash
        return body, expected

    def _put_headers(self, etag: str, crc32: int | None) -> dict[str, str]:
        headers = {"ETag": s3xml.quoted_etag(etag)}
        if crc32 is not None:
            headers["x-amz-checksum-crc32"] = crc32_base64(crc32)
        return headers

    # --- objects --------------------------------------------------------------------------------
    async def get(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "read", bucket, key)
        opened = await self.store.open(bucket, key)
        try:
            record = opened.record
            headers = object_headers(record, self.request_id)
            if self.access.kind != "anonymous":
                for param, header in _RESPONSE_OVERRIDES.items():
                    if param in self.request.query_params:
                        headers[header] = self.request.query_params[param]
            status = precondition_status(self.request, record)
            if status == 412:
                raise StorageHTTPError(412, "a precondition (If-Match / If-Unmodified-Since) failed")
            if status == 304:
                opened.file.close()
                return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
            span = parse_range(self.request.headers.get("range"), record.size)
            start, length, code = 0, record.size, 200
            if span is not None:
                start, length, code = span[0], span[1] - span[0] + 1, 206
                headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{record.size}"
            headers["Content-Length"] = str(length)
            if self.request.method == "HEAD":
                opened.file.close()
                return Response(status_code=code, headers=headers)
            # Content-Type goes in as a header: Starlette would append a charset to a text/* media_type.
            if length <= WHOLE_READ_LIMIT:  # one worker-thread hop, no streaming machinery
                data = await anyio.to_thread.run_sync(_read_range, opened.file, start, length)
                opened.file.close()
                return Response(data, status_code=code, headers=headers)
            return StreamingResponse(stream_file(opened.file, start, length), status_code=code, headers=headers)
        except BaseException:
            opened.file.close()
            raise

    async def put(self, bucket: str, key: str) -> Response:
        target = authorize(self.access, self.store, "write", bucket, key)
        self._declared_size(target.max_object_size)
        body, expected = self._source()
        record = await self.store.put(
            bucket,
            key,
            body,
            content_type=self.request.headers.get("content-type") or None,
            metadata=user_metadata(self.request),
            **expected,
        )
        headers = self._put_headers(record.etag, expected.get("expected_crc32"))
        if self.s3:
            return Response(status_code=200, headers=headers)
        return JSONResponse(stored_object(self.store, record, self.access.minter), headers=headers)

    async def delete(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "delete", bucket, key)
        await self.store.delete(bucket, key)
        return Response(status_code=204)

    async def copy(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "write", bucket, key)
        source_bucket, source_key = copy_source(self.request.headers["x-amz-copy-source"])
        authorize(self.access, self.store, "read", source_bucket, source_key)
        replace = self.request.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
        record = await self.store.copy(
            source_bucket,
            source_key,
            bucket,
            key,
            content_type=(self.request.headers.get("content-type") or None) if replace else None,
            metadata=user_metadata(self.request) if replace else None,
        )
        if self.s3:
            return Response(s3xml.copy_result(record), media_type=s3xml.XML_TYPE)
        return JSONResponse(stored_object(self.store, record, self.access.minter))

    # --- bucket listings and batch deletes -------------------------------------------------------
    async def list_objects(self, bucket: str) -> Response:
        query = self.request.query_params
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = _int_param(self.request, "max-keys", 1000, 0, 100000)
        v2 = query.get("list-type") == "2"
        token = query.get("continuation-token") or None
        start_after = query.get("start-after") or (query.get("marker") if not v2 else None) or None
        listing = await self.store.list(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=min(max_keys, 1000),
            continuation_token=token,
            start_after=start_after,
        )
        if self.s3:
            body = s3xml.list_objects(
                bucket,
                listing,
                prefix=prefix,
                delimiter=delimiter,
                max_keys=min(max_keys, 1000),
                encode=query.get("encoding-type") == "url",
                v2=v2,
                continuation_token=token,
                start_after=start_after if v2 else None,
                marker=start_after if not v2 else None,
            )
            return Response(body, media_type=s3xml.XML_TYPE)
        return JSONResponse(listing_answer(bucket, prefix, delimiter, listing))

    async def _document(self) -> bytes:
        body = await read_small_body(self.request, SMALL_BODY_LIMIT)
        sigv4 = self.access.sigv4
        if (
            sigv4 is not None
            and len(sigv4.payload_hash) == 64
            and hashlib.sha256(body).hexdigest() != sigv4.payload_hash
        ):
            raise StorageHTTPError(
                400, "the body does not match its x-amz-content-sha256", s3_code="XAmzContentSHA256Mismatch"
            )
        md5 = content_md5(self.request)
        if md5 is not None and hashlib.md5(body, usedforsecurity=False).hexdigest() != md5:
            raise StorageHTTPError(400, "the body does not match its Content-MD5", s3_code="BadDigest")
        return body

    async def delete_objects(self, bucket: str) -> Response:
        authorize(self.access, self.store, "delete", bucket)
        keys, quiet = s3xml.parse_delete(await self._document())
        deleted: list[str] = []
        errors: list[tuple[str, str, str]] = []
        for key in keys:
            try:
                await self.store.delete(bucket, key)
                deleted.append(key)
            except ToolError as exc:
                errors.append((key, (exc.data or {}).get("s3_code", "InvalidArgument"), exc.message))
        return Response(s3xml.delete_result(deleted, errors, quiet), media_type=s3xml.XML_TYPE)

    # --- multipart ------------------------------------------------------------------------------
    def _upload_id(self) -> str:
        return self.request.query_params.get("uploadId", "")

    async def create_upload(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "write", bucket, key)
        upload_id = await self.store.create_upload(
            bucket,
            key,
            content_type=self.request.headers.get("content-type") or None,
            metadata=user_metadata(self.request),
        )
        return Response(s3xml.initiate_multipart(bucket, key, upload_id), media_type=s3xml.XML_TYPE)

    async def upload_part(self, bucket: str, key: str) -> Response:
        target = authorize(self.access, self.store, "write", bucket, key)
        if "x-amz-copy-source" in self.request.headers:
            raise StorageHTTPError(501, "UploadPartCopy is not supported")
        part_number = _int_param(self.request, "partNumber", 0, 1, 10000)
        self._declared_size(target.max_object_size)
        body, expected = self._source()
        etag = await self.store.upload_part(bucket, key, self._upload_id(), part_number, body, **expected)
        return Response(status_code=200, headers=self._put_headers(etag, expected.get("expected_crc32")))

    async def complete_upload(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "write", bucket, key)
        parts = s3xml.parse_complete(await self._document())
        record = await self.store.complete_upload(bucket, key, self._upload_id(), parts)
        location, _ = self.store.url(bucket, key, minter=self.access.minter)
        return Response(s3xml.complete_multipart(location.split("?", 1)[0], record), media_type=s3xml.XML_TYPE)

    async def abort_upload(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "write", bucket, key)
        await self.store.abort_upload(bucket, key, self._upload_id())
        return Response(status_code=204)

    async def list_parts(self, bucket: str, key: str) -> Response:
        authorize(self.access, self.store, "write", bucket, key)
        parts = await self.store.list_parts(bucket, key, self._upload_id())
        return Response(s3xml.list_parts(bucket, key, self._upload_id(), parts), media_type=s3xml.XML_TYPE)
