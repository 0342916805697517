"""The aggregated catalog: every upstream's tools, resources and prompts under stable, safe names.

Tools and prompts are exposed as `<server><sep><name>` (sep "-" by default; server names are
`[a-z0-9_]+`, so the first separator splits), or unprefixed for a server in passthrough mode.
Names stay within 64 characters of `[A-Za-z0-9_-]` (plus the separator) so they are valid MCP
and OpenAI function names: other characters become `_`, and an over-long name is cut and given
a short hash so it stays unique. Two upstreams exposing the same name is a collision: the first
server (in config order) keeps it and the collision is reported, never silently overridden.

Resource URIs are namespaced reversibly as `toolmux://<server>/<original uri>`; passthrough
servers keep their URIs and are found by exact URI or template match.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any

from aggregator.contracts import compact_wire
from aggregator.lazy import lazy_tools
from aggregator.principal import Principal
from aggregator.protocol.headers import x_mcp_headers
from aggregator.strict import NotStrict, Shape, lean_output, strict_view
from aggregator.upstreams.upstream import Upstream
from servers.kit.contract import ToolContract

MAX_NAME = 64
RESOURCE_SCHEME = "toolmux://"
_TEMPLATE_VAR = re.compile(r"\{([+#./;?&]?)([^}]*)\}")


def safe_name(raw: str, separator: str) -> str:
    allowed = re.escape(separator) if separator not in "-_" else ""
    name = re.sub(rf"[^A-Za-z0-9_\-{allowed}]", "_", raw)
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name or "_"


def _allowed(name: str, upstream: Upstream) -> bool:
    flt = upstream.entry.tools
    return any(fnmatchcase(name, p) for p in flt.allow) and not any(fnmatchcase(name, p) for p in flt.deny)


def _template_regex(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for match in _TEMPLATE_VAR.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        out.append(".+" if match.group(1) in ("+", "#") else "[^/?#]+")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


@dataclass
class ToolEntry:
    name: str
    upstream: Upstream
    original: str
    wire: dict[str, Any]
    # A built-in is listed in its strict form (aggregator.strict): `source` is the tool as its server
    # wrote it (what the hub validates against), `shape` maps strict-form arguments back onto it.
    source: dict[str, Any] | None = None
    shape: Shape | None = None

    @cached_property
    def mcp_headers(self) -> dict[str, tuple[str, ...]]:
        """The input schema's `x-mcp-header` parameters (what 2026-07-28 HTTP requests must mirror)."""
        return x_mcp_headers(self.wire.get("inputSchema"))

    @cached_property
    def contract(self) -> ToolContract | None:
        """The tool's input contract, compiled once (None when the upstream's schema is not valid
        JSON Schema: then the upstream alone judges the arguments)."""
        try:
            return ToolContract.from_dict(self.source or self.wire)
        except Exception:
            return None


def _entry(name: str, upstream: Upstream, original: str, wire: dict[str, Any]) -> ToolEntry:
    """A catalog entry; a built-in's input schema is listed in its strict form."""
    source = wire.get("inputSchema")
    if upstream.builtin is None or not isinstance(source, dict):
        return ToolEntry(name, upstream, original, wire)
    try:
        view, shape = strict_view(source)
    except NotStrict:
        return ToolEntry(name, upstream, original, wire)
    listed = {**wire, "inputSchema": view}
    if isinstance(wire.get("outputSchema"), dict):
        listed["outputSchema"] = lean_output(wire["outputSchema"])
    return ToolEntry(name, upstream, original, listed, wire, None if shape.idle else shape)


@dataclass
class PromptEntry:
    name: str
    upstream: Upstream
    original: str
    wire: dict[str, Any]


@dataclass
class Snapshot:
    """An immutable view of the catalog; rebuilt whenever an upstream changes."""

    tools: dict[str, ToolEntry] = field(default_factory=dict)
    prompts: dict[str, PromptEntry] = field(default_factory=dict)
    resources: list[tuple[Upstream, dict[str, Any]]] = field(default_factory=list)
    templates: list[tuple[Upstream, dict[str, Any], re.Pattern[str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    upstreams: dict[str, Upstream] = field(default_factory=dict)


class Catalog:
    def __init__(self, separator: str = "-") -> None:
        self.separator = separator
        self.snapshot = Snapshot()
        # The snapshot before the last rebuild: which views a change touched (per-toolset list_changed).
        self.previous = Snapshot()
        # By what decides the list (view and globs), not by name alone: one OAuth subject may hold
        # tokens of different scopes.
        self._tool_lists: dict[tuple[object, ...], list[dict[str, Any]]] = {}

    def exposed(self, upstream: Upstream, name: str) -> str:
        raw = name if upstream.entry.prefix == "never" else f"{upstream.name}{self.separator}{name}"
        return safe_name(raw, self.separator)

    def rebuild(self, upstreams: list[Upstream]) -> tuple[bool, bool, bool]:
        """Rebuild from the ready upstreams; returns which of (tools, resources, prompts) changed."""
        snap = Snapshot(upstreams={u.name: u for u in upstreams})
        owners: dict[str, str] = {}
        for upstream in upstreams:
            if not upstream.is_ready:
                continue
            for tool in upstream.listing.tools:
                original = tool.get("name")
                if not isinstance(original, str) or not _allowed(original, upstream):
                    continue
                name = self.exposed(upstream, original)
                if name in snap.tools:
                    snap.errors.append(
                        f"tool name {name!r} from server {upstream.name!r} (tool {original!r}) collides with "
                        f"server {owners[name]!r}; give one of them a prefix or deny the tool"
                    )
                    continue
                owners[name] = upstream.name
                wire = {k: v for k, v in tool.items() if k != "_meta"}
                wire["name"] = name
                snap.tools[name] = _entry(name, upstream, original, wire)
            for prompt in upstream.listing.prompts:
                original = prompt.get("name")
                if not isinstance(original, str):
                    continue
                name = self.exposed(upstream, original)
                if name in snap.prompts:
                    snap.errors.append(
                        f"prompt name {name!r} from server {upstream.name!r} collides with server "
                        f"{snap.prompts[name].upstream.name!r}"
                    )
                    continue
                snap.prompts[name] = PromptEntry(name, upstream, original, {**prompt, "name": name})
            for resource in upstream.listing.resources:
                if isinstance(resource.get("uri"), str):
                    snap.resources.append((upstream, {**resource, "uri": self.resource_uri(upstream, resource["uri"])}))
            for template in upstream.listing.resourceTemplates:
                if isinstance(template.get("uriTemplate"), str):
                    exposed = self.resource_uri(upstream, template["uriTemplate"])
                    snap.templates.append((upstream, {**template, "uriTemplate": exposed}, _template_regex(exposed)))
        old = self.snapshot
        changed = (
            [t.wire for t in old.tools.values()] != [t.wire for t in snap.tools.values()],
            [r for _, r in old.resources] != [r for _, r in snap.resources]
            or [t for _, t, _ in old.templates] != [t for _, t, _ in snap.templates],
            [p.wire for p in old.prompts.values()] != [p.wire for p in snap.prompts.values()],
        )
        self.previous, self.snapshot = old, snap
        self._tool_lists = {}
        return changed

    # --- tools --------------------------------------------------------------------------------------
    def tool(self, name: str) -> ToolEntry | None:
        return self.snapshot.tools.get(name)

    def tools_for(self, principal: Principal) -> list[dict[str, Any]]:
        """What `tools/list` shows this caller: its key's scope through its toolset; in lazy mode
        only the search / describe / call tools; compact toolsets get short descriptions."""
        cached = self._tool_lists.get(principal.catalog_key)
        if cached is None:
            if principal.lazy:
                cached = lazy_tools()
            else:
                cached = [t.wire for n, t in self.snapshot.tools.items() if principal.may_call(n)]
                if principal.compact:
                    cached = [compact_wire(w) for w in cached]
            self._tool_lists[principal.catalog_key] = cached
        return cached

    def view_changed(self, principal: Principal) -> bool:
        """Whether the last rebuild changed what this caller's view lists (lazy views list fixed
        tools, but what they find changed too)."""
        before = [t.wire for n, t in self.previous.tools.items() if principal.may_call(n)]
        return before != [t.wire for n, t in self.snapshot.tools.items() if principal.may_call(n)]

    def nearest(self, name: str, principal: Principal, n: int = 3) -> list[str]:
        visible = [t for t in self.snapshot.tools if principal.may_call(t)]
        return get_close_matches(name, visible, n=n, cutoff=0.5)

    # --- prompts ------------------------------------------------------------------------------------
    def prompt(self, name: str) -> PromptEntry | None:
        return self.snapshot.prompts.get(name)

    def prompts_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [p.wire for n, p in self.snapshot.prompts.items() if principal.may_call(n)]

    # --- resources ----------------------------------------------------------------------------------
    def resource_uri(self, upstream: Upstream, uri: str) -> str:
        return uri if upstream.entry.prefix == "never" else f"{RESOURCE_SCHEME}{upstream.name}/{uri}"

    def may_read(self, principal: Principal, upstream: Upstream) -> bool:
        return principal.may_call(f"{upstream.name}{self.separator}*")

    def resources_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [r for u, r in self.snapshot.resources if self.may_read(principal, u)]

    def templates_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [t for u, t, _ in self.snapshot.templates if self.may_read(principal, u)]

    def resolve_resource(self, uri: str) -> tuple[Upstream, str] | None:
        """The upstream serving `uri` and the URI it knows it by."""
        snap = self.snapshot
        if uri.startswith(RESOURCE_SCHEME):
            server, _, original = uri[len(RESOURCE_SCHEME) :].partition("/")
            upstream = snap.upstreams.get(server)
            if upstream is not None and upstream.entry.prefix != "never" and original:
                return upstream, original
        for upstream, resource in snap.resources:
            if resource["uri"] == uri:
                return upstream, self.original_uri(upstream, uri)
        for upstream, _template, pattern in snap.templates:
            if pattern.match(uri):
                return upstream, self.original_uri(upstream, uri)
        passthrough = [
            u
            for u in snap.upstreams.values()
            if u.is_ready and u.entry.prefix == "never" and "resources" in u.capabilities
        ]
        if len(passthrough) == 1:
            return passthrough[0], uri
        return None

    def original_uri(self, upstream: Upstream, uri: str) -> str:
        """The URI `upstream` knows a hub URI by (the inverse of `resource_uri`)."""
        prefix = f"{RESOURCE_SCHEME}{upstream.name}/"
        return uri[len(prefix) :] if uri.startswith(prefix) else uri
