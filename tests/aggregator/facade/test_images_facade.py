"""Image generation through the hub: the `images-generate` tool and `/v1/images/generations` (real `openai`
package), over fake backends speaking the OpenAI images and Automatic1111 txt2img protocols."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import anyio
import httpx2
import openai
import pytest
from PIL import Image

from servers.kit import ToolContext
from tests.aggregator.facade.api_faces import IMAGES_ONLY_KEY, MASTER_KEY, FacesHub, faces_hub, policy_backend
from tests.support.image_backends import FakeImageBackend, fake_image_backend

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def _backend(anyio_backend: str) -> AsyncIterator[FakeImageBackend]:
    async with fake_image_backend() as fake:
        yield fake


@pytest.fixture(scope="module")
async def _hub(_backend: FakeImageBackend, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FacesHub]:
    images = {
        "backends": {
            "sdcpp": {"type": "openai", "base_url": _backend.url, "model": "sd-turbo"},
            "forge": {"type": "a1111", "base_url": _backend.url},
        },
        "busy_wait_seconds": 0,
    }
    async with policy_backend() as llm, faces_hub(tmp_path_factory.mktemp("faces"), llm, images=images) as hub:
        yield hub


@pytest.fixture
def backend(_backend: FakeImageBackend) -> FakeImageBackend:
    _backend.reset()
    return _backend


@pytest.fixture
async def client(_hub: FacesHub, backend: FakeImageBackend) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=_hub.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20) as sdk:
        yield sdk


async def fetch_png(url: str) -> Image.Image:
    async with httpx2.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(response.content))


async def test_images_generate_returns_a_url_whose_bytes_are_a_png(
    client: openai.AsyncOpenAI, backend: FakeImageBackend
) -> None:
    result = await client.images.generate(prompt="a red square", size="256x256", n=2, model="sdcpp")
    assert result.data is not None and len(result.data) == 2
    image = await fetch_png(result.data[0].url or "")
    assert image.size == (256, 256)
    path, sent = backend.requests[-1]
    assert path == "/v1/images/generations" and sent["model"] == "sd-turbo" and sent["response_format"] == "b64_json"


async def test_an_automatic1111_backend_gets_txt2img_with_seed_steps_and_negative_prompt(
    client: openai.AsyncOpenAI, backend: FakeImageBackend
) -> None:
    result = await client.images.generate(
        prompt="a blue square",
        size="128x192",
        model="forge",
        extra_body={"seed": 7, "steps": 4, "negative_prompt": "text"},
    )
    assert result.data is not None
    assert (await fetch_png(result.data[0].url or "")).size == (128, 192)
    path, sent = backend.requests[-1]
    assert path == "/sdapi/v1/txt2img"
    assert (sent["seed"], sent["steps"], sent["negative_prompt"]) == (7, 4, "text")


async def test_b64_json_returns_the_png_bytes_inline(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(prompt="x", size="64x64", response_format="b64_json")
    assert result.data is not None
    assert base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")


async def test_the_tool_answers_with_urls_and_resource_links_never_image_data(_hub: FacesHub) -> None:
    domain = _hub.domains["images"]
    result = await domain.call("generate", {"prompt": "x", "size": "64x64"}, ToolContext("generate", request_id="t1"))
    assert not result.get("isError")
    kinds = [block["type"] for block in result["content"]]
    assert "resource_link" in kinds and "image" not in kinds
    assert "base64" not in str(result["structuredContent"]).lower()


async def test_a_busy_backend_is_a_503_with_retry_after(
    _hub: FacesHub, client: openai.AsyncOpenAI, backend: FakeImageBackend
) -> None:
    backend.gate = gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.images.generate(prompt="first", size="64x64"))
        with anyio.fail_after(10):
            await backend.waiting.wait()
        with pytest.raises(openai.InternalServerError) as caught:
            await client.images.generate(prompt="second", size="64x64")
        gate.set()
    assert caught.value.status_code == 503 and int(caught.value.response.headers["retry-after"]) >= 1


async def test_b64_json_needs_storage_read_access(_hub: FacesHub) -> None:
    async with openai.AsyncOpenAI(base_url=_hub.url + "/v1", api_key=IMAGES_ONLY_KEY, max_retries=0) as scoped:
        urls = await scoped.images.generate(prompt="x", size="64x64")
        assert urls.data is not None and urls.data[0].url
        with pytest.raises(openai.NotFoundError):
            await scoped.images.generate(prompt="x", size="64x64", response_format="b64_json")


async def test_an_unknown_backend_is_a_404_naming_the_model(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.images.generate(prompt="x", model="dall-e-9")
    assert caught.value.param == "model"
