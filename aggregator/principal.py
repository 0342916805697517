"""Who is calling: the identity an API key resolves to, which tools it may use, and what else it may see."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

# `admin`: the operator's routes (/admin/*, /ui/) and everything `metrics` gives.
# `metrics`: /metrics and the detailed /health (every server and tool name), for a Prometheus scraper.
Scope = Literal["admin", "metrics"]
SCOPES: tuple[Scope, ...] = ("admin", "metrics")


@dataclass(frozen=True)
class KeyLimits:
    """What a key may spend on models: which aliases, how fast, how much (managed keys carry these)."""

    models: tuple[str, ...] | None = None  # alias globs; None: every alias
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    budget_period: Literal["day", "month", "total"] = "month"

    def may_use_model(self, alias: str) -> bool:
        return self.models is None or any(fnmatchcase(alias, pattern) for pattern in self.models)


@dataclass(frozen=True)
class Toolset:
    """A named selection of catalog tools (config `toolsets:`). It narrows what a key sees and may
    call; it never widens it, since a call must pass both the key's globs and the toolset's."""

    name: str
    globs: tuple[str, ...] = ("*",)
    lazy: bool = False
    compact: bool = False

    def admits(self, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.globs)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. The master key may call every tool; a named key only its globs.

    `toolset` narrows the view further (chosen by path, by the key's default, or `--toolset`);
    `lazy` shows the catalog as search / describe / call instead of every contract."""

    name: str
    is_master: bool = False
    allowed_tools: tuple[str, ...] = ("*",)
    denied_tools: tuple[str, ...] = field(default=())
    toolset: Toolset | None = None
    # The key's own `lazy: true` (a toolset may also ask for lazy mode).
    key_lazy: bool = False
    scopes: tuple[Scope, ...] = ()
    limits: KeyLimits | None = None
    managed: bool = False  # created through /admin/keys (the state key store), not the YAML file

    def may_call(self, tool: str) -> bool:
        if self.toolset is not None and not self.toolset.admits(tool):
            return False
        if self.is_master:
            return True
        if any(fnmatchcase(tool, pattern) for pattern in self.denied_tools):
            return False
        return any(fnmatchcase(tool, pattern) for pattern in self.allowed_tools)

    @property
    def lazy(self) -> bool:
        return self.key_lazy or (self.toolset is not None and self.toolset.lazy)

    @property
    def view(self) -> str:
        """What this caller sees of the catalog, as a cache key: the key, its toolset and mode."""
        if self.toolset is None and not self.lazy:
            return self.name
        return f"{self.name}@{self.toolset.name if self.toolset else ''}{'~lazy' if self.lazy else ''}"

    @property
    def catalog_key(self) -> tuple[object, ...]:
        """What decides this caller's tool list: its view and its globs (one OAuth subject may hold
        tokens of different scopes, so the name alone does not)."""
        return (self.view, self.is_master, self.allowed_tools, self.denied_tools)

    @property
    def compact(self) -> bool:
        return self.toolset is not None and self.toolset.compact

    def in_toolset(self, toolset: Toolset | None) -> Principal:
        """This caller seen through `toolset` instead of its key's default (None: unchanged)."""
        return self if toolset is None else dataclasses.replace(self, toolset=toolset)

    @property
    def is_admin(self) -> bool:
        """May manage keys and use the console (the master key, or a key with the `admin` scope)."""
        return self.is_master or "admin" in self.scopes

    @property
    def may_see_metrics(self) -> bool:
        """May read /metrics and the detailed /health, which name every server and tool."""
        return self.is_admin or "metrics" in self.scopes


MASTER = Principal(name="master", is_master=True)
