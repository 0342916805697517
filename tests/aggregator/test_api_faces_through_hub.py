"""The new API faces inside the real hub: its keys, scopes, dispatch and data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.aggregator.facade.api_faces import PolicyBackend, Reply, policy_backend, tool_outputs
from tests.aggregator.hubkit import MASTER_KEY, running_hub
from tests.support.image_backends import fake_image_backend

pytestmark = pytest.mark.anyio

READER: dict[str, Any] = {"name": "reader", "key": "reader-key-0123456789", "tools": ["models-*"]}
HUB_STORAGE = {"type": "mcp", "server_label": "toolmux", "allowed_tools": ["storage-*"], "require_approval": "never"}


def models_section(fake: PolicyBackend) -> dict[str, Any]:
    return {
        "models": {
            "config": {
                "backends": {"local": {"type": "openai", "base_url": fake.url}},
                "aliases": {"main": {"deployments": [{"backend": "local", "model": "fake-model"}]}},
                "health": {"enabled": False},
            }
        }
    }


def put_then_answer(body: dict[str, Any]) -> Reply:
    outputs = tool_outputs(body)
    if not outputs:
        return Reply(call=("storage-put_object", {"bucket": "default", "key": "hub/note.txt", "text": "hi"}))
    return Reply(text="done: " + outputs[-1][:80])


async def test_the_hub_runs_its_tools_for_a_responses_request_with_the_callers_scopes(tmp_path: Path) -> None:
    async with (
        policy_backend() as fake,
        running_hub(tmp_path, models_section(fake), builtins=["models", "storage"], auth={"keys": [READER]}) as hub,
    ):
        fake.policy = put_then_answer
        async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0) as master:
            answer = await master.responses.create(model="main", input="save", tools=[HUB_STORAGE])  # type: ignore[list-item]
            again = await master.responses.retrieve(answer.id)
        async with openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=READER["key"], max_retries=0) as reader:
            refused = await reader.responses.create(model="main", input="save", tools=[HUB_STORAGE])  # type: ignore[list-item]
        async with hub.client() as client:
            stored = await client.call("storage-get_object", bucket="default", key="hub/note.txt")
    assert [i.type for i in answer.output] == ["mcp_list_tools", "mcp_call", "message"] and again.id == answer.id
    assert stored["text"] == "hi"
    assert (tmp_path / "data" / "responses.sqlite3").exists()
    called = next(i for i in refused.output if i.type == "mcp_call")
    assert called.error is not None and called.error.startswith("not_found")  # type: ignore[union-attr]


async def test_anthropic_clients_reach_the_aliases_with_x_api_key(tmp_path: Path) -> None:
    async with (
        policy_backend() as fake,
        running_hub(tmp_path, models_section(fake), builtins=["models"]) as hub,
        anthropic.AsyncAnthropic(base_url=hub.url, api_key=MASTER_KEY, max_retries=0) as client,
    ):
        message = await client.messages.create(
            model="main", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        with pytest.raises(anthropic.AuthenticationError):
            await client.with_options(api_key="wrong").messages.create(
                model="main", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
            )
    assert message.content[0].text == "Hello from the fake backend"  # type: ignore[union-attr]


async def test_images_built_in_draws_stores_and_serves_a_png_through_the_hub(tmp_path: Path) -> None:
    async with fake_image_backend() as backend:
        servers = {"images": {"config": {"backends": {"sd": {"type": "a1111", "base_url": backend.url}}}}}
        async with (
            running_hub(tmp_path, servers, builtins=["storage", "images"]) as hub,
            openai.AsyncOpenAI(base_url=hub.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client,
            httpx2.AsyncClient() as http,
        ):
            result = await client.images.generate(prompt="a square", size="96x64")
            assert result.data is not None and (result.data[0].url or "").startswith(hub.url + "/storage/")
            fetched = await http.get(result.data[0].url or "")
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")
