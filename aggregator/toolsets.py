"""Toolsets: the config's named selections of tools, compiled into globs over catalog names.

A per-server pick (`servers: {storage: [get_object, "list_*"]}`) becomes the catalog-name glob
`storage-get_object`, so a toolset is one list of globs and checking a tool is one `fnmatch`
pass, the same as a key's scope. Passthrough servers (`prefix: never`) expose unprefixed names:
select their tools with `tools:` globs.
"""

from __future__ import annotations

from aggregator.config import HubConfig, server_prefix
from aggregator.principal import Toolset


def compile_toolsets(config: HubConfig) -> dict[str, Toolset]:
    separator = config.catalog.separator
    compiled: dict[str, Toolset] = {}
    for name, entry in config.toolsets.items():
        picks = [
            f"{server_prefix(server)}{separator}{pick}" for server, globs in entry.servers.items() for pick in globs
        ]
        compiled[name] = Toolset(name, tuple([*entry.tools, *picks]), lazy=entry.lazy, compact=entry.compact)
    return compiled
