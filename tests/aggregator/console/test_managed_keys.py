"""Keys as data: created, rotated and revoked through /admin/keys and `toolmux keys`, honoured at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.aggregator.console.support import MASTER, USER, bearer, console_hub
from tests.aggregator.hubkit import MASTER_KEY, PROJECT_ROOT

pytestmark = pytest.mark.anyio

SCOPED_KEY = "scoped-key-0123456789"
SCOPED = {"name": "scoped", "key": SCOPED_KEY, "tools": ["*"]}


async def create(http: httpx2.AsyncClient, **spec: Any) -> str:
    response = await http.post("/admin/keys", json=spec, headers=MASTER)
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


async def test_a_created_key_works_at_once_within_its_tool_globs_and_its_secret_is_never_shown_again(
    tmp_path: Path,
) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        secret = await create(http, name="lister", tools=["models-list_models"])
        async with running.client(secret) as client:
            assert [t.name for t in await client.list_tools()] == ["models-list_models"]
        listed = await http.get("/admin/keys", headers=MASTER)
    entry = next(k for k in listed.json()["keys"] if k["name"] == "lister")
    assert entry["state"] == "active" and entry["tools"] == ["models-list_models"]
    assert secret not in listed.text and entry["prefix"] == secret[: len(entry["prefix"])]


async def test_only_the_master_key_or_an_admin_scope_manages_keys(tmp_path: Path) -> None:
    async with (
        console_hub(tmp_path, auth={"keys": [SCOPED]}) as (running, _fake),
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        admin = await create(http, name="ops", tools=[], scopes=["admin"])
        anonymous = await http.get("/admin/keys")
        scoped = await http.post("/admin/keys", json={"name": "x"}, headers=bearer(SCOPED_KEY))
        by_admin = await http.get("/admin/keys", headers=bearer(admin))
        config_key = await http.post("/admin/keys", json={"name": "scoped"}, headers=MASTER)
        bad = await http.post("/admin/keys", json={"name": "y", "rpm": -3}, headers=MASTER)
    assert anonymous.status_code == 401 and scoped.status_code == 403
    assert scoped.json()["error"]["code"] == "forbidden"
    assert by_admin.status_code == 200
    assert {k["name"]: k["source"] for k in by_admin.json()["keys"]} == {"scoped": "config", "ops": "store"}
    assert config_key.status_code == 400 and config_key.json()["error"]["field"] == "name"
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "rpm"


async def test_rotating_a_key_stops_the_old_secret_at_once(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        old = await create(http, name="ci")
        rotated = await http.post("/admin/keys/ci/rotate", headers=MASTER)
        new = rotated.json()["secret"]
        refused = await http.get("/v1/models", headers=bearer(old))
        accepted = await http.get("/v1/models", headers=bearer(new))
        missing = await http.post("/admin/keys/nobody/rotate", headers=MASTER)
    assert refused.status_code == 401 and accepted.status_code == 200
    assert missing.status_code == 404


async def test_revoking_a_key_refuses_it_and_every_presigned_url_it_minted_at_once(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        secret = await create(http, name="writer", tools=["storage-*"])
        assert (await http.put("/storage/default/r.txt", content=b"report", headers=bearer(secret))).status_code == 200
        minted = await http.post("/storage/presign/default/r.txt", params={"expires": "600"}, headers=bearer(secret))
        async with running.client(secret) as client:
            by_tool = await client.call("storage-presign_url", bucket="default", key="r.txt")
        urls = [minted.json()["url"], by_tool["url"]]
        assert [(await http.get(u)).content for u in urls] == [b"report", b"report"]
        revoked = await http.delete("/admin/keys/writer", headers=MASTER)
        after = [await http.get(u) for u in urls]
        refused = await http.get("/storage/default/r.txt", headers=bearer(secret))
        again = await http.delete("/admin/keys/writer", headers=MASTER)
    assert revoked.status_code == 200
    assert [r.status_code for r in after] == [403, 403]
    assert refused.status_code == 401 and again.status_code == 404


async def test_a_keys_model_allow_list_rpm_and_budget_apply_on_chat_completions(tmp_path: Path) -> None:
    async with console_hub(tmp_path) as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        limited = await create(http, name="app", tools=["models-*"], models=["main"], rpm=2)
        budgeted = await create(http, name="thrifty", tools=["models-*"], budget=0.00001)
        chat = {"model": "main", "messages": USER, "cache": "no-store"}
        first = await http.post("/v1/chat/completions", json=chat, headers=bearer(limited))
        other = await http.post("/v1/chat/completions", json={**chat, "model": "other"}, headers=bearer(limited))
        second = await http.post("/v1/chat/completions", json=chat, headers=bearer(limited))
        third = await http.post("/v1/chat/completions", json=chat, headers=bearer(limited))
        spends = await http.post("/v1/chat/completions", json=chat, headers=bearer(budgeted))
        spent = await http.post("/v1/chat/completions", json=chat, headers=bearer(budgeted))
    assert first.status_code == second.status_code == 200
    assert other.status_code == 403 and other.json()["error"]["param"] == "model"
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    assert spends.status_code == 200 and spent.status_code == 402


def toolmux(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TOOLMUX_MASTER_KEY": MASTER_KEY}
    command = [sys.executable, "-m", "aggregator", "keys", *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_the_keys_command_manages_the_data_dirs_store_and_a_running_hubs_keys(tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    created = toolmux("create", "batch", "--tools", "demo-*,models-*", "--rpm", "10", "--json", data_dir=offline)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secret"]
    listed = toolmux("list", "--json", data_dir=offline)
    assert [k["name"] for k in json.loads(listed.stdout)["keys"]] == ["batch"] and secret not in listed.stdout
    assert toolmux("revoke", "batch", data_dir=offline).returncode == 0
    assert toolmux("revoke", "batch", data_dir=offline).returncode == 1
    bad = toolmux("create", "x", "--scopes", "root", data_dir=offline)
    assert bad.returncode == 2 and "scopes" in bad.stderr

    async with console_hub(tmp_path / "hub") as (running, _fake), httpx2.AsyncClient(base_url=running.url) as http:
        made = await anyio_run(toolmux, "create", "remote", "--url", running.url, "--json", data_dir=offline)
        remote_secret = json.loads(made.stdout)["secret"]
        assert (await http.get("/v1/models", headers=bearer(remote_secret))).status_code == 200
        await anyio_run(toolmux, "revoke", "remote", "--url", running.url, data_dir=offline)
        assert (await http.get("/v1/models", headers=bearer(remote_secret))).status_code == 401


async def anyio_run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import anyio

    result = await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    assert result.returncode == 0, result.stderr
    return result
