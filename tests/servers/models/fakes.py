"""Fake LLM backends on loopback that speak the real wire protocols, with injectable failures.

    async with fake_backend("openai") as fake:      # or "ollama", "anthropic"
        fake.fail(status=500)                       # the next request gets HTTP 500
        fake.fail(status=429, retry_after="0.25")   # then a 429 with Retry-After
        fake.hang()                                 # then no answer at all
        fake.disconnect_mid_stream()                # then half a stream and a dropped connection
        fake.garbage()                              # then malformed JSON
        ... requests after the scripted ones are answered normally

Normal answers: the text `fake.reply` streamed word by word, or `fake.tool_call` as a native tool
call, with usage 10 prompt / 5 completion tokens. `fake.gate`, when set, holds a stream after
its first content chunk until the test opens it (proves chunks reach the client as they come).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from tests.support.asgi import serve_asgi

PROMPT_TOKENS = 10
COMPLETION_TOKENS = 5


@dataclass
class Failure:
    kind: str  # status | hang | disconnect | garbage
    status: int = 500
    retry_after: str | None = None
    body: str = '{"error": {"message": "injected failure"}}'


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeBackend:
    protocol: str
    url: str = ""
    reply: str = "Hello from the fake backend"
    tool_call: dict[str, Any] | None = None  # {"name": ..., "arguments": {...}}
    models: list[str] = field(default_factory=lambda: ["fake-model", "embed-model"])
    legacy_embeddings_only: bool = False  # Ollama < 0.3: no /api/embed
    script: deque[Failure] = field(default_factory=deque)
    requests: list[SeenRequest] = field(default_factory=list)
    gate: anyio.Event | None = None
    release: anyio.Event = field(default_factory=anyio.Event)
    hanging: anyio.Event = field(default_factory=anyio.Event)

    def reset(self) -> None:
        """Back to a fresh backend between tests (a server shared by a module's tests)."""
        self.reply = FakeBackend.reply
        self.tool_call = None
        self.legacy_embeddings_only = False
        self.script.clear()
        self.requests.clear()
        self.release.set()  # frees handlers a previous test left hanging
        self.release = anyio.Event()
        if self.gate is not None:
            self.gate.set()
        self.gate = None

    # --- scripting -----------------------------------------------------------------------------
    def fail(self, status: int = 500, retry_after: str | None = None, body: str | None = None) -> FakeBackend:
        self.script.append(Failure("status", status, retry_after, body or Failure("status").body))
        return self

    def hang(self) -> FakeBackend:
        self.script.append(Failure("hang"))
        return self

    def disconnect_mid_stream(self) -> FakeBackend:
        self.script.append(Failure("disconnect"))
        return self

    def garbage(self) -> FakeBackend:
        self.script.append(Failure("garbage"))
        return self

    @property
    def chat_requests(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.path.endswith(("/chat/completions", "/api/chat", "/messages"))]

    # --- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = orjson.loads(raw) if raw else None
        self.requests.append(SeenRequest(scope["method"], scope["path"], headers, body))
        failure = self.script.popleft() if self.script and scope["method"] == "POST" else None
        await Exchange(self, send, body or {}, failure).handle(scope["method"], scope["path"])


class Exchange:
    """One request to a fake backend."""

    def __init__(self, fake: FakeBackend, send: Any, body: dict[str, Any], failure: Failure | None) -> None:
        self.fake = fake
        self.send = send
        self.body = body
        self.failure = failure

    async def start(self, status: int, content_type: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", content_type.encode()), *(extra or [])]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def json(self, data: Any, status: int = 200) -> None:
        await self.start(status, "application/json")
        await self.write(orjson.dumps(data), more=False)

    async def handle(self, method: str, path: str) -> None:
        failure = self.failure
        if failure is not None and failure.kind == "status":
            extra = [(b"retry-after", failure.retry_after.encode())] if failure.retry_after else []
            await self.start(failure.status, "application/json", extra)
            await self.write(failure.body.encode(), more=False)
            return
        if failure is not None and failure.kind == "hang":
            self.fake.hanging.set()
            await self.fake.release.wait()
            await self.json({"error": "released"}, 503)
            return
        if failure is not None and failure.kind == "garbage":
            await self.start(200, "application/json")
            await self.write(b'{"choices": [ this is not json', more=False)
            return
        route = getattr(self, f"{self.fake.protocol}_{method.lower()}", None)
        if route is None:
            await self.json({"error": "not found"}, 404)
            return
        await route(path)

    # --- shared answer pieces -----------------------------------------------------------------
    def words(self) -> list[str]:
        parts = self.fake.reply.split(" ")
        return [p if i == 0 else " " + p for i, p in enumerate(parts)]

    async def stream_lines(self, lines: list[bytes], content_type: str) -> None:
        """Write stream lines, pausing at the gate after the first content line; maybe drop mid-way."""
        await self.start(200, content_type)
        for i, line in enumerate(lines):
            await self.write(line)
            if i == 1 and self.failure is not None and self.failure.kind == "disconnect":
                raise ConnectionAbortedError("fake backend drops the connection mid-stream")
            if i == 1 and self.fake.gate is not None:
                await self.fake.gate.wait()
        await self.write(b"", more=False)

    def embedding(self, text: str, index: int) -> list[float]:
        return [float(len(text)), float(index), 0.5]

    # --- OpenAI ---------------------------------------------------------------------------------
    async def openai_get(self, path: str) -> None:
        if path.endswith("/models"):
            await self.json({"object": "list", "data": [{"id": m, "object": "model"} for m in self.fake.models]})
        else:
            await self.json({"error": "not found"}, 404)

    async def openai_post(self, path: str) -> None:
        if path.endswith("/embeddings"):
            inputs = self.body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [
                {"object": "embedding", "index": i, "embedding": self.embedding(t, i)} for i, t in enumerate(inputs)
            ]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            await self.json({"object": "list", "data": data, "model": self.body["model"], "usage": usage})
            return
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 15}
        call = self.fake.tool_call
        if not self.body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if call else self.fake.reply}
            if call:
                args = orjson.dumps(call["arguments"]).decode()
                message["tool_calls"] = [
                    {"id": "call_1", "type": "function", "function": {"name": call["name"], "arguments": args}}
                ]
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
            await self.json(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": self.body["model"],
                    "choices": [choice],
                    "usage": usage,
                }
            )
            return

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            data = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": self.body["model"]}
            data["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            data.update(extra)
            return b"data: " + orjson.dumps(data) + b"\n\n"

        lines = [chunk({"role": "assistant", "content": ""})]
        if call:
            args = orjson.dumps(call["arguments"]).decode()
            half = len(args) // 2
            lines.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": call["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            lines.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[:half]}}]}))
            lines.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]}))
            lines.append(chunk({}, "tool_calls"))
        else:
            lines += [chunk({"content": w}) for w in self.words()]
            lines.append(chunk({}, "stop"))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            lines.append(
                b"data: "
                + orjson.dumps(
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": self.body["model"],
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        lines.append(b"data: [DONE]\n\n")
        await self.stream_lines(lines, "text/event-stream")

    # --- Ollama ---------------------------------------------------------------------------------
    async def ollama_get(self, path: str) -> None:
        if path == "/api/tags":
            await self.json({"models": [{"name": f"{m}:latest", "model": f"{m}:latest"} for m in self.fake.models]})
        else:
            await self.json({"error": "not found"}, 404)

    async def ollama_post(self, path: str) -> None:
        if path == "/api/embed":
            if self.fake.legacy_embeddings_only:
                await self.start(404, "text/plain")
                await self.write(b"404 page not found", more=False)
                return
            inputs = self.body["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            vectors = [self.embedding(t, i) for i, t in enumerate(inputs)]
            await self.json({"model": self.body["model"], "embeddings": vectors, "prompt_eval_count": len(inputs)})
            return
        if path == "/api/embeddings":
            await self.json({"embedding": self.embedding(self.body["prompt"], 0)})
            return
        if path != "/api/chat":
            await self.json({"error": "not found"}, 404)
            return
        call = self.fake.tool_call
        done = {
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": PROMPT_TOKENS,
            "eval_count": COMPLETION_TOKENS,
        }
        model = self.body["model"]
        if not self.body.get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": "" if call else self.fake.reply}
            if call:
                message["tool_calls"] = [{"function": {"name": call["name"], "arguments": call["arguments"]}}]
            await self.json({"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message, **done})
            return
        lines = []
        if call:
            message = {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": call["name"], "arguments": call["arguments"]}}],
            }
            lines.append(orjson.dumps({"model": model, "message": message, "done": False}) + b"\n")
        else:
            lines += [
                orjson.dumps({"model": model, "message": {"role": "assistant", "content": w}, "done": False}) + b"\n"
                for w in self.words()
            ]
        lines.append(orjson.dumps({"model": model, "message": {"role": "assistant", "content": ""}, **done}) + b"\n")
        await self.stream_lines(lines, "application/x-ndjson")

    # --- Anthropic ------------------------------------------------------------------------------
    async def anthropic_get(self, path: str) -> None:
        if path == "/v1/models":
            await self.json({"data": [{"id": m, "type": "model"} for m in self.fake.models], "has_more": False})
        else:
            await self.json({"error": "not found"}, 404)

    async def anthropic_post(self, path: str) -> None:
        if path != "/v1/messages":
            await self.json({"type": "error", "error": {"type": "not_found_error", "message": "not found"}}, 404)
            return
        call = self.fake.tool_call
        model = self.body["model"]
        usage_in = {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
        if not self.body.get("stream"):
            content: list[dict[str, Any]] = (
                [{"type": "tool_use", "id": "toolu_1", "name": call["name"], "input": call["arguments"]}]
                if call
                else [{"type": "text", "text": self.fake.reply}]
            )
            await self.json(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": "tool_use" if call else "end_turn",
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
                }
            )
            return

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"

        lines = [
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "usage": usage_in,
                    }
                },
            )
        ]
        if call:
            args = orjson.dumps(call["arguments"]).decode()
            lines.append(
                event(
                    "content_block_start",
                    {
                        "index": 0,
                        "content_block": {"type": "tool_use", "id": "toolu_1", "name": call["name"], "input": {}},
                    },
                )
            )
            lines.append(
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "input_json_delta", "partial_json": args[: len(args) // 2]}},
                )
            )
            lines.append(
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "input_json_delta", "partial_json": args[len(args) // 2 :]}},
                )
            )
        else:
            lines.append(event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
            lines.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            lines += [
                event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
                for w in self.words()
            ]
        lines.append(event("content_block_stop", {"index": 0}))
        lines.append(
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": "tool_use" if call else "end_turn"},
                    "usage": {"output_tokens": COMPLETION_TOKENS},
                },
            )
        )
        lines.append(event("message_stop", {}))
        await self.stream_lines(lines, "text/event-stream")


@asynccontextmanager
async def fake_backend(protocol: str, **options: Any) -> AsyncIterator[FakeBackend]:
    fake = FakeBackend(protocol, **options)
    async with serve_asgi(fake, lifespan="off") as url:
        fake.url = url + ("/v1" if protocol == "openai" else "")
        try:
            yield fake
        finally:
            fake.release.set()
            if fake.gate is not None:
                fake.gate.set()
