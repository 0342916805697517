"""A scripted OpenAI upstream for agent tests: each answer is decided from the conversation it is sent.

It is the models tests' `FakeBackend` (same wire protocol, same /v1/models), except that a POST
to /chat/completions is answered by a *policy*: a function of the request body returning the
next assistant turn (text, or tool calls). Deciding from the conversation instead of from a
queue keeps concurrent runs independent, so tests can run several agents against one fake.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import pytest

from tests.servers.models.fakes import COMPLETION_TOKENS, PROMPT_TOKENS, FakeBackend, SeenRequest
from tests.support.asgi import serve_asgi


@dataclass
class Turn:
    """One assistant answer: text, or tool calls `(name, arguments)`."""

    content: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


Policy = Callable[[dict[str, Any]], "Turn | Awaitable[Turn]"]


def since_last_user(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages after the last user message (this run's work so far)."""
    messages = body["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[last + 1 :]


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in since_last_user(body) if m["role"] == "tool"]


def prompt_of(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def count_lines_policy(body: dict[str, Any]) -> Turn:
    """Write a file, count its lines with `wc -l`, answer with what wc printed."""
    results = tool_results(body)
    if not results:
        return Turn(calls=[("write_file", {"path": "notes/list.txt", "content": "alpha\nbeta\ngamma\n"})])
    if len(results) == 1:
        return Turn(calls=[("run_shell", {"command": "wc -l notes/list.txt"})])
    counted = results[-1].split("\n", 1)[1].strip()
    return Turn(content=f"wc says: {counted}")


@dataclass
class ScriptedOpenAI(FakeBackend):
    policy: Policy = count_lines_policy
    ids: Any = field(default_factory=itertools.count)
    in_flight: int = 0

    def reset(self) -> None:
        super().reset()
        self.policy = count_lines_policy
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await super().__call__(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = orjson.loads(raw)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(SeenRequest("POST", scope["path"], headers, body))
        self.in_flight += 1
        try:
            decided = self.policy(body)
            turn = await decided if inspect.isawaitable(decided) else decided
        finally:
            self.in_flight -= 1
        message_out: dict[str, Any] = {"role": "assistant", "content": turn.content}
        if turn.calls:
            message_out["tool_calls"] = [
                {
                    "id": f"call_{next(self.ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
                }
                for name, arguments in turn.calls
            ]
        answer = {
            "id": f"cmpl-{next(self.ids)}",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "message": message_out, "finish_reason": "tool_calls" if turn.calls else "stop"}],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


class Barrier:
    """Holds each arriving request until `parties` requests are waiting together."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.open = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.open.set()
        await self.open.wait()


@asynccontextmanager
async def scripted_openai() -> AsyncIterator[ScriptedOpenAI]:
    fake = ScriptedOpenAI("openai")
    async with serve_asgi(fake, lifespan="off") as url:
        fake.url = url + "/v1"
        try:
            yield fake
        finally:
            fake.release.set()


@pytest.fixture(scope="module", name="_scripted")
async def scripted_openai_per_module(anyio_backend: str) -> AsyncIterator[ScriptedOpenAI]:
    """One scripted fake per test module (starting servers costs); tests reset it before use.

    A fixture shared by the workspaces server tests and the workspaces facade tests: their
    conftests import it."""
    async with scripted_openai() as fake:
        yield fake
