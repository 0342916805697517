"""AWS Signature Version 2 presigned URLs, which boto3's generate_presigned_url still makes.

boto3 signs S3 URLs with SigV2 unless the client is configured with signature_version="s3v4",
so SigV2 *query* auth is accepted (links handed to browsers and curl). SigV2 header auth is not:
every SDK signs requests themselves with SigV4.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from servers.storage.http.sigv4 import MAX_PRESIGN_EXPIRES, SigV4Error

V2_SUBRESOURCES = frozenset(
    (
        "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
        "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
        "response-content-type", "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
        "storageClass", "notification", "replication", "analytics", "metrics", "inventory", "select",
        "select-type", "object-lock",
    )
)  # fmt: skip


@dataclass(frozen=True)
class SigV2Query:
    access_key_id: str
    signature: str
    expires: int


def parse_v2_query(query: dict[str, str], now: float) -> SigV2Query:
    missing = [n for n in ("AWSAccessKeyId", "Signature", "Expires") if not query.get(n)]
    if missing:
        raise SigV4Error("AccessDenied", f"presigned URL lacks {', '.join(missing)}")
    try:
        expires = int(query["Expires"])
    except ValueError:
        raise SigV4Error("AccessDenied", "Expires must be a unix time") from None
    if now > expires:
        raise SigV4Error("AccessDenied", "Request has expired")
    if expires > now + MAX_PRESIGN_EXPIRES:
        raise SigV4Error("AccessDenied", "presigned URLs may live at most 7 days")
    return SigV2Query(query["AWSAccessKeyId"], query["Signature"], expires)


def v2_string_to_sign(method: str, raw_path: str, raw_query: str, expires: int) -> str:
    standard: dict[str, str] = {}
    amz: dict[str, str] = {}
    resource_args: list[tuple[str, str | None]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        lowered = name.lower()
        if lowered in ("content-md5", "content-type"):
            standard[lowered] = value.strip()
        elif lowered.startswith("x-amz-"):
            amz[lowered] = value.strip()
        if name in V2_SUBRESOURCES:
            resource_args.append((name, value if sep else None))
    resource = raw_path
    if resource_args:
        resource_args.sort(key=lambda pair: pair[0])
        resource += "?" + "&".join(name if value is None else f"{name}={value}" for name, value in resource_args)
    lines = [method.upper(), standard.get("content-md5", ""), standard.get("content-type", ""), str(expires)]
    lines += [f"{name}:{amz[name]}" for name in sorted(amz)]
    return "\n".join([*lines, resource])


def matching_v2_secret(auth: SigV2Query, string_to_sign: str, candidates: Sequence[str]) -> int | None:
    found = None
    for index, secret in enumerate(candidates):
        digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        if hmac.compare_digest(base64.b64encode(digest).decode(), auth.signature) and found is None:
            found = index
    return found
