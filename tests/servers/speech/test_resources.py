"""The resource manager: lazy loading, idle unloading, one job per hardware class, bounded waits."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from servers.kit import ToolError
from servers.speech.resources import ResourceManager
from tests.support.speech_env import slot_held

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Engine:
    loads = 0

    def __init__(self) -> None:
        Engine.loads += 1
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_an_engine_loads_on_first_use_and_is_reused() -> None:
    Engine.loads = 0
    manager = ResourceManager(idle_unload_seconds=60)
    assert not manager.is_loaded("stt:x")
    first = await manager.run("stt:x", "cpu", Engine, lambda engine: engine)
    second = await manager.run("stt:x", "cpu", Engine, lambda engine: engine)
    assert first is second and Engine.loads == 1
    assert manager.status()["loaded"]["stt:x"]["hardware"] == "cpu"


async def test_an_engine_idle_past_its_ttl_is_unloaded_and_closed() -> None:
    clock = Clock()
    manager = ResourceManager(idle_unload_seconds=60, clock=clock)
    engine = await manager.run("tts:a", "cpu", Engine, lambda e: e)
    clock.now += 59
    assert manager.sweep() == [] and manager.is_loaded("tts:a")
    clock.now += 2
    assert manager.sweep() == ["tts:a"]
    assert not manager.is_loaded("tts:a") and engine.closed


async def test_an_engine_in_use_is_never_unloaded() -> None:
    clock = Clock()
    manager = ResourceManager(idle_unload_seconds=1, clock=clock)
    started, finish = threading.Event(), threading.Event()

    def job(engine: Engine) -> None:
        started.set()
        finish.wait(10)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run, "stt:busy", "cpu", Engine, job)
            await anyio.to_thread.run_sync(started.wait, 10)
            clock.now += 100
            assert manager.sweep() == []
            finish.set()
    clock.now += 100
    assert manager.sweep() == ["stt:busy"]


async def test_jobs_of_one_hardware_class_run_one_at_a_time() -> None:
    manager = ResourceManager(busy_wait_seconds=10)
    running, peak = 0, 0
    lock = threading.Lock()

    def job(engine: Engine) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)  # stands in for decoding work: unguarded jobs would overlap here
        with lock:
            running -= 1

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(manager.run, f"stt:{n}", "cpu", Engine, job)
    assert peak == 1


async def test_a_caller_waiting_past_the_bound_gets_a_retryable_busy_error() -> None:
    clock = Clock()
    manager = ResourceManager(busy_wait_seconds=0.05, clock=clock)
    with anyio.fail_after(10):
        async with slot_held(manager, job="speak en_US-joe-medium"):
            assert manager.busy() == {"cpu": True}
            with pytest.raises(ToolError) as caught:
                await manager.run("stt:x", "cpu", Engine, lambda e: e)
    assert caught.value.code == "busy" and caught.value.retryable
    assert caught.value.retry_after == 5.0  # nothing measured yet: the first guess of a job's length
    assert "speak en_US-joe-medium" in caught.value.message
    assert manager.busy() == {"cpu": False}


async def test_zero_wait_still_takes_a_free_slot() -> None:
    manager = ResourceManager(busy_wait_seconds=0)
    assert await manager.run("stt:x", "cpu", Engine, lambda e: 42) == 42


async def test_a_gpu_job_on_a_machine_without_gpu_is_refused_clearly() -> None:
    manager = ResourceManager(classes=("cpu",))
    with pytest.raises(ToolError) as caught:
        await manager.run("stt:w", "gpu", Engine, lambda e: e)
    assert caught.value.code == "unavailable" and "no GPU" in caught.value.message
