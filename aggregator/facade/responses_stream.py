"""Responses streaming: chat chunks in, OpenAI's typed SSE events out, numbered in order.

One `ResponseEvents` per streamed response. The model's chunks (one `chat.completion.chunk`
each) open output items as they first appear (`response.output_item.added`, then for text
`response.content_part.added`) and grow them (`response.output_text.delta`,
`response.function_call_arguments.delta`); `finish_round` closes them (`.done` events, then
`response.output_item.done`) and returns the finished items, with the ids the client saw.
Calls of the hub's own tools are held back from the delta events: the run decides whether they
execute (`mcp_call`) or wait for approval, and reports each as a whole item.

`response.created` and `response.in_progress` are held until the first real event, so an error
before any output is still an HTTP error (see `EventStream`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from aggregator.facade.event_stream import Emit
from aggregator.facade.responses_translate import answer_message, function_call_item, message_item, new_id
from aggregator.protocol.errors import ToolmuxError, openai_body


@dataclass
class _Text:
    item_id: str
    index: int
    text: str = ""


@dataclass
class _Call:
    item_id: str
    index: int | None  # None: a hub tool call, held back
    call_id: str
    name: str
    arguments: str = ""


@dataclass
class ResponseEvents:
    skeleton: dict[str, Any]  # the response object with status in_progress and no output
    is_hub_call: Callable[[str], bool] = lambda name: False
    sequence: int = 0
    next_index: int = 0
    _prefix: list[bytes] = field(default_factory=list)
    _buffer: list[bytes] = field(default_factory=list)
    _text: _Text | None = None
    _calls: dict[int, _Call] = field(default_factory=dict)
    _seen: bool = False

    def __post_init__(self) -> None:
        self._prefix = [
            self._event("response.created", {"response": self.skeleton}),
            self._event("response.in_progress", {"response": self.skeleton}),
        ]

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _send(self, events: list[bytes]) -> None:
        if events and self._prefix:
            events = self._prefix + events
            self._prefix = []
        self._buffer.extend(events)

    def take(self) -> bytes:
        """The events written since the last `take` (what goes to the client next)."""
        taken = b"".join(self._buffer)
        self._buffer.clear()
        return taken

    async def flush(self, emit: Emit) -> None:
        taken = self.take()
        if taken:
            await emit(taken)

    def _index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    # ---- the model's chunks -----------------------------------------------------------------------

    def feed(self, message: str) -> None:
        data = orjson.loads(message)
        for choice in data.get("choices") or []:
            if choice.get("index", 0) == 0:
                self._send(self._delta(choice.get("delta") or {}))

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        text = delta.get("content")
        if text:
            self._seen = True
            if self._text is None:
                self._text = _Text(new_id("msg"), self._index())
                item = message_item("", self._text.item_id, status="in_progress")
                events.append(
                    self._event("response.output_item.added", {"output_index": self._text.index, "item": item})
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append(self._event("response.content_part.added", self._where(self._text) | {"part": part}))
            self._text.text += text
            events.append(
                self._event("response.output_text.delta", self._where(self._text) | {"delta": text, "logprobs": []})
            )
        for piece in delta.get("tool_calls") or []:
            self._seen = True
            events.extend(self._call_delta(piece))
        return events

    def _where(self, text: _Text) -> dict[str, Any]:
        return {"item_id": text.item_id, "output_index": text.index, "content_index": 0}

    def _call_delta(self, piece: dict[str, Any]) -> list[bytes]:
        function = piece.get("function") or {}
        slot = int(piece.get("index") or 0)
        call = self._calls.get(slot)
        events: list[bytes] = []
        if call is None:
            name = function.get("name") or ""
            hub = self.is_hub_call(name)
            call = _Call(new_id("fc"), None if hub else self._index(), piece.get("id") or new_id("call"), name)
            self._calls[slot] = call
            if call.index is not None:
                item = function_call_item(self._chat_call(call), call.item_id, status="in_progress")
                events.append(self._event("response.output_item.added", {"output_index": call.index, "item": item}))
        fragment = function.get("arguments") or ""
        call.arguments += fragment
        if fragment and call.index is not None:
            where = {"item_id": call.item_id, "output_index": call.index}
            events.append(self._event("response.function_call_arguments.delta", where | {"delta": fragment}))
        return events

    @staticmethod
    def _chat_call(call: _Call) -> dict[str, Any]:
        return {"id": call.call_id, "function": {"name": call.name, "arguments": call.arguments}}

    def finish_round(self, answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Close this model call's items: `(finished output items, the hub tool calls held back)`."""
        message = answer_message(answer)
        events: list[bytes] = []
        if not self._seen:  # an answer that came whole (a cached one): stream it as one delta
            calls = [{"index": i, **c} for i, c in enumerate(message.get("tool_calls") or [])]
            events.extend(self._delta({"content": message.get("content"), "tool_calls": calls}))
        if self._text is None and not self._calls:  # an empty answer is still one (empty) message
            self._text = _Text(new_id("msg"), self._index())
            item = message_item("", self._text.item_id, status="in_progress")
            events.append(self._event("response.output_item.added", {"output_index": self._text.index, "item": item}))
        finished: list[tuple[int, dict[str, Any]]] = []
        if self._text is not None:
            text = self._text
            item = message_item(text.text, text.item_id)
            if text.text:
                part = item["content"][0]
                events.append(
                    self._event("response.output_text.done", self._where(text) | {"text": text.text, "logprobs": []})
                )
                events.append(self._event("response.content_part.done", self._where(text) | {"part": part}))
            events.append(self._event("response.output_item.done", {"output_index": text.index, "item": item}))
            finished.append((text.index, item))
        held: list[dict[str, Any]] = []
        for call in self._calls.values():
            if call.index is None:
                held.append(self._chat_call(call))
                continue
            item = function_call_item(self._chat_call(call), call.item_id)
            where = {"item_id": call.item_id, "output_index": call.index}
            events.append(
                self._event(
                    "response.function_call_arguments.done", where | {"arguments": call.arguments, "name": call.name}
                )
            )
            events.append(self._event("response.output_item.done", {"output_index": call.index, "item": item}))
            finished.append((call.index, item))
        self._text, self._calls, self._seen = None, {}, False
        self._send(events)
        return [item for _, item in sorted(finished, key=lambda pair: pair[0])], held

    # ---- whole items from the run -----------------------------------------------------------------

    def whole_item(self, item: dict[str, Any]) -> None:
        """An item that is finished when it appears (mcp_list_tools, mcp_approval_request)."""
        index = self._index()
        self._send(
            [
                self._event("response.output_item.added", {"output_index": index, "item": item}),
                self._event("response.output_item.done", {"output_index": index, "item": item}),
            ]
        )

    def call_started(self, item: dict[str, Any]) -> int:
        index = self._index()
        where = {"item_id": item["id"], "output_index": index}
        self._send(
            [
                self._event("response.output_item.added", {"output_index": index, "item": item}),
                self._event("response.mcp_call_arguments.done", where | {"arguments": item["arguments"]}),
                self._event("response.mcp_call.in_progress", where),
            ]
        )
        return index

    def call_done(self, item: dict[str, Any], index: int) -> None:
        where = {"item_id": item["id"], "output_index": index}
        kind = "response.mcp_call.completed" if item["status"] == "completed" else "response.mcp_call.failed"
        self._send(
            [self._event(kind, where), self._event("response.output_item.done", {"output_index": index, "item": item})]
        )

    def completed(self, response: dict[str, Any]) -> None:
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._send([self._event(kind, {"response": response})])

    def error_event(self, error: ToolmuxError) -> bytes:
        body = openai_body(error, "")["error"]
        return self._event(
            "error", {"code": body.get("code"), "message": body.get("message"), "param": body.get("param")}
        )
