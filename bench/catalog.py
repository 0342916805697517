"""What a client's catalog costs: `tools/list` bytes per mode, and the hub CPU of listing and searching.

    .venv/bin/python bench/catalog.py [-n 200]

Method (printed with the results):
- Default config: a real hub (`config.default()`, every built-in available here, started as it
  is by `toolmux serve`), served through the MCP core in process (no HTTP, so the figures are the
  hub's own work: building the listing and encoding the JSON-RPC response with orjson).
- 1,000-tool catalog: the built-in contracts plus 20 third-party-style servers x 50 tools
  (tests/support/big_catalog.py), loaded into a catalog snapshot in memory.
- Modes: full (master key), a toolset (`files`: storage-*, web-*, and for the big catalog gdrive-*
  and dropbox-*), the same toolset with `compact: true`, and lazy (search / describe / call).
- Bytes: the encoded `tools/list` result. Tokens: bytes / 4 (`toolmux tools --size` uses the same).
- CPU: time.process_time per operation over n rounds after a warm-up; `tools/list` is answered
  from the per-view cache after the first call (its first, uncached build is shown too);
  `search_tools` runs 4 queries in turn against the BM25 index (built once per catalog snapshot,
  its build time is shown).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator import config as hub_config
from aggregator import lazy
from aggregator.catalog import Catalog, Snapshot, _entry
from aggregator.front.core import McpCore
from aggregator.front.session import FrontSession
from aggregator.hub import Hub
from aggregator.principal import MASTER, Principal, Toolset
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import LATEST_LEGACY
from tests.support.big_catalog import builtin_tools, third_party_tools

QUERIES = ["upload a file", "predict next month's sales", "send an email", "take a screenshot of a web page"]


def views(extra_globs: tuple[str, ...] = ()) -> dict[str, Principal]:
    globs = ("storage-*", "web-*", *extra_globs)
    return {
        "full": MASTER,
        "toolset": MASTER.in_toolset(Toolset("files", globs)),
        "toolset, compact": MASTER.in_toolset(Toolset("files-compact", globs, compact=True)),
        "lazy": MASTER.in_toolset(Toolset("lazy", ("*",), lazy=True)),
    }


def cpu_per_call(fn: Any, n: int) -> float:
    for _ in range(max(5, n // 10)):
        fn()
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n


def report(title: str, catalog: Catalog, principals: dict[str, Principal], n: int) -> None:
    print(f"\n## {title}: {len(catalog.snapshot.tools)} tools\n")
    print("| mode | tools | bytes | ~tokens | hub CPU tools/list (cached) | first build |")
    print("|---|---|---|---|---|---|")
    for mode, principal in principals.items():
        catalog._tool_lists.clear()
        started = time.process_time()
        body = jsonrpc.dumps(jsonrpc.result(1, {"tools": catalog.tools_for(principal)}))
        first = time.process_time() - started
        cached = cpu_per_call(lambda p=principal: jsonrpc.dumps(jsonrpc.result(1, {"tools": catalog.tools_for(p)})), n)
        count = len(catalog.tools_for(principal))
        tokens = (len(body) + 3) // 4
        print(f"| {mode} | {count} | {len(body)} | {tokens} | {cached * 1e3:.3f} ms | {first * 1e3:.2f} ms |")
    snapshot = catalog.snapshot
    lazy._INDEXES.clear()
    started = time.process_time()
    lazy.index_for(snapshot)
    built = time.process_time() - started
    turn = iter(range(10**9))
    search = cpu_per_call(lambda: lazy.search(snapshot, MASTER, QUERIES[next(turn) % len(QUERIES)], 8), n)
    print(f"\nsearch_tools: {search * 1e3:.3f} ms hub CPU per search (index built once in {built * 1e3:.1f} ms)")
    for query in QUERIES[:2]:
        found = [t["name"] for t in lazy.search(snapshot, MASTER, query, 3)["structuredContent"]["tools"]]
        print(f"  {query!r} -> {', '.join(found)}")


async def default_hub(n: int) -> None:
    config = hub_config.default()
    with tempfile.TemporaryDirectory() as data:
        config.server.data_dir = data
        hub = Hub(config, master_key="bench-master-key-0123456789")
        core = McpCore(hub)
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await hub.wait_settled(config.server.startup_timeout)
            servers = ", ".join(sorted(n for n, u in hub.upstreams.items() if u.is_ready))
            print(f"default config, servers ready: {servers}")
            # The listing through the MCP core, as a session client gets it.
            session = FrontSession(principal=MASTER, protocol_version=LATEST_LEGACY)
            response = await core.handle(session, jsonrpc.request(1, "tools/list", {}), _no_emit)
            assert response is not None and "result" in response
            report("default config", hub.catalog, views(), n)
            await hub.stop()
            tg.cancel_scope.cancel()


async def _no_emit(message: dict[str, Any]) -> None:
    return None


def big_catalog(n: int) -> None:
    catalog = Catalog()
    snapshot = Snapshot()
    for group, builtin in ((builtin_tools(), True), (third_party_tools(), False)):
        for server, tools in group.items():
            upstream = cast(Any, SimpleNamespace(name=server, builtin=server if builtin else None))
            for tool in tools:
                name = f"{server}-{tool['name']}"
                snapshot.tools[name] = _entry(name, upstream, tool["name"], {**tool, "name": name})
    catalog.snapshot = snapshot
    report("1,000-tool catalog", catalog, views(("gdrive-*", "dropbox-*")), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    print(__doc__.split("Method", 1)[1].split("\n", 1)[1].rstrip())
    anyio.run(default_hub, args.n)
    big_catalog(args.n)


if __name__ == "__main__":
    main()
