"""N Chromium processes driven by one Playwright driver, launched on demand and relaunched after a crash.

A slot holds at most one live browser. Sessions are placed on the live browser with the fewest
sessions, and an empty slot is launched when every live browser already has work, so sessions
spread over the configured number of processes. When a browser process dies, Playwright reports
it disconnected; the pool forgets it, tells the session manager (whose sessions there are lost),
and the next session that needs the slot launches a fresh process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from servers.browser.config import BrowserConfig
from servers.kit import ToolError

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

_log = logging.getLogger("toolmux.browser.pool")


@dataclass
class Slot:
    index: int
    browser: Browser | None = None
    pid: int | None = None
    generation: int = 0
    sessions: int = 0
    launched_at: float = 0.0
    launch_seconds: float = 0.0
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def live(self) -> bool:
        return self.browser is not None and self.browser.is_connected()


class BrowserPool:
    def __init__(
        self,
        config: BrowserConfig,
        *,
        proxy_url: Callable[[], str],
        on_browser_lost: Callable[[Slot], None],
    ) -> None:
        self.config = config
        self._proxy_url = proxy_url
        self._on_browser_lost = on_browser_lost
        self.slots = [Slot(i) for i in range(config.browsers)]
        self._playwright: Playwright | None = None
        self._manager: Any = None
        self._start_lock = anyio.Lock()
        self.launches = 0

    async def _driver(self) -> Playwright:
        async with self._start_lock:
            if self._playwright is None:
                from playwright.async_api import async_playwright

                self._manager = async_playwright()
                self._playwright = await self._manager.start()
            return self._playwright

    def pick(self) -> Slot:
        """The slot a new session goes to: the least busy live browser, or an empty slot if all are busy."""
        live = [s for s in self.slots if s.live]
        idle = [s for s in live if s.sessions == 0]
        if idle:
            return idle[0]
        empty = [s for s in self.slots if not s.live]
        if empty:
            return empty[0]
        return min(live, key=lambda s: s.sessions)

    async def browser(self, slot: Slot) -> Browser:
        """The slot's live browser, launching one when it has none."""
        async with slot.lock:
            if slot.browser is not None and slot.browser.is_connected():
                return slot.browser
            playwright = await self._driver()
            started = time.perf_counter()
            try:
                with anyio.fail_after(self.config.launch_timeout_s):
                    browser = await playwright.chromium.launch(
                        executable_path=self.config.executable_path,
                        headless=True,
                        args=self.config.launch_args(),
                        proxy={"server": self._proxy_url()},
                        timeout=self.config.launch_timeout_s * 1000,
                        # The MCP server owns stdin/stdout: the browser must not inherit them.
                        handle_sigint=False,
                        handle_sigterm=False,
                        handle_sighup=False,
                    )
            except TimeoutError:
                raise ToolError(
                    f"Chromium did not start within {self.config.launch_timeout_s:g} s",
                    code="unavailable",
                    retryable=True,
                ) from None
            except Exception as exc:
                _log.warning("browser launch failed: %s", exc)
                raise ToolError(
                    f"cannot start Chromium ({self.config.executable_path}): {str(exc).splitlines()[0]}",
                    code="unavailable",
                    retryable=True,
                ) from None
            slot.launch_seconds = time.perf_counter() - started
            slot.launched_at = time.time()
            slot.generation += 1
            slot.browser = browser
            slot.sessions = 0
            slot.pid = await _browser_pid(browser)
            self.launches += 1
            generation = slot.generation
            browser.on("disconnected", lambda _b: self._lost(slot, generation))
            _log.info("browser %d launched in %.2f s (pid %s)", slot.index, slot.launch_seconds, slot.pid)
            return browser

    def _lost(self, slot: Slot, generation: int) -> None:
        if slot.generation != generation:
            return
        _log.warning("browser %d (pid %s) disconnected; its sessions are lost", slot.index, slot.pid)
        slot.browser = None
        slot.pid = None
        slot.sessions = 0
        self._on_browser_lost(slot)

    async def aclose(self) -> None:
        for slot in self.slots:
            browser, slot.browser = slot.browser, None
            slot.generation += 1
            if browser is not None:
                with anyio.move_on_after(10):
                    try:
                        await browser.close()
                    except Exception as exc:  # already gone: nothing to close
                        _log.debug("closing browser %d: %s", slot.index, exc)
        if self._manager is not None:
            manager, self._manager, self._playwright = self._manager, None, None
            with anyio.move_on_after(10):
                await manager.__aexit__(None, None, None)


async def _browser_pid(browser: Browser) -> int | None:
    """The browser process id, asked of Chromium itself (Playwright's Python API does not expose it)."""
    try:
        cdp = await browser.new_browser_cdp_session()
        info = await cdp.send("SystemInfo.getProcessInfo")
        await cdp.detach()
    except Exception:
        return None
    for process in info.get("processInfo", []):
        if process.get("type") == "browser":
            return int(process["id"])
    return None
