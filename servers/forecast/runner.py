"""Runs fits off the event loop, one (series, model) job at a time per call, under a deadline.

Each job is one `anyio.to_thread.run_sync` call bounded by a process-wide limiter, so concurrent
calls share `max_concurrent_fits` threads, progress is reported between jobs, and a timeout
abandons at most the one fit in flight (its thread finishes in the background; the caller gets a
`timeout` error at once). A job's exception becomes data (`Outcome.error`): the caller decides
whether a failed member is fatal or just a warning.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from servers.kit import ToolError

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class Job:
    label: str
    work: Callable[[], Any]


@dataclass
class Outcome:
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def _guarded(work: Callable[[], Any]) -> Outcome:
    start = time.perf_counter()
    try:
        # Numerical corner cases (a zero variance, a flat likelihood) are the model's to handle;
        # numpy's floating-point warnings would only be noise (and errors under strict filters).
        with np.errstate(all="ignore"):
            value = work()
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Outcome(error=f"{type(exc).__name__}: {message}"[:300], seconds=time.perf_counter() - start)
    return Outcome(value=value, seconds=time.perf_counter() - start)


async def run_jobs(
    jobs: Sequence[Job], *, limiter: anyio.CapacityLimiter, timeout_s: float, progress: ProgressFn
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    total = len(jobs)
    try:
        with anyio.fail_after(timeout_s):
            for job in jobs:
                outcome = await anyio.to_thread.run_sync(_guarded, job.work, limiter=limiter, abandon_on_cancel=True)
                outcomes.append(outcome)
                await progress(len(outcomes), total, job.label)
    except TimeoutError:
        raise ToolError(
            f"forecasting did not finish within {timeout_s:g} s ({len(outcomes)} of {total} fits done); "
            "send fewer series, a shorter context or faster models (AutoARIMA is the slowest), "
            "or raise timeout_s up to the server's limit",
            code="timeout",
        ) from None
    return outcomes
