"""The tools the built-in agent is offered: workspace files, a shell, and allow-listed hub tools.

Each tool answers the model with text (errors too, prefixed "error:"), never an exception: a
model that sends a bad path or bad JSON reads why and tries again.
"""

from __future__ import annotations

import logging
from fnmatch import fnmatchcase
from typing import Any

import anyio
import orjson

import schemas
from servers.kit import HubCaller, ServerConfigError, ToolError
from servers.kit.errors import error_from_result
from servers.workspaces.config import HubToolConfig, WorkspacesConfig
from servers.workspaces.files import FileOps
from servers.workspaces.runs import Run
from servers.workspaces.shell import Shell, describe

_log = logging.getLogger("toolmux.workspaces")

# Tools of this server are never offered to its own agent (a run starting runs).
SELF_PREFIX = "workspaces-"


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


PATH = {"type": "string", "description": "Path relative to the workspace, e.g. 'data/report.csv'."}

LOCAL_TOOLS = [
    _function(
        "read_file",
        "Read a text file of the workspace. Long files are cut; use offset/limit (lines) to page through them.",
        {
            "path": PATH,
            "offset": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
            "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to return."},
        },
        ["path"],
    ),
    _function(
        "write_file",
        "Create or replace a text file in the workspace (parent directories are created).",
        {"path": PATH, "content": {"type": "string", "description": "The whole new content."}},
        ["path", "content"],
    ),
    _function(
        "list_files",
        "List files and directories of the workspace (or of a directory in it).",
        {
            "path": {**PATH, "description": "Directory relative to the workspace; empty for the workspace."},
            "recursive": {"type": "boolean", "description": "Include everything below, not just direct entries."},
        },
        [],
    ),
    _function(
        "delete_file",
        "Delete a file, or a directory with recursive=true.",
        {"path": PATH, "recursive": {"type": "boolean"}},
        ["path"],
    ),
    _function(
        "run_shell",
        "Run a shell command (bash) with the workspace as working directory, e.g. 'wc -l data.csv' or "
        "'python3 analyze.py'. Returns the exit code and output (long output is cut in the middle). "
        "No interactive input; background processes are stopped when the command ends.",
        {
            "command": {"type": "string", "description": "The command line."},
            "timeout_seconds": {"type": "number", "minimum": 1, "description": "Stop the command after this long."},
        },
        ["command"],
    ),
]


def hub_tool_specs(config: WorkspacesConfig) -> dict[str, dict[str, Any]]:
    """Hub tools the agent may call, as chat `tools` entries, from the allow-list in the config."""
    contracts: dict[str, dict[str, Any]] = {}
    for domain in schemas.domains():
        if domain == "workspaces":
            continue
        for tool in schemas.load(domain)["tools"]:
            contracts[f"{domain}-{tool['name']}"] = tool
    specs: dict[str, dict[str, Any]] = {}
    for entry in config.hub_tools:
        if isinstance(entry, HubToolConfig):
            specs[entry.name] = _function(entry.name, entry.description, {}, [])
            specs[entry.name]["function"]["parameters"] = entry.parameters
            continue
        matched = [name for name in contracts if fnmatchcase(name, entry) and not name.startswith(SELF_PREFIX)]
        if not matched and not any(ch in entry for ch in "*?["):
            raise ServerConfigError(
                f"servers.workspaces.config.hub_tools: {entry!r} is not a built-in tool; for another server's "
                "tool give {name, description, parameters}"
            )
        if not matched:
            _log.warning("workspaces hub_tools pattern %r matches no built-in tool", entry)
        for name in matched:
            tool = contracts[name]
            spec = _function(name, tool.get("description", ""), {}, [])
            spec["function"]["parameters"] = tool.get("inputSchema", {"type": "object"})
            specs[name] = spec
    return specs


def _text_of(result: dict[str, Any]) -> str:
    if "structuredContent" in result:
        return orjson.dumps(result["structuredContent"]).decode()
    parts = []
    for block in result.get("content") or []:
        if isinstance(block, dict):
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                parts.append(f"[{block.get('type')} content: {block.get('uri') or block.get('mimeType') or ''}]")
    return "\n".join(parts)


def _cut(text: str, cap: int) -> str:
    data = text.encode()
    if len(data) <= cap:
        return text
    return data[:cap].decode("utf-8", "ignore") + f"\n[... cut: {len(data) - cap} more bytes ...]"


class Toolbox:
    def __init__(
        self,
        files: FileOps,
        shell: Shell,
        hub: HubCaller | None,
        hub_tools: dict[str, dict[str, Any]],
        read_cap: int,
    ) -> None:
        self.files = files
        self.shell = shell
        self.hub = hub
        self.hub_tools = hub_tools
        self.read_cap = read_cap

    async def specs(self) -> list[dict[str, Any]]:
        """The tools offered to the model; no `run_shell` while the shell is off (no isolation here)."""
        shell_off = (await self.shell.isolation()).mode == "unavailable"
        local = [t for t in LOCAL_TOOLS if not (shell_off and t["function"]["name"] == "run_shell")]
        return [*local, *self.hub_tools.values()]

    async def call(self, run: Run, name: str, raw_arguments: Any) -> tuple[str, bool]:
        """`(text for the model, is_error)` for one tool call."""
        try:
            arguments = orjson.loads(raw_arguments or "{}") if isinstance(raw_arguments, str) else raw_arguments
        except orjson.JSONDecodeError as exc:
            return f"error: the arguments are not valid JSON ({exc}); send a JSON object", True
        if not isinstance(arguments, dict):
            return "error: the arguments must be a JSON object", True
        try:
            if name in self.hub_tools:
                return await self._hub(name, arguments)
            handler = getattr(self, f"_tool_{name}", None)
            if handler is None:
                known = ", ".join(s["function"]["name"] for s in await self.specs())
                return f"error: there is no tool {name!r}; tools: {known}", True
            return await handler(run, arguments), False
        except ToolError as exc:
            return f"error: {exc.message}", True
        except (KeyError, TypeError, ValueError) as exc:
            return f"error: bad arguments for {name}: {exc}", True

    @staticmethod
    def _str(arguments: dict[str, Any], key: str, default: str | None = None) -> str:
        value = arguments.get(key, default)
        if not isinstance(value, str):
            raise ToolError(f"'{key}' must be a string", field=key)
        return value

    async def _tool_read_file(self, run: Run, arguments: dict[str, Any]) -> str:
        path = self._str(arguments, "path")
        data, size, _, shown = await anyio.to_thread.run_sync(
            lambda: self.files.read_bytes(run.workspace, path, max_bytes=self.files.max_file_bytes, partial=True)
        )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if len(data) < size:
                text = data.decode("utf-8", "ignore")
            else:
                return (
                    f"{shown} is a binary file of {size} bytes; inspect it with run_shell (e.g. 'file', 'xxd | head')"
                )
        lines = text.splitlines(keepends=True)
        offset = int(arguments.get("offset") or 1)
        limit = arguments.get("limit")
        chosen = lines[offset - 1 : offset - 1 + int(limit)] if limit else lines[offset - 1 :]
        body = "".join(chosen)
        header = f"{shown} ({size} bytes, {len(lines)} lines{'' if len(data) == size else ', read in part'})"
        if offset > 1 or limit:
            header += f", lines {offset}-{offset + len(chosen) - 1}"
        return _cut(f"{header}:\n{body}", self.read_cap)

    async def _tool_write_file(self, run: Run, arguments: dict[str, Any]) -> str:
        path, content = self._str(arguments, "path"), self._str(arguments, "content")
        written = await anyio.to_thread.run_sync(lambda: self.files.write(run.workspace, path, content.encode()))
        return f"{'created' if written['created'] else 'replaced'} {written['path']} ({written['size']} bytes)"

    async def _tool_list_files(self, run: Run, arguments: dict[str, Any]) -> str:
        path = self._str(arguments, "path", "")
        listing = await anyio.to_thread.run_sync(
            lambda: self.files.list(run.workspace, path, recursive=bool(arguments.get("recursive")), max_entries=500)
        )
        lines = [
            f"{e['path']}{'/' if e['type'] == 'directory' else ''}" + (f"  {e['size']} bytes" if "size" in e else "")
            for e in listing["entries"]
        ]
        if listing["truncated"]:
            lines.append("[... more entries not shown ...]")
        return "\n".join(lines) if lines else f"{listing['path']} is empty"

    async def _tool_delete_file(self, run: Run, arguments: dict[str, Any]) -> str:
        path = self._str(arguments, "path")
        deleted = await anyio.to_thread.run_sync(
            lambda: self.files.delete(run.workspace, path, recursive=bool(arguments.get("recursive")))
        )
        return f"deleted {deleted['deleted']} {deleted['path']}"

    async def _tool_run_shell(self, run: Run, arguments: dict[str, Any]) -> str:
        command = self._str(arguments, "command")
        timeout = arguments.get("timeout_seconds")
        if timeout is not None and not isinstance(timeout, int | float):
            raise ToolError("'timeout_seconds' must be a number", field="timeout_seconds")

        async def started(pid: int) -> None:
            run.processes.add(pid)
            await run.emit("process_started", pid=pid, command=command)

        def output(piece: bytes) -> None:
            run.notify("process_output", data=piece)

        try:
            result = await self.shell.run(
                command, run.workspace.dir, timeout=timeout, on_start=started, on_output=output
            )
        finally:
            run.processes.clear()
        return describe(result, timeout or self.shell.config.timeout)

    async def _hub(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        if self.hub is None:
            return "error: hub tools are unavailable (this server runs without a hub)", True
        result = await self.hub.call_tool(name, arguments)
        error = error_from_result(result)
        if error is not None:
            return _cut(f"error: {error.message}", self.read_cap), True
        return _cut(_text_of(result), self.read_cap), False
