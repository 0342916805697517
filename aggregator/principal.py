"""Who is calling: the identity an API key resolves to, and which tools it may use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatchcase


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
    def compact(self) -> bool:
        return self.toolset is not None and self.toolset.compact

    def in_toolset(self, toolset: Toolset | None) -> Principal:
        """This caller seen through `toolset` instead of its key's default (None: unchanged)."""
        return self if toolset is None else dataclasses.replace(self, toolset=toolset)


MASTER = Principal(name="master", is_master=True)
