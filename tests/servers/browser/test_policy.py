"""The navigation policy: refused schemes and addresses, allow-lists, and the proxy enforcing it on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servers.browser.config import NavigationConfig
from servers.browser.policy import NavigationPolicy, PolicyRefusal
from servers.kit import Domain, ToolError
from tests.support.browser_site import Site, call, error_of, ok, running_browser

pytestmark = pytest.mark.anyio


@pytest.fixture
async def default_policy_browser(tmp_path: Path) -> AsyncIterator[Domain]:
    """A browser server with the shipped defaults: nothing allow-listed."""
    async with running_browser(tmp_path, {"navigation": {}}, with_storage=False) as domain:
        yield domain


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "forbidden", "link-local"),
        ("file:///etc/passwd", "forbidden", "scheme file:"),
        ("http://127.0.0.1:9/", "forbidden", "loopback"),
        ("http://localhost/", "forbidden", "loopback"),
        ("http://10.1.2.3/", "forbidden", "private"),
        ("http://[::1]/", "forbidden", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "forbidden", "link-local"),
        ("javascript:alert(1)", "forbidden", "scheme javascript:"),
        ("chrome://settings", "forbidden", "scheme chrome:"),
        ("http://nonexistent.invalid/", "upstream_error", "cannot resolve"),
    ],
)
async def test_the_default_policy_refuses_non_public_destinations(url: str, code: str, words: str) -> None:
    policy = NavigationPolicy(NavigationConfig())
    with pytest.raises(ToolError) as caught:
        await policy.check_url(url)
    assert caught.value.code == code and caught.value.field == "url"
    assert words in caught.value.message


async def test_allow_list_takes_names_addresses_and_ranges_and_block_list_wins() -> None:
    policy = NavigationPolicy(NavigationConfig(allow_hosts=["localhost", "10.0.0.0/8"], block_hosts=["10.9.9.9"]))
    await policy.check_url("http://localhost:8080/")
    await policy.check_url("http://10.1.2.3/")
    with pytest.raises(PolicyRefusal, match="blocked"):
        await policy.permitted_addresses("10.9.9.9", 80)
    with pytest.raises(PolicyRefusal, match="private"):
        await policy.permitted_addresses("192.168.1.1", 80)


async def test_public_addresses_pass_without_any_allow_list() -> None:
    assert [str(a) for a in await NavigationPolicy(NavigationConfig()).permitted_addresses("93.184.215.14", 443)] == [
        "93.184.215.14"
    ]


async def test_goto_refuses_metadata_files_and_unlisted_loopback(default_policy_browser: Domain, site: Site) -> None:
    for url in ("http://169.254.169.254/", "file:///etc/passwd", f"{site.url}/form"):
        refused = error_of(await call(default_policy_browser, "goto", {"url": url}))
        assert refused["code"] == "forbidden" and refused["field"] == "url", url
    # Refused before any session opened: no browser was launched for them.
    assert default_policy_browser.service.pool.launches == 0


async def test_a_redirect_to_a_forbidden_address_is_blocked(browser: Domain, site: Site, session: str) -> None:
    target = f"{site.secret_url}/latest/meta-data"
    refused = error_of(await call(browser, "goto", {"session": session, "url": f"{site.url}/redirect?to={target}"}))

    assert refused["code"] == "forbidden" and "127.0.0.2" in refused["message"]
    assert site.secret_hits == []
    text = (await ok(browser, "get_text", {"session": session}))["text"]
    assert "s3cr3t" not in text


async def test_a_subresource_from_a_forbidden_address_is_blocked(browser: Domain, site: Site, session: str) -> None:
    page = await ok(browser, "goto", {"session": session, "url": f"{site.url}/subresource"})
    assert page["title"] == "Images"

    failed = await ok(browser, "network_requests", {"session": session, "failed_only": True})
    assert [(r["url"], r.get("blocked")) for r in failed["requests"]] == [(f"{site.secret_url}/pixel.png", True)]
    assert site.secret_hits == []


async def test_page_scripts_cannot_reach_forbidden_addresses(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    probe = (
        "async (url) => { try { const r = await fetch(url, {mode: 'no-cors'}); return 'status ' + r.status; }"
        " catch (e) { return 'failed'; } }"
    )
    await ok(browser, "eval_js", {"session": session, "expression": probe, "arg": f"{site.secret_url}/x"})
    assert site.secret_hits == []
