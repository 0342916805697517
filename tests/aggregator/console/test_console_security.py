"""The console's guards: admin keys only, a CSRF token on every form, a rate-limited sign-in."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from tests.aggregator.console.support import MASTER, console_hub
from tests.aggregator.hubkit import MASTER_KEY

pytestmark = pytest.mark.anyio

SCOPED_KEY = "scoped-key-0123456789"
SCOPED = {"name": "scoped", "key": SCOPED_KEY, "tools": ["*"], "scopes": ["metrics"]}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


async def sign_in(http: httpx2.AsyncClient, key: str) -> httpx2.Response:
    form = await http.get("/ui/login")
    return await http.post("/ui/login", data={"csrf": csrf_of(form.text), "key": key})


async def test_the_console_refuses_a_non_admin_key_and_slows_down_guessing(tmp_path: Path) -> None:
    async with (
        console_hub(tmp_path, auth={"keys": [SCOPED]}) as (running, _fake),
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        refused = await sign_in(http, SCOPED_KEY)
        page = await http.get("/ui/overview")
        live = await http.get("/ui/live")
        statuses = [(await sign_in(http, f"wrong-key-{i:02d}-0123456789")).status_code for i in range(5)]
        master_too_soon = await sign_in(http, MASTER_KEY)
    assert refused.status_code == 403 and "toolmux_console=" not in refused.headers.get("set-cookie", "")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    assert live.status_code == 401
    assert statuses[:4] == [401, 401, 401, 401] and statuses[4] == 429
    assert master_too_soon.status_code == 429 and int(master_too_soon.headers["retry-after"]) >= 1


async def test_every_console_form_needs_the_sessions_csrf_token(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        no_login_token = await http.post("/ui/login", data={"key": MASTER_KEY})
        signed = await sign_in(http, MASTER_KEY)
        cookie = signed.headers["set-cookie"]
        token = csrf_of((await http.get("/ui/keys")).text)
        create = {"action": "create", "name": "forged", "tools": "*"}
        missing = await http.post("/ui/keys", data=create)
        wrong = await http.post("/ui/keys", data={**create, "csrf": "not-the-token"})
        tool = await http.post("/ui/tools/models-list_models", data={"arguments": "{}"})
        after_forgery = await http.get("/admin/keys", headers=MASTER)
        accepted = await http.post("/ui/keys", data={**create, "csrf": token})
    assert no_login_token.status_code == 403 and no_login_token.json()["error"]["field"] == "csrf"
    assert signed.status_code == 303
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert missing.status_code == wrong.status_code == tool.status_code == 403
    assert "forged" not in after_forgery.text
    assert accepted.status_code == 200 and 'id="secret-value"' in accepted.text


async def test_revoking_an_admin_key_ends_its_console_sessions_at_once(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        made = await http.post("/admin/keys", json={"name": "ops", "tools": [], "scopes": ["admin"]}, headers=MASTER)
        assert (await sign_in(http, made.json()["secret"])).status_code == 303
        before = await http.get("/ui/keys")
        await http.delete("/admin/keys/ops", headers=MASTER)
        after = await http.get("/ui/keys")
    assert before.status_code == 200 and after.status_code == 303


async def test_console_pages_load_nothing_from_another_host(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        await sign_in(http, MASTER_KEY)
        pages = [await http.get(f"/ui/{p}") for p in ("overview", "tools", "models", "keys", "usage", "activity")]
    for page in pages:
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', page.text)


async def test_the_hubs_own_address_leads_a_person_to_the_console_sign_in(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        root = await http.get("/")
        login = await http.get(root.headers["location"])
    assert root.status_code == 303 and root.headers["location"] == "/ui/login"
    assert login.status_code == 200 and 'name="csrf"' in login.text
