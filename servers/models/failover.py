"""The attempt loop: walk the router's targets, retry what is worth retrying, fail over the rest.

Per target: skip it when a context window is too small, its rpm/tpm cap is reached or its
circuit is open; otherwise call it, retrying the same deployment only for retryable failures
(408/429/5xx, timeouts, connection errors; `Retry-After` honoured up to `max_retry_after`).
A plain 4xx ends the call at once (every deployment would refuse it); so does any failure
once a stream has emitted a chunk. What each attempt did is kept in a `CallLog`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from servers.kit import ToolError
from servers.models.config import ModelsConfig
from servers.models.errors import (
    ContextWindowError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    to_tool_error,
)
from servers.models.router import DeploymentState, Router, Target, estimate_tokens, refresh_shared

Sleep = Callable[[float], Awaitable[None]]
Operation = Callable[[Target, DeploymentState, "CallLog"], Awaitable[dict[str, Any]]]


@dataclass
class CallLog:
    started: float = field(default_factory=time.perf_counter)
    attempts: int = 0
    path: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    emitted: bool = False
    ttft: float | None = None
    upstream_seconds: float = 0.0


def _is_client_error(exc: UpstreamError) -> bool:
    """The request itself is wrong (every deployment would refuse it): no failover."""
    return (
        isinstance(exc, UpstreamStatusError)
        and not isinstance(exc, ContextWindowError)
        and exc.status is not None
        and 400 <= exc.status < 500
        and exc.status not in (401, 403, 404, 408, 429)
    )


def _counts_against_breaker(exc: UpstreamError) -> bool:
    if exc.retryable or isinstance(exc, UpstreamProtocolError):
        return True
    return isinstance(exc, UpstreamStatusError) and exc.status in (401, 403, 404)


class Failover:
    def __init__(
        self,
        config: ModelsConfig,
        router: Router,
        states: dict[str, DeploymentState],
        *,
        clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self.config = config
        self.router = router
        self.states = states
        self.clock = clock
        self.sleep = sleep
        # Refresh in-flight counts and latencies from the shared store before ordering (set by the service).
        self.shared_routing = False

    async def run(
        self, alias_name: str, request: dict[str, Any], *, stream: bool, kind: str, op: Operation, log: CallLog
    ) -> tuple[dict[str, Any], Target]:
        routing = self.config.routing
        retry = self.config.retries
        needed = estimate_tokens(request) + int(request.get("max_tokens") or request.get("max_completion_tokens") or 0)
        last_error: UpstreamError | None = None
        context_trouble = False
        retry_hint: float | None = None
        if self.shared_routing:
            await refresh_shared(self.states, [d.id for d in self.config.aliases[alias_name].deployments])
        for target in self.router.targets(alias_name, stream=stream):
            if log.attempts >= routing.max_attempts:
                break
            dep = target.deployment
            state = self.states[dep.id]
            if target.via == "context" and not context_trouble:
                continue
            if kind == "chat" and dep.context_window is not None and needed > dep.context_window:
                log.skipped.append(
                    f"{dep.id}: prompt (~{needed} tokens) exceeds its context window {dep.context_window}"
                )
                context_trouble = True
                continue
            full, allowed = await state.enter(dep, self.clock())
            if full:
                log.skipped.append(f"{dep.id}: {full}")
                continue
            if not allowed:
                wait = state.breaker.retry_in()
                retry_hint = wait if retry_hint is None else min(retry_hint, wait)
                log.skipped.append(f"{dep.id}: circuit open (retry in {wait:.1f}s)")
                continue
            retries = 0
            while True:
                log.attempts += 1
                log.path.append(dep.id)
                await state.started()
                state.requests.append(self.clock())
                if retries:
                    await state.count_retry()
                began = time.perf_counter()
                try:
                    result = await op(target, state, log)
                except UpstreamError as exc:
                    last_error = exc
                    if _counts_against_breaker(exc):
                        await state.breaker.failed(exc.message)
                    else:
                        await state.breaker.released()
                    if log.emitted or _is_client_error(exc):
                        raise to_tool_error(exc, attempts=log.attempts, path=log.path) from None
                    if isinstance(exc, ContextWindowError):
                        context_trouble = True
                        break
                    can_retry = exc.retryable and retries < retry.max_retries and log.attempts < routing.max_attempts
                    if not can_retry:
                        break
                    delay = (
                        exc.retry_after
                        if exc.retry_after is not None
                        else min(retry.backoff_initial * 2**retries, retry.backoff_max)
                    )
                    if delay > retry.max_retry_after or not await state.breaker.acquire():
                        break
                    await self.sleep(delay)
                    retries += 1
                    continue
                except BaseException:
                    await state.breaker.released()
                    raise
                finally:
                    await state.ended()
                log.upstream_seconds = time.perf_counter() - began
                await state.breaker.succeeded()
                return result, target
        if last_error is not None:
            raise to_tool_error(last_error, attempts=log.attempts, path=log.path)
        if context_trouble:
            raise ToolError(
                f"the prompt is too long for every deployment of {alias_name!r}: " + "; ".join(log.skipped),
                code="invalid_argument",
                field="messages",
            )
        reasons = "; ".join(log.skipped) or "no deployment configured"
        if retry_hint is not None:
            raise ToolError(
                f"no deployment of {alias_name!r} is available: {reasons}",
                code="unavailable",
                retryable=True,
                retry_after=round(retry_hint, 3),
            )
        raise ToolError(f"no deployment of {alias_name!r} has capacity: {reasons}", code="rate_limited", retryable=True)
