"""Where the browser may go: the shared network policy (`servers.kit.netpolicy`) worded for the
browser, plus the blank page it may show without any network access.

The same policy is applied twice: to `goto` up front (for a clear error), and by the filtering
proxy every request of the browser goes through (redirects, subresources, WebSockets, scripts
changing `location`), which connects to exactly the address it checked (no DNS rebinding window).
"""

from __future__ import annotations

from servers.browser.config import NavigationConfig
from servers.kit.netpolicy import (
    WEB_SCHEMES,
    NetworkPolicy,
    PolicyRefusal,
    UnresolvableHost,
    address_class,
)

__all__ = ["BLANK_URLS", "WEB_SCHEMES", "NavigationPolicy", "PolicyRefusal", "UnresolvableHost", "address_class"]

# Pages the browser may show without any network access.
BLANK_URLS = ("about:blank",)


class NavigationPolicy(NetworkPolicy):
    def __init__(self, config: NavigationConfig) -> None:
        super().__init__(config, subject="the browser", allow_setting="navigation.allow_hosts")

    async def check_url(self, url: str, *, field: str = "url") -> None:
        """Raise ToolError(code="forbidden") when the browser must not navigate to `url`."""
        if url in BLANK_URLS:
            return
        await super().check_url(url, field=field)
