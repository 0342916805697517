"""Who may do what on the storage face, from whatever credentials a request carries.

    hub master key          every bucket, every operation
    other hub keys          every bucket, as far as the key's tool scopes allow (storage-get_object, ...)
    a bucket's own key      that bucket only (Bearer header, or SigV4 with the bucket name as access key id)
    presigned URL           the one method and object it was signed for
    no credentials          reading objects of public-read buckets

Credentials are tried in this order: SigV4 header, SigV4 query (presigned), toolmux presigned
query, then a plain key (Bearer / x-api-key / ?api_key=), which may be a bucket key or a hub key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Literal

from starlette.requests import Request

from aggregator.facade.base import FacadeContext, FacadeHTTPError, presented_key
from aggregator.facade.storage_http import StorageHTTPError
from aggregator.facade.storage_sigv2 import matching_v2_secret, parse_v2_query, v2_string_to_sign
from aggregator.facade.storage_sigv4 import (
    SigV4Auth,
    SigV4Error,
    canonical_request,
    check_payload_hash,
    check_time,
    matching_secret,
    parse_header_auth,
    parse_query_auth,
)
from aggregator.principal import Principal
from servers.storage.presign import EXPIRES_PARAM, SIGNATURE_PARAM
from servers.storage.service import Bucket, StorageService

STORAGE_PREFIX = "/storage"
Operation = Literal["read", "write", "delete", "list", "list_buckets"]

# The MCP tool whose scope governs each operation for hub keys other than the master key.
TOOL_FOR: dict[Operation, str] = {
    "read": "storage-get_object",
    "write": "storage-put_object",
    "delete": "storage-delete_object",
    "list": "storage-list_objects",
    "list_buckets": "storage-list_buckets",
}
S3_QUERY_MARKERS = (
    "list-type",
    "uploads",
    "uploadId",
    "partNumber",
    "delete",
    "location",
    "X-Amz-Algorithm",
    "AWSAccessKeyId",
)


@dataclass(frozen=True)
class Access:
    kind: Literal["anonymous", "hub", "bucket", "presigned"]
    principal: Principal | None = None
    bucket: str | None = None
    grant: tuple[str, str, str] | None = None  # (method, bucket, key) a presigned URL allows
    sigv4: SigV4Auth | None = None
    secret: str | None = None  # the secret that signed the request (aws-chunked bodies need it)

    @property
    def is_master(self) -> bool:
        return self.principal is not None and self.principal.is_master

    def allows(self, operation: Operation, bucket: Bucket, key: str | None = None) -> bool:
        if operation == "read" and bucket.public:
            return True
        if self.kind == "hub" and self.principal is not None:
            return self.principal.may_call(TOOL_FOR[operation])
        if self.kind == "bucket":
            return self.bucket == bucket.name and operation != "list_buckets"
        if self.kind == "presigned" and self.grant is not None:
            method = "GET" if operation == "read" else "PUT" if operation == "write" else None
            return self.grant == (method, bucket.name, key)
        return False


def is_s3_request(request: Request) -> bool:
    """S3 clients get S3 XML (errors, listings); everyone else gets JSON."""
    if request.headers.get("authorization", "").startswith(("AWS4-", "AWS ")):
        return True
    if any(marker in request.query_params for marker in S3_QUERY_MARKERS):
        return True
    return "x-amz-content-sha256" in request.headers or "x-amz-copy-source" in request.headers


def _candidates(ctx: FacadeContext, service: StorageService, access_key_id: str) -> list[tuple[str, Access]]:
    """Secrets an access key id may stand for: a bucket's key (id = bucket name), a hub key."""
    candidates: list[tuple[str, Access]] = []
    bucket = service.buckets.get(access_key_id)
    if bucket is not None:
        candidates.append((bucket.key, Access("bucket", bucket=bucket.name)))
    hub = ctx.signing_secret(access_key_id)
    if hub is not None:
        candidates.append((hub[0], Access("hub", principal=hub[1])))
    return candidates


def _raw(request: Request) -> tuple[str, str]:
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    return raw_path.decode("latin-1"), request.scope.get("query_string", b"").decode("latin-1")


def _mismatch() -> SigV4Error:
    return SigV4Error(
        "SignatureDoesNotMatch",
        "the request signature we calculated does not match the signature you provided; "
        "check your key and signing method",
    )


def _sigv4(request: Request, ctx: FacadeContext, service: StorageService, auth: SigV4Auth) -> Access:
    check_payload_hash(auth.payload_hash)
    check_time(auth, time.time())
    candidates = _candidates(ctx, service, auth.access_key_id)
    raw_path, raw_query = _raw(request)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    secrets = [secret for secret, _ in candidates]
    # Clients sign the full path as sent; a client that treats the endpoint's path as a proxy
    # prefix may sign the path below it ("/bucket/key").
    for path in (raw_path, raw_path.removeprefix(STORAGE_PREFIX)):
        canonical = canonical_request(auth, request.method, path, raw_query, headers)
        found = matching_secret(auth, canonical, secrets)
        if found is not None:
            secret, access = candidates[found]
            return replace(access, sigv4=auth, secret=secret)
    raise _mismatch()


def _sigv2_query(request: Request, ctx: FacadeContext, service: StorageService) -> Access:
    auth = parse_v2_query(dict(request.query_params), time.time())
    candidates = _candidates(ctx, service, auth.access_key_id)
    secrets = [secret for secret, _ in candidates]
    raw_path, raw_query = _raw(request)
    # botocore signs the path below the endpoint URL ("/bucket/key"); others sign the full path.
    paths = [raw_path.removeprefix(STORAGE_PREFIX), raw_path]
    methods = ["GET", "HEAD"] if request.method == "HEAD" else [request.method]
    for method in methods:
        for path in paths:
            found = matching_v2_secret(auth, v2_string_to_sign(method, path, raw_query, auth.expires), secrets)
            if found is not None:
                return candidates[found][1]
    raise _mismatch()


def resolve_access(
    request: Request, ctx: FacadeContext, service: StorageService, bucket: str | None, key: str | None
) -> Access:
    """The request's credentials turned into an Access (raises 400/401/403 for bad credentials)."""
    try:
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("AWS "):
            raise SigV4Error("InvalidRequest", "AWS Signature Version 2 is not supported; sign with SigV4", 400)
        if authorization.startswith("AWS4-"):
            return _sigv4(request, ctx, service, parse_header_auth(authorization, dict(request.headers)))
        if "X-Amz-Algorithm" in request.query_params or "X-Amz-Signature" in request.query_params:
            return _sigv4(request, ctx, service, parse_query_auth(dict(request.query_params)))
        if "AWSAccessKeyId" in request.query_params and "Signature" in request.query_params:
            return _sigv2_query(request, ctx, service)
    except SigV4Error as exc:
        raise StorageHTTPError(exc.status, exc.message, s3_code=exc.s3_code) from None

    if SIGNATURE_PARAM in request.query_params:
        if bucket is None or not key:
            raise StorageHTTPError(403, "presigned URLs are for objects", s3_code="AccessDenied")
        problem = service.verify_presigned(
            request.method,
            bucket,
            key,
            expires=request.query_params.get(EXPIRES_PARAM, ""),
            signature=request.query_params[SIGNATURE_PARAM],
        )
        if problem is not None:
            raise StorageHTTPError(403, problem, s3_code="AccessDenied")
        method = "GET" if request.method in ("GET", "HEAD") else request.method
        return Access("presigned", grant=(method, bucket, key))

    presented = presented_key(request)
    if presented is None:
        return Access("anonymous")
    own_bucket = service.bucket_for_key(presented)
    if own_bucket is not None:
        return Access("bucket", bucket=own_bucket)
    try:
        principal = ctx.authenticate(request)
    except FacadeHTTPError as exc:
        raise StorageHTTPError(
            401, exc.message, s3_code="AccessDenied", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    assert principal is not None
    return Access("hub", principal=principal)


def authorize(
    access: Access, service: StorageService, operation: Operation, bucket_name: str, key: str | None = None
) -> Bucket:
    """The bucket, when `access` may do `operation` on it. Unknown and forbidden answer alike."""
    bucket = service.buckets.get(bucket_name)
    if bucket is not None and access.allows(operation, bucket, key):
        return bucket
    if access.is_master:
        raise StorageHTTPError(404, f"no bucket {bucket_name!r}", s3_code="NoSuchBucket")
    if access.kind == "anonymous":
        raise StorageHTTPError(
            401,
            "this request needs credentials (a bucket key or hub key, SigV4, or a presigned URL)",
            s3_code="AccessDenied",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise StorageHTTPError(403, "no such bucket, or no access to it with these credentials", s3_code="AccessDenied")
