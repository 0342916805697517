"""A local OpenID Connect provider for tests: real discovery and JWKS over HTTP, real signed JWTs.

It never runs a login: a test mints the token a provider would issue (`provider.token(...)`) and
hands it to a client, which is what toolmux sees of any provider.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.asgi import bound_socket, serve_asgi


class FakeOidcProvider:
    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
        self.issuer = ""
        self.jwks_requests = 0

    def token(
        self,
        *,
        audience: str | list[str],
        scope: str = "tools",
        subject: str = "alice",
        issuer: str | None = None,
        expires_in: int = 300,
        alg: str = "RS256",
        key: RSAKey | ECKey | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience,
            "scope": scope,
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        signing = key or (self.rsa if alg.startswith("RS") else self.ec)
        return jwt.encode({"alg": alg, "kid": signing.kid, "typ": "at+jwt"}, claims, signing)

    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "jwks_uri": f"{self.issuer}/jwks",
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }
            )

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_requests += 1
            return JSONResponse(KeySet([self.rsa, self.ec]).as_dict(private=False))

        return Starlette(
            routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)],
        )


@asynccontextmanager
async def running_oidc_provider() -> AsyncIterator[FakeOidcProvider]:
    provider = FakeOidcProvider()
    sock = bound_socket()
    provider.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with serve_asgi(provider.app(), sock=sock):
        yield provider
