"""Transcripts: one JSON-lines file per session, kept with the workspace's state (not in its files).

    {"type": "session", "session_id": ..., "agent": "builtin", "workspace": ..., "created": ...}
    {"type": "message", "run_id": ..., "message": {"role": "user", "content": "..."}}
    {"type": "message", "run_id": ..., "message": {"role": "assistant", "tool_calls": [...]}}
    {"type": "run", "run_id": ..., "prompt": ..., "result": ..., "status": ..., "usage": {...}, ...}
    {"type": "external", "run_id": ..., "external_session_id": "..."}      (external agents)

Lines are appended as a run goes, so `continue` and `resume` work after a restart (or a crash:
an incomplete last line is skipped, and tool calls left without results are closed on load).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from servers.kit import ToolError
from servers.workspaces.files import iso
from servers.workspaces.layout import Workspace

_log = logging.getLogger("toolmux.workspaces")

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Session:
    id: str
    path: Path
    agent: str
    workspace: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    external_id: str | None = None
    runs: int = 0
    created: float = field(default_factory=time.time)
    _written: bool = False

    def append(self, records: list[dict[str, Any]]) -> None:
        """Add records to the transcript file (the header first, when the file is new)."""
        lines = []
        if not self._written and not self.path.exists():
            header = {
                "type": "session",
                "session_id": self.id,
                "agent": self.agent,
                "workspace": self.workspace,
                "created": iso(self.created),
            }
            lines.append(orjson.dumps(header))
        lines.extend(orjson.dumps(r) for r in records)
        if not lines:
            return
        with open(self.path, "ab") as out:
            out.write(b"\n".join(lines) + b"\n")
            out.flush()
        self._written = True

    def sync(self) -> None:
        """Make what was appended durable (once per run, not per line)."""
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def close_dangling_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer tool calls that never got a result (a run cancelled or crashed mid-call): chat APIs
    refuse a conversation where an assistant's tool call has no tool message after it."""
    out: list[dict[str, Any]] = []
    pending: list[object] = []  # the tool-call ids as the model sent them

    def close_pending() -> None:
        for call_id in pending:
            out.append(
                {"role": "tool", "tool_call_id": call_id, "content": "error: the run ended before this call finished"}
            )
        pending.clear()

    for message in messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in pending:
                pending.remove(call_id)
            out.append(message)
            continue
        close_pending()
        out.append(message)
        if role == "assistant":
            pending = [c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict) and c.get("id")]
    close_pending()
    return out


class SessionStore:
    """Sessions of every workspace; `latest-<agent>` files point `continue` at the newest one."""

    def new(self, workspace: Workspace, agent: str) -> Session:
        session_id = new_session_id()
        return Session(session_id, workspace.sessions_dir / f"{session_id}.jsonl", agent, workspace.name)

    def load(self, workspace: Workspace, session_id: str, *, field_name: str = "resume") -> Session:
        if not SESSION_ID.match(session_id):
            raise ToolError(f"{session_id!r} is not a session id", field=field_name)
        path = workspace.sessions_dir / f"{session_id}.jsonl"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ToolError(
                f"no session {session_id!r} in workspace {workspace.name!r} (list_sessions shows them)",
                code="not_found",
                field=field_name,
            ) from None
        session = Session(session_id, path, "builtin", workspace.name, _written=True)
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                _log.warning("session %s line %d is not JSON (an interrupted write?); skipped", path, number)
                continue
            kind = record.get("type")
            if kind == "session":
                session.agent = str(record.get("agent", "builtin"))
            elif kind == "message" and isinstance(record.get("message"), dict):
                session.messages.append(record["message"])
            elif kind == "external" and record.get("external_session_id"):
                session.external_id = str(record["external_session_id"])
            elif kind == "run":
                session.runs += 1
        session.messages = close_dangling_tool_calls(session.messages)
        return session

    def latest(self, workspace: Workspace, agent: str) -> str | None:
        try:
            session_id = (workspace.state_dir / f"latest-{agent}").read_text().strip()
        except FileNotFoundError:
            return None
        if SESSION_ID.match(session_id) and (workspace.sessions_dir / f"{session_id}.jsonl").exists():
            return session_id
        return None

    def set_latest(self, workspace: Workspace, agent: str, session_id: str) -> None:
        pointer = workspace.state_dir / f"latest-{agent}"
        temporary = pointer.with_name(pointer.name + f".{uuid.uuid4().hex[:8]}.tmp")
        temporary.write_text(session_id)
        os.replace(temporary, pointer)

    def list(self, workspace: Workspace) -> list[dict[str, Any]]:
        sessions = []
        for path in workspace.sessions_dir.glob("*.jsonl"):
            summary: dict[str, Any] = {
                "session_id": path.stem,
                "agent": "builtin",
                "runs": 0,
                "updated": iso(path.stat().st_mtime),
            }
            for line in path.read_bytes().splitlines():
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if record.get("type") == "session":
                    summary["agent"] = record.get("agent", "builtin")
                    summary["created"] = record.get("created")
                elif record.get("type") == "run":
                    summary["runs"] += 1
                    summary.setdefault("first_prompt", str(record.get("prompt", ""))[:200])
                    summary["last_result"] = str(record.get("result") or "")[:200]
            sessions.append(summary)
        sessions.sort(key=lambda s: s["updated"], reverse=True)
        return sessions
