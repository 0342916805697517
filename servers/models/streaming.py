"""Shapes a backend's chunk stream into what toolmux promises its callers.

- the first emitted chunk carries `role: assistant`; role-only chunks are held back, so a
  backend that fails before saying anything can still be failed over;
- tool-call deltas keep their `index`; calls found in text by the normaliser follow the native ones;
- `finish_reason` appears on the last chunk only; usage chunks are kept for the final result;
- every chunk carries the alias as `model` and one id for the whole answer.

The pipeline also accumulates the complete answer (the tool call's final result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from servers.models.normalise import StreamNormaliser

Emit = Callable[[dict[str, Any]], Awaitable[None]]
_TEXT_FIELDS = ("content", "reasoning_content", "refusal")


class StreamPipeline:
    def __init__(
        self, *, chunk_id: str, model: str, created: int, emit: Emit, normaliser: StreamNormaliser | None
    ) -> None:
        self.chunk_id = chunk_id
        self.model = model
        self.created = created
        self._emit = emit
        self.normaliser = normaliser
        self.emitted = 0
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._texts: dict[str, list[str]] = {name: [] for name in _TEXT_FIELDS}
        self._calls: dict[int, dict[str, Any]] = {}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if self.emitted == 0:
            delta = {"role": "assistant", **delta}
        return {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    async def _send(self, delta: dict[str, Any], finish_reason: str | None = None) -> None:
        for name in _TEXT_FIELDS:
            if delta.get(name):
                self._texts[name].append(delta[name])
        for call in delta.get("tool_calls") or []:
            self._merge_call(call)
        chunk = self._chunk(delta, finish_reason)
        self.emitted += 1
        await self._emit(chunk)

    def _merge_call(self, call: dict[str, Any]) -> None:
        index = int(call.get("index", len(self._calls)))
        slot = self._calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if call.get("id"):
            slot["id"] = call["id"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["function"]["name"] += function["name"]
        if function.get("arguments"):
            slot["function"]["arguments"] += function["arguments"]

    async def feed(self, chunk: dict[str, Any]) -> None:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # one answer per call: n > 1 is not streamed
            delta = choice.get("delta") or {}
            out: dict[str, Any] = {}
            content = delta.get("content")
            if content and self.normaliser is not None:
                content = self.normaliser.feed(content)
            if content:
                out["content"] = content
            for name in ("reasoning_content", "refusal"):
                if delta.get(name):
                    out[name] = delta[name]
            if delta.get("tool_calls"):
                out["tool_calls"] = [
                    {k: v for k, v in c.items() if v is not None} for c in delta["tool_calls"] if isinstance(c, dict)
                ]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if out:
                await self._send(out)

    async def finish(self) -> None:
        """Flush held-back text, emit found tool calls, then the one chunk with finish_reason."""
        if self.normaliser is not None:
            text, calls = self.normaliser.finish()
            if text:
                await self._send({"content": text})
            if calls:
                first = len(self._calls)
                await self._send({"tool_calls": [{"index": first + i, **c} for i, c in enumerate(calls)]})
                self.finish_reason = "tool_calls"
        if self._calls and self.finish_reason in (None, "stop"):
            self.finish_reason = "tool_calls"
        await self._send({}, self.finish_reason or "stop")

    def response(self) -> dict[str, Any]:
        """The whole answer as a chat.completion (usage added by the caller)."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._texts["content"]) or None}
        if not self._calls and message["content"] is None:
            message["content"] = ""
        for name in ("reasoning_content", "refusal"):
            if self._texts[name]:
                message[name] = "".join(self._texts[name])
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        return {
            "id": self.chunk_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}],
        }
