"""Lean renderings of tool contracts for model-facing listings (what a toolset's clients receive)."""

from __future__ import annotations

import re
from typing import Any

_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)", re.DOTALL)
COMPACT_LIMIT = 160


def first_sentence(text: str, limit: int = COMPACT_LIMIT) -> str:
    """The description's first sentence (cut at `limit` characters): what a model acts on."""
    text = " ".join(text.split())
    match = _FIRST_SENTENCE.match(text)
    sentence = match.group(1) if match else text
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def _compact_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _compact_schema(v) for k, v in schema.items() if k not in ("examples", "title")}
        if isinstance(out.get("description"), str):
            out["description"] = first_sentence(out["description"])
        return out
    if isinstance(schema, list):
        return [_compact_schema(v) for v in schema]
    return schema


def compact_wire(wire: dict[str, Any]) -> dict[str, Any]:
    """A tool as a `compact: true` toolset lists it: first-sentence descriptions (the tool's and its
    parameters'), no examples and no output schema (the result still carries its structured content)."""
    out = {k: v for k, v in wire.items() if k != "outputSchema"}
    if isinstance(out.get("description"), str):
        out["description"] = first_sentence(out["description"])
    if isinstance(out.get("inputSchema"), dict):
        out["inputSchema"] = _compact_schema(out["inputSchema"])
    return out
