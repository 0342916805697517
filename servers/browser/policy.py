"""Where the browser may go: http(s) only, and no private, loopback or link-local address unless allow-listed.

Host names are resolved before the check and the decision is made on the addresses, so a public
name pointing at 127.0.0.1 or 169.254.169.254 is refused like the address itself. The same
policy is applied twice: to `goto` up front (for a clear error), and by the filtering proxy every
request of the browser goes through (redirects, subresources, WebSockets, scripts changing
`location`), which connects to exactly the address it checked (no DNS rebinding window).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import anyio

from servers.browser.config import NavigationConfig
from servers.kit import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_SCHEMES = ("http", "https")
# Pages the browser may show without any network access.
BLANK_URLS = ("about:blank",)


class PolicyRefusal(Exception):
    """A destination the navigation policy refuses; the message says why."""


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


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class NavigationPolicy:
    def __init__(self, config: NavigationConfig) -> None:
        self.config = config
        self.allow = _Rules.parse(config.allow_hosts)
        self.block = _Rules.parse(config.block_hosts)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal_address(host)
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
        """The addresses of `host` the browser may connect to; raises PolicyRefusal naming the reason."""
        host = host.lower().rstrip(".")
        literal = _literal_address(host)
        if self.block.match_name(host) or (literal is not None and self.block.match_address(literal)):
            raise PolicyRefusal(f"host {host!r} is blocked by the browser's navigation policy")
        addresses = await self.resolve(host, port)
        if not addresses:
            raise PolicyRefusal(f"host {host!r} has no addresses")
        name_allowed = self.allow.match_name(host)
        for address in addresses:
            if self.block.match_address(address):
                raise PolicyRefusal(f"host {host!r} resolves to {address}, which is blocked by the navigation policy")
            if name_allowed or self.config.allow_private or self.allow.match_address(address):
                continue
            kind = address_class(address)
            if kind is not None:
                via = "" if literal is not None else f" (resolved from {host!r})"
                raise PolicyRefusal(
                    f"address {address}{via} is {kind}; the browser only visits public addresses unless the "
                    "host is in the server's navigation.allow_hosts"
                )
        return addresses

    async def check_url(self, url: str, *, field: str = "url") -> None:
        """Raise ToolError(code="forbidden") when the browser must not navigate to `url`."""
        if url in BLANK_URLS:
            return
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ToolError(f"invalid URL {url!r}: {exc}", field=field) from None
        scheme = parts.scheme.lower()
        if scheme not in WEB_SCHEMES:
            shown = f"{scheme}:" if scheme else "(none)"
            raise ToolError(
                f"scheme {shown} is not allowed: the browser visits http:// and https:// URLs only",
                code="forbidden",
                field=field,
            )
        if not parts.hostname:
            raise ToolError(f"URL {url!r} has no host", field=field)
        try:
            await self.permitted_addresses(parts.hostname, port or (443 if scheme == "https" else 80))
        except UnresolvableHost as exc:
            raise ToolError(f"navigation failed: {exc}", code="upstream_error", field=field) from None
        except PolicyRefusal as exc:
            raise ToolError(str(exc), code="forbidden", field=field) from None
