"""Lean renderings of tool contracts for model-facing listings (what a toolset's clients receive)."""

from __future__ import annotations

import re
from typing import Any

# A sentence ends at . ! or ? before a space, except after an abbreviation such as "e.g.".
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)[.!?](?=\s|$)")
COMPACT_LIMIT = 160


def first_sentence(text: str, limit: int = COMPACT_LIMIT) -> str:
    """The description's first sentence (cut at `limit` characters): what a model acts on."""
    text = " ".join(text.split())
    end = _SENTENCE_END.search(text)
    sentence = text[: end.end()] if end else text
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
