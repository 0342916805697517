"""Who may approve a client on the consent page.

`SignIn` is the seam: today a form credential (a configured user's password, or an admin key —
the master key or any key whose principal is an admin); the operator console can plug in its
session by implementing `subject` from the request's cookie instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Protocol

from starlette.requests import Request

from aggregator.oauth.config import AdminUser
from aggregator.principal import Principal


class SignIn(Protocol):
    def subject(self, request: Request, form: Mapping[str, str]) -> str | None:
        """The signed-in person approving the grant, or None."""
        ...

    @property
    def asks_for_credential(self) -> bool:
        """Whether the consent page shows name and secret fields."""
        ...


class CredentialSignIn:
    asks_for_credential = True

    def __init__(self, users: list[AdminUser], admin_key: Callable[[str], Principal | None]) -> None:
        self.users = {u.name: u.password for u in users}
        self.admin_key = admin_key

    def subject(self, request: Request, form: Mapping[str, str]) -> str | None:
        name, secret = form.get("username", "").strip(), form.get("secret", "")
        if not secret:
            return None
        if name and name in self.users:
            return name if hmac.compare_digest(secret.encode(), self.users[name].encode()) else None
        principal = self.admin_key(secret)
        return principal.name if principal is not None and principal.is_master else None
