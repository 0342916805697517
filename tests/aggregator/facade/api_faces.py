"""A hub of the LLM faces for SDK tests: models (over a fake backend) + storage, every /v1 face mounted.

`PolicyBackend` is the models tests' fake OpenAI backend (the real Chat Completions wire
protocol, streamed or not) whose next answer is decided from the conversation it is sent: a
policy returns the reply text or one tool call. Deciding from the request, not from a queue,
keeps a test's rounds readable: "no tool result yet -> call the tool; else answer".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette

from aggregator.facade import images as images_facade
from aggregator.facade import messages as messages_facade
from aggregator.facade import ollama as ollama_facade
from aggregator.facade import openai as openai_facade
from aggregator.facade import responses as responses_facade
from aggregator.facade import storage as storage_facade
from aggregator.facade.base import DirectFacadeContext
from aggregator.principal import Principal
from servers.images.server import create as create_images
from servers.kit import Domain, ServerSettings
from servers.models.server import create as create_models
from servers.storage.server import create as create_storage
from tests.servers.models.fakes import Exchange, FakeBackend, SeenRequest
from tests.support.asgi import bound_socket, serve_asgi
from tests.support.hub import DomainsHubCaller

MASTER_KEY = "test-master"
MODELS_ONLY_KEY = "models-only-key"
IMAGES_ONLY_KEY = "images-only-key"


@dataclass
class Reply:
    text: str | None = None
    call: tuple[str, dict[str, Any]] | None = None


def tool_outputs(body: dict[str, Any]) -> list[str]:
    """The tool messages after the last user message."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return [m["content"] for m in messages[last_user + 1 :] if m["role"] == "tool"]


def text_policy(body: dict[str, Any]) -> Reply:
    return Reply(text="Hello from the fake backend")


@dataclass
class PolicyBackend(FakeBackend):
    policy: Callable[[dict[str, Any]], Reply] = text_policy

    def reset(self) -> None:
        super().reset()
        self.policy = text_policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await super().__call__(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = orjson.loads(raw)
        self.requests.append(SeenRequest("POST", scope["path"], {}, body))
        reply = self.policy(body)
        self.reply = reply.text or ""
        self.tool_call = {"name": reply.call[0], "arguments": reply.call[1]} if reply.call else None
        await Exchange(self, send, body, None).handle("POST", scope["path"])


@asynccontextmanager
async def policy_backend() -> AsyncIterator[PolicyBackend]:
    fake = PolicyBackend("openai")
    async with serve_asgi(fake, lifespan="off") as url:
        fake.url = url + "/v1"
        try:
            yield fake
        finally:
            fake.release.set()


@dataclass
class FacesHub:
    url: str
    fake: FakeBackend
    domains: dict[str, Domain] = field(default_factory=dict)


def models_config(fake: FakeBackend) -> dict[str, Any]:
    return {
        "backends": {"local": {"type": fake.protocol, "base_url": fake.url, "read_timeout": 5.0}},
        "aliases": {
            "main": {"deployments": [{"backend": "local", "model": "fake-model"}]},
            "embed": {"deployments": [{"backend": "local", "model": "embed-model"}], "embedding": True},
        },
        "retries": {"max_retries": 0},
    }


@asynccontextmanager
async def faces_hub(
    tmp_path: Path, fake: FakeBackend, *, images: dict[str, Any] | None = None
) -> AsyncIterator[FacesHub]:
    """Models, storage (with its HTTP face) and, given `images` config, the images server, behind every face."""
    sock = bound_socket()  # bound first: storage's URLs must name the address the hub will answer on
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    models = create_models(ServerSettings(name="models", config=models_config(fake), data_dir=tmp_path / "models"))
    storage = create_storage(
        ServerSettings(name="storage", config={}, data_dir=tmp_path / "storage", public_url=public_url)
    )
    domains = {"models": models, "storage": storage}
    if images is not None:
        caller = DomainsHubCaller({"storage": storage})
        domains["images"] = create_images(
            ServerSettings(name="images", config=images, data_dir=tmp_path / "images", hub=caller)
        )
    keys = {
        MODELS_ONLY_KEY: Principal(name="models-only", allowed_tools=("models-*",)),
        IMAGES_ONLY_KEY: Principal(name="images-only", allowed_tools=("images-*",)),
    }
    ctx = DirectFacadeContext(
        domains, master_key=MASTER_KEY, keys=keys, data_dir=tmp_path / "hub", public_url=public_url
    )
    routes = [
        *openai_facade.routes(ctx),
        *responses_facade.routes(ctx),
        *messages_facade.routes(ctx),
        *ollama_facade.routes(ctx),
        *images_facade.routes(ctx),
        *storage_facade.routes(ctx),
    ]
    try:
        async with serve_asgi(Starlette(routes=routes), lifespan="off", sock=sock) as url:
            yield FacesHub(url, fake, domains)
    finally:
        await models.service.aclose()
