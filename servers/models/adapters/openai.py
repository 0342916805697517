"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, TabbyAPI, LM Studio, LiteLLM, ...

`base_url` includes the API prefix, as for the OpenAI SDK: `http://127.0.0.1:8000/v1`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from servers.models.adapters.base import Adapter, model_ids, require_choices
from servers.models.errors import UpstreamConnectError, UpstreamProtocolError


class OpenAIAdapter(Adapter):
    kind = "openai"

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    async def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        data = await self.post_json("/chat/completions", {**request, "model": model, "stream": False})
        return require_choices(self.name, data)

    async def stream_chat(self, model: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = {**request, "model": model, "stream": True, "stream_options": {"include_usage": True}}
        finished = False
        async with self.open_stream("/chat/completions", body) as response:
            async for _event, data in self.sse_events(response):
                if data.strip() == "[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamProtocolError(f"backend {self.name!r} streamed malformed JSON") from None
                if not isinstance(chunk, dict):
                    raise UpstreamProtocolError(f"backend {self.name!r} streamed a non-object chunk")
                if "error" in chunk:
                    raise UpstreamProtocolError(f"backend {self.name!r} stream error: {str(chunk['error'])[:300]}")
                finished = finished or any(c.get("finish_reason") for c in chunk.get("choices") or [])
                yield chunk
        if not finished:
            raise UpstreamConnectError(f"backend {self.name!r} ended the stream before it finished")

    async def embed(self, model: str, inputs: list[str], request: dict[str, Any]) -> dict[str, Any]:
        data = await self.post_json("/embeddings", {**request, "model": model, "input": inputs})
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamProtocolError(f"backend {self.name!r} answered embeddings without 'data'")
        return data

    async def probe(self, timeout: float) -> set[str] | None:
        data = await self.get_json("/models", timeout=timeout)
        return model_ids(data)
