"""The consent page: server-rendered, one form, CSRF token bound to the authorization request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from html import escape

CSRF_TTL = 600  # seconds a rendered consent page stays valid
AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)


def _bound(params: Mapping[str, str]) -> bytes:
    return "\x1f".join(params.get(k, "") for k in AUTHORIZE_PARAMS).encode()


def csrf_token(secret: bytes, params: Mapping[str, str], now: float | None = None) -> str:
    expires = str(int((now or time.time()) + CSRF_TTL))
    mac = hmac.new(secret, expires.encode() + b"|" + _bound(params), hashlib.sha256).digest()
    return expires + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_valid(secret: bytes, params: Mapping[str, str], token: str) -> bool:
    expires, _, _mac = token.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    expected = csrf_token(secret, params, now=int(expires) - CSRF_TTL)
    return hmac.compare_digest(expected.encode(), token.encode())


def render(
    *,
    client_name: str,
    redirect_uri: str,
    resource: str,
    scopes: list[tuple[str, list[str], list[str]]],
    params: Mapping[str, str],
    csrf: str,
    ask_credential: bool,
    problem: str | None = None,
) -> str:
    """`scopes`: (scope, its globs, the tools they grant now)."""
    rows = "".join(
        f'<li><label><input type="checkbox" name="grant" value="{escape(scope)}" checked> '
        f"<b>{escape(scope)}</b></label>: {escape(', '.join(globs) or 'no tools')}"
        f"<br><small>{escape(', '.join(tools[:50]) or 'no tool matches today')}"
        f"{' …' if len(tools) > 50 else ''}</small></li>"
        for scope, globs, tools in scopes
    )
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{escape(params[k])}">' for k in AUTHORIZE_PARAMS if k in params
    )
    credential = (
        '<p><label>Name (blank for an admin key) <input name="username" autocomplete="username"></label></p>'
        '<p><label>Password or admin key <input name="secret" type="password" autocomplete="current-password">'
        "</label></p>"
        if ask_credential
        else ""
    )
    warning = f'<p role="alert"><b>{escape(problem)}</b></p>' if problem else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {escape(client_name)} — toolmux</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>Authorize {escape(client_name)}</h1>
<p><b>{escape(client_name)}</b> asks to use toolmux at <code>{escape(resource)}</code> and will be sent
back to <code>{escape(redirect_uri)}</code>.</p>
<p>It will be allowed (untick what it should not get):</p><ul>{rows or "<li>no scope: no tools</li>"}</ul>
{warning}
<form method="post" action="authorize">{hidden}
<input type="hidden" name="csrf" value="{escape(csrf)}">
{credential}
<p><button name="decision" value="approve">Approve</button>
<button name="decision" value="deny">Deny</button></p>
</form></body></html>"""
