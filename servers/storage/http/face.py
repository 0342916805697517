"""The storage HTTP API and its S3 compatibility, under `/storage/` on the hub: the request handler.

    GET/HEAD/PUT/DELETE /storage/<bucket>/<key>      objects (Range, If-* conditions)
    GET  /storage/<bucket>?prefix=&delimiter=&max-keys=&continuation-token=
    GET  /storage/                                    buckets
    POST /storage/presign/<bucket>/<key>?expires=&method=GET|PUT

The same paths speak S3 (path-style): SigV4 header or presigned-query auth, ListObjects(V2),
ListBuckets, CopyObject, DeleteObjects, multipart uploads, S3 XML errors. Plain requests get
JSON errors; S3 requests (SigV4, S3 sub-resources, x-amz-* headers) get S3 XML.

Bytes stream, so this face works on an `ObjectStore` (the storage service) rather than through
JSON tool calls; access rules are in `auth`, and hub keys reach it only through `hooks`. Where
it runs (in the hub's process, or in storage's own child process behind the hub) is `mount`'s
business; this module is the same in both.
"""

from __future__ import annotations

import logging
import uuid

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from servers.kit import ToolError
from servers.storage.answers import presigned_answer
from servers.storage.http import s3xml
from servers.storage.http.auth import Access, authorize, is_s3_request, resolve_access
from servers.storage.http.errors import StorageHTTPError, error_response, from_tool_error
from servers.storage.http.hooks import AuthHooks
from servers.storage.http.objects import ObjectHandlers
from servers.storage.http.plumbing import BODY_DONE
from servers.storage.names import check_key
from servers.storage.presign import clamp_expiry
from servers.storage.store import ObjectStore

_log = logging.getLogger("toolmux.storage.http")
REQUEST_ID_KEY = "toolmux.request_id"  # scope key: the id the hub assigned (and sends as x-request-id)

PREFIX = "/storage"
DRAIN_LIMIT = 1024 * 1024
DRAIN_TIMEOUT = 10.0
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]
# S3 sub-resources this server does not implement: answered 501 rather than misread as plain GETs.
UNSUPPORTED_SUBRESOURCES = frozenset(
    (
        "acl", "tagging", "policy", "cors", "lifecycle", "versioning", "website", "notification", "logging",
        "replication", "encryption", "object-lock", "retention", "legal-hold", "torrent", "versions", "restore",
        "select", "attributes", "accelerate", "analytics", "inventory", "metrics", "ownershipControls",
        "requestPayment", "intelligent-tiering", "publicAccessBlock", "policyStatus", "versionId",
    )
)  # fmt: skip


async def _settle_unread_body(request: Request, response: Response) -> Response:
    """Deal with body bytes an error left unread, which the next request would be parsed from.

    A client that sent `Expect: 100-continue` has not sent them (no 100 was sent): close the
    connection. Otherwise read and drop up to DRAIN_LIMIT more bytes, so the client sees the
    answer rather than a connection reset; beyond that, close.
    """
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not has_body or request.scope.get(BODY_DONE):
        return response
    declared = request.headers.get("content-length", "")
    small_or_unknown = not declared.isdigit() or int(declared) <= DRAIN_LIMIT
    if request.headers.get("expect", "").lower() != "100-continue" and small_or_unknown:
        drained = 0
        with anyio.move_on_after(DRAIN_TIMEOUT):
            while drained <= DRAIN_LIMIT:
                message = await request.receive()
                if message["type"] != "http.request":
                    break
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return response
    response.headers["Connection"] = "close"
    return response


def request_id_of(request: Request) -> str:
    """The request id the hub assigned, or the client sent, or a fresh one."""
    rid = request.scope.get(REQUEST_ID_KEY) or request.headers.get("x-request-id")
    return str(rid) if rid else uuid.uuid4().hex[:16]


class StorageFace:
    """One request's view of the face: the store to act on and the hooks that know hub keys."""

    def __init__(self, store: ObjectStore, hooks: AuthHooks) -> None:
        self.store = store
        self.hooks = hooks

    async def handle(self, request: Request) -> Response:
        request_id = request_id_of(request)
        # Under the hub the hub sends x-request-id itself (once); served alone, the face does.
        own_id = REQUEST_ID_KEY not in request.scope
        try:
            response = await self._dispatch(request, request_id)
        except (StorageHTTPError, ToolError) as exc:
            error = exc if isinstance(exc, StorageHTTPError) else from_tool_error(exc)
            return await self._error(request, error, request_id, own_id)
        except ClientDisconnect:
            return Response(status_code=400, headers={"Connection": "close"})
        except Exception:
            _log.exception("storage %s %s failed (request id %s)", request.method, request.url.path, request_id)
            return await self._error(
                request, StorageHTTPError(500, f"internal error (request id {request_id})"), request_id, own_id
            )
        if own_id:
            response.headers.setdefault("x-request-id", request_id)
        response.headers.setdefault("x-amz-request-id", request_id)
        return response

    @staticmethod
    async def _error(request: Request, error: StorageHTTPError, request_id: str, own_id: bool) -> Response:
        response = error_response(
            error,
            s3=is_s3_request(request),
            request_id=request_id,
            resource=request.url.path,
            head=request.method == "HEAD",
            own_id=own_id,
        )
        return await _settle_unread_body(request, response)

    async def _dispatch(self, request: Request, request_id: str) -> Response:
        service = self.store
        rest = request.scope["path"][len(PREFIX) :]
        rest = rest[1:] if rest.startswith("/") else rest
        bucket, _, key = rest.partition("/")
        unsupported = UNSUPPORTED_SUBRESOURCES.intersection(request.query_params)
        if unsupported:
            raise StorageHTTPError(501, f"S3 {sorted(unsupported)[0]!r} is not supported by this server")
        if key:
            check_key(key)
        if bucket == "presign" and key:
            return await self._presign(request, service, key)
        access = resolve_access(request, self.hooks, service, bucket or None, key or None)
        if not bucket:
            return await self._list_buckets(request, service, access)
        if not key:
            return await self._bucket(request, service, access, bucket, request_id)
        return await ObjectHandlers(service, access, request, request_id).handle(bucket, key)

    # --- service and bucket level ---------------------------------------------------------------
    async def _list_buckets(self, request: Request, service: ObjectStore, access: Access) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise StorageHTTPError(405, f"{request.method} is not allowed on /storage/")
        if access.kind == "anonymous":
            authorize(access, service, "list_buckets", "")
        visible = [
            b
            for b in service.buckets.values()
            if access.is_master
            or (access.kind == "hub" and access.allows("list_buckets", b))
            or (access.kind == "bucket" and access.bucket == b.name)
        ]
        if is_s3_request(request):
            started = service.started_at
            return Response(s3xml.list_buckets([b.name for b in visible], started), media_type=s3xml.XML_TYPE)
        return JSONResponse(
            {
                "buckets": [
                    {
                        "name": b.name,
                        "visibility": b.visibility,
                        "max_object_size": b.max_object_size,
                        "ttl_seconds": b.ttl_seconds,
                    }
                    for b in visible
                ]
            }
        )

    async def _bucket(
        self, request: Request, service: ObjectStore, access: Access, bucket: str, request_id: str
    ) -> Response:
        method = request.method
        if method in ("PUT", "DELETE"):
            raise StorageHTTPError(501, "buckets are defined in the storage config, not created or deleted over HTTP")
        if method == "HEAD":
            target = service.buckets.get(bucket)
            if target is None or not (access.allows("list", target) or access.allows("read", target)):
                authorize(access, service, "list", bucket)
            return Response(status_code=200)
        handlers = ObjectHandlers(service, access, request, request_id)
        if method == "POST":
            if "delete" in request.query_params:
                return await handlers.delete_objects(bucket)
            raise StorageHTTPError(501, "POST on a bucket is only supported for DeleteObjects (?delete)")
        authorize(access, service, "list", bucket)
        if "location" in request.query_params:
            return Response(s3xml.location(), media_type=s3xml.XML_TYPE)
        if "uploads" in request.query_params:
            raise StorageHTTPError(501, "listing multipart uploads is not supported")
        return await handlers.list_objects(bucket)

    async def _presign(self, request: Request, service: ObjectStore, path: str) -> Response:
        if request.method != "POST":
            raise StorageHTTPError(405, "presign with POST /storage/presign/<bucket>/<key>?expires=&method=")
        bucket, _, key = path.partition("/")
        if not key:
            raise StorageHTTPError(400, "presign needs /storage/presign/<bucket>/<key>", field="key")
        check_key(key)
        method = request.query_params.get("method", "GET").upper()
        if method not in ("GET", "PUT"):
            raise StorageHTTPError(400, "method must be GET or PUT", field="method")
        raw_expires = request.query_params.get("expires", "3600")
        try:
            expires_in = clamp_expiry(float(raw_expires))
        except (ValueError, OverflowError):
            raise StorageHTTPError(400, "expires must be a number of seconds", field="expires") from None
        access = resolve_access(request, self.hooks, service, None, None)
        if access.kind == "anonymous":
            authorize(access, service, "write", bucket)
        # Minting needs the presign scope here as on the MCP face, and the scope of what the URL allows.
        authorize(access, service, "presign", bucket, key)
        authorize(access, service, "read" if method == "GET" else "write", bucket, key)
        url, expires_at = service.url(bucket, key, minter=access.minter, method=method, expires_in=expires_in)
        if url.startswith("/"):
            url = self.hooks.public_url.rstrip("/") + url
        return JSONResponse(presigned_answer(url, method, expires_in, expires_at))
