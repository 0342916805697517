"""The models server: binds the `schemas/models.json` tools to `ModelsService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from servers.kit import Domain, ServerSettings, ToolContext
from servers.models.config import ModelsConfig
from servers.models.service import ModelsService

INSTRUCTIONS = (
    "Language models behind stable names. Call list_models for the names, chat for answers "
    "(OpenAI chat shape, tools supported), embed for vectors, usage for token and cost totals."
)


def create(settings: ServerSettings, *, service: ModelsService | None = None) -> Domain:
    config = settings.parse(ModelsConfig)
    models = service or ModelsService(
        config,
        data_dir=settings.data_dir,
        state=settings.state,
        key_limits=settings.key_limits,
        observer=settings.observer,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if config.health.enabled and config.backends:
                tg.start_soon(models.health.run)
            tg.start_soon(models.usage.run_flusher)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await models.aclose()

    domain = Domain("models", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = models

    @domain.tool("chat")
    async def chat(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        emit = None
        if args.get("stream"):
            sent = 0

            async def emit(chunk: dict[str, Any]) -> None:
                nonlocal sent
                sent += 1
                await ctx.progress(sent, None, orjson.dumps(chunk).decode())

        return await models.chat(args, caller=ctx.caller, request_id=ctx.request_id, emit=emit)

    @domain.tool("embed")
    async def embed(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await models.embed(args, caller=ctx.caller, request_id=ctx.request_id)

    @domain.tool("list_models")
    async def list_models(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return models.list_models(include_deployments=bool(args.get("include_deployments")))

    @domain.tool("usage")
    async def usage(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await models.usage_report(args, caller=ctx.caller)

    async def health() -> dict[str, Any]:
        return models.health.report()

    domain.health = health
    domain.check_complete()
    return domain
