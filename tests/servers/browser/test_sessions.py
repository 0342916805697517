"""Sessions and the pool: isolation, stickiness, one action at a time, limits, expiry, a crashed browser."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from servers.kit import Domain
from tests.support.browser_site import Site, call, error_of, ok, running_browser

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[Domain]:
    """A browser server of its own (one browser process) with room for three sessions."""
    async with running_browser(tmp_path, {"max_sessions": 3}, with_storage=False) as domain:
        yield domain


@pytest.fixture
async def two_browsers(tmp_path: Path) -> AsyncIterator[Domain]:
    """A browser server of its own with two browser processes in its pool."""
    async with running_browser(tmp_path, {"browsers": 2}, with_storage=False) as domain:
        yield domain


async def cookie_of(domain: Domain, site: Site, session: str, caller: str = "tester") -> str:
    await ok(domain, "goto", {"session": session, "url": f"{site.url}/cookie/show"}, caller=caller)
    return (await ok(domain, "get_text", {"session": session, "selector": "#who"}, caller=caller))["text"]


async def test_two_sessions_in_parallel_keep_separate_cookies(browser: Domain, site: Site) -> None:
    async def visit(name: str) -> None:
        await ok(browser, "goto", {"session": name, "url": f"{site.url}/cookie/set?v={name}"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(visit, "alpha")
        tg.start_soon(visit, "beta")

    assert await cookie_of(browser, site, "alpha") == "cookie=alpha"
    assert await cookie_of(browser, site, "beta") == "cookie=beta"
    for name in ("alpha", "beta"):
        await ok(browser, "close_session", {"session": name})


async def test_the_same_session_keeps_state_across_calls(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/cookie/set?v=kept"})
    assert await cookie_of(browser, site, session) == "cookie=kept"
    # The page itself stays too: a later call reads what an earlier one opened.
    assert (await ok(browser, "get_text", {"session": session}))["url"].endswith("/cookie/show")
    listed = await ok(browser, "sessions", {})
    assert session in [s["session"] for s in listed["sessions"]]

    await ok(browser, "close_session", {"session": session})
    assert await cookie_of(browser, site, session) == "cookie=nobody"


async def test_callers_never_share_a_session_even_by_the_same_name(browser: Domain, site: Site) -> None:
    await ok(browser, "goto", {"url": f"{site.url}/cookie/set?v=alice"}, caller="alice")
    assert await cookie_of(browser, site, "default", caller="bob") == "cookie=nobody"
    assert await cookie_of(browser, site, "default", caller="alice") == "cookie=alice"
    assert [s["session"] for s in (await ok(browser, "sessions", {}, caller="bob"))["sessions"]] == ["default"]
    for who in ("alice", "bob"):
        await ok(browser, "close_session", {}, caller=who)


async def test_actions_on_one_session_run_one_at_a_time(browser: Domain, site: Site, session: str) -> None:
    finished: list[str] = []

    async def slow_goto() -> None:
        await ok(browser, "goto", {"session": session, "url": f"{site.url}/slow?s=1"})
        finished.append("goto")

    async def read() -> None:
        page = await ok(browser, "get_text", {"session": session})
        finished.append("read:" + page["text"])

    site.slow_arrived = anyio.Event()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_goto)
            await site.slow_arrived.wait()  # the navigation is under way, holding the session
            tg.start_soon(read)

    # The read waited for the navigation and saw its page, never the blank one in between.
    assert finished == ["goto", "read:finally"]


async def test_session_limit_is_a_clear_busy_error_until_one_closes(pool: Domain, site: Site) -> None:
    for name in ("a", "b", "c"):
        await ok(pool, "goto", {"session": name, "url": f"{site.url}/form"})
    refused = error_of(await call(pool, "get_text", {"session": "d"}))
    assert refused["code"] == "busy" and "close_session" in refused["message"]

    await ok(pool, "close_session", {"session": "a"})
    assert (await ok(pool, "get_text", {"session": "d"}))["url"] == "about:blank"
    assert error_of(await call(pool, "close_session", {"session": "a"}))["code"] == "not_found"


async def test_idle_sessions_expire(pool: Domain, site: Site) -> None:
    await ok(pool, "goto", {"session": "sleepy", "url": f"{site.url}/cookie/set?v=old"})
    session = pool.service.sessions.sessions[("tester", "sleepy")]
    session.last_used = time.monotonic() - pool.service.config.idle_timeout_s - 1

    assert (await ok(pool, "sessions", {}))["sessions"] == []
    assert await cookie_of(pool, site, "sleepy") == "cookie=nobody"


async def test_killing_a_browser_loses_its_sessions_only_and_a_new_session_works(
    two_browsers: Domain, site: Site
) -> None:
    pool = two_browsers
    await ok(pool, "goto", {"session": "doomed", "url": f"{site.url}/cookie/set?v=doomed"})
    await ok(pool, "goto", {"session": "survivor", "url": f"{site.url}/cookie/set?v=survivor"})
    placed = {s["session"]: s["browser"] for s in (await ok(pool, "sessions", {}))["sessions"]}
    assert placed["doomed"] != placed["survivor"]  # two sessions spread over the two browser processes
    slot = pool.service.pool.slots[placed["doomed"]]
    old_pid = slot.pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    lost = error_of(await call(pool, "get_text", {"session": "doomed"}))

    assert lost["code"] == "not_found" and lost["data"]["session_lost"] is True
    assert "lost" in lost["message"]
    assert await cookie_of(pool, site, "survivor") == "cookie=survivor"
    # The next call under the lost name starts afresh on a relaunched browser.
    assert await cookie_of(pool, site, "doomed") == "cookie=nobody"
    assert slot.pid is not None and slot.pid != old_pid


async def test_an_action_in_flight_when_its_browser_dies_reports_the_session_lost(pool: Domain, site: Site) -> None:
    await ok(pool, "goto", {"session": "victim", "url": f"{site.url}/form"})
    session = pool.service.sessions.sessions[("tester", "victim")]
    results: list[dict] = []

    async def navigate_slowly() -> None:
        results.append(await call(pool, "goto", {"session": "victim", "url": f"{site.url}/slow?s=30"}))

    site.slow_arrived = anyio.Event()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(navigate_slowly)
            await site.slow_arrived.wait()
            assert session.slot.pid is not None
            os.kill(session.slot.pid, signal.SIGKILL)

    lost = error_of(results[0])
    assert lost["code"] == "not_found" and lost["data"]["session_lost"] is True
    assert (await ok(pool, "goto", {"session": "victim", "url": f"{site.url}/form"}))["title"] == "Sign up"
