"""The facade kit: bodies, content types, limits and error rendering, once for every endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.responses import Response

from aggregator.config import FacadeLimit, FacadesConfig
from aggregator.facade.base import DirectFacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_anthropic, render_ollama, render_openai, stdlib_loads
from aggregator.principal import Principal
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

MASTER = {"authorization": "Bearer test-master"}


@endpoint(limit="forecast", body="json")
async def echo(call: Call) -> Response:
    return call.json_response(await call.json(loads=stdlib_loads))


@endpoint(limit="llm", body="json", render=render_openai)
async def echo_openai(call: Call) -> Response:
    return call.json_response(await call.json())


@endpoint(limit="llm", render=render_ollama)
async def boom(call: Call) -> Response:
    raise RuntimeError("secret internals")


@endpoint(limit="llm", auth="admin", render=render_anthropic)
async def admin_only(call: Call) -> Response:
    return call.json_response({"who": call.caller.name})


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    facades = FacadesConfig(forecast=FacadeLimit(timeout=5, max_body_bytes=8192))
    keys = {"user-key": Principal(name="user")}
    ctx = DirectFacadeContext({}, keys=keys, facades=facades)
    table = [("POST", "/echo", echo), ("POST", "/v1/echo", echo_openai), ("GET", "/boom", boom)]
    app = Starlette(routes=mount(ctx, [*table, ("GET", "/admin", admin_only)]))
    async with serve_asgi(app) as url, httpx2.AsyncClient(base_url=url, headers=MASTER) as client:
        yield client


async def test_json_is_accepted_with_or_without_a_declared_json_type(http: httpx2.AsyncClient) -> None:
    typed = await http.post("/echo", json={"a": 1})
    vendor = await http.post("/echo", content=b'{"a": 2}', headers={"content-type": "application/vnd.x+json"})
    bare = await http.post("/echo", content=b'{"a": 3}')
    assert [r.json() for r in (typed, vendor, bare)] == [{"a": 1}, {"a": 2}, {"a": 3}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_declared_as_anything_but_json_is_refused_with_415(
    http: httpx2.AsyncClient, content_type: str
) -> None:
    response = await http.post("/echo", content=b'{"a": 1}', headers={"content-type": content_type})
    assert response.status_code == 415
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unsupported_media_type", "content-type")
    assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("route", ["/echo", "/v1/echo"])
async def test_json_nested_thousands_deep_is_a_400_not_a_500(http: httpx2.AsyncClient, route: str) -> None:
    deep = b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    nested_200 = json.dumps({"a": json.loads("[" * 200 + "]" * 200)}).encode()
    for body in (deep, nested_200):
        response = await http.post(route, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text


async def test_a_body_over_the_configured_limit_is_413(http: httpx2.AsyncClient) -> None:
    response = await http.post("/echo", json={"a": "x" * 9000})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


async def test_an_unexpected_failure_is_an_internal_error_in_the_faces_shape_without_internals(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.get("/boom")
    assert response.status_code == 500
    assert set(response.json()) == {"error"} and "secret" not in response.text
    assert response.headers["x-request-id"] in response.json()["error"]


async def test_admin_routes_refuse_other_keys_in_anthropics_shape(http: httpx2.AsyncClient) -> None:
    refused = await http.get("/admin", headers={"authorization": "Bearer user-key"})
    missing = await http.get("/admin", headers={"authorization": ""})
    allowed = await http.get("/admin")
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert missing.status_code == 401 and missing.json()["type"] == "error"
    assert allowed.json() == {"who": "master"}
