"""How each kind of upstream is reached: a channel opener per config entry."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from aggregator.config import ServerEntry
from aggregator.upstreams.channel import Channel
from aggregator.upstreams.direct import open_direct
from aggregator.upstreams.stdio import StdioChannel

if TYPE_CHECKING:
    from servers.kit.domain import Domain


@asynccontextmanager
async def open_stdio(
    name: str, command: str, args: list[str], env: dict[str, str], cwd: str | None
) -> AsyncIterator[Channel]:
    channel = await StdioChannel.spawn(name, command, args, env, cwd)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.pump_stderr)
            try:
                yield channel
            finally:
                tg.cancel_scope.cancel()
    finally:
        await channel.aclose()


def stdio_opener(name: str, entry: ServerEntry) -> AbstractAsyncContextManager[Channel]:
    assert entry.command is not None
    return open_stdio(name, entry.command, entry.args, entry.env, entry.cwd)


def builtin_child_opener(
    name: str, builtin: str, entry: ServerEntry, env: dict[str, str]
) -> AbstractAsyncContextManager[Channel]:
    """A built-in domain server as a child process (`toolmux server NAME --stdio`)."""
    child_env = {**env, "TOOLMUX_SERVER_CONFIG": json.dumps(entry.config), **entry.env}
    return open_stdio(name, sys.executable, ["-m", "aggregator", "server", builtin, "--stdio"], child_env, entry.cwd)


def open_inprocess(name: str, domain: Domain) -> AbstractAsyncContextManager[Channel]:
    return open_direct(name, domain)


def describe_entry(entry: ServerEntry) -> dict[str, Any]:
    """What /health shows about an upstream's config (no env values, no headers)."""
    if entry.command:
        return {"transport": "stdio", "command": entry.command}
    if entry.url:
        return {"transport": "http", "url": entry.url.split("?")[0]}
    return {"transport": entry.mode or "builtin"}
