"""A `HubCaller` over real in-process domains, for domain tests that need another server.

Speech and browser store artifacts in storage through `ctx.hub`; in their tests this routes
`storage-put_object` to a real storage Domain instead of a hub.
"""

from __future__ import annotations

import uuid
from typing import Any

from servers.kit import Domain, ToolContext
from servers.kit.context import ON_BEHALF_OF_META_KEY, delegation_meta
from servers.kit.errors import ToolError, error_result


class DomainsHubCaller:
    def __init__(self, domains: dict[str, Domain] | None = None) -> None:
        self.domains: dict[str, Domain] = dict(domains or {})
        self.calls: list[str] = []

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append(name)
        server, _, tool = name.partition("-")
        domain = self.domains.get(server)
        if domain is None:
            return error_result(ToolError(f"unknown tool {name!r}", code="not_found"))
        # As the hub does: a call made while serving a caller acts for that caller.
        caller = delegation_meta().get(ON_BEHALF_OF_META_KEY, "internal")
        return await domain.call(tool, arguments, ToolContext(tool, request_id=uuid.uuid4().hex[:16], caller=caller))
