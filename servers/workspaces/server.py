"""The workspaces server: binds the `schemas/workspaces.json` tools to `WorkspacesService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from servers.kit import Domain, ServerSettings, ToolContext
from servers.workspaces.config import WorkspacesConfig
from servers.workspaces.runs import RunEvent
from servers.workspaces.service import WorkspacesService

INSTRUCTIONS = (
    "Workspaces are directories where an agent carries out tasks. Put input files in with write_file, "
    "start work with run (prompt + workspace), read outputs with read_file or list_files. One run at a "
    "time per workspace; use async=true for long tasks and fetch them with run_result."
)
# Run events a sync caller gets as progress notifications (message = the event as JSON).
PROGRESS_EVENTS = frozenset({"run_started", "assistant", "tool_call", "tool_result", "process_started"})


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(WorkspacesConfig)
    service = WorkspacesService(config, settings.server_dir, settings.hub, data_dir=settings.data_dir)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with service.running():
            yield

    domain = Domain("workspaces", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = service

    @domain.tool("list_workspaces")
    async def list_workspaces(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.list_workspaces(args.get("prefix"))

    @domain.tool("status")
    async def status(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.status()

    @domain.tool("list_files")
    async def list_files(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.list_files(
            args["workspace"], args.get("path", ""), bool(args.get("recursive")), args.get("max_entries")
        )

    @domain.tool("read_file")
    async def read_file(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.read_file(args["workspace"], args["path"], args.get("encoding", "auto"))

    @domain.tool("write_file")
    async def write_file(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.write_file(args)

    @domain.tool("delete_file")
    async def delete_file(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.delete_file(args["workspace"], args["path"], bool(args.get("recursive")))

    @domain.tool("list_sessions")
    async def list_sessions(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.list_sessions(args["workspace"])

    @domain.tool("run")
    async def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        sent = 0

        async def progress(event: RunEvent) -> None:
            nonlocal sent
            if event.kind in PROGRESS_EVENTS:
                sent += 1
                message = orjson.dumps({"event": event.kind, "run_id": event.run_id, **event.data}).decode()
                await ctx.progress(sent, None, message)

        return await service.run(args, progress=progress)

    @domain.tool("run_result")
    async def run_result(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.run_result(args.get("run_id"), args.get("workspace"), float(args.get("wait_seconds", 0)))

    @domain.tool("run_cancel")
    async def run_cancel(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.run_cancel(args.get("run_id"), args.get("workspace"))

    domain.check_complete()
    return domain
