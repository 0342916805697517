"""The one server-sent events parser: however the body is cut into pieces, the same events come out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aggregator.protocol.sse import Event, EventTooLarge, SseDecoder, aiter_events, parse_events

pytestmark = pytest.mark.anyio

BODY = (
    b": a comment first\r\n"
    b"retry: 2500\r\n"
    b"id: s1-0\r\n"
    b"data: \r\n\r\n"
    b"event: message\n"
    b"id: s1-1\n"
    b'data: {"a":\n'
    b"data: 1}\n\n"
    b"data: \xc3\xa9t\xc3\xa9\r\r"
    b"event: ping\n"
    b"data: last"
)
EXPECTED = [
    Event("message", "", "s1-0", 2500),
    Event("message", '{"a":\n1}', "s1-1", None),
    Event("message", "été", "s1-1", None),
    Event("ping", "last", "s1-1", None),
]


def test_a_whole_body_gives_every_event_with_ids_that_persist() -> None:
    assert parse_events(BODY) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_the_same_events_come_out_however_the_body_is_cut(size: int) -> None:
    decoder = SseDecoder()
    events: list[Event] = []
    for start in range(0, len(BODY), size):
        events.extend(decoder.feed(BODY[start : start + size]))
    events.extend(decoder.flush())
    assert events == EXPECTED


def test_a_block_of_comments_only_is_no_event() -> None:
    assert parse_events(b": keep-alive\n\n: again\n\n") == []


def test_an_event_past_the_size_limit_is_refused_even_before_it_ends() -> None:
    decoder = SseDecoder(max_event_size=16)
    decoder.feed(b"data: short\n\n")
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: " + b"x" * 32)


async def test_events_of_a_streamed_body_arrive_as_its_pieces_do() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"data: one\n"
        yield b"\ndata: two\n\n"
        yield b"data: three"

    assert [e.data async for e in aiter_events(pieces())] == ["one", "two", "three"]
