"""The demo server's handlers."""

from __future__ import annotations

from typing import Any

import anyio

from servers.kit import Domain, ServerSettings, ToolContext


def create(settings: ServerSettings) -> Domain:
    domain = Domain("demo", hub=settings.hub, instructions="Tools for trying toolmux.")

    @domain.tool("echo")
    async def echo(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"text": args["text"]}

    @domain.tool("add")
    async def add(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"sum": args["a"] + args["b"]}

    @domain.tool("count")
    async def count(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        to, interval = args["to"], args.get("interval", 0.1)
        for step in range(1, to + 1):
            await anyio.sleep(interval)
            await ctx.progress(step, to, f"counted {step}")
        return {"counted": to}

    async def health() -> dict[str, Any]:
        return {"healthy": True, "details": {"tools": len(domain.visible_tools())}}

    domain.health = health
    domain.check_complete()
    return domain
