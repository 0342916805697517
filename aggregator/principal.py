"""Who is calling: the identity an API key resolves to, and which tools it may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. The master key may call every tool; a named key only its globs."""

    name: str
    is_master: bool = False
    allowed_tools: tuple[str, ...] = ("*",)
    denied_tools: tuple[str, ...] = field(default=())

    def may_call(self, tool: str) -> bool:
        if self.is_master:
            return True
        if any(fnmatchcase(tool, pattern) for pattern in self.denied_tools):
            return False
        return any(fnmatchcase(tool, pattern) for pattern in self.allowed_tools)


MASTER = Principal(name="master", is_master=True)
