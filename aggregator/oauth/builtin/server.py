"""The built-in authorization server's HTTP face and its token check.

Endpoints (the kit's, limit `facades.oauth`): `/.well-known/oauth-authorization-server` (RFC 8414),
`/oauth/register` (RFC 7591), `/oauth/authorize` (the consent page, GET and POST), `/oauth/token`
(authorization code + PKCE S256, refresh with rotation), `/oauth/revoke` (RFC 7009),
`/oauth/introspect` (RFC 7662). Access tokens are opaque, short-lived and bound to the resource
the user consented to; the hub checks them in its own store, so a revocation holds at once.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import orjson
from authlib.oauth2 import OAuth2Error
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aggregator.facade.kit import Call, endpoint
from aggregator.oauth.builtin.authlib_glue import Grammar, OAuthRequest, json_request
from aggregator.oauth.builtin.consent import AUTHORIZE_PARAMS, csrf_token, csrf_valid, render
from aggregator.oauth.builtin.signin import CredentialSignIn, SignIn
from aggregator.oauth.builtin.store import OAuthStore, SqliteOAuthStore
from aggregator.oauth.config import OAuthConfig
from aggregator.oauth.resource import MCP_PATH, ProtectedResource
from aggregator.oauth.scopes import known_scopes, principal_for_scopes
from aggregator.principal import Principal

SECRET_FILE = "oauth.secret"
STORE_FILE = "oauth.sqlite3"
ToolsFor = Callable[[Principal], list[str]]


def _data_secret(data_dir: Path) -> bytes:
    """A random secret kept in the data dir (mode 0600): signs consent forms."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


class BuiltinServer:
    def __init__(
        self,
        config: OAuthConfig,
        resource: ProtectedResource,
        data_dir: Path,
        *,
        admin_key: Callable[[str], Principal | None] = lambda _: None,
        tools_for: ToolsFor = lambda _: [],
        store: OAuthStore | None = None,
    ) -> None:
        self.config = config
        self.resource = resource
        self.issuer = resource.issuer
        self.store: OAuthStore = store or SqliteOAuthStore(data_dir / STORE_FILE)
        self.secret = _data_secret(data_dir)
        self.sign_in: SignIn = CredentialSignIn(config.users, admin_key)
        self.tools_for = tools_for
        self.grammar = Grammar(config, self.store, self.metadata)

    # --- the protected resource's side ------------------------------------------------------
    def verify(self, token: str) -> Principal | None:
        if not token.startswith("tma_"):
            return None
        stored = self.store.by_access(token)
        if stored is None or stored.revoked or stored.access_expires_at < time.time():
            return None
        if not self.resource.accepts_audience([stored.resource]):
            return None
        name = self.config.principal_prefix + stored.subject
        return principal_for_scopes(name, stored.scope.split(), self.config.scopes)

    async def run(self) -> None:
        await anyio.sleep_forever()

    # --- documents ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "registration_endpoint": f"{base}/oauth/register",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "scopes_supported": list(self.config.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": False,
        }

    def table(self) -> list[tuple[str, str, Any]]:
        def spec(handler: Any, body: str = "raw") -> Any:
            return endpoint(limit="oauth", auth="optional", body=body)(partial(handler, self))  # type: ignore[arg-type]

        return [
            ("GET", "/.well-known/oauth-authorization-server", spec(_as_metadata, "none")),
            ("POST", "/oauth/register", spec(_register, "json")),
            ("GET", "/oauth/authorize", spec(_authorize_page, "none")),
            ("POST", "/oauth/authorize", spec(_authorize_decision)),
            ("POST", "/oauth/token", spec(_token)),
            ("POST", "/oauth/revoke", spec(_revoke)),
            ("POST", "/oauth/introspect", spec(_introspect)),
        ]

    # --- helpers for the endpoints ----------------------------------------------------------
    def oauth_request(self, call: Call, form: dict[str, str]) -> OAuthRequest:
        request = call.request
        # The issuer's URL, not the Host header: Authlib insists on https (or loopback) and the
        # hub may sit behind a TLS-terminating proxy.
        uri = self.issuer + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return OAuthRequest(request.method, uri, request.headers, dict(request.query_params), form)

    def consent_scopes(self, scope: str) -> list[tuple[str, list[str], list[str]]]:
        rows = []
        for name in scope.split():
            globs = self.config.scopes.get(name, [])
            rows.append((name, globs, self.tools_for(Principal(name="consent", allowed_tools=tuple(globs)))))
        return rows


def _answer(result: tuple[int, Any, list[tuple[str, str]]], request_id: str) -> Response:
    status, body, headers = result
    merged = {k.lower(): v for k, v in headers if k.lower() != "content-type"}
    merged["x-request-id"] = request_id
    merged.setdefault("cache-control", "no-store")
    if status in (301, 302, 303):
        return RedirectResponse(merged.pop("location", ""), status_code=302, headers=merged)
    content = orjson.dumps(body) if not isinstance(body, str | bytes) else body
    return Response(content, status_code=status, media_type="application/json", headers=merged)


async def _form(call: Call) -> dict[str, str]:
    return dict(await _fields(call))


async def _fields(call: Call) -> list[tuple[str, str]]:
    raw = await call.body()
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


def _oauth_error(error: str, description: str, request_id: str, status: int = 400) -> Response:
    body = {"error": error, "error_description": description}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"x-request-id": request_id, "cache-control": "no-store"},
    )


def _redirect_error(params: dict[str, str], error: str, description: str) -> Response:
    query = {"error": error, "error_description": description}
    if params.get("state"):
        query["state"] = params["state"]
    sep = "&" if "?" in params["redirect_uri"] else "?"
    return RedirectResponse(params["redirect_uri"] + sep + urlencode(query), status_code=302)


async def _as_metadata(server: BuiltinServer, call: Call) -> Response:
    return call.json_response(server.metadata(), headers={"cache-control": "public, max-age=300"})


async def _register(server: BuiltinServer, call: Call) -> Response:
    body = await call.json()
    request = json_request("POST", server.issuer + "/oauth/register", call.request.headers, body)
    return _answer(server.grammar.create_endpoint_response("client_registration", request), call.request_id)


def _checked_params(server: BuiltinServer, params: dict[str, str]) -> tuple[str, str] | None:
    """Our rules on top of Authlib's, once the redirect URI is trusted: PKCE with S256, and a
    resource (RFC 8707) that is this hub. Returns (error, description) or None."""
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return "invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256"
    resource = params.get("resource") or server.resource.resource(MCP_PATH)
    if not server.resource.accepts_audience([resource]):
        return "invalid_target", f"this server issues tokens for {server.resource.resource(MCP_PATH)}, not {resource}"
    return None


async def _consent(server: BuiltinServer, call: Call, params: dict[str, str], problem: str | None = None) -> Response:
    """Validate the authorization request (Authlib), then show the page (or the error)."""
    # Scopes this hub does not map (`openid`, `offline_access`, another server's) are dropped, not
    # refused: RFC 6749 lets the server grant less. Asking for none known offers every scope, and
    # the person unticks what the client should not get.
    known = known_scopes(params.get("scope", "").split(), server.config.scopes)
    params["scope"] = " ".join(known or server.config.scopes)
    params.setdefault("resource", server.resource.resource(MCP_PATH))
    request = server.oauth_request(call, params)
    try:
        grant = server.grammar.get_consent_grant(request)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and its redirect are trusted: the client hears about it
            return _answer(server.grammar.handle_error_response(request, error), call.request_id)
        return _oauth_error(error.error, error.description or error.error, call.request_id)
    issue = _checked_params(server, params)
    if issue is not None:
        return _redirect_error({**params, "redirect_uri": grant.redirect_uri}, *issue)
    client = grant.client
    page = render(
        client_name=str(client.metadata.get("client_name") or client.get_client_id()),
        redirect_uri=grant.redirect_uri,
        resource=params["resource"],
        scopes=server.consent_scopes(params["scope"]),
        params=params,
        csrf=csrf_token(server.secret, params),
        ask_credential=server.sign_in.asks_for_credential,
        problem=problem,
    )
    headers = {
        "x-request-id": call.request_id,
        "cache-control": "no-store",
        "x-frame-options": "DENY",
        "content-security-policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    }
    return HTMLResponse(page, status_code=403 if problem else 200, headers=headers)


async def _authorize_page(server: BuiltinServer, call: Call) -> Response:
    return await _consent(server, call, {k: v for k, v in call.request.query_params.items() if k in AUTHORIZE_PARAMS})


async def _authorize_decision(server: BuiltinServer, call: Call) -> Response:
    fields = await _fields(call)
    form = dict(fields)
    params = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
    if not csrf_valid(server.secret, params, form.get("csrf", "")):
        return _oauth_error(
            "invalid_request", "the consent form is stale or was not ours; open the link again", call.request_id
        )
    # The person may untick scopes: the grant is what was both asked for and left ticked.
    ticked = {value for name, value in fields if name == "grant"}
    granted = " ".join(s for s in params.get("scope", "").split() if s in ticked)
    request = server.oauth_request(call, {**params, "scope": granted})
    try:
        grant = server.grammar.get_consent_grant(request)
    except OAuth2Error as error:
        return _oauth_error(error.error, error.description or error.error, call.request_id)
    issue = _checked_params(server, params)
    if issue is not None:
        return _redirect_error({**params, "redirect_uri": grant.redirect_uri}, *issue)
    if form.get("decision") != "approve":
        result = server.grammar.create_authorization_response(request, grant_user=None, grant=grant)
        return _answer(result, call.request_id)
    subject = server.sign_in.subject(call.request, form)
    if subject is None:
        return await _consent(server, call, params, problem="That name and password (or admin key) were not accepted.")
    result = server.grammar.create_authorization_response(request, grant_user=subject, grant=grant)
    return _answer(result, call.request_id)


async def _token(server: BuiltinServer, call: Call) -> Response:
    request = server.oauth_request(call, await _form(call))
    return _answer(server.grammar.create_token_response(request), call.request_id)


async def _revoke(server: BuiltinServer, call: Call) -> Response:
    request = server.oauth_request(call, await _form(call))
    return _answer(server.grammar.create_endpoint_response("revocation", request), call.request_id)


async def _introspect(server: BuiltinServer, call: Call) -> Response:
    request = server.oauth_request(call, await _form(call))
    return _answer(server.grammar.create_endpoint_response("introspection", request), call.request_id)
