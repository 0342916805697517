"""Who may do what on the storage face, from whatever credentials a request carries.

    hub master key          every bucket, every operation
    other hub keys          every bucket, as far as the key's tool scopes allow (storage-get_object, ...)
    a bucket's own key      that bucket only (Bearer header, or SigV4 with the bucket name as access key id)
    presigned URL           the one method and object it was signed for, while the key that
                            minted it exists and may still read (GET) or write (PUT)
    no credentials          reading objects of public-read buckets

Credentials are tried in this order: SigV4 header, SigV4 query (presigned), toolmux presigned
query, then a plain key (Bearer / x-api-key / ?api_key=), which may be a bucket key or a hub key.
Hub keys are the mounting hub's business (`hooks.AuthHooks`); bucket keys are the store's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Literal

from starlette.requests import Request

from servers.storage.buckets import Bucket
from servers.storage.http.errors import StorageHTTPError
from servers.storage.http.hooks import TOOL_FOR, AuthHooks, Caller
from servers.storage.http.sigv2 import matching_v2_secret, parse_v2_query, v2_string_to_sign
from servers.storage.http.sigv4 import (
    SigV4Auth,
    SigV4Error,
    canonical_request,
    check_payload_hash,
    check_time,
    matching_secret,
    parse_header_auth,
    parse_query_auth,
)
from servers.storage.presign import EXPIRES_PARAM, KEY_PARAM, SIGNATURE_PARAM
from servers.storage.store import ObjectStore

STORAGE_PREFIX = "/storage"
BUCKET_MINTER = "bucket:"  # minter names of URLs a bucket's own key minted: "bucket:<name>"
Operation = Literal["read", "write", "delete", "list", "list_buckets", "presign"]
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
    principal: Caller | None = None
    bucket: str | None = None
    grant: tuple[str, str, str] | None = None  # (method, bucket, key) a presigned URL allows
    sigv4: SigV4Auth | None = None
    secret: str | None = None  # the secret that signed the request (aws-chunked bodies need it)
    minted_by: str = ""  # a presigned URL's minter, which URLs in its answers stay bound to

    @property
    def is_master(self) -> bool:
        return self.principal is not None and self.principal.is_master

    @property
    def minter(self) -> str:
        """The name a URL minted with this access is bound to."""
        if self.kind == "bucket" and self.bucket is not None:
            return BUCKET_MINTER + self.bucket
        return self.principal.name if self.principal is not None else self.minted_by

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


def access_key_id_of(request: Request) -> str | None:
    """The access key id a SigV4/SigV2 request names (unverified: only to look its secret up)."""
    authorization = request.headers.get("authorization", "")
    credential = ""
    if authorization.startswith("AWS4-"):
        for part in authorization.split(" ", 1)[-1].split(","):
            name, _, value = part.strip().partition("=")
            if name == "Credential":
                credential = value
    else:
        credential = request.query_params.get("X-Amz-Credential", "") or request.query_params.get("AWSAccessKeyId", "")
    return credential.split("/", 1)[0] or None


def minter_of(request: Request) -> str | None:
    """The key name a toolmux presigned URL says minted it."""
    return request.query_params.get(KEY_PARAM) if SIGNATURE_PARAM in request.query_params else None


def _candidates(hooks: AuthHooks, store: ObjectStore, access_key_id: str) -> list[tuple[str, Access]]:
    """Secrets an access key id may stand for: a bucket's key (id = bucket name), a hub key."""
    candidates: list[tuple[str, Access]] = []
    bucket = store.buckets.get(access_key_id)
    if bucket is not None:
        candidates.append((bucket.key, Access("bucket", bucket=bucket.name)))
    hub = hooks.signing_secret(access_key_id)
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


def _sigv4(request: Request, hooks: AuthHooks, store: ObjectStore, auth: SigV4Auth) -> Access:
    check_payload_hash(auth.payload_hash)
    check_time(auth, time.time())
    candidates = _candidates(hooks, store, auth.access_key_id)
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


def _sigv2_query(request: Request, hooks: AuthHooks, store: ObjectStore) -> Access:
    auth = parse_v2_query(dict(request.query_params), time.time())
    candidates = _candidates(hooks, store, auth.access_key_id)
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


def _minter_may(hooks: AuthHooks, store: ObjectStore, minter: str, method: str, bucket: str) -> bool:
    """Whether the key that minted a presigned URL may still do what the URL allows."""
    if minter.startswith(BUCKET_MINTER):
        return minter[len(BUCKET_MINTER) :] == bucket and bucket in store.buckets
    caller = hooks.caller_named(minter)
    return caller is not None and caller.may_call(TOOL_FOR["read" if method == "GET" else "write"])


def _presigned(request: Request, hooks: AuthHooks, store: ObjectStore, bucket: str | None, key: str | None) -> Access:
    if bucket is None or not key:
        raise StorageHTTPError(403, "presigned URLs are for objects", s3_code="AccessDenied")
    minter = request.query_params.get(KEY_PARAM, "")
    problem = store.verify_presigned(
        request.method,
        bucket,
        key,
        expires=request.query_params.get(EXPIRES_PARAM, ""),
        signature=request.query_params[SIGNATURE_PARAM],
        minter=minter,
    )
    method = "GET" if request.method in ("GET", "HEAD") else request.method
    if problem is None and not _minter_may(hooks, store, minter, method, bucket):
        problem = "the key that minted this presigned URL no longer exists or may no longer do this"
    if problem is not None:
        raise StorageHTTPError(403, problem, s3_code="AccessDenied")
    return Access("presigned", grant=(method, bucket, key), minted_by=minter)


def resolve_access(
    request: Request, hooks: AuthHooks, store: ObjectStore, bucket: str | None, key: str | None
) -> Access:
    """The request's credentials turned into an Access (raises 400/401/403 for bad credentials)."""
    try:
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("AWS "):
            raise SigV4Error("InvalidRequest", "AWS Signature Version 2 is not supported; sign with SigV4", 400)
        if authorization.startswith("AWS4-"):
            return _sigv4(request, hooks, store, parse_header_auth(authorization, dict(request.headers)))
        if "X-Amz-Algorithm" in request.query_params or "X-Amz-Signature" in request.query_params:
            return _sigv4(request, hooks, store, parse_query_auth(dict(request.query_params)))
        if "AWSAccessKeyId" in request.query_params and "Signature" in request.query_params:
            return _sigv2_query(request, hooks, store)
    except SigV4Error as exc:
        raise StorageHTTPError(exc.status, exc.message, s3_code=exc.s3_code) from None

    if SIGNATURE_PARAM in request.query_params:
        return _presigned(request, hooks, store, bucket, key)

    presented = presented_key(request)
    if presented is None:
        return Access("anonymous")
    own_bucket = store.bucket_for_key(presented)
    if own_bucket is not None:
        return Access("bucket", bucket=own_bucket)
    principal = hooks.caller_of(request)
    if principal is None:
        raise StorageHTTPError(401, "invalid API key", s3_code="AccessDenied", headers={"WWW-Authenticate": "Bearer"})
    return Access("hub", principal=principal)


def presented_key(request: Request) -> str | None:
    """The plain key a request carries: `Authorization: Bearer`, `x-api-key`, or `?api_key=`."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.query_params.get("api_key")


def authorize(
    access: Access, store: ObjectStore, operation: Operation, bucket_name: str, key: str | None = None
) -> Bucket:
    """The bucket, when `access` may do `operation` on it. Unknown and forbidden answer alike."""
    bucket = store.buckets.get(bucket_name)
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
