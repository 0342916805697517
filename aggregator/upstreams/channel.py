"""A channel moves whole JSON-RPC messages (dicts) to and from one upstream server.

Every transport — a child's stdio, an in-process SDK server, streamable HTTP, legacy SSE —
is a `Channel`; the JSON-RPC peer above it does not know which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol


class ChannelClosed(Exception):
    """The channel ended (process exit, connection closed). `reason` says why, for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel(Protocol):
    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        """Send one message; raises ChannelClosed when the channel is gone.

        `headers` are extra HTTP request headers for this message (the stateless revision's
        `Mcp-Param-*`); transports without headers ignore them.
        """
        ...

    async def receive(self) -> dict[str, Any]:
        """The next message from the server; raises ChannelClosed at the end."""
        ...

    async def aclose(self) -> None: ...

    def describe(self) -> str:
        """Where this channel goes, for logs and /health (never secrets)."""
        ...


MessageHandler = Callable[[dict[str, Any]], None]


class PushChannel(ABC):
    """A channel that can hand inbound messages straight to the peer's synchronous dispatcher.

    In-process servers implement it: a streamed chat completion sends one message per chunk, and
    a queue hop per message cost more than the rest of the relay. Once attached, `receive()` only
    reports the end of the channel.
    """

    @abstractmethod
    def attach(self, handler: MessageHandler) -> None: ...
