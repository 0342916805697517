"""What `toolmux serve` tells the person who started it: each server as it joins, then one summary."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from aggregator.upstreams.upstream import Upstream


class StartupReport:
    def __init__(self, public_url: str, key_source: str, *, out: TextIO | None = None) -> None:
        self.public_url = public_url
        self.key_source = key_source
        self.started = time.monotonic()
        self.out = out or sys.stderr

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def joined(self, name: str, upstream: Upstream) -> None:
        took = time.monotonic() - self.started
        if upstream.is_ready:
            self._print(f"  + {name}: {len(upstream.listing.tools)} tools in {took:.1f} s")
        else:
            self._print(f"  - {name}: {upstream.state} after {took:.1f} s: {upstream.reason or 'no reason given'}")

    def ready(self) -> None:
        url = self.public_url
        self._print(
            f"toolmux ready in {time.monotonic() - self.started:.1f} s: MCP at {url}/mcp/ "
            f"(OpenAI-compatible API at {url}/v1, health at {url}/health); key {self.key_source}"
        )
