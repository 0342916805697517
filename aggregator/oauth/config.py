"""The `oauth:` section: toolmux as an OAuth 2.1 protected resource, and who issues its tokens.

    oauth:
      mode: external                      # off (default) | external (an OIDC provider) | builtin
      issuer: https://idp.example.com/realms/main
      audience: [https://hub.example.com/mcp]   # default: the hub's public URL + /mcp (and its toolset paths)
      scopes:                             # scope -> tool-name globs, exactly like a key's `tools`
        tools.read: ["storage-get_*", "storage-list_*"]
        tools.all: ["*"]

A token's principal may call the union of its scopes' globs (none mapped: no tool at all).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AdminUser(_Model):
    """A person who may sign in to the built-in authorization server's consent page."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: str = Field(min_length=12)


class OAuthConfig(_Model):
    mode: Literal["off", "external", "builtin"] = "off"
    issuer: str | None = Field(
        default=None,
        description="external: the provider's issuer URL (discovery at <issuer>/.well-known/openid-configuration); "
        "builtin: defaults to the hub's public URL",
    )
    audience: list[str] = Field(
        default_factory=list,
        description="resource identifiers a token may be bound to; default: <public URL>/mcp and its sub-paths",
    )
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"tools": ["*"]},
        description="scope -> allowed tool-name globs; a token may call the union of its scopes' globs",
    )
    principal_claim: str = Field(default="sub", description="the claim naming the caller (budgets, limits, logs)")
    principal_prefix: str = Field(default="oauth:", description="prepended to the claim, so names never meet keys'")
    jwks_refresh_seconds: float = Field(default=600.0, gt=0, description="external: how long fetched keys are kept")
    leeway_seconds: int = Field(default=30, ge=0, le=300, description="clock skew allowed on exp / nbf")
    # built-in authorization server
    access_token_ttl: int = Field(default=600, ge=30, le=86400, description="builtin: access token lifetime (s)")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=300, description="builtin: refresh token lifetime (s)")
    users: list[AdminUser] = Field(
        default_factory=list,
        description="builtin: who may sign in on the consent page besides the master key",
    )

    @model_validator(mode="after")
    def _issuer_for_external(self) -> OAuthConfig:
        if self.mode == "external" and not self.issuer:
            raise ValueError("oauth.mode external needs oauth.issuer (the provider's issuer URL)")
        for scope in self.scopes:
            if not scope or any(c.isspace() or c in '"\\' for c in scope):
                raise ValueError(f"oauth.scopes: {scope!r} is not a valid scope name")
        return self

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


class UpstreamOAuth(_Model):
    """`mcpServers.<name>.oauth`: how the hub signs in to a remote MCP server.

    client_credentials: machine to machine, with `client_id` / `client_secret`.
    authorization_code: a person signs in once with `toolmux upstream login NAME`; the hub keeps
    the tokens (encrypted in the data dir) and refreshes them.
    """

    grant: Literal["client_credentials", "authorization_code"] = "client_credentials"
    client_id: str | None = Field(default=None, description="omitted with authorization_code: registered (RFC 7591)")
    client_secret: str | None = None
    scope: str | None = None
    resource: str | None = Field(default=None, description="RFC 8707 resource; default: the server's url")
    token_url: str | None = Field(default=None, description="default: discovered from the server's metadata")
    authorization_url: str | None = Field(default=None, description="default: discovered")
    refresh_margin_seconds: float = Field(default=60.0, ge=0, description="refresh this long before expiry")

    @model_validator(mode="after")
    def _credentials(self) -> UpstreamOAuth:
        if self.grant == "client_credentials" and not (self.client_id and self.client_secret):
            raise ValueError("oauth.grant client_credentials needs client_id and client_secret")
        return self
