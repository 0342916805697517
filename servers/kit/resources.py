"""The resource manager: engines load lazily, unload when idle, one heavy job per hardware class.

Heavy domains share it (speech, images). Speech models are big (piper ~60 MB, whisper 75 MB-3 GB)
and saturate a CPU core or a GPU, so `run()` allows one job at a time per hardware class ("cpu",
and "gpu" when one was found); an image backend is a class of its own (one generation at a time
per backend: a second one would only slow the first). `what` names the engines in messages.
A caller waits at most `busy_wait_seconds` for its class; past that it gets
`ToolError(code="busy", retryable=True, retry_after=...)` estimated from recent job lengths.
Engines load on first use (inside the slot: loading is heavy too) and are dropped after
`idle_unload_seconds` without use, by `sweep()`, which the server's lifespan runs periodically
and every `run()` calls on the way in.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from servers.kit import ToolError

_log = logging.getLogger("toolmux.resources")

T = TypeVar("T")
R = TypeVar("R")

# First guess of a job's length, before any was measured (seconds).
INITIAL_JOB_SECONDS = 5.0


@dataclass
class _Loaded:
    engine: Any
    hardware: str
    last_used: float
    in_use: int = 0


@dataclass
class _Slot:
    lock: anyio.Lock
    busy_since: float | None = None
    busy_with: str | None = None
    average_job_seconds: float = INITIAL_JOB_SECONDS


class ResourceManager:
    def __init__(
        self,
        *,
        classes: tuple[str, ...] = ("cpu",),
        idle_unload_seconds: float = 600.0,
        busy_wait_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "speech engines",
    ) -> None:
        self.what = what
        self.classes = classes
        self.idle_unload_seconds = idle_unload_seconds
        self.busy_wait_seconds = busy_wait_seconds
        self.clock = clock
        self._slots = {name: _Slot(anyio.Lock()) for name in classes}
        self._loaded: dict[str, _Loaded] = {}

    # --- the hardware slots ---------------------------------------------------------------------
    def _slot(self, hardware: str) -> _Slot:
        try:
            return self._slots[hardware]
        except KeyError:
            raise ToolError(
                f"no {hardware.upper()} on this machine (hardware here: {', '.join(self.classes)})",
                code="unavailable",
            ) from None

    def retry_after(self, hardware: str) -> float:
        """Seconds until the running job of `hardware` is likely done (at least 1)."""
        slot = self._slot(hardware)
        elapsed = 0.0 if slot.busy_since is None else self.clock() - slot.busy_since
        return float(max(1, math.ceil(slot.average_job_seconds - elapsed)))

    @asynccontextmanager
    async def slot(self, hardware: str, *, job: str) -> AsyncIterator[None]:
        """Hold `hardware` for one job, waiting at most `busy_wait_seconds` for it."""
        slot = self._slot(hardware)
        try:
            slot.lock.acquire_nowait()
        except anyio.WouldBlock:
            acquired = False
            with anyio.move_on_after(self.busy_wait_seconds):
                await slot.lock.acquire()
                acquired = True
            if not acquired:
                retry = self.retry_after(hardware)
                raise ToolError(
                    f"the {hardware.upper()} {self.what} are busy ({slot.busy_with or 'another job'}) and did "
                    f"not free up within {self.busy_wait_seconds:g} s; retry in about {retry:g} s",
                    code="busy",
                    retryable=True,
                    retry_after=retry,
                ) from None
        started = self.clock()
        slot.busy_since, slot.busy_with = started, job
        try:
            yield
        finally:
            took = self.clock() - started
            slot.average_job_seconds = 0.7 * slot.average_job_seconds + 0.3 * took
            slot.busy_since = slot.busy_with = None
            slot.lock.release()

    def busy(self) -> dict[str, bool]:
        return {name: slot.lock.locked() for name, slot in self._slots.items()}

    # --- engines --------------------------------------------------------------------------------
    async def run(
        self,
        key: str,
        hardware: str,
        load: Callable[[], T],
        job: Callable[[T], R],
        *,
        label: str | None = None,
    ) -> R:
        """Run `job(engine)` in a worker thread, holding `hardware`; `load()` the engine first if needed."""
        self.sweep()
        async with self.slot(hardware, job=label or key):
            loaded = self._loaded.get(key)
            if loaded is None:
                began = time.perf_counter()
                engine = await anyio.to_thread.run_sync(load)
                _log.info("%s: loaded %s in %.2f s", self.what, key, time.perf_counter() - began)
                loaded = self._loaded[key] = _Loaded(engine, hardware, self.clock())
            loaded.in_use += 1
            try:
                # Not abandoned on cancel: the slot must stay held while the engine works.
                return await anyio.to_thread.run_sync(job, loaded.engine)
            finally:
                loaded.in_use -= 1
                loaded.last_used = self.clock()

    def sweep(self) -> list[str]:
        """Unload every engine idle for `idle_unload_seconds`; returns the keys unloaded."""
        now = self.clock()
        idle = [
            key
            for key, loaded in self._loaded.items()
            if loaded.in_use == 0 and now - loaded.last_used >= self.idle_unload_seconds
        ]
        for key in idle:
            engine = self._loaded.pop(key).engine
            close = getattr(engine, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    _log.warning("%s: closing %s failed", self.what, key, exc_info=True)
            _log.info("%s: unloaded %s after %.0f s idle", self.what, key, self.idle_unload_seconds)
        return idle

    def is_loaded(self, key: str) -> bool:
        return key in self._loaded

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "classes": list(self.classes),
            "busy": self.busy(),
            "loaded": {
                key: {
                    "hardware": loaded.hardware,
                    "idle_seconds": round(now - loaded.last_used, 1),
                    "in_use": loaded.in_use > 0,
                }
                for key, loaded in self._loaded.items()
            },
        }

    async def run_sweeper(self) -> None:
        """Sweep forever (the server's lifespan runs this in its task group)."""
        interval = min(60.0, max(1.0, self.idle_unload_seconds / 4))
        while True:
            await anyio.sleep(interval)
            self.sweep()
