"""The `workspaces` server's config section.

    servers:
      workspaces:
        config:
          default_model: main             # a models-server alias for the built-in agent
          hub_tools: [storage-put_object] # other hub tools the built-in agent may call
          shell: {timeout: 120, sandbox: auto, network: false}
          agents:                         # external agent CLIs (optional)
            coder:
              command: [my-agent, -p, "{prompt}", --output-format, json]
              resume_args: [--resume, "{session_id}"]
              model_args: [--model, "{model}"]

Every limit has a default that is safe for a shared machine; see docs/workspaces.md.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MiB = 1024 * 1024
GiB = 1024 * MiB

AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
BUILTIN_AGENT = "builtin"
LOCAL_TOOL_NAMES = frozenset({"read_file", "write_file", "list_files", "delete_file", "run_shell"})

# Placeholders an external agent's command template may use.
TEMPLATE_FIELDS = frozenset(
    {"prompt", "workspace", "workspace_dir", "model", "session_id", "system_prompt", "append_system_prompt",
     "json_schema", "effort", "max_turns"}
)  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShellConfig(_Strict):
    """How the built-in agent's `run_shell` tool runs commands."""

    sandbox: Literal["auto", "bubblewrap", "none"] = Field(
        default="auto",
        description="auto/bubblewrap: bubblewrap, else the shell is off; none: no namespaces, commands run as "
        "a separate unprivileged user (needs the hub to run as root)",
    )
    bwrap_path: str = "bwrap"
    network: bool = Field(default=False, description="let sandboxed commands use the network (bubblewrap only)")
    extra_ro_binds: list[str] = Field(default_factory=list, description="host paths visible read-only")
    shell: str = Field(default="bash", description="interpreter for `-c`; /bin/sh when this is not found")
    timeout: float = Field(default=120.0, gt=0, le=24 * 3600, description="seconds one command may run")
    max_timeout: float = Field(default=600.0, gt=0, le=24 * 3600, description="largest timeout a command may ask for")
    output_cap: int = Field(default=32 * 1024, ge=256, le=16 * MiB, description="bytes of output kept (head and tail)")
    cpu_seconds: int = Field(default=120, ge=1)
    address_space: int = Field(default=4 * GiB, ge=64 * MiB, description="bytes of virtual memory per process")
    file_size: int = Field(default=1 * GiB, ge=1024, description="largest file a command may write, bytes")
    nproc: int = Field(
        default=512, ge=8, description="processes of the hub's user (RLIMIT_NPROC; not enforced for root)"
    )
    open_files: int = Field(default=1024, ge=16)
    run_uid_base: int = Field(
        default=2_100_000_000,
        ge=1000,
        le=4_000_000_000,
        description="sandbox none: commands run as uid/gid base+slot, one otherwise unused id per concurrent command",
    )
    run_uid_slots: int = Field(default=64, ge=1, le=4096, description="sandbox none: concurrent commands at most")

    @model_validator(mode="after")
    def _timeouts(self) -> ShellConfig:
        if self.timeout > self.max_timeout:
            raise ValueError("timeout must not exceed max_timeout")
        return self


class HubToolConfig(_Strict):
    """A hub tool the built-in agent may call that has no contract in `schemas/` (a third-party one)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ExternalAgentConfig(_Strict):
    """An agent CLI run as a subprocess in the workspace; its JSON output becomes the run result."""

    command: list[str] = Field(min_length=1, description="argv template; {prompt} etc. are filled in")
    resume_args: list[str] = Field(default_factory=list, description="added when continuing a session")
    model_args: list[str] = Field(default_factory=list, description="added when a model is given")
    system_prompt_args: list[str] = Field(default_factory=list)
    append_system_prompt_args: list[str] = Field(default_factory=list)
    json_schema_args: list[str] = Field(default_factory=list)
    effort_args: list[str] = Field(default_factory=list)
    max_turns_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, repr=False, description="extra environment (secrets ok)")
    pass_env: list[str] = Field(default_factory=list, description="names copied from the server's environment")
    timeout: float = Field(1800.0, gt=0)
    max_output_bytes: int = Field(16 * MiB, ge=1024)
    # Dotted paths into the CLI's JSON output; the first one present wins.
    fields: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator(
        "command",
        "resume_args",
        "model_args",
        "system_prompt_args",
        "append_system_prompt_args",
        "json_schema_args",
        "effort_args",
        "max_turns_args",
    )
    @classmethod
    def _known_placeholders(cls, args: list[str]) -> list[str]:
        for arg in args:
            try:
                names = [name for _, name, _, _ in string.Formatter().parse(arg) if name is not None]
            except ValueError as exc:
                raise ValueError(f"bad template {arg!r}: {exc}") from None
            unknown = [n for n in names if n not in TEMPLATE_FIELDS]
            if unknown:
                raise ValueError(
                    f"unknown placeholder {{{unknown[0]}}} in {arg!r}; known: {', '.join(sorted(TEMPLATE_FIELDS))}"
                )
        return args


class WorkspacesConfig(_Strict):
    root: Path | None = Field(None, description="where workspaces live (default: <data dir>/workspaces/workspaces)")
    default_model: str | None = Field(None, description="models alias used when a run names none")
    max_turns: int = Field(30, ge=1, le=500, description="model calls per run at most (default)")
    run_timeout: float = Field(3600.0, gt=0, description="seconds a run may take in all")
    continue_by_default: bool = Field(True, description="a run continues the workspace's last session")
    max_file_bytes: int = Field(16 * MiB, ge=1024, description="largest file read_file/write_file handle")
    agent_read_cap: int = Field(64 * 1024, ge=1024, description="bytes of a file the agent's read_file returns")
    max_list_entries: int = Field(5000, ge=10)
    async_result_ttl: float = Field(3600.0, gt=0, description="seconds an unread async result is kept")
    read_result_ttl: float = Field(300.0, ge=0, description="seconds a result is kept after it was read")
    max_schema_retries: int = Field(2, ge=0, le=10, description="re-asks when an answer breaks json_schema")
    model_call_timeout: float = Field(600.0, gt=0, description="seconds one models-chat call may take")
    hub_tools: list[str | HubToolConfig] = Field(
        default_factory=list, description="hub tools (names or globs over built-in contracts) offered to the agent"
    )
    shell: ShellConfig = Field(default_factory=ShellConfig)
    agents: dict[str, ExternalAgentConfig] = Field(default_factory=dict)

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: dict[str, ExternalAgentConfig]) -> dict[str, ExternalAgentConfig]:
        for name in agents:
            if name == BUILTIN_AGENT or not AGENT_NAME.match(name):
                raise ValueError(f"agent name {name!r} must match {AGENT_NAME.pattern} and not be 'builtin'")
        return agents

    @field_validator("hub_tools")
    @classmethod
    def _no_clash(cls, tools: list[str | HubToolConfig]) -> list[str | HubToolConfig]:
        for entry in tools:
            name = entry if isinstance(entry, str) else entry.name
            if name in LOCAL_TOOL_NAMES:
                raise ValueError(f"hub tool {name!r} clashes with the agent's own tool of that name")
        return tools
