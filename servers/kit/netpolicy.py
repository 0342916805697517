"""Where a server may connect on a caller's behalf: http(s) only, and no private, loopback or
link-local address unless allow-listed. Shared by the browser (its filtering proxy) and the web
server (its pinned HTTP client), so both refuse the same destinations with the same words.

Host names are resolved before the check and the decision is made on the addresses, so a public
name pointing at 127.0.0.1 or 169.254.169.254 is refused like the address itself. Callers connect
to exactly the addresses `permitted_addresses` returned (no second lookup, so no DNS rebinding
window between the check and the connection).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from servers.kit.errors import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_SCHEMES = ("http", "https")
HOST_PATTERN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class HostPolicyConfig(BaseModel):
    """The allow- and block-lists of a server section (`navigation:` of browser, `network:` of web)."""

    model_config = ConfigDict(extra="forbid")

    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts reachable even when they resolve to private/loopback/link-local addresses: "
        "names ('intranet.local', '*.corp.example'), IP addresses or CIDR ranges ('10.0.0.0/8')",
    )
    block_hosts: list[str] = Field(
        default_factory=list, description="Hosts always refused (same forms as allow_hosts); wins over allow_hosts"
    )
    allow_private: bool = Field(
        default=False, description="Allow every private, loopback and link-local address (not for shared hubs)"
    )

    @field_validator("allow_hosts", "block_hosts")
    @classmethod
    def _valid_entries(cls, entries: list[str]) -> list[str]:
        cleaned = []
        for entry in entries:
            value = entry.strip().lower()
            try:
                ipaddress.ip_network(value.strip("[]"), strict=False)
            except ValueError:
                if not HOST_PATTERN.match(value):
                    raise ValueError(f"{entry!r} is not a host name, '*.domain' pattern, IP address or CIDR") from None
            cleaned.append(value)
        return cleaned


class PolicyRefusal(Exception):
    """A destination the policy refuses; the message says why."""


class UnresolvableHost(PolicyRefusal):
    """The host name does not resolve (not a policy decision, but nothing to connect to either)."""


@dataclass(frozen=True)
class _Rules:
    names: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: list[str]) -> _Rules:
        names: list[str] = []
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.append(entry)
        return cls(tuple(names), tuple(networks))

    def match_name(self, host: str) -> bool:
        return any(host == n or (n.startswith("*.") and fnmatchcase(host, n)) for n in self.names)

    def match_address(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)


def address_class(address: IPAddress) -> str | None:
    """Why an address is not on the public internet (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_class(address.ipv4_mapped)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata lives here)"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class NetworkPolicy:
    """The policy of one server; `subject` and `allow_setting` word its refusals for that server
    ("the browser only visits public addresses unless the host is in navigation.allow_hosts")."""

    def __init__(self, config: HostPolicyConfig, *, subject: str, allow_setting: str) -> None:
        self.config = config
        self.subject = subject
        self.allow_setting = allow_setting
        self.allow = _Rules.parse(config.allow_hosts)
        self.block = _Rules.parse(config.block_hosts)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnresolvableHost(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
        seen: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in seen:
                seen.append(address)
        return seen

    async def permitted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host` that may be connected to; raises PolicyRefusal naming the reason."""
        host = host.lower().rstrip(".")
        literal = literal_address(host)
        if self.block.match_name(host) or (literal is not None and self.block.match_address(literal)):
            raise PolicyRefusal(f"host {host!r} is blocked by {self.subject}'s network policy")
        addresses = await self.resolve(host, port)
        if not addresses:
            raise PolicyRefusal(f"host {host!r} has no addresses")
        name_allowed = self.allow.match_name(host)
        for address in addresses:
            if self.block.match_address(address):
                raise PolicyRefusal(f"host {host!r} resolves to {address}, which is blocked by the network policy")
            if name_allowed or self.config.allow_private or self.allow.match_address(address):
                continue
            kind = address_class(address)
            if kind is not None:
                via = "" if literal is not None else f" (resolved from {host!r})"
                raise PolicyRefusal(
                    f"address {address}{via} is {kind}; {self.subject} only connects to public addresses unless "
                    f"the host is in the server's {self.allow_setting}"
                )
        return addresses

    def check_scheme(self, url: str, *, field: str = "url") -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) URL; ToolError (forbidden for other schemes) otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ToolError(f"invalid URL {url!r}: {exc}", field=field) from None
        scheme = parts.scheme.lower()
        if scheme not in WEB_SCHEMES:
            shown = f"{scheme}:" if scheme else "(none)"
            raise ToolError(
                f"scheme {shown} is not allowed: {self.subject} reads http:// and https:// URLs only",
                code="forbidden",
                field=field,
            )
        if not parts.hostname:
            raise ToolError(f"URL {url!r} has no host", field=field)
        return scheme, parts.hostname, port or (443 if scheme == "https" else 80)

    async def check_url(self, url: str, *, field: str = "url") -> None:
        """Raise ToolError(code="forbidden") when `url` must not be visited (upstream_error: no such host)."""
        _scheme, host, port = self.check_scheme(url, field=field)
        try:
            await self.permitted_addresses(host, port)
        except UnresolvableHost as exc:
            raise ToolError(f"navigation failed: {exc}", code="upstream_error", field=field) from None
        except PolicyRefusal as exc:
            raise ToolError(str(exc), code="forbidden", field=field) from None
