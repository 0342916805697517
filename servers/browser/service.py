"""BrowserService: the tools' one entry point — picks the session, locks it, runs the action, maps errors.

Which session a call uses: the `session` argument (any short name; "default" when absent),
scoped to the caller. The caller is the hub key name the hub passes with every forwarded call
(`ctx.caller`; "master" for the master key), so two keys never share a session even when both
name it "work", and every key gets its own "default" session. A server running alone (no hub)
has a single caller. A session lives until close_session, idle expiry (idle_timeout_s) or the
loss of its browser process; a lost session answers the next call once with code "not_found"
and `data.session_lost = true`, and the call after that starts a fresh session under that name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from servers.browser import actions, navigation, reading, screenshots, script
from servers.browser.config import BrowserConfig
from servers.browser.env import Env
from servers.browser.errors import translate
from servers.browser.policy import NavigationPolicy
from servers.browser.pool import BrowserPool
from servers.browser.proxy import FilteringProxy
from servers.browser.session import Session, SessionKey, SessionManager
from servers.kit import ToolContext, ToolError, ToolResult

_T = TypeVar("_T")

_log = logging.getLogger("toolmux.browser")

DEFAULT_SESSION = "default"
# On top of an action's own timeouts: the hard limit that frees a session if the driver hangs.
HARD_TIMEOUT_MARGIN_S = 15.0

Action = Callable[[Env, Session, dict[str, Any]], Awaitable["dict[str, Any] | ToolResult"]]

ACTIONS: dict[str, Action] = {
    "goto": navigation.goto,
    "back": navigation.back,
    "forward": navigation.forward,
    "tabs": navigation.tabs,
    "snapshot": reading.snapshot,
    "get_text": reading.get_text,
    "get_html": reading.get_html,
    "get_interactive_elements": reading.get_interactive_elements,
    "console_messages": reading.console_messages,
    "network_requests": reading.network_requests,
    "click": actions.click,
    "fill": actions.fill,
    "type": actions.type_text,
    "send_key": actions.send_key,
    "hover": actions.hover,
    "select_option": actions.select_option,
    "upload_file": actions.upload_file,
    "scroll": actions.scroll,
    "mouse_move": actions.mouse_move,
    "wait_for_element": actions.wait_for_element,
    "wait_for_text": actions.wait_for_text,
    "eval_js": actions.eval_js,
    "screenshot": screenshots.screenshot,
}
NAVIGATING = frozenset({"goto", "back", "forward", "tabs"})
TARGETED = frozenset(
    {
        "click",
        "fill",
        "type",
        "send_key",
        "hover",
        "select_option",
        "upload_file",
        "scroll",
        "wait_for_element",
        "snapshot",
        "get_text",
        "get_html",
        "screenshot",
    }
)

StepValidator = Callable[[str, dict[str, Any], str], None]


class BrowserService:
    def __init__(self, config: BrowserConfig, *, validate_step: StepValidator | None = None) -> None:
        self.config = config
        self.policy = NavigationPolicy(config.navigation)
        self.proxy = FilteringProxy(self.policy)
        self.pool = BrowserPool(config, proxy_url=lambda: self.proxy.url, on_browser_lost=self._browser_lost)
        self.sessions = SessionManager(config, self.pool)
        self.validate_step: StepValidator = validate_step or (lambda _a, _b, _c: None)
        self._started = False
        self._start_lock = anyio.Lock()

    def _browser_lost(self, slot: Any) -> None:
        self.sessions.browser_lost(slot)

    async def _start(self) -> None:
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                await self.proxy.start()
                self._started = True

    async def aclose(self) -> None:
        await self.sessions.aclose()
        await self.pool.aclose()
        await self.proxy.aclose()
        self._started = False

    # --- the one entry point ----------------------------------------------------------------------
    async def call(self, tool: str, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any] | ToolResult:
        await self._start()
        await self.sessions.sweep_idle()
        key: SessionKey = (ctx.caller or "", args.get("session") or DEFAULT_SESSION)
        if tool == "close_session":
            closed = await self.sessions.close(key)
            if not closed:
                raise ToolError(f"no open session {key[1]!r}", code="not_found", field="session")
            return {"session": key[1], "closed": True}
        if tool == "sessions":
            return self.list_sessions(key[0])
        if tool == "goto":
            # Refuse a forbidden URL before opening a session (and perhaps launching a browser) for it.
            await self.policy.check_url(args["url"])
        env = Env(self.config, self.policy, ctx.hub, ctx)
        async with self.sessions.using(key) as session:
            if tool == "run_script":
                limit = float(args.get("timeout", 120))
                return await self._guarded(
                    session,
                    tool,
                    limit,
                    script.run_script(env, session, args, run_step=self._run_step, validate=self.validate_step),
                )
            return await self._guarded(
                session, tool, self._hard_timeout(tool, args), self._action(env, session, tool, args)
            )

    async def _run_step(
        self, env: Env, session: Session, tool: str, args: dict[str, Any]
    ) -> dict[str, Any] | ToolResult:
        try:
            return await self._action(env, session, tool, args)
        except TimeoutError:
            raise ToolError(f"{tool} did not finish in time", code="timeout", retryable=True) from None

    async def _action(self, env: Env, session: Session, tool: str, args: dict[str, Any]) -> dict[str, Any] | ToolResult:
        action = ACTIONS.get(tool)
        if action is None:
            known = ", ".join(sorted(ACTIONS))
            raise ToolError(f"unknown action {tool!r}; actions: {known}", code="not_found", field="action")
        try:
            with anyio.fail_after(self._hard_timeout(tool, args)):
                return await action(env, session, args)
        except ToolError:
            raise
        except TimeoutError:
            raise
        except Exception as exc:
            target = ("ref" if "ref" in args else "selector") if tool in TARGETED else None
            raise translate(
                exc,
                manager=self.sessions,
                session=session,
                target_field=target,
                navigating=tool in NAVIGATING,
                script=tool == "eval_js",
            ) from None

    async def _guarded(self, session: Session, tool: str, limit: float, work: Awaitable[_T]) -> _T:
        try:
            with anyio.fail_after(limit + HARD_TIMEOUT_MARGIN_S):
                return await work
        except TimeoutError:
            if session.lost is not None:
                raise self.sessions.lose(session, session.lost) from None
            raise ToolError(
                f"{tool} did not finish within {limit + HARD_TIMEOUT_MARGIN_S:g} s", code="timeout", retryable=True
            ) from None

    def _hard_timeout(self, tool: str, args: dict[str, Any]) -> float:
        timeout = float(args.get("timeout", 0)) or 0.0
        if tool in NAVIGATING:
            per_try = timeout or self.config.navigation_timeout_s
            retries = int(args.get("retries", 0))
            backoff: float = navigation.RETRY_BACKOFF_S * 2**retries
            return per_try * (retries + 1) + backoff + HARD_TIMEOUT_MARGIN_S
        return max(timeout or self.config.action_timeout_s, self.config.navigation_timeout_s) + HARD_TIMEOUT_MARGIN_S

    # --- introspection ----------------------------------------------------------------------------
    def list_sessions(self, owner: str) -> dict[str, Any]:
        now = time.monotonic()
        mine = []
        for (who, name), session in sorted(self.sessions.sessions.items()):
            if who != owner:
                continue
            mine.append(
                {
                    "session": name,
                    "browser": session.slot.index,
                    "tabs": len(session.tabs),
                    "url": session.tabs[session.current].page.url if session.tabs else None,
                    "idle_s": round(now - session.last_used, 1),
                    "busy": session.lock.locked(),
                }
            )
        return {
            "sessions": mine,
            "open_sessions": len(self.sessions.sessions),
            "max_sessions": self.config.max_sessions,
            "browsers": len(self.pool.slots),
            "live_browsers": sum(1 for s in self.pool.slots if s.live),
            "idle_timeout_s": self.config.idle_timeout_s,
        }
