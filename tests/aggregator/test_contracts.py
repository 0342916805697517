"""Lean listings: descriptions that lead with what a tool does, and compact toolsets."""

from __future__ import annotations

from typing import Any, cast

import pytest

import schemas
from aggregator.catalog import Catalog, Snapshot, ToolEntry
from aggregator.contracts import compact_wire, first_sentence
from aggregator.principal import MASTER, Toolset

# Imperative verbs the built-in descriptions open with; a description opening with anything else
# ("The page as ...") tells a model what it gets, not what to call it for.
VERBS = {
    "Ask", "Capture", "Click", "Close", "Count", "Create", "Delete", "Evaluate", "Flag", "Forecast", "Generate",
    "Get", "Give", "Go", "List", "List,", "Make", "Mark", "Move", "Navigate", "Predict", "Press", "Put", "Read",
    "Replace", "Report", "Return", "Run", "Score", "Scroll", "Search", "Select", "Send", "Show", "Simulate", "Stop",
    "Turn", "Type", "Upload", "Wait",
}  # fmt: skip
BUILTIN_TOOLS = [(domain, tool) for domain in schemas.domains() for tool in schemas.load(domain)["tools"]]


@pytest.mark.parametrize(("domain", "tool"), BUILTIN_TOOLS, ids=[f"{d}-{t['name']}" for d, t in BUILTIN_TOOLS])
def test_every_builtin_description_leads_with_an_imperative_sentence(domain: str, tool: dict[str, Any]) -> None:
    lead = first_sentence(tool["description"], limit=10_000)
    assert lead.split()[0] in VERBS
    assert len(lead) <= 400


def test_first_sentence_skips_abbreviations_and_cuts_long_ones() -> None:
    assert first_sentence("Hover it, e.g. to open a menu. Then more.") == "Hover it, e.g. to open a menu."
    assert first_sentence("No full stop") == "No full stop"
    assert first_sentence("x" * 300, limit=20) == "x" * 19 + "…"


def test_a_compact_listing_keeps_the_contract_and_drops_the_long_parts() -> None:
    wire = {
        "name": "s-t",
        "description": "Do the thing. Then a long story about it.",
        "inputSchema": {"type": "object", "properties": {"a": {"type": "string", "description": "An a. Long tale."}}},
        "outputSchema": {"type": "object"},
    }
    compact = compact_wire(wire)
    assert compact["description"] == "Do the thing."
    assert compact["inputSchema"]["properties"]["a"] == {"type": "string", "description": "An a."}
    assert "outputSchema" not in compact


def test_a_compact_toolset_lists_compact_tools_and_the_full_view_is_untouched() -> None:
    catalog = Catalog()
    catalog.snapshot = Snapshot()
    for name in ("s-one", "s-two", "t-three"):
        wire = {"name": name, "description": "Do it. More.", "inputSchema": {"type": "object"}}
        catalog.snapshot.tools[name] = ToolEntry(name, cast(Any, None), name, wire)
    compact = MASTER.in_toolset(Toolset("c", ("s-*",), compact=True))
    listed = catalog.tools_for(compact)
    assert [(t["name"], t["description"]) for t in listed] == [("s-one", "Do it."), ("s-two", "Do it.")]
    assert [t["description"] for t in catalog.tools_for(MASTER)] == ["Do it. More."] * 3
