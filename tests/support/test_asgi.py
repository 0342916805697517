from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio


async def test_serve_asgi_answers_real_http_on_loopback() -> None:
    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("hello"))])
    async with serve_asgi(app) as url, httpx2.AsyncClient() as client:
        assert url.startswith("http://127.0.0.1:")
        response = await client.get(url + "/")
        assert response.text == "hello"
