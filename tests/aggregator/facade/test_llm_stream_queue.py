"""The queue between a streaming tool call's progress handler and the response writer."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from aggregator.facade import llm_support
from aggregator.facade.llm_support import _ChunkQueue

pytestmark = pytest.mark.anyio


async def test_chunks_arrive_in_order_and_the_end_wakes_a_waiting_writer() -> None:
    queue = _ChunkQueue()
    taken: list[str] = []

    async def writer() -> None:
        while True:
            await queue.wait()
            taken.extend(queue.take())
            if queue.ended and not queue.items:
                return

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            for n in range(5):
                await queue.put(f"chunk {n}")
                await anyio.lowlevel.checkpoint()
            queue.end()
    assert taken == [f"chunk {n}" for n in range(5)]


async def test_a_producer_far_ahead_of_a_slow_client_waits_until_the_writer_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(llm_support, "MAX_QUEUED_CHUNKS", 3)
    queue = _ChunkQueue()
    produced = 0

    async def producer() -> None:
        nonlocal produced
        for n in range(10):
            await queue.put(str(n))
            produced += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert produced == 3  # the fourth put waits for the writer
            assert queue.take() == ["0", "1", "2", "3"]
            await anyio.wait_all_tasks_blocked()
            assert produced == 7
            queue.end()  # a call that ends (e.g. the client left) releases a waiting producer
    assert produced == 10
