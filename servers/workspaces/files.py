"""File operations inside one workspace: list, read, write (atomic), delete.

Every operation resolves its path with `paths.resolve` (no escape through `..`, absolute paths
or links) and then works relative to directory fds opened with O_NOFOLLOW. These functions
block on disk I/O: callers run them in a worker thread.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from servers.kit import ToolError
from servers.workspaces.layout import Workspace
from servers.workspaces.paths import opened_dir, os_error, resolve

Encoding = Literal["auto", "text", "base64"]
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
CHUNK = 1024 * 1024


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def decode(data: bytes, encoding: Encoding, shown: str) -> dict[str, Any]:
    """`{"text": ...}` or `{"base64": ...}` for file content, as asked (auto: text when it is UTF-8)."""
    if encoding != "base64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if encoding == "text":
                raise ToolError(
                    f"{shown!r} is not UTF-8 text; read it with encoding='base64'", field="encoding"
                ) from None
        else:
            if encoding == "text" or "\x00" not in text:
                return {"encoding": "text", "text": text}
    return {"encoding": "base64", "base64": base64.b64encode(data).decode("ascii")}


@dataclass
class FileOps:
    max_file_bytes: int
    max_list_entries: int

    def read_bytes(
        self, workspace: Workspace, path: str, *, max_bytes: int | None = None, partial: bool = False
    ) -> tuple[bytes, int, float, str]:
        """Content, size, mtime and shown path of a regular file. Over the cap: refused, or with
        partial=True its first `max_bytes` bytes."""
        cap = min(max_bytes or self.max_file_bytes, self.max_file_bytes)
        target = resolve(workspace.dir, path)
        if not target.parts:
            raise ToolError("the path names the workspace directory itself; use list_files", field="path")
        with workspace.opened() as ws_fd:
            try:
                with opened_dir(ws_fd, target.parent) as dir_fd:
                    fd = os.open(target.name, READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise os_error(exc, target.shown) from None
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise ToolError(f"{target.shown!r} is a directory; use list_files", code="conflict", field="path")
                if not stat.S_ISREG(info.st_mode):
                    raise ToolError(f"{target.shown!r} is not a regular file", field="path")
                if info.st_size > cap and not partial:
                    raise self._too_large(target.shown, info.st_size, cap)
                chunks: list[bytes] = []
                size = 0
                while piece := os.read(fd, min(CHUNK, cap + 1 - size)):
                    size += len(piece)
                    chunks.append(piece)
                    if size > cap:
                        if not partial:  # the file grew while being read
                            raise self._too_large(target.shown, size, cap)
                        break
                data = b"".join(chunks)[:cap]
                return data, max(info.st_size, size), info.st_mtime, target.shown
            finally:
                os.close(fd)

    @staticmethod
    def _too_large(shown: str, size: int, cap: int) -> ToolError:
        return ToolError(
            f"{shown!r} is {size} bytes, more than the {cap}-byte limit for reading it whole",
            code="too_large",
            field="path",
            data={"size": size, "limit": cap},
        )

    def read(self, workspace: Workspace, path: str, *, encoding: Encoding = "auto") -> dict[str, Any]:
        data, _, mtime, shown = self.read_bytes(workspace, path)
        return {
            "workspace": workspace.name,
            "path": shown,
            "size": len(data),
            "modified": iso(mtime),
            **decode(data, encoding, shown),
        }

    def write(
        self, workspace: Workspace, path: str, data: bytes, *, make_parents: bool = True, overwrite: bool = True
    ) -> dict[str, Any]:
        """Write `data` to `path` atomically (a temporary file renamed over the target)."""
        if len(data) > self.max_file_bytes:
            raise ToolError(
                f"content is {len(data)} bytes, more than the {self.max_file_bytes}-byte file limit",
                code="too_large",
                field="path",
                data={"size": len(data), "limit": self.max_file_bytes},
            )
        target = resolve(workspace.dir, path, follow_last=False)
        if not target.parts:
            raise ToolError("give a file path inside the workspace, not the workspace itself", field="path")
        with workspace.opened() as ws_fd:
            try:
                with opened_dir(ws_fd, target.parent, create=make_parents) as dir_fd:
                    return self._write_at(workspace, dir_fd, target.name, target.shown, data, overwrite=overwrite)
            except OSError as exc:
                raise os_error(exc, target.shown) from None

    def _write_at(
        self, workspace: Workspace, dir_fd: int, name: str, shown: str, data: bytes, *, overwrite: bool
    ) -> dict[str, Any]:
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise ToolError(f"{shown!r} is a directory", code="conflict", field="path")
        if existing is not None and not overwrite:
            raise ToolError(f"{shown!r} already exists (overwrite=false)", code="conflict", field="path")
        temporary = f".{name[:100]}.{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
        )
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view[:CHUNK])
                    view = view[written:]
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=dir_fd)
            raise
        return {"workspace": workspace.name, "path": shown, "size": len(data), "created": existing is None}

    def delete(self, workspace: Workspace, path: str, *, recursive: bool = False) -> dict[str, Any]:
        target = resolve(workspace.dir, path, follow_last=False)
        if not target.parts:
            raise ToolError("refusing to delete the workspace itself; name a path inside it", field="path")
        with workspace.opened() as ws_fd:
            try:
                with opened_dir(ws_fd, target.parent) as dir_fd:
                    info = os.stat(target.name, dir_fd=dir_fd, follow_symlinks=False)
                    kind = kind_of(info.st_mode)
                    if kind == "directory":
                        if not recursive:
                            raise ToolError(
                                f"{target.shown!r} is a directory; pass recursive=true to delete it and its contents",
                                code="conflict",
                                field="recursive",
                            )
                        # rmtree with dir_fd never follows links out of the tree it deletes.
                        shutil.rmtree(target.name, dir_fd=dir_fd)
                    else:
                        os.unlink(target.name, dir_fd=dir_fd)
            except OSError as exc:
                raise os_error(exc, target.shown) from None
        return {"workspace": workspace.name, "path": target.shown, "deleted": kind}

    def list(
        self, workspace: Workspace, path: str = "", *, recursive: bool = False, max_entries: int | None = None
    ) -> dict[str, Any]:
        limit = min(max_entries or self.max_list_entries, self.max_list_entries)
        target = resolve(workspace.dir, path)
        base = "/".join(target.parts)
        entries: list[dict[str, Any]] = []
        truncated = False
        with workspace.opened() as ws_fd:
            try:
                with opened_dir(ws_fd, target.parts) as dir_fd:
                    if recursive:
                        truncated = self._walk(dir_fd, base, entries, limit)
                    else:
                        for entry in os.scandir(dir_fd):
                            if len(entries) >= limit:
                                truncated = True
                                break
                            info = entry.stat(follow_symlinks=False)
                            entries.append(_entry(base, entry.name, info))
            except OSError as exc:
                raise os_error(exc, target.shown) from None
        entries.sort(key=lambda e: e["path"])
        return {"workspace": workspace.name, "path": target.shown, "entries": entries, "truncated": truncated}

    @staticmethod
    def _walk(dir_fd: int, base: str, entries: builtins.list[dict[str, Any]], limit: int) -> bool:
        for root, dirs, files, root_fd in os.fwalk(".", dir_fd=dir_fd):
            prefix = "/".join(p for p in (base, root.removeprefix(".").strip("/")) if p)
            for name in sorted(dirs) + sorted(files):
                if len(entries) >= limit:
                    return True
                try:
                    info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append(_entry(prefix, name, info))
        return False


def _entry(prefix: str, name: str, info: os.stat_result) -> dict[str, Any]:
    kind = kind_of(info.st_mode)
    entry: dict[str, Any] = {
        "path": f"{prefix}/{name}" if prefix else name,
        "type": kind,
        "modified": iso(info.st_mtime),
    }
    if kind == "file":
        entry["size"] = info.st_size
    return entry
