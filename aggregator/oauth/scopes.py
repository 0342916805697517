"""Granted scopes → the same `Principal` a key resolves to, so scoping, budgets and limits
downstream cannot tell a token from a key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aggregator.principal import Principal


def parse_scope(value: object) -> list[str]:
    """`scope` as RFC 6749 writes it (space-separated) or as some providers do (`scp`, a list)."""
    if isinstance(value, str):
        return [s for s in value.split() if s]
    if isinstance(value, list | tuple):
        return [s for s in value if isinstance(s, str) and s]
    return []


def principal_for_scopes(name: str, scopes: Iterable[str], mapping: Mapping[str, list[str]]) -> Principal:
    """The caller `name` with the union of its mapped scopes' globs; unmapped scopes grant nothing."""
    globs: list[str] = []
    for scope in scopes:
        for glob in mapping.get(scope, ()):
            if glob not in globs:
                globs.append(glob)
    return Principal(name=name, allowed_tools=tuple(globs))


def known_scopes(requested: Iterable[str], mapping: Mapping[str, list[str]]) -> list[str]:
    """The requested scopes this hub maps, in the order asked, without repeats."""
    seen: list[str] = []
    for scope in requested:
        if scope in mapping and scope not in seen:
            seen.append(scope)
    return seen
