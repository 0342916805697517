"""The mail server's config section: accounts with their IMAP and SMTP endpoints.

    servers:
      mail:
        config:
          accounts:
            - name: work
              address: me@example.com
              imap: {host: imap.example.com, tls: implicit, user: me, password: "${WORK_PW}"}
              smtp: {host: smtp.example.com, tls: starttls, user: me, password: "${WORK_PW}"}

Passwords arrive already interpolated by the hub. They are `SecretStr`, so a repr, a log line
or a validation message never shows them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Tls = Literal["implicit", "starttls", "none"]

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")

IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"implicit": 465, "starttls": 587, "none": 25}


def is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Endpoint(BaseModel):
    """One server (IMAP or SMTP) of an account."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Tls = "implicit"
    user: str | None = None
    password: SecretStr | None = None
    # TLS certificate checks: a custom CA bundle (self-signed servers), or off (never in production).
    ca_file: str | None = None
    verify_tls: bool = True

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> Endpoint:
        if self.tls == "none" and not is_loopback(self.host):
            raise ValueError(
                f"tls 'none' sends the password in clear text: allowed only for loopback hosts, not {self.host!r}"
            )
        return self


class ImapEndpoint(Endpoint):
    # Folders used when the server does not mark them with SPECIAL-USE (\Trash, \Sent).
    trash_folder: str | None = None
    sent_folder: str | None = None
    # Append a copy of each sent message to the Sent folder (many providers already do it).
    save_sent: bool = False

    def port_or_default(self) -> int:
        return self.port or IMAP_PORTS[self.tls]


class SmtpEndpoint(Endpoint):
    def port_or_default(self) -> int:
        return self.port or SMTP_PORTS[self.tls]


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    address: str
    display_name: str | None = None
    description: str | None = None
    imap: ImapEndpoint | None = None
    smtp: SmtpEndpoint | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_safe_identifier(cls, value: str) -> str:
        if not ACCOUNT_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '_' or '-' (at most 63), starting with a letter/digit")
        return value

    @field_validator("address")
    @classmethod
    def _address_is_an_addr_spec(cls, value: str) -> str:
        if not ADDRESS.match(value):
            raise ValueError("must be a plain email address like me@example.com")
        return value

    @model_validator(mode="after")
    def _has_a_server(self) -> Account:
        if self.imap is None and self.smtp is None:
            raise ValueError("an account needs 'imap', 'smtp' or both")
        return self

    def imap_user(self) -> str:
        assert self.imap is not None
        return self.imap.user or self.address

    def secrets(self) -> list[str]:
        """Every credential of this account, for scrubbing error text."""
        out = []
        for endpoint in (self.imap, self.smtp):
            if endpoint is not None and endpoint.password is not None:
                value = endpoint.password.get_secret_value()
                if value:
                    out.append(value)
        return out


class MailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[Account] = Field(default_factory=list)
    # Seconds one IMAP/SMTP operation may take (connect, login and command together).
    timeout: float = Field(default=30.0, gt=0, le=600)
    connect_timeout: float = Field(default=10.0, gt=0, le=120)
    # Open IMAP connections kept per account (each one serves one operation at a time).
    pool_size: int = Field(default=4, ge=1, le=32)
    # An idle pooled connection older than this is checked with NOOP before reuse.
    idle_check_after: float = Field(default=60.0, ge=0)
    # Largest message get_message fetches, and largest message send builds.
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_send_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)

    @field_validator("accounts")
    @classmethod
    def _names_are_unique(cls, accounts: list[Account]) -> list[Account]:
        seen: set[str] = set()
        for account in accounts:
            if account.name in seen:
                raise ValueError(f"account name {account.name!r} is used twice")
            seen.add(account.name)
        return accounts
