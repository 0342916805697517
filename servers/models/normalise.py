"""Tool calls that a model wrote as text, turned into proper `tool_calls`.

Local models often print their tool calls instead of returning them structured. Patterns are
tried in the configured order; the first that yields at least one call to a tool the request
declared wins, and its text is removed from the answer. Supported kinds:

    qwen_xml     <tool_call><function=get_weather><parameter=city>Paris</parameter></function></tool_call>
    hermes_json  <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>
    bracket      [TOOL_CALLS][{"name": "get_weather", "arguments": {...}}]   or   [TOOL_CALLS]get_weather[ARGS]{...}
    fenced_json  ```json {"name": "get_weather", "arguments": {...}} ```
    regex        your own pattern with (?P<name>...) and (?P<arguments>...) groups

Names and parameters can be remapped (`rename_tools`, `rename_parameters`). Streams hold back
text from the first marker on and decide at the end of the answer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from servers.models.config import ToolCallParsingConfig

_QWEN_CALL = re.compile(
    r"(?:<tool_call>\s*)?<function=(?P<name>[^>\s]+)\s*>(?P<body>.*?)</function>\s*(?:</tool_call>)?", re.S
)
_QWEN_PARAM = re.compile(r"<parameter=(?P<key>[^>\s]+)\s*>(?P<value>.*?)</parameter>", re.S)
_HERMES = re.compile(r"<tool_call>\s*(?P<json>\{.*?\})\s*</tool_call>", re.S)
_BRACKET_LIST = re.compile(r"\[TOOL_CALLS\]\s*(?P<json>\[.*\])", re.S)
_BRACKET_ARGS = re.compile(
    r"\[TOOL_CALLS\]\s*(?P<name>[A-Za-z0-9_.\-]+)\s*\[ARGS\]\s*(?P<json>\{.*?\})(?=\s*(?:\[TOOL_CALLS\]|$))", re.S
)
_FENCED = re.compile(r"```(?:json|tool_call|tool)?\s*\n?(?P<json>[\[{].*?[\]}])\s*```", re.S)

_MARKERS = {
    "qwen_xml": ("<tool_call>", "<function="),
    "hermes_json": ("<tool_call>",),
    "bracket": ("[TOOL_CALLS]",),
    "fenced_json": ("```",),
}


@dataclass
class ParsedCall:
    name: str
    arguments: dict[str, Any]


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _param_value(raw: str) -> Any:
    value = raw.strip("\n")
    stripped = value.strip()
    if stripped and stripped[0] in '[{0123456789-tfn"':
        parsed = _json(stripped)
        if parsed is not None or stripped == "null":
            return parsed
    return value


def _calls_from_objects(data: Any) -> list[ParsedCall]:
    items = data if isinstance(data, list) else [data]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return []
        # Also {"type": "function", "function": {...}} as some models write it.
        spec = item["function"] if isinstance(item.get("function"), dict) else item
        name = spec.get("name")
        arguments = spec.get("arguments", spec.get("parameters", {}))
        if isinstance(arguments, str):
            arguments = _json(arguments)
        if not isinstance(name, str) or not isinstance(arguments, dict):
            return []
        calls.append(ParsedCall(name, arguments))
    return calls


def _parse(kind: str, text: str, regex: str | None) -> tuple[list[ParsedCall], list[tuple[int, int]]]:
    calls: list[ParsedCall] = []
    spans: list[tuple[int, int]] = []
    if kind == "qwen_xml":
        for m in _QWEN_CALL.finditer(text):
            args = {p.group("key"): _param_value(p.group("value")) for p in _QWEN_PARAM.finditer(m.group("body"))}
            calls.append(ParsedCall(m.group("name"), args))
            spans.append(m.span())
    elif kind == "hermes_json":
        for m in _HERMES.finditer(text):
            found = _calls_from_objects(_json(m.group("json")))
            calls += found
            if found:
                spans.append(m.span())
    elif kind == "bracket":
        for m in _BRACKET_ARGS.finditer(text):
            args = _json(m.group("json"))
            if isinstance(args, dict):
                calls.append(ParsedCall(m.group("name"), args))
                spans.append(m.span())
        if not calls:
            listed = _BRACKET_LIST.search(text)
            found = _calls_from_objects(_json(listed.group("json"))) if listed else []
            if listed and found:
                calls += found
                spans.append(listed.span())
    elif kind == "fenced_json":
        for m in _FENCED.finditer(text):
            found = _calls_from_objects(_json(m.group("json")))
            calls += found
            if found:
                spans.append(m.span())
    elif kind == "regex" and regex:
        for m in re.finditer(regex, text, re.S):
            args = _json(m.group("arguments"))
            if isinstance(args, dict):
                calls.append(ParsedCall(m.group("name"), args))
                spans.append(m.span())
    return calls, spans


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return "".join(out).strip()


class ToolCallParser:
    """Finds text-written tool calls for one request (knows which tools it declared)."""

    def __init__(self, config: ToolCallParsingConfig, tool_names: Iterable[str]) -> None:
        self.config = config
        self.tool_names = set(tool_names)
        self._compiled = [(p.kind, p.regex) for p in config.patterns]

    def _remap(self, call: ParsedCall) -> ParsedCall:
        name = self.config.rename_tools.get(call.name, call.name)
        renames = self.config.rename_parameters.get(name, {})
        return ParsedCall(name, {renames.get(k, k): v for k, v in call.arguments.items()})

    def parse(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """(text without the calls, OpenAI tool_calls); ([text], []) when nothing matched."""
        if not text:
            return text, []
        for kind, regex in self._compiled:
            calls, spans = _parse(kind, text, regex)
            mapped = [self._remap(c) for c in calls]
            if mapped and all(c.name in self.tool_names for c in mapped):
                return _cut(text, spans), [to_openai_call(c) for c in mapped]
        return text, []

    def markers(self) -> list[str] | None:
        """Texts a written call starts with; None when a pattern cannot say (buffer everything)."""
        found: list[str] = []
        for pattern in self.config.patterns:
            if pattern.kind == "regex":
                if not pattern.start:
                    return None
                found.append(pattern.start)
            else:
                found.extend(_MARKERS[pattern.kind])
        return found


def to_openai_call(call: ParsedCall) -> dict[str, Any]:
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
    }


def normalise_message(parser: ToolCallParser, message: dict[str, Any]) -> bool:
    """Rewrite a non-stream answer's message in place; True when tool calls were found."""
    if message.get("tool_calls") or not isinstance(message.get("content"), str):
        return False
    text, calls = parser.parse(message["content"])
    if not calls:
        return False
    message["content"] = text or None
    message["tool_calls"] = calls
    return True


class StreamNormaliser:
    """Streams content through, holding it back from the first tool-call marker to the end."""

    def __init__(self, parser: ToolCallParser) -> None:
        self.parser = parser
        self.markers = parser.markers()
        self._pending = ""
        self._capturing = self.markers is None

    def feed(self, text: str) -> str:
        """Text safe to emit now."""
        if self._capturing:
            self._pending += text
            return ""
        self._pending += text
        assert self.markers is not None
        hits = [i for i in (self._pending.find(m) for m in self.markers) if i >= 0]
        if hits:
            cut = min(hits)
            emit, self._pending = self._pending[:cut], self._pending[cut:]
            self._capturing = True
            return emit
        # Keep back a tail that could be the start of a marker split across chunks.
        keep = 0
        for marker in self.markers:
            for size in range(min(len(marker) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(marker[:size]):
                    keep = max(keep, size)
                    break
        emit = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(emit) :]
        return emit

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(text still to emit, tool calls found) at the end of the stream."""
        pending, self._pending = self._pending, ""
        if not self._capturing:
            return pending, []
        text, calls = self.parser.parse(pending)
        return (text, calls) if calls else (pending, [])


def parser_for(config: ToolCallParsingConfig, request: dict[str, Any], enabled: bool) -> ToolCallParser | None:
    """A parser when this request may get text-written calls: parsing enabled and tools declared."""
    tools = request.get("tools") or []
    if not enabled or not tools or request.get("tool_choice") == "none":
        return None
    names = [
        t["function"]["name"]
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    ]
    return ToolCallParser(config, names) if names else None


__all__ = ["StreamNormaliser", "ToolCallParser", "normalise_message", "parser_for"]
