"""The routes Ollama clients probe (`/api/show`, `/api/ps`, `/api/version`), driven by the real `ollama` package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import ollama
import pytest

from tests.aggregator.facade.api_faces import MASTER_KEY, FacesHub, faces_hub, policy_backend

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FacesHub]:
    async with policy_backend() as fake, faces_hub(tmp_path_factory.mktemp("faces"), fake) as running:
        yield running


@pytest.fixture
def client(hub: FacesHub) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=hub.url, headers={"Authorization": f"Bearer {MASTER_KEY}"})


async def test_show_describes_an_alias_with_its_capabilities(client: ollama.AsyncClient) -> None:
    shown = await client.show("main")
    assert shown.capabilities == ["completion", "tools"] and shown.modelfile
    embed = await client.show("embed:latest")
    assert embed.capabilities == ["embedding"]


async def test_show_of_an_unknown_model_is_an_ollama_404(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.show("nope")
    assert caught.value.status_code == 404


async def test_ps_lists_the_aliases_as_running_models(client: ollama.AsyncClient) -> None:
    running = await client.ps()
    assert [m.model for m in running.models] == ["main", "embed"]
    assert all(m.expires_at is not None for m in running.models)


async def test_version_answers_without_a_key(hub: FacesHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(hub.url + "/api/version")
    assert response.status_code == 200 and response.json()["version"]
