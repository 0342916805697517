"""toolmux presigned URLs: an HMAC over method, bucket, key, expiry and minting key, with a server secret.

    https://hub/storage/<bucket>/<key>?X-Toolmux-Expires=<unix>&X-Toolmux-Key=<key name>&X-Toolmux-Signature=<hex>

A GET URL also allows HEAD. The URL names the hub key that minted it (signed, so it cannot be
swapped); the face honours it only while that key still exists and may still read (GET) or
write (PUT) — removing a key, or its scope, and reloading the config kills its URLs. The secret
lives in the data dir (see `config.server_secret`), so URLs survive restarts; rotating it
(delete the file) revokes every outstanding URL.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from servers.storage.config import MAX_PRESIGN_SECONDS

EXPIRES_PARAM = "X-Toolmux-Expires"
SIGNATURE_PARAM = "X-Toolmux-Signature"
KEY_PARAM = "X-Toolmux-Key"
PRESIGN_METHODS = ("GET", "PUT")


def clamp_expiry(seconds: float) -> int:
    """Presigned URLs live between 1 second and 7 days, whatever was asked."""
    return int(min(max(int(seconds), 1), MAX_PRESIGN_SECONDS))


def object_path(bucket: str, key: str) -> str:
    return f"/storage/{bucket}/{quote(key, safe='/~')}"


class Presigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, method: str, bucket: str, key: str, expires_at: int, minter: str) -> str:
        message = f"{method.upper()}\n{bucket}\n{key}\n{expires_at}\n{minter}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, method: str, bucket: str, key: str, expires_at: int, minter: str) -> str:
        signature = self.signature(method, bucket, key, expires_at, minter)
        return f"{EXPIRES_PARAM}={expires_at}&{KEY_PARAM}={quote(minter, safe='')}&{SIGNATURE_PARAM}={signature}"

    def verify(
        self, method: str, bucket: str, key: str, *, expires: str, signature: str, minter: str, now: float
    ) -> str | None:
        """None when the URL is valid now, else why not (for a 403 body; no secrets in it)."""
        method = "GET" if method.upper() == "HEAD" else method.upper()
        if method not in PRESIGN_METHODS:
            return f"presigned URLs do not allow {method}"
        try:
            expires_at = int(expires)
        except ValueError:
            return f"{EXPIRES_PARAM} is not a unix time"
        expected = self.signature(method, bucket, key, expires_at, minter)
        if not hmac.compare_digest(expected, signature.lower()):
            return "presigned URL signature does not match (tampered, or signed for another method or object)"
        if now >= expires_at:
            return "presigned URL has expired"
        return None
