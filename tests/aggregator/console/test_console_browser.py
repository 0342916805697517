"""The console in a real Chromium: sign in, make a key, use it, watch it in the feed and usage, revoke it.

Screenshots of every page land in the test's directory; with TOOLMUX_UPDATE_SCREENSHOTS=1 they
also replace docs/screenshots/ (the ones the README links).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from servers.browser.config import DEFAULT_CHROMIUM, DEFAULT_FLAGS
from tests.aggregator.console.support import USER, bearer, console_hub
from tests.aggregator.hubkit import MASTER_KEY, PROJECT_ROOT
from tests.support.browser_site import require_chromium

pytestmark = pytest.mark.anyio
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=DEFAULT_CHROMIUM, headless=True, args=list(DEFAULT_FLAGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


async def shoot(page: Page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TOOLMUX_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / path.name)


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(f"{url}/ui/")
    await page.fill("input[name=key]", key)
    await page.click("button[type=submit]")


async def test_an_operator_makes_a_key_sees_it_used_live_and_revokes_it(tmp_path: Path, chromium: Browser) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        page = await (await chromium.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await page.goto(f"{running.url}/ui/")
        await shoot(page, shots, "login")
        await sign_in(page, running.url, MASTER_KEY)
        await expect(page.locator("#upstreams")).to_contain_text("models")
        await shoot(page, shots, "overview")

        await page.goto(f"{running.url}/ui/keys")
        await page.fill("#create-key input[name=name]", "app")
        await page.fill("#create-key input[name=tools]", "models-*")
        await page.fill("#create-key input[name=rpm]", "30")
        await page.click("#create-key button[type=submit]")
        secret = (await page.locator("#secret-value").inner_text()).strip()
        await expect(page.locator("tr[data-key=app]")).to_contain_text("30 / \u2013")
        await shoot(page, shots, "keys")

        await page.goto(f"{running.url}/ui/activity")
        used = await http.post("/v1/chat/completions", json={"model": "main", "messages": USER}, headers=bearer(secret))
        assert used.status_code == 200
        async with running.client(secret) as client:
            listed = await client.call("models-list_models")
        assert [m["id"] for m in listed["data"]] == ["main", "other"]
        # Both calls appear without reloading the page (the feed polls /ui/live).
        feed = page.locator("#activity tbody")
        with anyio.fail_after(20):
            await expect(feed.locator("tr", has_text="models-list_models")).to_contain_text("app", timeout=15000)
            await expect(feed.locator("tr", has_text="main").first).to_contain_text("app")
        await shoot(page, shots, "activity")

        await page.goto(f"{running.url}/ui/usage")
        await expect(page.locator("#usage-key")).to_contain_text("app")
        await shoot(page, shots, "usage")

        await page.goto(f"{running.url}/ui/models")
        await expect(page.locator("main")).to_contain_text("local/fake-model")
        await shoot(page, shots, "models")

        await page.goto(f"{running.url}/ui/tools?q=list")
        await page.click("text=models-list_models")
        await page.click("button:has-text('Call as master')")
        await expect(page.locator("#result")).to_contain_text('"main"')
        await shoot(page, shots, "tool")

        await page.goto(f"{running.url}/ui/keys")
        await page.click("tr[data-key=app] button[value=revoke]")
        await expect(page.locator("tr[data-key=app]")).to_contain_text("revoked")
        refused = await http.post(
            "/v1/chat/completions", json={"model": "main", "messages": USER}, headers=bearer(secret)
        )
        assert refused.status_code == 401

        phone = await (
            await chromium.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
        ).new_page()
        await sign_in(phone, running.url, MASTER_KEY)
        await expect(phone.locator("#upstreams")).to_be_visible()
        await shoot(phone, shots, "overview-phone-dark")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing overflows a phone's width (wide tables scroll inside their box)
