"""Authlib's views of what the store keeps: a client, an authorization code, a token."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list

from aggregator.oauth.builtin.store import StoredClient, StoredCode, StoredToken, digest


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, stored: StoredClient) -> None:
        self.stored = stored
        self.metadata = stored.metadata

    def get_client_id(self) -> str:
        return self.stored.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.metadata.get("redirect_uris") or []
        return str(uris[0]) if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = scope_to_list(self.metadata.get("scope") or "") or None
        requested = scope_to_list(scope) or []
        return str(list_to_scope([s for s in requested if allowed is None or s in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.metadata.get("redirect_uris") or [])

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.stored.secret_digest
        return expected is not None and hmac.compare_digest(digest(client_secret), expected)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        registered = self.metadata.get("token_endpoint_auth_method", "client_secret_basic")
        return bool(method == registered)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.metadata.get("grant_types") or ["authorization_code", "refresh_token"])


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    stored: StoredCode

    def get_redirect_uri(self) -> str:
        return self.stored.redirect_uri

    def get_scope(self) -> str:
        return self.stored.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    stored: StoredToken
    secret: str  # the token as presented (never stored)
    kind: str = "access_token"  # or "refresh_token"

    def check_client(self, client: Any) -> bool:
        return bool(self.stored.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.stored.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.stored.access_expires_at - time.time()))

    def is_expired(self) -> bool:
        ends = self.stored.access_expires_at if self.kind == "access_token" else self.stored.refresh_expires_at
        return ends < time.time()

    def is_revoked(self) -> bool:
        return self.stored.revoked

    def get_user(self) -> str:
        return self.stored.subject

    def get_client(self) -> Any:
        return None
