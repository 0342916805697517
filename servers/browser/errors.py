"""Playwright's exceptions translated into ToolErrors a model can act on (one place, one table).

playwright TimeoutError                      -> timeout (retryable)
TargetClosedError, browser gone              -> not_found, session lost (data.session_lost)
TargetClosedError, only the tab closed       -> not_found ("the tab was closed")
malformed selector / unknown selector engine -> invalid_argument, field "selector"
selector matching several elements           -> invalid_argument, field "selector"
net::ERR_* during navigation                 -> upstream_error (the site, not the caller)
an exception thrown by page JavaScript       -> invalid_argument, field "expression"
anything else Playwright raises              -> invalid_argument with Playwright's first line
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from servers.kit import ToolError

if TYPE_CHECKING:
    from servers.browser.session import Session, SessionManager

SELECTOR_PROBLEMS = (
    "while parsing",
    "is not a valid selector",
    "unknown engine",
    "failed to execute 'queryselector",
    "unexpected token",
    "invalid selector",
    "selector cannot be empty",
    "not a valid xpath",
)
_NET_ERROR = re.compile(r"net::(ERR_[A-Z_]+)")
_API_PREFIX = re.compile(r"^[A-Za-z]+\.[A-Za-z_]+: ")


def first_line(exc: BaseException) -> str:
    text = str(exc).split("\nCall log:", 1)[0].strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _API_PREFIX.sub("", line)[:500]


def translate(
    exc: Exception,
    *,
    manager: SessionManager,
    session: Session,
    target_field: str | None = None,
    navigating: bool = False,
    script: bool = False,
) -> ToolError:
    """The ToolError for `exc` raised by Playwright while acting on `session`."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if isinstance(exc, ToolError):
        return exc
    if session.lost is not None or not session.slot.live or session.slot.generation != session.generation:
        return manager.lose(session, session.lost or "its browser process exited")
    message = first_line(exc)
    lowered = str(exc).lower()
    if isinstance(exc, PlaywrightTimeout):
        hint = " (is the element visible and enabled? take a new snapshot)" if target_field else ""
        return ToolError(f"timed out: {message}{hint}", code="timeout", field=target_field, retryable=True)
    if not isinstance(exc, PlaywrightError):
        raise exc
    if "has been closed" in lowered or "target closed" in lowered:
        return ToolError("the tab was closed while acting on it; list tabs with tabs(action='list')", code="not_found")
    if target_field and any(p in lowered for p in SELECTOR_PROBLEMS):
        return ToolError(f"invalid selector: {message}", field=target_field)
    if "strict mode violation" in lowered:
        count = re.search(r"resolved to (\d+) elements", message)
        many = f"{count.group(1)} elements" if count else "several elements"
        return ToolError(
            f"the selector matches {many}; make it more specific (or use a ref from snapshot)",
            field=target_field or "selector",
        )
    net = _NET_ERROR.search(str(exc))
    if navigating and net:
        if net.group(1) == "ERR_TUNNEL_CONNECTION_FAILED":
            return ToolError(
                f"navigation refused: {message} (a redirect or the host's address is not allowed by the "
                "browser's navigation policy, or the host is unreachable)",
                code="forbidden",
            )
        return ToolError(f"navigation failed: {message}", code="upstream_error", retryable=True)
    if script:
        return ToolError(f"the script threw: {message}", field="expression")
    return ToolError(message, field=target_field)
