"""Tool contracts: one JSON file per domain, read by the servers, the hub, the facade and the docs.

Each file holds `{"domain", "description", "$defs"?, "tools": [{name, title, description,
annotations?, inputSchema, outputSchema?}]}`. Shared `$defs` are copied into every tool schema
that refers to them, so each schema stands alone once it leaves this file (MCP clients resolve
`$ref` only inside the schema they are given).
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent


class ContractError(ValueError):
    """A contract file is missing or malformed."""


def domains() -> list[str]:
    """Names of every domain that ships a contract file."""
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


@cache
def _load_raw(domain: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{domain}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"no contract file for domain {domain!r} ({path})") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tools"), list):
        raise ContractError(f"{path}: 'tools' must be a list")
    return data


_REF = re.compile(r'"#/\$defs/([^"/]+)[^"]*"')


def _with_defs(schema: dict[str, Any], defs: dict[str, Any] | None) -> dict[str, Any]:
    """The schema with the shared `$defs` it refers to, directly or through other defs (only those:
    every def in every schema made the browser's listing three times its size)."""
    schema = copy.deepcopy(schema)
    if not defs:
        return schema
    wanted: set[str] = set()
    pending = set(_REF.findall(json.dumps(schema)))
    while pending:
        name = pending.pop()
        if name in wanted or name not in defs:
            continue
        wanted.add(name)
        pending |= set(_REF.findall(json.dumps(defs[name])))
    if wanted:
        schema.setdefault("$defs", {}).update({n: copy.deepcopy(defs[n]) for n in sorted(wanted)})
    return schema


def load(domain: str) -> dict[str, Any]:
    """The domain's contract with every tool schema self-contained (a fresh copy each call)."""
    raw = _load_raw(domain)
    defs = raw.get("$defs")
    tools = []
    for raw_tool in raw["tools"]:
        entry = dict(raw_tool)
        entry["inputSchema"] = _with_defs(entry.get("inputSchema", {"type": "object"}), defs)
        if "outputSchema" in entry:
            entry["outputSchema"] = _with_defs(entry["outputSchema"], defs)
        tools.append(entry)
    return {**{k: v for k, v in raw.items() if k != "$defs"}, "tools": tools}


def tool(domain: str, name: str) -> dict[str, Any]:
    """One tool's contract."""
    tools: list[dict[str, Any]] = load(domain)["tools"]
    for entry in tools:
        if entry["name"] == name:
            return entry
    raise ContractError(f"domain {domain!r} has no tool {name!r}")
