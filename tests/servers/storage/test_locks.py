"""Per-object read/write locks: readers share, a writer excludes, the queue is bounded, waits end."""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from servers.kit import ToolError
from servers.storage.locks import KeyLocks

pytestmark = pytest.mark.anyio

KEY = ("default", "k")


async def test_concurrent_readers_hold_the_lock_together() -> None:
    locks = KeyLocks()
    both_inside = anyio.Event()
    inside = 0

    async def reader() -> None:
        nonlocal inside
        async with locks.read(KEY):
            inside += 1
            if inside == 2:
                both_inside.set()
            await both_inside.wait()  # would deadlock if readers excluded each other

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
    assert both_inside.is_set()


async def test_a_writer_waits_for_readers_and_excludes_later_readers() -> None:
    locks = KeyLocks()
    order: list[str] = []
    release_reader = anyio.Event()
    release_writer = anyio.Event()

    async def reader(name: str, release: anyio.Event | None = None) -> None:
        async with locks.read(KEY):
            order.append(f"{name} in")
            if release is not None:
                await release.wait()
        order.append(f"{name} out")

    async def writer() -> None:
        async with locks.write(KEY):
            order.append("writer in")
            await release_writer.wait()
        order.append("writer out")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, "r1", release_reader)
            await wait_all_tasks_blocked()
            tg.start_soon(writer)
            await wait_all_tasks_blocked()
            tg.start_soon(reader, "r2")  # arrives while the writer waits: must not jump the queue
            await wait_all_tasks_blocked()
            assert order == ["r1 in"]
            assert locks.state(KEY) == {"readers": 1, "writer": False, "waiters": 2}
            release_reader.set()
            await wait_all_tasks_blocked()
            assert order == ["r1 in", "r1 out", "writer in"]
            release_writer.set()
    assert order == ["r1 in", "r1 out", "writer in", "writer out", "r2 in", "r2 out"]
    assert locks.state(KEY) == {"readers": 0, "writer": False, "waiters": 0}


async def test_writers_exclude_each_other() -> None:
    locks = KeyLocks()
    holding = 0
    most = 0

    async def writer() -> None:
        nonlocal holding, most
        async with locks.write(KEY):
            holding += 1
            most = max(most, holding)
            await anyio.lowlevel.checkpoint()
            holding -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(writer)
    assert most == 1


async def test_waiters_beyond_the_bound_are_told_busy_with_a_retry_hint() -> None:
    locks = KeyLocks(max_waiters=2, retry_after=2.0)
    outcomes: list[str] = []

    async def waiting_reader() -> None:
        async with locks.read(KEY):
            outcomes.append("read")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, locks.write(KEY):
            tg.start_soon(waiting_reader)
            tg.start_soon(waiting_reader)
            await wait_all_tasks_blocked()
            with pytest.raises(ToolError) as caught:
                async with locks.read(KEY):
                    pass
            assert outcomes == []
            # The two queued readers proceed once the writer leaves.
    error = caught.value
    assert (error.code, error.retryable, error.retry_after) == ("busy", True, 2.0)
    assert "2 callers already waiting" in error.message
    assert outcomes == ["read", "read"]


async def test_a_wait_longer_than_the_timeout_ends_busy_and_leaves_no_trace() -> None:
    locks = KeyLocks(timeout=0.05)
    with anyio.fail_after(5):
        async with locks.write(KEY):
            with pytest.raises(ToolError) as caught:
                async with locks.write(KEY):
                    pass
            assert locks.state(KEY)["waiters"] == 0
    assert caught.value.code == "busy" and "0.05s" in caught.value.message
    assert locks._entries == {}


async def test_a_cancelled_waiter_does_not_leave_the_lock_held() -> None:
    locks = KeyLocks()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, locks.write(KEY):

            async def doomed() -> None:
                async with locks.read(KEY):
                    pass

            tg.start_soon(doomed)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        async with locks.write(KEY):
            pass
    assert locks._entries == {}
