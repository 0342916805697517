"""The hub's own tools, offered to a model and run by the hub on the model's behalf.

A request names them with OpenAI's remote-MCP convention, `{"type": "mcp", "server_label":
"toolmux", "allowed_tools": [...], "require_approval": "never"}` (Responses), or the
`toolmux_tools` field (Chat Completions). The model sees the caller's catalog (its key's scopes
applied, narrowed by `allowed_tools`, globs allowed) as functions under their hub names; each
call it makes goes through `Call.tool`, the facades' one path to dispatch, as the caller. A
tool's failure (a refused scope included) is sent back to the model as the tool's answer: the
model decides what to do with it, and the client gets an answer, not a failure.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import orjson

from aggregator.facade.kit import Call
from aggregator.facade.responses_translate import HUB_SERVER_LABEL, new_id
from aggregator.protocol.errors import RequestError, ToolmuxError


@dataclass(frozen=True)
class HubToolSet:
    """The hub tools one request offers, and which of them need the client's approval first."""

    definitions: tuple[dict[str, Any], ...]
    always_approve: frozenset[str]  # names run without asking
    ask_by_default: bool
    patterns: tuple[str, ...] | None = None  # allowed_tools (None: every tool of the caller)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(d["name"] for d in self.definitions)

    def owns(self, name: str) -> bool:
        """Whether a call of `name` is the hub's to run: one it offered, or one the request allowed
        that the caller's key cannot see (it runs, and is refused, as the caller)."""
        if self.patterns is None:
            return True
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def needs_approval(self, name: str) -> bool:
        return self.ask_by_default and name not in self.always_approve

    def chat_tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": d["name"],
                    "description": d.get("description") or "",
                    "parameters": d.get("inputSchema") or {"type": "object"},
                },
            }
            for d in self.definitions
        ]

    def list_item(self) -> dict[str, Any]:
        """The `mcp_list_tools` output item."""
        tools = [
            {
                "name": d["name"],
                "description": d.get("description"),
                "input_schema": d.get("inputSchema") or {"type": "object"},
                "annotations": d.get("annotations"),
            }
            for d in self.definitions
        ]
        return {"type": "mcp_list_tools", "id": new_id("mcpl"), "server_label": HUB_SERVER_LABEL, "tools": tools}


def _names(value: Any, field: str) -> list[str]:
    if isinstance(value, dict):  # {"tool_names": [...]} (OpenAI's filter object)
        value = value.get("tool_names")
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise RequestError(f"{field} must be a list of tool names", field=field, reason="invalid_type")
    return value


def _approval(entry: dict[str, Any], field: str) -> tuple[bool, set[str]]:
    """`(ask by default, names that need no approval)` of a `require_approval` value."""
    value = entry.get("require_approval", "always")
    if value == "never":
        return False, set()
    if value == "always":
        return True, set()
    if isinstance(value, dict) and set(value) <= {"never", "always"}:
        never = set(_names(value["never"], f"{field}.require_approval.never")) if "never" in value else set()
        return True, never
    raise RequestError(
        f"{field}.require_approval must be 'never', 'always' or {{never: {{tool_names: [...]}}}}",
        field=f"{field}.require_approval",
        reason="invalid_value",
    )


def hub_tool_set(call: Call, entries: list[dict[str, Any]], field: str = "tools") -> HubToolSet | None:
    """The hub tools `entries` offer to this caller (None when there are no entries)."""
    if not entries:
        return None
    patterns: list[str] | None = []
    ask = False
    never: set[str] = set()
    for entry in entries:
        if entry.get("allowed_tools") is None:
            patterns = None
        elif patterns is not None:
            patterns.extend(_names(entry["allowed_tools"], f"{field}.allowed_tools"))
        entry_asks, entry_never = _approval(entry, field)
        ask = ask or entry_asks
        never |= entry_never if entry_asks else {"*"}
    visible = call.ctx.tool_definitions(call.caller)
    chosen = tuple(d for d in visible if patterns is None or any(fnmatch.fnmatchcase(d["name"], p) for p in patterns))
    exempt = {d["name"] for d in chosen if any(fnmatch.fnmatchcase(d["name"], p) for p in never)}
    return HubToolSet(chosen, frozenset(exempt), ask, None if patterns is None else tuple(patterns))


def result_text(result: dict[str, Any], limit: int) -> str:
    """What a tool answered, as the text the model reads (cut at `limit` characters)."""
    texts = [b["text"] for b in result.get("content") or [] if isinstance(b, dict) and b.get("type") == "text"]
    links = [
        b.get("uri", "")
        for b in result.get("content") or []
        if isinstance(b, dict) and b.get("type") == "resource_link"
    ]
    text = "\n".join(texts + links)
    if not text and result.get("structuredContent") is not None:
        text = orjson.dumps(result["structuredContent"]).decode()
    return text if len(text) <= limit else text[:limit] + f"\n[cut at {limit} characters]"


def call_item(name: str, arguments: str, *, approval_request_id: str | None = None) -> dict[str, Any]:
    """A `mcp_call` output item, before it runs."""
    item: dict[str, Any] = {
        "type": "mcp_call",
        "id": new_id("mcp"),
        "server_label": HUB_SERVER_LABEL,
        "name": name,
        "arguments": arguments or "{}",
        "output": None,
        "error": None,
        "status": "in_progress",
    }
    if approval_request_id is not None:
        item["approval_request_id"] = approval_request_id
    return item


async def run_call(call: Call, item: dict[str, Any], limit: int) -> dict[str, Any]:
    """Run the tool of a `mcp_call` item as the caller; the item completed (or failed, with `error`)."""
    try:
        arguments = orjson.loads(item["arguments"] or "{}")
    except orjson.JSONDecodeError:
        return {**item, "status": "failed", "error": "the arguments are not valid JSON"}
    if not isinstance(arguments, dict):
        return {**item, "status": "failed", "error": "the arguments must be a JSON object"}
    try:
        result = await call.tool(item["name"], arguments)
    except ToolmuxError as exc:
        return {**item, "status": "failed", "error": f"{exc.code.value}: {exc.message}"}
    return {**item, "status": "completed", "output": result_text(result, limit)}


def denied_item(request: dict[str, Any], reason: str | None) -> dict[str, Any]:
    item = call_item(request["name"], request.get("arguments") or "{}", approval_request_id=request["id"])
    return {
        **item,
        "status": "failed",
        "error": "the user did not approve this call" + (f": {reason}" if reason else ""),
    }


def approval_request_item(name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "mcp_approval_request",
        "id": new_id("mcpr"),
        "server_label": HUB_SERVER_LABEL,
        "name": name,
        "arguments": arguments or "{}",
    }


def tool_messages(item: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished `mcp_call` as the chat messages the model reads next."""
    call = {"id": item["id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
    answer = item["output"] if item.get("error") is None else f"error: {item['error']}"
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": item["id"], "content": answer or ""},
    ]
