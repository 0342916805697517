"""Every error the hub's HTTP app answers is JSON with the request id; cross-site requests are refused."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import httpx2
import pytest
from starlette.applications import Starlette

from aggregator.facade import audio, browser, forecast, workspaces
from aggregator.facade.base import DirectFacadeContext
from tests.aggregator.hubkit import MASTER_KEY, running_hub
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

CHAT = {"model": "main", "messages": [{"role": "user", "content": "hi"}]}


def assert_plain_error(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.headers.get_list("x-request-id") == [error["request_id"]]


async def test_origin_null_is_refused_like_a_foreign_site_even_with_anonymous_access(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, {}, builtins=["models"], auth={"anonymous": "master"}) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        sandboxed = await http.post("/v1/chat/completions", json=CHAT, headers={"Origin": "null"})
        foreign = await http.get("/v1/models", headers={"Origin": "http://evil.example"})
        local = await http.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert_plain_error(sandboxed, 403, "forbidden")
    assert_plain_error(foreign, 403, "forbidden")
    assert local.status_code == 200


async def test_json_routes_refuse_bodies_sent_as_text_plain_with_415(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, {}, builtins=["models"], auth={"anonymous": "master"}) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        simple = await http.post(
            "/v1/chat/completions", content=b'{"model": "main"}', headers={"content-type": "text/plain"}
        )
        form = await http.post(
            "/api/chat", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert simple.status_code == 415 and simple.json()["error"]["param"] == "content-type"
    assert simple.headers["x-request-id"]
    assert form.status_code == 415 and "application/json" in form.json()["error"]


async def test_health_metrics_and_unknown_routes_answer_json_errors_with_the_request_id(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}) as running, httpx2.AsyncClient(base_url=running.url) as http:
        health = await http.get("/health")
        metrics = await http.get("/metrics", headers={"x-request-id": "mine-1"})
        unknown = await http.get("/v1/nothing-here", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        wrong_method = await http.delete("/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert_plain_error(health, 401, "unauthenticated")
    assert_plain_error(metrics, 401, "unauthenticated")
    assert metrics.json()["error"]["request_id"] == "mine-1"
    assert_plain_error(unknown, 404, "not_found")
    assert_plain_error(wrong_method, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("module", "path"),
    [
        (forecast, "/forecast/v1/univariate/forecast"),
        (browser, "/browser/"),
        (audio, "/v1/audio/speech"),
        (workspaces, "/workspaces/runs"),
    ],
)
async def test_json_nested_thousands_of_levels_deep_is_a_400_on_every_json_route(module: ModuleType, path: str) -> None:
    app = Starlette(routes=module.routes(DirectFacadeContext({})))
    deep = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    headers = {"authorization": "Bearer test-master", "content-type": "application/json"}
    async with serve_asgi(app) as url, httpx2.AsyncClient(base_url=url) as http:
        response = await http.post(path, content=deep, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["x-request-id"] and "error" in response.json()
