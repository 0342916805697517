"""API keys: the master key, named keys with tool scopes, and the hub's internal key.

Keys are compared by SHA-256 digest, so the lookup does not leak through timing which stored
key a guess resembles; the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import HubConfig
from aggregator.principal import MASTER, Principal, Toolset
from aggregator.toolsets import compile_toolsets

if TYPE_CHECKING:
    from aggregator.console.keys import ManagedKeys

_log = logging.getLogger("toolmux.auth")

MASTER_KEY_ENV = "TOOLMUX_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
INTERNAL = Principal(name="internal", is_master=True)
# Consulted for a presented secret that is no key: an OAuth access token (aggregator/oauth).
TokenVerifier = Callable[[str], Principal | None]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def resolve_master_key(config: HubConfig, *, announce: bool = True) -> str:
    """Config, then $TOOLMUX_MASTER_KEY, then the data dir's master.key; else generate and store one."""
    if config.auth.master_key:
        return config.auth.master_key
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return env
    path = config.data_dir / MASTER_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = "tm-" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    if announce:
        print(f"toolmux: generated a master key (stored in {path}, shown only once):\n  {key}", file=sys.stderr)
    return key


class KeyStore:
    """The master key, the YAML keys, and (once the hub opened its state) the managed keys' mirror."""

    token_verifier: TokenVerifier | None = None

    def __init__(
        self,
        master_key: str,
        config: HubConfig,
        internal_key: str | None = None,
        managed: ManagedKeys | None = None,
    ) -> None:
        self.internal_key = internal_key or secrets.token_urlsafe(32)
        self.managed = managed
        self._secrets: dict[str, str] = {MASTER.name: master_key}
        self._by_digest: dict[bytes, Principal] = {_digest(master_key): MASTER, _digest(self.internal_key): INTERNAL}
        by_name: dict[str, Principal] = {MASTER.name: MASTER}
        self.toolsets: dict[str, Toolset] = compile_toolsets(config)
        # A key's default toolset applies to its MCP clients only (facades keep the key's scope).
        self._default_toolsets: dict[str, Toolset] = {
            k.name: self.toolsets[k.toolset] for k in config.auth.keys if k.toolset is not None
        }
        for entry in config.auth.keys:
            principal = Principal(
                name=entry.name,
                allowed_tools=tuple(entry.tools),
                denied_tools=tuple(entry.deny),
                scopes=tuple(entry.scopes),
                key_lazy=entry.lazy,
            )
            self._by_digest[_digest(entry.key)] = principal
            self._secrets[entry.name] = entry.key
            by_name[entry.name] = principal
        self.anonymous = by_name.get(config.auth.anonymous) if config.auth.anonymous else None
        self.config_names = frozenset(by_name)

    @property
    def master_key(self) -> str:
        return self._secrets[MASTER.name]

    def principal_for(self, presented: str | None) -> Principal | None:
        """The caller behind a key; with no key, the configured anonymous principal (if any)."""
        if not presented:
            return self.anonymous
        digest = _digest(presented)
        principal = self._by_digest.get(digest)
        if principal is None:
            if self.managed is not None:
                found = self.managed.principal_for(presented)
                if found is not None:
                    return found
            return self.token_verifier(presented) if self.token_verifier is not None else None
        # The digest matched; compare the secret too so equality is never decided by a dict lookup alone.
        secret = self.internal_key if principal is INTERNAL else self._secrets.get(principal.name, "")
        return principal if hmac.compare_digest(presented.encode(), secret.encode()) else None

    def mcp_view(self, principal: Principal, toolset: Toolset | None = None) -> Principal:
        """What an MCP client with this key sees: `toolset` (a path's or `--toolset`), else the
        key's default toolset, else its whole scope."""
        return principal.in_toolset(toolset or self._default_toolsets.get(principal.name))

    def secret_for(self, name: str) -> tuple[str, Principal] | None:
        secret = self._secrets.get(name)
        if secret is None:
            return self.managed.signing_secret(name) if self.managed is not None else None
        principal = self._by_digest[_digest(secret)]
        return secret, principal

    @staticmethod
    def from_path(path: Path) -> str:
        return path.read_text(encoding="utf-8").strip()
