"""What can go wrong talking to a backend, and how each failure is treated.

    UpstreamError                 any failed upstream request (status, retryable, retry_after)
     +-- UpstreamStatusError      the backend answered 4xx/5xx (408/429/5xx are retryable)
     |    +-- ContextWindowError  the prompt is longer than the model's context window
     +-- UpstreamTimeout          no answer, or no next chunk, in time (retryable)
     +-- UpstreamConnectError     connection refused / reset / dropped mid-answer (retryable)
     +-- UpstreamProtocolError    the backend answered something that is not its protocol (502)
     +-- UnsupportedOperation     the backend's protocol cannot do this (embeddings on Anthropic)

`translate_transport_errors()` is the one place where HTTP client failures become this tree;
`to_tool_error()` is the one place where this tree becomes what callers see.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager

from servers.kit import ToolError
from servers.models.httpclient import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    TimedOut,
    TransportFailure,
    UndecodableBody,
)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})


class UpstreamError(Exception):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class UpstreamStatusError(UpstreamError):
    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.retryable = status in RETRYABLE_STATUSES or status >= 500


class ContextWindowError(UpstreamStatusError):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, status=status)
        self.retryable = False


class UpstreamTimeout(UpstreamError):
    retryable = True


class UpstreamConnectError(UpstreamError):
    retryable = True


class UpstreamProtocolError(UpstreamError):
    """Garbage from the backend: not retried on the same deployment, but another may be tried."""


class UnsupportedOperation(UpstreamError):
    """The backend's protocol has no such operation (e.g. embeddings on Anthropic)."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
)


def status_error(backend: str, status: int, body: str, retry_after: str | None = None) -> UpstreamStatusError:
    """The error for a non-2xx answer; the body is shortened so no large payload lands in logs."""
    snippet = " ".join(body.split())[:300]
    message = f"backend {backend!r} answered HTTP {status}" + (f": {snippet}" if snippet else "")
    if status in (400, 413, 422) and any(m in body.lower() for m in _CONTEXT_MARKERS):
        return ContextWindowError(message, status=status)
    return UpstreamStatusError(message, status=status, retry_after=parse_retry_after(retry_after))


@contextmanager
def translate_transport_errors(backend: str) -> Iterator[None]:
    """Turn every HTTP client failure into the UpstreamError tree (the only place that knows them)."""
    try:
        yield
    except TimedOut:
        raise UpstreamTimeout(f"backend {backend!r} did not answer in time") from None
    except (ConnectFailed, ConnectionLost) as exc:
        raise UpstreamConnectError(f"backend {backend!r}: connection failed ({exc.message})") from None
    except UndecodableBody as exc:
        raise UpstreamProtocolError(f"backend {backend!r} sent an unreadable answer ({exc.message})") from None
    except BadResponse as exc:
        # As a dropped connection: garbled HTTP is most often a proxy or server cut short.
        raise UpstreamConnectError(f"backend {backend!r} sent invalid HTTP ({exc.message})") from None
    except TransportFailure as exc:
        raise UpstreamConnectError(f"backend {backend!r}: transport error ({exc.message})") from None


def to_tool_error(exc: UpstreamError, *, attempts: int, path: list[str]) -> ToolError:
    """The caller-facing error after every target failed."""
    tried = f" (tried {attempts} time(s): {' -> '.join(path)})" if path else ""
    data = {"attempts": attempts, "failover_path": path}
    if isinstance(exc, ContextWindowError):
        return ToolError(exc.message + tried, code="invalid_argument", field="messages", data=data)
    if isinstance(exc, UnsupportedOperation):
        return ToolError(exc.message + tried, code="invalid_argument", field="model", data=data)
    if isinstance(exc, UpstreamTimeout):
        return ToolError(exc.message + tried, code="timeout", retryable=True, data=data)
    if isinstance(exc, UpstreamStatusError):
        if exc.status == 429:
            return ToolError(
                exc.message + tried, code="rate_limited", retryable=True, retry_after=exc.retry_after, data=data
            )
        if exc.status in (401, 403, 404):
            # Wrong credentials or a model the backend lacks: the operator's config, not the caller.
            return ToolError(exc.message + tried, code="upstream_error", data=data)
        if (exc.status is not None and exc.status >= 500) or exc.status == 408:
            return ToolError(exc.message + tried, code="upstream_error", retryable=True, data=data)
        return ToolError(exc.message + tried, code="invalid_argument", data=data)
    if isinstance(exc, UpstreamConnectError):
        return ToolError(exc.message + tried, code="unavailable", retryable=True, data=data)
    return ToolError(exc.message + tried, code="upstream_error", data=data)
