"""Names and paths: what a workspace may be called, and how a path inside one is reached safely.

A path given by a caller (or by the agent) is relative to its workspace. `..` segments, absolute
paths and NUL bytes are refused outright. Symbolic links are resolved and must stay inside the
workspace; the resolved path is then walked one directory at a time with `O_NOFOLLOW`, so a link
swapped in after the check is refused instead of followed (no window for an escape).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from servers.kit import ToolError

SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
WORKSPACE_NAME = re.compile(rf"^{SEGMENT}(/{SEGMENT}){{0,7}}$")
MAX_PATH_CHARS = 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_workspace_name(name: str, field: str = "workspace") -> str:
    if not isinstance(name, str) or not WORKSPACE_NAME.match(name):
        raise ToolError(
            f"workspace name {name!r} is not valid: use 1-8 segments joined by '/', each 1-64 characters "
            "of letters, digits, '.', '_' or '-' starting with a letter or digit (e.g. 'clients/acme')",
            field=field,
        )
    return name


def split_relative(path: str, field: str = "path") -> list[str]:
    """The segments of a workspace-relative path ('' and '.' are the workspace itself)."""
    if not isinstance(path, str):
        raise ToolError("path must be a string", field=field)
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"path is longer than {MAX_PATH_CHARS} characters", field=field)
    if "\x00" in path:
        raise ToolError("path contains a NUL byte", field=field)
    if path.startswith(("/", "~")):
        raise ToolError(
            f"path {path!r} is absolute; give a path relative to the workspace, e.g. 'data/report.csv'", field=field
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ToolError(f"path {path!r} contains '..'; paths must stay inside the workspace", field=field)
    return parts


def is_inside(root: str, target: str) -> bool:
    return target == root or target.startswith(root.rstrip("/") + "/")


def os_error(exc: OSError, shown: str, field: str = "path") -> ToolError:
    """A caller-facing error for a filesystem failure on `shown` (a workspace-relative path)."""
    code = exc.errno
    if code == errno.ENOENT:
        return ToolError(f"{shown!r} does not exist", code="not_found", field=field)
    if code == errno.ELOOP:
        return ToolError(
            f"{shown!r} is or passes through a symbolic link, which is not followed here", code="forbidden", field=field
        )
    if code == errno.ENOTDIR:
        return ToolError(f"a parent of {shown!r} is not a directory", field=field)
    if code == errno.EISDIR:
        return ToolError(f"{shown!r} is a directory", code="conflict", field=field)
    if code == errno.EEXIST:
        return ToolError(f"{shown!r} already exists", code="conflict", field=field)
    if code == errno.ENOTEMPTY:
        return ToolError(
            f"directory {shown!r} is not empty; pass recursive=true to delete it", code="conflict", field=field
        )
    if code in (errno.EACCES, errno.EPERM):
        return ToolError(f"permission denied for {shown!r}", code="forbidden", field=field)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ToolError(f"no space left to write {shown!r}", code="too_large", field=field)
    return ToolError(f"cannot access {shown!r}: {exc.strerror}", code="internal", field=field)


@dataclass(frozen=True)
class Resolved:
    """A path inside a workspace after symlinks were resolved: its segments, and how it was asked for."""

    parts: tuple[str, ...]
    shown: str

    @property
    def parent(self) -> tuple[str, ...]:
        return self.parts[:-1]

    @property
    def name(self) -> str:
        return self.parts[-1]


def resolve(workspace_dir: str, path: str, *, follow_last: bool = True, field: str = "path") -> Resolved:
    """Resolve `path` inside `workspace_dir` (a real path); refuse anything that ends up outside.

    With follow_last=False the final segment itself is not resolved (delete a link, replace it),
    only its parent directories are.
    """
    parts = split_relative(path, field)
    shown = "/".join(parts) or "."
    if not parts:
        return Resolved((), shown)
    head = os.path.join(workspace_dir, *parts[:-1]) if not follow_last else os.path.join(workspace_dir, *parts)
    real = os.path.realpath(head)
    if not is_inside(workspace_dir, real):
        raise ToolError(f"{shown!r} leads outside the workspace through a symbolic link", code="forbidden", field=field)
    inner = os.path.relpath(real, workspace_dir)
    resolved = [] if inner == "." else inner.split(os.sep)
    if not follow_last:
        resolved.append(parts[-1])
    return Resolved(tuple(resolved), shown)


def open_dir_at(root_fd: int, parts: tuple[str, ...] | list[str], *, create: bool = False) -> int:
    """Open the directory `parts` below `root_fd` without following any link; a new fd to close."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                # O_DIRECTORY answers ENOTDIR for a link too: say which it was.
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "symbolic link not followed", part) from None
                raise
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def opened_dir(root_fd: int, parts: tuple[str, ...] | list[str], *, create: bool = False) -> Iterator[int]:
    fd = open_dir_at(root_fd, parts, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened_root(path: str) -> Iterator[int]:
    """A directory fd for the (operator-chosen, already resolved) root of all workspaces."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)
