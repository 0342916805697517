"""`WorkspacesService`: the workspaces domain as plain async methods (files, runs, sessions, status)."""

from __future__ import annotations

import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from servers.kit import HubCaller, ToolError
from servers.workspaces.agent import AgentRequest, BuiltinAgent
from servers.workspaces.agent_tools import Toolbox, hub_tool_specs
from servers.workspaces.config import BUILTIN_AGENT, WorkspacesConfig
from servers.workspaces.external import ExternalAgent
from servers.workspaces.files import FileOps
from servers.workspaces.layout import Workspace, WorkspaceLayout
from servers.workspaces.paths import check_workspace_name, split_relative
from servers.workspaces.runs import Mode, Progress, Run, RunManager
from servers.workspaces.sessions import Session, SessionStore
from servers.workspaces.shell import Shell


class WorkspacesService:
    def __init__(
        self, config: WorkspacesConfig, server_dir: Path, hub: HubCaller | None, *, data_dir: Path | None = None
    ) -> None:
        """`data_dir` is the hub's data dir (secrets included), which shell commands must not reach."""
        self.config = config
        self.layout = WorkspaceLayout(config.root or server_dir / "workspaces", server_dir / "state")
        self.files = FileOps(config.max_file_bytes, config.max_list_entries)
        self.shell = Shell(config.shell, data_dir=data_dir, workspace_root=self.layout.root)
        self.sessions = SessionStore()
        self.runs = RunManager(async_result_ttl=config.async_result_ttl, read_result_ttl=config.read_result_ttl)
        self.hub_tools = hub_tool_specs(config)
        self.toolbox = Toolbox(self.files, self.shell, hub, self.hub_tools, config.agent_read_cap)
        self.builtin = BuiltinAgent(
            hub,
            self.toolbox,
            model_call_timeout=config.model_call_timeout,
            max_schema_retries=config.max_schema_retries,
        )
        self.external = {name: ExternalAgent(name, agent) for name, agent in config.agents.items()}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The server's lifetime: background runs live inside it and are stopped when it ends."""
        async with self.runs.running():
            yield

    # --- workspaces and files ----------------------------------------------------------------------
    async def list_workspaces(self, prefix: str | None = None) -> dict[str, Any]:
        names = await anyio.to_thread.run_sync(self.layout.names)
        if prefix:
            names = [n for n in names if n == prefix or n.startswith(prefix.rstrip("/") + "/")]
        entries = []
        for name in names:
            active = self.runs.active.get(name)
            entries.append({"name": name, "busy": active is not None, "run_id": active.id if active else None})
        return {"workspaces": entries}

    async def list_files(self, name: str, path: str, recursive: bool, max_entries: int | None) -> dict[str, Any]:
        workspace = await anyio.to_thread.run_sync(self.layout.get, name)
        return await anyio.to_thread.run_sync(
            lambda: self.files.list(workspace, path, recursive=recursive, max_entries=max_entries)
        )

    async def read_file(self, name: str, path: str, encoding: Any = "auto") -> dict[str, Any]:
        workspace = await anyio.to_thread.run_sync(self.layout.get, name)
        return await anyio.to_thread.run_sync(lambda: self.files.read(workspace, path, encoding=encoding))

    async def write_file(self, args: dict[str, Any]) -> dict[str, Any]:
        has_text, has_base64 = "text" in args, "base64" in args
        if has_text == has_base64:
            raise ToolError("give exactly one of 'text' or 'base64'", field="text" if not has_text else "base64")
        if has_text:
            data = args["text"].encode("utf-8")
        else:
            try:
                data = binascii.a2b_base64(args["base64"], strict_mode=True)
            except (binascii.Error, ValueError):
                raise ToolError("'base64' is not valid base64", field="base64") from None
        if len(data) > self.config.max_file_bytes:  # before creating anything
            raise ToolError(
                f"content is {len(data)} bytes, more than the {self.config.max_file_bytes}-byte file limit",
                code="too_large",
                field="text" if has_text else "base64",
                data={"size": len(data), "limit": self.config.max_file_bytes},
            )
        split_relative(args["path"])  # a bad path is refused before the workspace is created
        workspace = await anyio.to_thread.run_sync(self.layout.ensure, args["workspace"])
        return await anyio.to_thread.run_sync(
            lambda: self.files.write(
                workspace,
                args["path"],
                data,
                make_parents=args.get("make_parents", True),
                overwrite=args.get("overwrite", True),
            )
        )

    async def delete_file(self, name: str, path: str, recursive: bool) -> dict[str, Any]:
        workspace = await anyio.to_thread.run_sync(self.layout.get, name)
        return await anyio.to_thread.run_sync(lambda: self.files.delete(workspace, path, recursive=recursive))

    async def list_sessions(self, name: str) -> dict[str, Any]:
        workspace = await anyio.to_thread.run_sync(self.layout.get, name)
        sessions = await anyio.to_thread.run_sync(self.sessions.list, workspace)
        return {"workspace": name, "sessions": sessions}

    async def status(self) -> dict[str, Any]:
        isolation = await self.shell.isolation()
        self.runs.sweep()
        kept = [r.summary() for r in self.runs.runs.values() if r.done.is_set()]
        return {
            "busy": [r.summary() for r in self.runs.active.values()],
            "kept_results": kept,
            "isolation": isolation.as_dict(self.shell.limits),
            "agents": [BUILTIN_AGENT, *self.external],
            "default_model": self.config.default_model,
            "hub_tools": sorted(self.hub_tools),
        }

    # --- runs --------------------------------------------------------------------------------------
    def _agent_request(self, args: dict[str, Any], model: str | None) -> AgentRequest:
        schema = args.get("json_schema")
        if schema is not None:
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ToolError(f"json_schema is not a valid JSON Schema: {exc.message}", field="json_schema") from None
        return AgentRequest(
            prompt=args["prompt"],
            model=model or "",
            system_prompt=args.get("system_prompt"),
            append_system_prompt=args.get("append_system_prompt"),
            json_schema=schema,
            effort=args.get("effort"),
            max_turns=int(args.get("max_turns") or self.config.max_turns),
        )

    async def _session(self, workspace: Workspace, agent: str, args: dict[str, Any]) -> Session:
        resume = args.get("resume")
        if resume:
            session = await anyio.to_thread.run_sync(self.sessions.load, workspace, resume)
            if session.agent != agent:
                raise ToolError(f"session {resume!r} belongs to agent {session.agent!r}, not {agent!r}", field="resume")
            return session
        if args.get("no_continue") or not self.config.continue_by_default:
            return self.sessions.new(workspace, agent)
        latest = await anyio.to_thread.run_sync(self.sessions.latest, workspace, agent)
        if latest is None:
            return self.sessions.new(workspace, agent)
        return await anyio.to_thread.run_sync(self.sessions.load, workspace, latest)

    async def run(self, args: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        """Start a run; its result (sync), or its id at once (async, fire_and_forget)."""
        name = check_workspace_name(args["workspace"])
        agent = args.get("agent") or BUILTIN_AGENT
        if agent != BUILTIN_AGENT and agent not in self.external:
            known = ", ".join([BUILTIN_AGENT, *self.external])
            raise ToolError(f"unknown agent {agent!r}; agents: {known}", code="not_found", field="agent")
        if args.get("resume") and args.get("no_continue"):
            raise ToolError("give resume or no_continue, not both", field="resume")
        model = args.get("model") or (self.config.default_model if agent == BUILTIN_AGENT else None)
        if agent == BUILTIN_AGENT and not model:
            raise ToolError("no model given and no default_model configured", field="model")
        request = self._agent_request(args, model)
        mode: Mode = "fire_and_forget" if args.get("fire_and_forget") else "async" if args.get("async") else "sync"
        if name in self.runs.active:  # refuse at once, before asking anything of anyone
            raise self.runs.busy_error(name, self.runs.active[name].id, self.runs.active[name].started_at)
        if agent == BUILTIN_AGENT:
            await self.builtin.check_model(request.model)
        if args.get("resume"):
            workspace = await anyio.to_thread.run_sync(self.layout.get, name)
        else:
            workspace = await anyio.to_thread.run_sync(self.layout.ensure, name)
        session = await self._session(workspace, agent, args)
        run = self.runs.claim(
            workspace,
            agent=agent,
            model=model,
            mode=mode,
            session_id=session.id,
            verbose=args.get("output") == "json-verbose",
            timeout=float(args.get("timeout") or self.config.run_timeout),
        )
        run.finalizers.append(lambda finished: self._record(finished, session, request.prompt))

        async def body(current: Run) -> None:
            if agent == BUILTIN_AGENT:
                await self.builtin.run(current, request, session)
            else:
                await self.external[agent].run(current, request, session, model=model)

        if mode == "sync":
            run.progress = progress
            await self.runs.execute(run, body)
            return run.result()
        self.runs.start_background(run, body)
        return {**run.summary(), "status": "running"}

    def _record(self, run: Run, session: Session, prompt: str) -> None:
        """The run's line in the transcript, and `continue` pointed at its session."""
        if not session._written:
            return  # nothing happened (refused before the first answer): leave no trace
        state = run.state
        session.append(
            [
                {
                    "type": "run",
                    "run_id": run.id,
                    "prompt": prompt,
                    "status": run.status,
                    "result": state.result,
                    "is_error": state.is_error,
                    "num_turns": state.num_turns,
                    "usage": state.usage.as_dict(),
                    "total_cost": state.total_cost,
                    "duration_ms": run.duration_ms,
                }
            ]
        )
        session.sync()
        self.sessions.set_latest(run.workspace, run.agent, session.id)

    async def run_result(self, run_id: str | None, workspace: str | None, wait_seconds: float) -> dict[str, Any]:
        run = self.runs.find(run_id, workspace)
        return await self.runs.wait(run, min(wait_seconds, 300.0))

    async def run_cancel(self, run_id: str | None, workspace: str | None) -> dict[str, Any]:
        run = self.runs.find(run_id, workspace)
        cancelled = await self.runs.cancel(run, "cancelled by run_cancel")
        return {"run_id": run.id, "workspace": run.workspace.name, "cancelled": cancelled, "status": run.status}
