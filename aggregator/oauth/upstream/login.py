"""`toolmux upstream login NAME`: the browser sign-in to a remote MCP server, once.

Discovers the server's authorization server, registers the hub as a public client when no
client_id is configured (RFC 7591), prints the authorization URL (PKCE S256, RFC 8707 resource),
catches the redirect on a loopback port, exchanges the code and stores the tokens encrypted in
the data dir, where the running hub finds them on its next attempt.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from aggregator.oauth.config import UpstreamOAuth
from aggregator.oauth.upstream.auth import discover
from aggregator.oauth.upstream.vault import TokenVault

LOGIN_TIMEOUT = 300.0
_PAGE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nSigned in: you can close this tab."


class LoginError(Exception):
    pass


async def _catch_redirect(listener: Any, got: dict[str, str], done: anyio.Event) -> None:
    async def handle(stream: Any) -> None:
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = await stream.receive(4096)
                if not chunk:
                    return
                head += chunk
            target = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
            query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
            await stream.send(_PAGE)
            if "code" in query or "error" in query:
                got.update(query)
                done.set()

    await listener.serve(handle)


async def login(
    name: str,
    server_url: str,
    config: UpstreamOAuth,
    data_dir: Path,
    *,
    open_url: Callable[[str], Awaitable[None]],
    port: int = 0,
    timeout: float = LOGIN_TIMEOUT,
) -> dict[str, Any]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    redirect_uri = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/callback"
    async with httpx2.AsyncClient(timeout=15.0) as client:
        metadata = await discover(client, server_url) if not (config.token_url and config.authorization_url) else {}
        authorize = config.authorization_url or metadata.get("authorization_endpoint")
        token_url = config.token_url or metadata.get("token_endpoint")
        if not authorize or not token_url:
            raise LoginError("the authorization server names no authorization or token endpoint")
        client_id, client_secret = config.client_id, config.client_secret
        if not client_id:
            registration = metadata.get("registration_endpoint")
            if not registration:
                raise LoginError("no client_id configured and the server offers no dynamic registration")
            answer = await client.post(
                str(registration),
                json={
                    "client_name": f"toolmux ({name})",
                    "redirect_uris": [redirect_uri],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "token_endpoint_auth_method": "none",
                },
            )
            if answer.status_code not in (200, 201):
                raise LoginError(f"client registration refused (HTTP {answer.status_code})")
            client_id = str(answer.json()["client_id"])
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        resource = config.resource or server_url
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "resource": resource,
        }
        if config.scope:
            params["scope"] = config.scope
        got: dict[str, str] = {}
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_catch_redirect, listener, got, done)
            await open_url(f"{authorize}?{urlencode(params)}")
            with anyio.fail_after(timeout):
                await done.wait()
            tg.cancel_scope.cancel()
        if got.get("state") != state:
            raise LoginError("the redirect carried another state: start the login again")
        if "code" not in got:
            raise LoginError(f"the authorization server answered {got.get('error', 'no code')}")
        form = {
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "resource": resource,
        }
        basic: dict[str, Any] = {}
        if client_secret:
            basic["auth"] = httpx2.BasicAuth(client_id, client_secret)
        else:
            form["client_id"] = client_id
        answer = await client.post(str(token_url), data=form, **basic)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200 or "access_token" not in body:
            raise LoginError(f"the code exchange failed: {body.get('error', f'HTTP {answer.status_code}')}")
    tokens = {
        "access_token": body["access_token"],
        "expires_at": time.time() + float(body.get("expires_in", 3600)),
        "refresh_token": body.get("refresh_token"),
        "token_url": str(token_url),
        "client_id": client_id,
    }
    TokenVault(data_dir).save(name, tokens)
    return tokens


def add_parser(subparsers: Any) -> None:
    upstream = subparsers.add_parser("upstream", help="work with remote MCP servers (OAuth sign-in)")
    upstream_sub = upstream.add_subparsers(dest="upstream_command", required=True)
    cmd = upstream_sub.add_parser("login", help="sign in to a remote server whose entry declares oauth")
    cmd.add_argument("name", help="the mcpServers entry")
    cmd.add_argument("--config", required=True, help="toolmux YAML config")
    cmd.add_argument("--port", type=int, default=0, help="loopback port for the redirect (default: any free one)")
    cmd.set_defaults(func=run_login)


def run_login(args: argparse.Namespace) -> int:
    from aggregator import config as hub_config
    from aggregator.config import server_prefix

    try:
        config = hub_config.load(args.config)
    except hub_config.ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    name = server_prefix(args.name)
    entry = config.servers.get(name)
    if entry is None or entry.oauth is None or not entry.url:
        print(f"toolmux upstream login: {args.name!r} is no http server with an oauth section", file=sys.stderr)
        return 2
    oauth, url = entry.oauth, entry.url

    async def show(link: str) -> None:
        print(f"Open this link to sign in to {args.name}:\n  {link}\nWaiting for the redirect…", flush=True)

    async def main() -> dict[str, Any]:
        return await login(name, url, oauth, config.data_dir, open_url=show, port=args.port)

    try:
        anyio.run(main)
    except (LoginError, httpx2.HTTPError, TimeoutError) as exc:
        print(f"toolmux upstream login: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"Signed in to {args.name}; tokens stored (encrypted) in {config.data_dir}.")
    return 0
