"""Server-sent events: the one parser of the code base (MCP HTTP transports, model backends, clients).

Incremental and byte based: a streamed chat completion sends one event per token, so the parser
splits whole events off the buffer at blank lines and reads their few lines, rather than
decoding and examining the stream line by line. Lines may end in LF, CRLF or CR. An event is
produced when its block set any field (so `id:`/`retry:`-only priming events reach a client
that resumes streams); `id` persists across events as the spec asks.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class EventTooLarge(ValueError):
    """An event grew past the decoder's `max_event_size` (bytes)."""


class SseDecoder:
    """Feed it the body's pieces as they arrive; it returns the events they complete."""

    def __init__(self, max_event_size: int | None = None) -> None:
        self._max = max_event_size
        self._pending = b""
        self._last_id = ""

    def feed(self, piece: bytes) -> list[Event]:
        pending = self._pending + piece if self._pending else piece
        if b"\r" in pending:
            # A CR last in the buffer may be half of a CRLF: hold it back until the next piece.
            held = pending.endswith(b"\r")
            if held:
                pending = pending[:-1]
            pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        if b"\n\n" not in pending:
            self._pending = pending
            self._check(pending)
            return []
        *blocks, self._pending = pending.split(b"\n\n")
        self._check(self._pending)
        events: list[Event] = []
        for block in blocks:
            self._check(block)
            event = self._event(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """The last event of a body that ended without its blank line."""
        pending, self._pending = self._pending.rstrip(b"\r\n"), b""
        event = self._event(pending) if pending else None
        return [event] if event is not None else []

    def _check(self, buffered: bytes) -> None:
        if self._max is not None and len(buffered) > self._max:
            raise EventTooLarge(f"a server-sent event exceeded the {self._max} byte limit")

    def _event(self, block: bytes) -> Event | None:
        kind = ""
        data: list[bytes] = []
        retry: int | None = None
        seen = False
        for line in block.split(b"\n"):
            if not line or line[0] == 0x3A:  # empty, or a ":" comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                kind = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" in value:
                    continue
                self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                if not value.isdigit():
                    continue
                retry = int(value)
            else:
                continue
            seen = True
        if not seen:
            return None
        text = b"\n".join(data).decode("utf-8", "replace") if data else ""
        return Event(kind or "message", text, self._last_id, retry)


async def aiter_events(pieces: AsyncIterable[bytes], *, max_event_size: int | None = None) -> AsyncIterator[Event]:
    """The events of a body arriving as `pieces`; EventTooLarge past `max_event_size`."""
    decoder = SseDecoder(max_event_size)
    async for piece in pieces:
        for event in decoder.feed(piece):
            yield event
    for event in decoder.flush():
        yield event


def parse_events(body: bytes) -> list[Event]:
    """The events of a whole body."""
    decoder = SseDecoder()
    return [*decoder.feed(body), *decoder.flush()]
