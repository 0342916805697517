"""Ollama's native API: `/api/chat` (NDJSON streaming), `/api/embed` (fallback `/api/embeddings`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from servers.models import translate_ollama as tr
from servers.models.adapters.base import Adapter
from servers.models.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamStatusError


class OllamaAdapter(Adapter):
    kind = "ollama"

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    async def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        data = await self.post_json("/api/chat", tr.request_to_ollama(model, request, stream=False))
        return tr.response_from_ollama(data, self.now())

    async def stream_chat(self, model: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        translator = tr.ChunkTranslator(model, self.now())
        async with self.open_stream("/api/chat", tr.request_to_ollama(model, request, stream=True)) as response:
            async for line in self.ndjson_lines(response):
                if not isinstance(line, dict):
                    raise UpstreamProtocolError(f"backend {self.name!r} streamed a non-object line")
                for chunk in translator.feed(line):
                    yield chunk
                if translator.done:
                    break
        if not translator.done:
            raise UpstreamConnectError(f"backend {self.name!r} ended the stream before it finished")
        yield {
            "id": translator.id,
            "object": "chat.completion.chunk",
            "created": translator.created,
            "model": model,
            "choices": [],
            "usage": translator.usage,
        }

    async def embed(self, model: str, inputs: list[str], request: dict[str, Any]) -> dict[str, Any]:
        if not self.config.ollama_legacy_embeddings:
            body: dict[str, Any] = {"model": model, "input": inputs}
            if request.get("dimensions"):
                body["dimensions"] = request["dimensions"]
            try:
                data = await self.post_json("/api/embed", body)
            except UpstreamStatusError as exc:
                # An Ollama older than 0.3 has no /api/embed (404 without a model error).
                if exc.status != 404 or "model" in exc.message.lower():
                    raise
            else:
                vectors = data.get("embeddings") if isinstance(data, dict) else None
                if not isinstance(vectors, list):
                    raise UpstreamProtocolError(f"backend {self.name!r} answered /api/embed without 'embeddings'")
                tokens = int(data.get("prompt_eval_count") or 0)
                return _embedding_list(model, vectors, tokens)
        vectors = []
        for text in inputs:
            data = await self.post_json("/api/embeddings", {"model": model, "prompt": text})
            if not isinstance(data, dict) or not isinstance(data.get("embedding"), list):
                raise UpstreamProtocolError(f"backend {self.name!r} answered /api/embeddings without 'embedding'")
            vectors.append(data["embedding"])
        return _embedding_list(model, vectors, 0)

    async def probe(self, timeout: float) -> set[str] | None:
        data = await self.get_json("/api/tags", timeout=timeout)
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return None
        names: set[str] = set()
        for entry in data["models"]:
            name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else None
            if isinstance(name, str):
                names.add(name)
                if name.endswith(":latest"):
                    names.add(name.removesuffix(":latest"))
        return names


def _embedding_list(model: str, vectors: list[Any], tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
