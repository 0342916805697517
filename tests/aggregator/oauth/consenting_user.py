"""The person in a browser during an OAuth sign-in, played over plain HTTP: opens the
authorization URL, reads the consent page, posts the form, and hands the redirect back."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import TokenStorage
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_TICKED = re.compile(r'<input type="checkbox" name="grant" value="([^"]*)" checked>')


def hidden_fields(page: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in _INPUT.findall(page)}


class ConsentingUser:
    def __init__(
        self, secret: str, *, username: str = "", decision: str = "approve", grant: list[str] | None = None
    ) -> None:
        self.secret = secret
        self.grant = grant  # the scopes left ticked; None: leave the page as it comes (all ticked)
        self.username = username
        self.decision = decision
        self.page = ""
        self.location = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient() as http:
            page = await http.get(authorization_url)
            assert page.status_code == 200, page.text
            self.page = page.text
            form = hidden_fields(page.text)
            ticked = [unescape(v) for v in _TICKED.findall(page.text)] if self.grant is None else self.grant
            fields: dict[str, str | list[str]] = {**form, "grant": ticked}
            fields |= {"username": self.username, "secret": self.secret, "decision": self.decision}
            answer = await http.post(str(page.url), data=fields)
        assert answer.status_code == 302, answer.text
        self.location = answer.headers["location"]

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}
        return AuthorizationCodeResult(code=query.get("code", ""), state=query.get("state"), iss=query.get("iss"))


class MemoryTokens(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info
