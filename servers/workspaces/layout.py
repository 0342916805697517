"""Where workspaces live on disk, and which ones exist.

    <root>/clients/acme/...                 the workspace's files (all the agent sees)
    <state>/clients%2Facme/sessions/*.jsonl its transcripts, kept outside the workspace
    <state>/clients%2Facme/latest-<agent>   the session `continue` picks up
    <state>/clients%2Facme/lock             held (flock) while a run is active

A workspace exists once its state directory does; it is created on first use (write_file or
run). Workspaces never nest: with `clients/acme` in place, `clients` cannot be one (its agent
would reach acme's files), and the other way round.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from servers.kit import ToolError
from servers.workspaces.paths import WORKSPACE_NAME, check_workspace_name, open_dir_at, opened_root, os_error


@dataclass(frozen=True)
class Workspace:
    name: str
    root: str  # real path of the directory holding all workspaces
    state_dir: Path

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.name.split("/"))

    @property
    def dir(self) -> str:
        return os.path.join(self.root, *self.segments)

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    @contextmanager
    def opened(self) -> Iterator[int]:
        """A directory fd of the workspace, reached without following links."""
        with opened_root(self.root) as root_fd:
            try:
                fd = open_dir_at(root_fd, self.segments, create=True)
            except OSError as exc:
                raise os_error(exc, self.name, field="workspace") from None
            try:
                yield fd
            finally:
                os.close(fd)


class WorkspaceLayout:
    def __init__(self, root: Path, state_root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        state_root.mkdir(parents=True, exist_ok=True)
        self.root = os.path.realpath(root)
        self.state_root = state_root
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        names = []
        for entry in os.listdir(self.state_root):
            name = unquote(entry)
            if WORKSPACE_NAME.match(name) and quote(name, safe="") == entry:
                names.append(name)
        return sorted(names)

    def _workspace(self, name: str) -> Workspace:
        return Workspace(name, self.root, self.state_root / quote(name, safe=""))

    def exists(self, name: str) -> bool:
        return self._workspace(name).state_dir.is_dir()

    def get(self, name: str, field: str = "workspace") -> Workspace:
        """An existing workspace (not_found otherwise: only write_file and run create one)."""
        check_workspace_name(name, field)
        workspace = self._workspace(name)
        if not workspace.state_dir.is_dir():
            raise ToolError(
                f"workspace {name!r} does not exist yet (write_file or run creates it)", code="not_found", field=field
            )
        return workspace

    def ensure(self, name: str, field: str = "workspace") -> Workspace:
        """The workspace `name`, created (directory and state) when it is new."""
        check_workspace_name(name, field)
        workspace = self._workspace(name)
        if workspace.state_dir.is_dir():
            with workspace.opened():  # recreates the directory if someone removed it
                return workspace
        with self._lock:
            for other in self.names():
                if other.startswith(name + "/") or name.startswith(other + "/"):
                    raise ToolError(
                        f"workspace {name!r} would overlap workspace {other!r}: workspaces cannot nest",
                        code="conflict",
                        field=field,
                    )
            with workspace.opened():
                pass
            (workspace.sessions_dir).mkdir(parents=True, exist_ok=True)
        return workspace
