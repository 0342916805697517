"""Upstream tokens at rest: one Fernet-encrypted file per server in the data dir.

The Fernet key is derived (HKDF-SHA256) from a random secret kept in the data dir with mode 0600,
so the token files alone (a backup, a copied directory without the secret) reveal nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE = "upstream-oauth.secret"
TOKENS_DIR = "upstream-oauth"


def _secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


class TokenVault:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / TOKENS_DIR
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"toolmux upstream oauth tokens").derive(
            _secret(data_dir)
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.tokens"

    def load(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        if not path.exists():
            return None
        try:
            data = json.loads(self._fernet.decrypt(path.read_bytes()))
        except (InvalidToken, ValueError):
            return None  # written under another secret: as good as absent
        return data if isinstance(data, dict) else None

    def save(self, name: str, tokens: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._fernet.encrypt(json.dumps(tokens).encode()))
        tmp.replace(path)
