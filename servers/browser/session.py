"""Sessions: one isolated browser context (cookies, storage, tabs) per (caller, session name).

A session is pinned to the browser process it was opened on until it is closed, expires when
idle, or is lost with its browser. Actions on one session run one at a time (a per-session lock);
different sessions run in parallel. Console messages, network requests and dialogs are recorded
in small ring buffers the tools read back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from servers.browser.config import BrowserConfig
from servers.browser.pool import BrowserPool, Slot
from servers.kit import ToolError

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, ConsoleMessage, Dialog, Page, Request, Response

_log = logging.getLogger("toolmux.browser.session")

MAX_LOST_REMEMBERED = 1000
MAX_RECORDED_TEXT = 2000

SessionKey = tuple[str, str]  # (owner: the hub key name or "", session name)


@dataclass
class Tab:
    page: Page
    # Refs of the latest snapshot of this tab (None: no snapshot since the last navigation).
    refs: set[str] | None = None


@dataclass
class Session:
    key: SessionKey
    slot: Slot
    generation: int
    context: BrowserContext
    config: BrowserConfig
    tabs: list[Tab] = field(default_factory=list)
    current: int = 0
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    lost: str | None = None
    closed: bool = False
    console: deque[dict[str, Any]] = field(default_factory=deque)
    network: deque[dict[str, Any]] = field(default_factory=deque)
    dialogs: list[dict[str, Any]] = field(default_factory=list)
    tabs_refused: int = 0

    def __post_init__(self) -> None:
        self.console = deque(maxlen=self.config.console_buffer)
        self.network = deque(maxlen=self.config.network_buffer)

    @property
    def name(self) -> str:
        return self.key[1]

    @property
    def tab(self) -> Tab:
        if not self.tabs:
            raise ToolError("this session has no open tab; open one with tabs(action='new')", code="not_found")
        self.current = min(self.current, len(self.tabs) - 1)
        return self.tabs[self.current]

    @property
    def page(self) -> Page:
        return self.tab.page

    def tab_index(self, page: Page) -> int | None:
        for i, tab in enumerate(self.tabs):
            if tab.page is page:
                return i
        return None

    # --- events -------------------------------------------------------------------------------
    def on_page(self, page: Page) -> None:
        """The context's `page` event handler (playwright wants one that returns nothing)."""
        self.attach(page)

    def attach(self, page: Page) -> Tab | None:
        """Track a page opened in this session's context (by us or by the page: popups, target=_blank)."""
        index = self.tab_index(page)
        if index is not None:
            return self.tabs[index]
        if len(self.tabs) >= self.config.max_tabs:
            self.tabs_refused += 1
            _schedule(page.close())
            return None
        tab = Tab(page)
        self.tabs.append(tab)

        def navigated(frame: Any) -> None:
            if frame == page.main_frame:
                tab.refs = None

        def closed(_page: Any) -> None:
            index = self.tab_index(page)
            if index is not None:
                del self.tabs[index]
                if self.current >= index and self.current > 0:
                    self.current -= 1

        page.on("framenavigated", navigated)
        page.on("close", closed)
        page.on("dialog", self._on_dialog)
        return tab

    async def _on_dialog(self, dialog: Dialog) -> None:
        decision = self.config.dialogs
        self.dialogs.append(
            {"type": dialog.type, "message": dialog.message[:MAX_RECORDED_TEXT], "handled": decision + "ed"}
        )
        with contextlib.suppress(Exception):  # the page may be gone already
            if decision == "accept":
                await dialog.accept()
            else:
                await dialog.dismiss()

    def _on_console(self, message: ConsoleMessage) -> None:
        page = message.page
        self.console.append(
            {
                "time": time.time(),
                "level": message.type,
                "text": message.text[:MAX_RECORDED_TEXT],
                "tab": self.tab_index(page) if page is not None else None,
            }
        )

    def _on_response(self, response: Response) -> None:
        request = response.request
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": request.method,
            "url": request.url[:MAX_RECORDED_TEXT],
            "resource_type": request.resource_type,
            "status": response.status,
        }
        if response.status == 403 and response.headers.get("x-toolmux-blocked"):
            entry["blocked"] = True
        self.network.append(entry)

    def _on_request_failed(self, request: Request) -> None:
        self.network.append(
            {
                "time": time.time(),
                "method": request.method,
                "url": request.url[:MAX_RECORDED_TEXT],
                "resource_type": request.resource_type,
                "failure": (request.failure or "failed")[:500],
            }
        )

    def take_dialogs(self) -> list[dict[str, Any]]:
        dialogs, self.dialogs = self.dialogs, []
        return dialogs


def _schedule(coro: Any) -> None:
    import asyncio

    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class SessionManager:
    def __init__(self, config: BrowserConfig, pool: BrowserPool) -> None:
        self.config = config
        self.pool = pool
        self.sessions: dict[SessionKey, Session] = {}
        self.lost: OrderedDict[SessionKey, str] = OrderedDict()
        self._open_lock = anyio.Lock()

    def browser_lost(self, slot: Slot) -> None:
        for key, session in list(self.sessions.items()):
            if session.slot is slot:
                reason = f"its browser process (pool slot {slot.index}) exited"
                session.lost = reason
                del self.sessions[key]
                self.lost[key] = reason
        while len(self.lost) > MAX_LOST_REMEMBERED:
            self.lost.popitem(last=False)

    def session_lost_error(self, key: SessionKey, reason: str) -> ToolError:
        self.lost.pop(key, None)
        return ToolError(
            f"session {key[1]!r} was lost: {reason}; its tabs, cookies and snapshot refs are gone. "
            "Call again to start a new session under the same name.",
            code="not_found",
            field="session",
            data={"session_lost": True, "session": key[1]},
        )

    def lose(self, session: Session, reason: str) -> ToolError:
        """Forget a session whose browser is gone; the error to answer the call that found out."""
        session.lost = session.lost or reason
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        return self.session_lost_error(session.key, session.lost)

    async def get(self, key: SessionKey, *, create: bool = True) -> Session:
        reason = self.lost.get(key)
        if reason is not None:
            raise self.session_lost_error(key, reason)
        session = self.sessions.get(key)
        if session is not None:
            return session
        if not create:
            raise ToolError(f"no open session {key[1]!r}", code="not_found", field="session")
        async with self._open_lock:
            session = self.sessions.get(key)
            if session is not None:
                return session
            if len(self.sessions) >= self.config.max_sessions:
                await self.sweep_idle()
            if len(self.sessions) >= self.config.max_sessions:
                raise ToolError(
                    f"too many open browser sessions ({self.config.max_sessions}); close one with close_session "
                    "or wait for idle sessions to expire",
                    code="busy",
                    retryable=True,
                    retry_after=5,
                )
            session = await self._open(key)
            self.sessions[key] = session
            return session

    async def _open(self, key: SessionKey) -> Session:
        slot = self.pool.pick()
        browser = await self.pool.browser(slot)
        config = self.config
        context = await browser.new_context(
            viewport={"width": config.viewport_width, "height": config.viewport_height},
            accept_downloads=False,
            service_workers="block",
            locale=config.locale,
            user_agent=config.user_agent,
        )
        context.set_default_timeout(config.action_timeout_s * 1000)
        context.set_default_navigation_timeout(config.navigation_timeout_s * 1000)
        session = Session(key, slot, slot.generation, context, config)
        context.on("page", session.on_page)
        context.on("console", session._on_console)
        context.on("response", session._on_response)
        context.on("requestfailed", session._on_request_failed)
        session.attach(await context.new_page())
        slot.sessions += 1
        return session

    async def close(self, key: SessionKey) -> bool:
        session = self.sessions.pop(key, None)
        if session is None:
            return self.lost.pop(key, None) is not None
        await self._dispose(session)
        return True

    async def _dispose(self, session: Session) -> None:
        session.closed = True
        if session.slot.generation == session.generation and session.slot.sessions > 0:
            session.slot.sessions -= 1
        with anyio.move_on_after(10), contextlib.suppress(Exception):
            await session.context.close()

    async def sweep_idle(self) -> int:
        """Close sessions unused for longer than idle_timeout_s (never one with an action running)."""
        deadline = time.monotonic() - self.config.idle_timeout_s
        expired = [s for s in self.sessions.values() if s.last_used < deadline and not s.lock.locked()]
        for session in expired:
            if self.sessions.get(session.key) is session:
                del self.sessions[session.key]
                _log.info(
                    "browser session %r of %r expired after %.0f s idle",
                    session.name,
                    session.key[0],
                    self.config.idle_timeout_s,
                )
                await self._dispose(session)
        return len(expired)

    @contextlib.asynccontextmanager
    async def using(self, key: SessionKey) -> AsyncIterator[Session]:
        """The session, locked for one action (waits up to queue_timeout_s for the previous one)."""
        session = await self.get(key)
        try:
            with anyio.fail_after(self.config.queue_timeout_s):
                await session.lock.acquire()
        except TimeoutError:
            raise ToolError(
                f"session {key[1]!r} is still busy with a previous action after {self.config.queue_timeout_s:g} s",
                code="busy",
                retryable=True,
                retry_after=1,
            ) from None
        try:
            if session.lost is not None:
                raise self.session_lost_error(key, session.lost)
            if session.closed:
                raise ToolError(f"session {key[1]!r} was closed meanwhile", code="not_found", field="session")
            session.last_used = time.monotonic()
            yield session
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    async def aclose(self) -> None:
        for key in list(self.sessions):
            await self.close(key)
