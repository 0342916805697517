"""Fixtures for the browser tests: one test site and one browser server per module, fresh sessions per test.

Launching the Playwright driver and Chromium costs about two seconds, so each module shares one
browser server (and so one event loop: `anyio_backend` is module-scoped here); tests stay
independent by using their own session names, which are separate browser contexts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servers.kit import Domain
from tests.support.browser_site import Site, call, require_chromium, running_browser, serve_site


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def site(anyio_backend: str) -> AsyncIterator[Site]:
    async with serve_site() as served:
        yield served


@pytest.fixture(scope="module")
async def browser(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Domain]:
    require_chromium()
    async with running_browser(Path(tmp_path_factory.mktemp("browser"))) as domain:
        yield domain


@pytest.fixture
async def session(browser: Domain) -> AsyncIterator[str]:
    """A session name of this test's own (a fresh browser context), closed after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    await call(browser, "close_session", {"session": name})
