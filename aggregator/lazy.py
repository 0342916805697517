"""Lazy mode: the catalog as three tools, `search_tools`, `describe_tool` and `call_tool`.

A model with a small context lists three short contracts instead of every tool; it searches by
what it wants done, reads the contracts of the few tools it picks, and calls one through
`call_tool`, which takes the very same dispatch path as a direct `tools/call` (scopes,
validation, progress, cancellation, input rounds, metrics). The index is BM25 over names,
descriptions and parameter names, built once per catalog snapshot; results are filtered by the
caller's view, so a key never learns of a tool it may not call.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from aggregator.contracts import first_sentence
from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.search import Bm25Index

if TYPE_CHECKING:
    from aggregator.catalog import Snapshot
    from aggregator.principal import Principal

SEARCH, DESCRIBE, CALL = "search_tools", "describe_tool", "call_tool"
LAZY_NAMES = frozenset({SEARCH, DESCRIBE, CALL})
DEFAULT_RESULTS = 8
MAX_RESULTS = 25
MAX_DESCRIBE = 10
# Weights: a word in the tool's name counts thrice, in its description's first sentence (what the
# tool does) twice, deeper in the description once, a parameter name twice.
NAME_WEIGHT, LEAD_WEIGHT, DESCRIPTION_WEIGHT, PARAMETER_WEIGHT = 3, 2, 1, 2

_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH,
        "description": "Find tools for a task: give what you want done in plain words; returns tool names, best first.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What you want to do, e.g. 'upload a file'."},
                "limit": {"type": ["integer", "null"], "description": f"Most results (null: {DEFAULT_RESULTS})."},
            },
            "required": ["query", "limit"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": DESCRIBE,
        "description": "Get the full contract (parameters and their rules) of tools found with search_tools.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "names": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": f"Tool names (at most {MAX_DESCRIBE}).",
                },
            },
            "required": ["names"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": CALL,
        "description": "Call a tool by name with its arguments, as describe_tool documents them.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name."},
                "arguments": {
                    # A string so the contract stays strict (a free-form object cannot be); an object is accepted too.
                    "type": "string",
                    "description": 'The tool\'s arguments as a JSON object in a string, e.g. \'{"text": "hi"}\'.',
                },
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        },
    },
]


def lazy_tools() -> list[dict[str, Any]]:
    """What `tools/list` shows a lazy view."""
    return _TOOLS


_INDEXES: dict[int, tuple[Snapshot, Bm25Index]] = {}


def index_for(snapshot: Snapshot) -> Bm25Index:
    """The BM25 index of a snapshot, built on first use (a snapshot never changes)."""
    cached = _INDEXES.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    documents = []
    for name, entry in snapshot.tools.items():
        schema = entry.wire.get("inputSchema")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        parameters = " ".join(properties) if isinstance(properties, dict) else ""
        description = str(entry.wire.get("description") or "")
        lead = first_sentence(description, limit=len(description) + 1)
        fields = [
            (f"{name} {entry.wire.get('title') or ''}", NAME_WEIGHT),
            (lead, LEAD_WEIGHT),
            (description[len(lead) :], DESCRIPTION_WEIGHT),
            (parameters, PARAMETER_WEIGHT),
        ]
        documents.append((name, fields))
    index = Bm25Index.build(documents)
    _INDEXES.clear()  # only the live snapshot's index is worth keeping
    _INDEXES[id(snapshot)] = (snapshot, index)
    return index


def search(snapshot: Snapshot, principal: Principal, query: Any, limit: Any) -> dict[str, Any]:
    if not isinstance(query, str) or not query.strip():
        raise RpcError(jsonrpc.INVALID_PARAMS, f"{SEARCH}: 'query' must be a non-empty string", {"field": "query"})
    if limit is None:
        limit = DEFAULT_RESULTS
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise RpcError(jsonrpc.INVALID_PARAMS, f"{SEARCH}: 'limit' must be 1..{MAX_RESULTS}", {"field": "limit"})
    found = index_for(snapshot).search(query, limit, principal.may_call)
    tools = [
        {"name": name, "description": first_sentence(str(snapshot.tools[name].wire.get("description") or ""))}
        for name, _score in found
    ]
    text = "\n".join(f"{t['name']}: {t['description']}" for t in tools) or "no tool matches; try other words"
    return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": tools}}


def nearest(snapshot: Snapshot, principal: Principal, name: str) -> list[str]:
    """The tools a mistyped or unknown name most likely meant: similar names, then a search by its words."""
    visible = [n for n in snapshot.tools if principal.may_call(n)]
    near = get_close_matches(name, visible, n=3, cutoff=0.5)
    for found, _score in index_for(snapshot).search(name, 3, principal.may_call):
        if found not in near and len(near) < 3:
            near.append(found)
    return near


def unknown(snapshot: Snapshot, principal: Principal, name: str) -> RpcError:
    near = nearest(snapshot, principal, name)
    hint = f"; did you mean: {', '.join(near)}?" if near else "; find tools with search_tools"
    return RpcError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name!r}{hint}", {"tool": name, "nearest": near})


def describe(snapshot: Snapshot, principal: Principal, names: Any) -> dict[str, Any]:
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RpcError(jsonrpc.INVALID_PARAMS, f"{DESCRIBE}: 'names' must be a list of tool names", {"field": "names"})
    if len(names) > MAX_DESCRIBE:
        raise RpcError(jsonrpc.INVALID_PARAMS, f"{DESCRIBE}: at most {MAX_DESCRIBE} names", {"field": "names"})
    tools = []
    for name in names:
        entry = snapshot.tools.get(name)
        if entry is None or not principal.may_call(name):
            raise unknown(snapshot, principal, name)
        tools.append(entry.wire)
    text = jsonrpc.dumps({"tools": tools}).decode()
    return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": tools}}


def call_target(arguments: Any) -> tuple[Any, Any]:
    """The inner tool's name and arguments of a `call_tool` call (a JSON-string argument decoded)."""
    if not isinstance(arguments, dict):
        raise RpcError(jsonrpc.INVALID_PARAMS, f"{CALL}: 'arguments' must be an object")
    inner = arguments.get("arguments")
    if isinstance(inner, str):
        try:
            inner = jsonrpc.loads(inner.encode()) if inner.strip() else {}
        except ValueError:
            raise RpcError(
                jsonrpc.INVALID_PARAMS, f"{CALL}: 'arguments' is a string but not JSON", {"field": "arguments"}
            ) from None
    return arguments.get("name"), inner
