"""What the storage face needs from whoever mounts it: who a credential is, and whether they may act.

The face never sees the hub's key store. It asks `AuthHooks` three questions — the hub key a
request presents, the secret behind an access key id (SigV4/SigV2 signatures), and whether the
key that minted a presigned URL still exists — and checks scopes with `Caller.may_call` against
the same tool names the MCP face uses (`storage-get_object`, `storage-put_object`, …), so one
key's scopes mean the same thing on every face.

In the hub's process the hub answers directly. When storage runs as the hub's child, the hub
answers the same three questions before forwarding a request, and sends the answers along in one
header (`FORWARDED_AUTH`, over a private socket guarded by a token); `ForwardedAuth` replays them
to the face inside the child.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

import orjson
from starlette.requests import Request

MASTER_NAME = "master"
FORWARDED_AUTH = "x-toolmux-face-auth"
FACE_TOKEN = "x-toolmux-face-token"
FACE_REQUEST_ID = "x-toolmux-face-request-id"  # the hub's request id (the client's headers stay as signed)

# The MCP tool whose scope governs each operation of the face (for hub keys other than the master key).
TOOL_FOR = {
    "read": "storage-get_object",
    "write": "storage-put_object",
    "delete": "storage-delete_object",
    "list": "storage-list_objects",
    "list_buckets": "storage-list_buckets",
    "presign": "storage-presign_url",
}


class Caller(Protocol):
    """A hub key as the face sees it (the hub's `Principal` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def is_master(self) -> bool: ...

    @property
    def allowed_tools(self) -> tuple[str, ...]: ...

    @property
    def denied_tools(self) -> tuple[str, ...]: ...

    def may_call(self, tool: str) -> bool: ...


class AuthHooks(Protocol):
    @property
    def public_url(self) -> str:
        """Base URL clients reach the hub at (no trailing slash), for the URLs the face mints."""
        ...

    def caller_of(self, request: Request) -> Caller | None:
        """The hub key the request presents (Bearer, x-api-key, ?api_key=); None when it presents
        none or one the hub does not know (it may be a bucket key)."""
        ...

    def signing_secret(self, access_key_id: str) -> tuple[str, Caller] | None:
        """The secret and key behind a hub access key id (a key's name), for SigV4/SigV2."""
        ...

    def caller_named(self, name: str) -> Caller | None:
        """The hub key called `name`, while it exists (presigned URLs die with their key)."""
        ...


@dataclass(frozen=True)
class ForwardedCaller:
    """A hub key's scopes as the hub forwarded them: the same globs, the same rule as `Principal`."""

    name: str
    is_master: bool = False
    allowed_tools: tuple[str, ...] = ()
    denied_tools: tuple[str, ...] = ()

    def may_call(self, tool: str) -> bool:
        if self.is_master:
            return True
        if any(fnmatchcase(tool, pattern) for pattern in self.denied_tools):
            return False
        return any(fnmatchcase(tool, pattern) for pattern in self.allowed_tools)


def _caller_dict(caller: Caller | None) -> dict[str, Any] | None:
    if caller is None:
        return None
    return {
        "name": caller.name,
        "is_master": caller.is_master,
        "allowed": list(caller.allowed_tools),
        "denied": list(caller.denied_tools),
    }


def _caller_from(raw: Any) -> ForwardedCaller | None:
    if not isinstance(raw, dict):
        return None
    return ForwardedCaller(
        str(raw.get("name", "")),
        bool(raw.get("is_master")),
        tuple(str(p) for p in raw.get("allowed") or ()),
        tuple(str(p) for p in raw.get("denied") or ()),
    )


def forwarded_auth(hooks: AuthHooks, request: Request, access_key_id: str | None, minter: str | None) -> bytes:
    """The hub's answers for one request, as the header value the child's face replays."""
    signer = hooks.signing_secret(access_key_id) if access_key_id else None
    answers = {
        "public_url": hooks.public_url,
        "caller": _caller_dict(hooks.caller_of(request)),
        "signer": {"id": access_key_id, "secret": signer[0], "caller": _caller_dict(signer[1])} if signer else None,
        "minter": {"name": minter, "caller": _caller_dict(hooks.caller_named(minter))} if minter else None,
    }
    return orjson.dumps(answers)


class ForwardedAuth:
    """`AuthHooks` inside the child: the hub's answers for this one request, replayed."""

    def __init__(self, header: str | None) -> None:
        try:
            answers = orjson.loads(header) if header else {}
        except orjson.JSONDecodeError:
            answers = {}
        self._answers: dict[str, Any] = answers if isinstance(answers, dict) else {}

    @property
    def public_url(self) -> str:
        return str(self._answers.get("public_url") or "")

    def caller_of(self, request: Request) -> Caller | None:
        return _caller_from(self._answers.get("caller"))

    def signing_secret(self, access_key_id: str) -> tuple[str, Caller] | None:
        signer = self._answers.get("signer")
        if not isinstance(signer, dict) or signer.get("id") != access_key_id:
            return None
        caller = _caller_from(signer.get("caller"))
        return (str(signer.get("secret")), caller) if caller is not None else None

    def caller_named(self, name: str) -> Caller | None:
        minter = self._answers.get("minter")
        if not isinstance(minter, dict) or minter.get("name") != name:
            return None
        return _caller_from(minter.get("caller"))
