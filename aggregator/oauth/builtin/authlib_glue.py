"""Authlib's OAuth 2 grammar bound to the store: grants, PKCE (S256 only), refresh rotation,
revocation, introspection and dynamic client registration. No HTTP here: `server.py` turns a
Starlette request into an `OAuthRequest` and Authlib's `(status, body, headers)` back."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, JsonRequest, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonPayload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from aggregator.oauth.builtin.models import AuthorizationCode, Client, Token
from aggregator.oauth.builtin.store import OAuthStore, StoredClient, StoredCode, StoredToken, digest
from aggregator.oauth.config import OAuthConfig

CODE_TTL = 60  # seconds an authorization code may wait for its exchange
CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


class OAuthRequest(OAuth2Request):  # type: ignore[misc]
    """A request already read off the wire: query arguments and form fields as plain dicts."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], args: dict[str, str], form: dict[str, str]):
        super().__init__(method=method, uri=uri, headers=headers)  # case-insensitive: Authlib asks for "Authorization"
        self._args = args
        self._form = form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Json(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


def json_request(method: str, uri: str, headers: Mapping[str, str], body: dict[str, Any]) -> JsonRequest:
    request = JsonRequest(method, uri, headers)
    request.payload = _Json(body)
    return request


class Grammar(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, config: OAuthConfig, store: OAuthStore, metadata: Callable[[], dict[str, Any]]) -> None:
        super().__init__(scopes_supported=list(config.scopes))
        self.config = config
        self.store = store
        self.metadata = metadata
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: "tma_" + secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: "tmr_" + secrets.token_urlsafe(32),
                expires_generator=lambda client, grant_type: config.access_token_ttl,
            ),
        )
        self.register_grant(CodeGrant, [S256Only(required=True)])
        self.register_grant(RotatingRefreshGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_endpoint(Registration)

    # --- what Authlib asks of an integration ---------------------------------------------------
    def query_client(self, client_id: str) -> Client | None:
        stored = self.store.client(client_id)
        return Client(stored) if stored else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        now = time.time()
        if request.authorization_code is not None:  # a new authorization: a new family
            code: StoredCode = request.authorization_code.stored
            family, resource = uuid.uuid4().hex, code.resource
        else:  # a refresh: the same family and resource
            previous: StoredToken = request.refresh_token.stored
            family, resource = previous.family, previous.resource
        record = StoredToken(
            family=family,
            client_id=request.client.get_client_id(),
            subject=str(request.user),
            scope=token.get("scope", ""),
            resource=resource,
            access_expires_at=now + int(token["expires_in"]),
            refresh_expires_at=now + self.config.refresh_token_ttl,
            revoked=False,
        )
        self.store.save_token(token["access_token"], token.get("refresh_token"), record)

    def create_oauth2_request(self, request: OAuthRequest) -> OAuthRequest:
        return request

    def create_json_request(self, request: JsonRequest) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def find_token(self, secret: str, hint: str | None = None) -> Token | None:
        for kind in ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token"):
            stored = self.store.by_access(secret) if kind == "access_token" else self.store.by_refresh(secret)
            if stored is not None:
                return Token(stored, secret, kind)
        return None


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (OAuth 2.1; MCP authorization): `plain` is refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.stored.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.stored.code_challenge_method


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.store.save_code(
            code,
            StoredCode(
                client_id=request.client.get_client_id(),
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.scope or "",
                resource=data.get("resource", ""),
                subject=str(request.user),
                code_challenge=data.get("code_challenge", ""),
                code_challenge_method=data.get("code_challenge_method") or "S256",
                expires_at=time.time() + CODE_TTL,
            ),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        stored = self.server.store.take_code(code)  # single use: gone on the first try, right or wrong
        if stored is None or stored.client_id != client.get_client_id():
            return None
        resource = self.request.form.get("resource")
        if resource and resource.rstrip("/") != stored.resource.rstrip("/"):
            return None  # RFC 8707: the token is for the resource the user consented to, or none
        return AuthorizationCode(stored)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        return None  # already taken

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.stored.subject


class RotatingRefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh spends the old refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        stored = self.server.store.by_refresh(refresh_token)
        if stored is None or stored.revoked or stored.refresh_expires_at < time.time():
            return None
        return Token(stored, refresh_token, "refresh_token")

    def authenticate_user(self, refresh_token: Token) -> str:
        return refresh_token.stored.subject

    def revoke_old_credential(self, refresh_token: Token) -> None:
        self.server.store.revoke_refresh(refresh_token.secret)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found: Token | None = self.server.find_token(token_string, token_type_hint)
        return found

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        # The whole authorization goes: its access token and every refresh token of its chain.
        self.server.store.revoke_family(token.stored.family)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for other replicas and resource servers: a confidential client may ask."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found: Token | None = self.server.find_token(token_string, token_type_hint)
        return found

    def check_permission(self, token: Token, client: Client, request: OAuth2Request) -> bool:
        return client.stored.secret_digest is not None

    def introspect_token(self, token: Token) -> dict[str, Any]:
        stored = token.stored
        expires = stored.access_expires_at if token.kind == "access_token" else stored.refresh_expires_at
        return {
            "active": True,
            "client_id": stored.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": stored.scope,
            "sub": stored.subject,
            "aud": stored.resource,
            "iss": self.server.metadata()["issuer"],
            "exp": int(expires),
        }


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """RFC 7591, open: MCP clients register themselves; what they may do is still decided on the
    consent page by a signed-in admin."""

    def authenticate_token(self, request: JsonRequest) -> bool:
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.server.metadata()
        return metadata

    def generate_client_secret(self, request: JsonRequest) -> str | None:
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            return None  # a public client (PKCE only)
        return secrets.token_urlsafe(32)

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: JsonRequest) -> Client:
        secret = client_info.get("client_secret")
        metadata = {"token_endpoint_auth_method": "client_secret_basic", **client_metadata}
        stored = StoredClient(
            client_id=client_info["client_id"],
            secret_digest=digest(secret) if secret else None,
            metadata=metadata,
            issued_at=int(client_info["client_id_issued_at"]),
        )
        self.server.store.save_client(stored)
        return Client(stored)
