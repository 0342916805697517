"""Tokens from an external OpenID Connect provider: signed JWTs checked against its JWKS.

Discovery (`<issuer>/.well-known/openid-configuration`) and the key set are fetched before the hub
answers and kept for `jwks_refresh_seconds`; a token signed with a key id not in the set wakes an
early refetch (a provider rotating keys), and is refused until the new set has arrived. Checking a
token is synchronous and local (signature, issuer, audience, expiry), so it costs no round trip.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.oauth.config import OAuthConfig
from aggregator.oauth.resource import ProtectedResource
from aggregator.oauth.scopes import parse_scope, principal_for_scopes
from aggregator.principal import Principal

_log = logging.getLogger("toolmux.oauth")

# Asymmetric algorithms only: a provider's public keys can never be used to forge an HMAC token.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MIN_REFETCH_SECONDS = 10.0  # an attacker's made-up key ids must not turn into a fetch storm


class JwtVerifier:
    def __init__(self, config: OAuthConfig, resource: ProtectedResource) -> None:
        assert config.issuer is not None
        self.config = config
        self.issuer = config.issuer.rstrip("/")
        self.resource = resource
        self.keys: KeySet | None = None
        self.jwks_uri: str | None = None
        self.last_error: str | None = None
        self._fetched_at = 0.0
        self._wake = anyio.Event()
        self.attempted = anyio.Event()  # set once the first fetch has succeeded or failed
        self.refreshed = anyio.Event()  # set (and replaced) each time a new key set arrives

    # --- fetching ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        async with httpx2.AsyncClient(timeout=10.0) as client:
            if self.jwks_uri is None:
                discovery = await _get_json(client, self.issuer + "/.well-known/openid-configuration")
                if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                    raise ValueError(f"the provider's discovery names issuer {discovery.get('issuer')!r}")
                self.jwks_uri = str(discovery["jwks_uri"])
            self.keys = KeySet.import_key_set(await _get_json(client, self.jwks_uri))  # type: ignore[arg-type]
        self._fetched_at = time.monotonic()
        self.last_error = None
        done, self.refreshed = self.refreshed, anyio.Event()
        done.set()

    async def run(self) -> None:
        """Keep the key set fresh: every `jwks_refresh_seconds`, and early when an unknown key id shows up."""
        while True:
            try:
                await self.refresh()
            except (httpx2.HTTPError, ValueError, KeyError, JoseError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.warning("OIDC provider %s: keys not fetched (%s)", self.issuer, self.last_error)
            self.attempted.set()
            self._wake = anyio.Event()
            with anyio.move_on_after(self.config.jwks_refresh_seconds if self.keys else MIN_REFETCH_SECONDS):
                await self._wake.wait()
                await anyio.sleep(max(0.0, self._fetched_at + MIN_REFETCH_SECONDS - time.monotonic()))

    # --- checking ---------------------------------------------------------------------------
    def verify(self, token: str) -> Principal | None:
        claims = self.claims(token)
        if claims is None:
            return None
        subject = claims.get(self.config.principal_claim)
        if not isinstance(subject, str) or not subject:
            return None
        scopes = parse_scope(claims.get("scope", claims.get("scp")))
        return principal_for_scopes(self.config.principal_prefix + subject, scopes, self.config.scopes)

    def claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid token for this hub; None for anything else (never raises)."""
        if self.keys is None or token.count(".") != 2:
            return None
        try:
            decoded = jwt.decode(token, self.keys, algorithms=list(ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.config.leeway_seconds,
                iss={"essential": True, "value": self.issuer},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            if type(exc).__name__ == "InvalidKeyIdError":
                self._wake.set()  # maybe a rotated key: fetch the set again soon
            _log.info("bearer token refused: %s", exc.error)
            return None
        except ValueError:  # not base64 / not JSON: not a token at all
            return None
        aud = decoded.claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
        if not self.resource.accepts_audience(audiences):
            _log.info("bearer token refused: audience %s is not this hub", audiences)
            return None
        return decoded.claims


async def _get_json(client: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url, headers={"accept": "application/json"})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body
