"""Anthropic Messages API (`/v1/messages`, SSE events), translated to and from OpenAI shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from servers.models import translate_anthropic as tr
from servers.models.adapters.base import Adapter, model_ids
from servers.models.errors import UpstreamConnectError, UpstreamProtocolError


class AnthropicAdapter(Adapter):
    kind = "anthropic"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def url(self, path: str) -> str:
        base = self.config.base_url
        return (base if base.endswith("/v1") else base + "/v1") + path

    async def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        data = await self.post_json("/messages", tr.request_to_anthropic(model, request))
        return tr.response_from_anthropic(data, self.now())

    async def stream_chat(self, model: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        translator = tr.StreamTranslator(model, self.now())
        body = {**tr.request_to_anthropic(model, request), "stream": True}
        stopped = False
        async with self.open_stream("/messages", body) as response:
            async for event, data in self.sse_events(response):
                try:
                    payload = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamProtocolError(f"backend {self.name!r} streamed malformed JSON") from None
                if not isinstance(payload, dict):
                    raise UpstreamProtocolError(f"backend {self.name!r} streamed a non-object event")
                for chunk in translator.feed(event, payload):
                    yield chunk
                if payload.get("type", event) == "message_stop":
                    stopped = True
                    break
        if not stopped:
            raise UpstreamConnectError(f"backend {self.name!r} ended the stream before message_stop")
        for chunk in translator.finish():
            yield chunk
        yield {
            "id": translator.id,
            "object": "chat.completion.chunk",
            "created": translator.created,
            "model": model,
            "choices": [],
            "usage": translator.openai_usage(),
        }

    async def probe(self, timeout: float) -> set[str] | None:
        data = await self.get_json("/models", timeout=timeout)
        return model_ids(data)
