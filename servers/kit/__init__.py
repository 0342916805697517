"""The server kit: what every domain server is built with.

    domain = Domain("storage", hub=settings.hub)

    @domain.tool("put_object")
    async def put_object(args: dict, ctx: ToolContext) -> dict: ...

Contracts come from `schemas/<domain>.json`; see `servers.kit.domain` for the rules.
"""

from servers.kit.context import HubCaller, ToolContext
from servers.kit.contract import ToolContract
from servers.kit.domain import Domain, ToolResult
from servers.kit.errors import ToolError, error_from_result, error_result
from servers.kit.settings import ServerConfigError, ServerSettings

__all__ = [
    "Domain",
    "HubCaller",
    "ServerConfigError",
    "ServerSettings",
    "ToolContext",
    "ToolContract",
    "ToolError",
    "ToolResult",
    "error_from_result",
    "error_result",
]
