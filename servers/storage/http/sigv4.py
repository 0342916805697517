"""AWS Signature Version 4 as S3 checks it: header and presigned-query auth, signed chunk bodies.

The server recomputes the client's canonical request from what arrived (raw path as sent,
query re-encoded and sorted, the signed headers' values) and compares HMACs in constant time.
The caller supplies candidate secrets for the access key id (a bucket's key, a hub key), so an
unknown id and a wrong secret fail identically (SignatureDoesNotMatch): ids do not leak.

Body forms (`x-amz-content-sha256`): a hex SHA-256 (checked as the body streams), UNSIGNED-PAYLOAD,
STREAMING-UNSIGNED-PAYLOAD-TRAILER and STREAMING-AWS4-HMAC-SHA256-PAYLOAD (aws-chunked, decoded by
`AwsChunkedDecoder`, chunk signatures and trailing CRC32 verified).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from servers.kit import ToolError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_CLOCK_SKEW = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SigV4Error(Exception):
    """A request S3 would refuse; `s3_code` names the S3 error."""

    def __init__(self, s3_code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.s3_code = s3_code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SigV4Auth:
    access_key_id: str
    date: str  # YYYYMMDD from the credential scope
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signed_headers: tuple[str, ...]
    signature: str
    payload_hash: str
    presigned: bool
    expires: int | None = None

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    def timestamp(self) -> float:
        try:
            return datetime.strptime(self.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise SigV4Error("AccessDenied", "X-Amz-Date is not in the form YYYYMMDDTHHMMSSZ") from None


def _credential(value: str, error: str) -> tuple[str, str, str, str]:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise SigV4Error(error, "Credential must be <access key id>/<date>/<region>/s3/aws4_request", 400)
    if parts[3] != "s3":
        raise SigV4Error(error, f"this endpoint speaks S3; the credential scope names service {parts[3]!r}", 400)
    return parts[0], parts[1], parts[2], parts[3]


def parse_header_auth(authorization: str, headers: dict[str, str]) -> SigV4Auth:
    """Parse `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`."""
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error("AuthorizationHeaderMalformed", f"only {ALGORITHM} is supported", 400)
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise SigV4Error("AuthorizationHeaderMalformed", f"the Authorization header lacks {', '.join(missing)}", 400)
    key_id, date, region, service = _credential(fields["Credential"], "AuthorizationHeaderMalformed")
    amz_date = headers.get("x-amz-date") or ""
    if not amz_date:
        raise SigV4Error("AccessDenied", "SigV4 requests need an x-amz-date header")
    payload = headers.get("x-amz-content-sha256")
    if not payload:
        raise SigV4Error("InvalidRequest", "missing required header for this request: x-amz-content-sha256", 400)
    signed = tuple(fields["SignedHeaders"].lower().split(";"))
    if "host" not in signed:
        raise SigV4Error("AuthorizationHeaderMalformed", "SignedHeaders must include host", 400)
    return SigV4Auth(key_id, date, region, service, amz_date, signed, fields["Signature"].lower(), payload, False)


def parse_query_auth(query: dict[str, str]) -> SigV4Auth:
    """Parse presigned-URL parameters (X-Amz-Algorithm, -Credential, -Date, -Expires, ...)."""
    error = "AuthorizationQueryParametersError"
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise SigV4Error(error, f"X-Amz-Algorithm must be {ALGORITHM}", 400)
    missing = [
        n
        for n in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
        if not query.get(n)
    ]
    if missing:
        raise SigV4Error(error, f"presigned URL lacks {', '.join(missing)}", 400)
    key_id, date, region, service = _credential(query["X-Amz-Credential"], error)
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        raise SigV4Error(error, "X-Amz-Expires must be a number of seconds", 400) from None
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise SigV4Error(error, f"X-Amz-Expires must be 1-{MAX_PRESIGN_EXPIRES} seconds", 400)
    return SigV4Auth(
        key_id,
        date,
        region,
        service,
        query["X-Amz-Date"],
        tuple(query["X-Amz-SignedHeaders"].lower().split(";")),
        query["X-Amz-Signature"].lower(),
        query.get("X-Amz-Content-Sha256", UNSIGNED),
        True,
        expires,
    )


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(raw_query: str, *, drop_signature: bool) -> str:
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if drop_signature and name == "X-Amz-Signature":
            continue
        pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(
    auth: SigV4Auth, method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]]
) -> str:
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(" ".join(value.strip().split()))
    missing = [name for name in auth.signed_headers if name not in by_name]
    if missing:
        raise SigV4Error("AccessDenied", f"signed header(s) missing from the request: {', '.join(missing)}")
    header_lines = "".join(f"{name}:{','.join(by_name[name])}\n" for name in auth.signed_headers)
    return "\n".join(
        [
            method.upper(),
            raw_path or "/",
            canonical_query(raw_query, drop_signature=auth.presigned),
            header_lines,
            ";".join(auth.signed_headers),
            auth.payload_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signature_for(auth: SigV4Auth, secret: str, canonical: str) -> str:
    string_to_sign = "\n".join([ALGORITHM, auth.amz_date, auth.scope, hashlib.sha256(canonical.encode()).hexdigest()])
    return _sign(signing_key(secret, auth.date, auth.region, auth.service), string_to_sign)


def matching_secret(auth: SigV4Auth, canonical: str, candidates: Sequence[str]) -> int | None:
    """Index of the candidate secret that produced the signature (every candidate is tried)."""
    found = None
    for index, secret in enumerate(candidates):
        if hmac.compare_digest(signature_for(auth, secret, canonical), auth.signature):
            found = index if found is None else found
    return found


def check_time(auth: SigV4Auth, now: float) -> None:
    signed_at = auth.timestamp()
    if auth.amz_date[:8] != auth.date:
        raise SigV4Error("AccessDenied", "X-Amz-Date does not match the credential scope date")
    if auth.presigned:
        if now > signed_at + (auth.expires or 0):
            raise SigV4Error("AccessDenied", "Request has expired")
        if signed_at > now + MAX_CLOCK_SKEW:
            raise SigV4Error("AccessDenied", "Request is not yet valid")
    elif abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise SigV4Error(
            "RequestTimeTooSkewed", "the difference between the request time and the server's time is too large"
        )


def check_payload_hash(payload_hash: str) -> None:
    if payload_hash in (UNSIGNED, STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER) or _HEX64.match(payload_hash):
        return
    raise SigV4Error(
        "NotImplemented" if payload_hash.startswith("STREAMING-") else "InvalidArgument",
        f"x-amz-content-sha256 value {payload_hash!r} is not supported",
        501 if payload_hash.startswith("STREAMING-") else 400,
    )


def b64_digest(value: str, size: int) -> bytes | None:
    """The `size`-byte digest a base64 header carries, or None when it is not one."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def crc32_header(value: str | None, field: str = "x-amz-checksum-crc32") -> int | None:
    """Decode a base64 big-endian CRC32 checksum header (None when absent)."""
    if value is None:
        return None
    raw = b64_digest(value, 4)
    if raw is None:
        raise ToolError(f"{field} is not a base64 CRC32", field=field, data={"s3_code": "InvalidRequest"})
    return int.from_bytes(raw, "big")


def crc32_base64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def _chunk_error(message: str, s3_code: str = "IncompleteBody") -> ToolError:
    return ToolError(f"aws-chunked body: {message}", data={"s3_code": s3_code})


class AwsChunkedDecoder:
    """Decodes an `aws-chunked` body while it streams, verifying chunk signatures and trailers."""

    MAX_LINE = 4096

    def __init__(self, auth: SigV4Auth, secret: str | None, *, decoded_length: int | None) -> None:
        self.auth = auth
        self.signed = auth.payload_hash == STREAMING_SIGNED
        self._key = signing_key(secret, auth.date, auth.region, auth.service) if self.signed and secret else None
        self._previous = auth.signature
        self.decoded_length = decoded_length
        self.trailers: dict[str, str] = {}
        self._buffer = bytearray()
        self._source: AsyncIterator[bytes] | None = None

    async def _fill(self) -> None:
        assert self._source is not None
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            raise _chunk_error("the body ended early") from None
        self._buffer += chunk

    async def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > self.MAX_LINE:
                raise _chunk_error("a chunk header line is too long")
            await self._fill()

    def _verify_chunk(self, signature: str | None, digest: str) -> None:
        if self._key is None:
            return
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", self.auth.amz_date, self.auth.scope, self._previous, EMPTY_SHA256, digest]
        )
        expected = _sign(self._key, string_to_sign)
        if signature is None or not hmac.compare_digest(expected, signature):
            raise ToolError(
                "a chunk signature does not match", code="forbidden", data={"s3_code": "SignatureDoesNotMatch"}
            )
        self._previous = expected

    async def decode(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        self._source = source.__aiter__()
        total = 0
        crc = 0
        while True:
            header = await self._line()
            size_text, _, extension = header.partition(b";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise _chunk_error("a chunk size is not hexadecimal") from None
            signature = None
            if extension.startswith(b"chunk-signature="):
                signature = extension[len(b"chunk-signature=") :].decode("ascii", "replace").strip().lower()
            digest = hashlib.sha256() if self.signed else None
            remaining = size
            while remaining:
                if not self._buffer:
                    await self._fill()
                piece = bytes(self._buffer[:remaining])
                del self._buffer[: len(piece)]
                remaining -= len(piece)
                total += len(piece)
                crc = zlib.crc32(piece, crc)
                if digest is not None:
                    digest.update(piece)
                yield piece
            if size and await self._line() != b"":
                raise _chunk_error("a chunk is longer than its declared size")
            self._verify_chunk(signature, digest.hexdigest() if digest is not None else "")
            if size == 0:
                break
        while True:  # trailers, up to the empty line that ends the body
            line = await self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.trailers[name.strip().lower()] = value.strip()
        if self.decoded_length is not None and total != self.decoded_length:
            raise _chunk_error(f"decoded {total} bytes, x-amz-decoded-content-length says {self.decoded_length}")
        expected_crc = crc32_header(self.trailers.get("x-amz-checksum-crc32"))
        if expected_crc is not None and expected_crc != crc:
            raise ToolError(
                "the body does not match its x-amz-checksum-crc32 trailer",
                field="x-amz-checksum-crc32",
                data={"s3_code": "BadDigest"},
            )
