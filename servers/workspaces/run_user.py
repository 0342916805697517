"""`sandbox: none`: shell commands run as a separate unprivileged user instead of in namespaces.

Each concurrent command gets its own otherwise unused uid/gid (`run_uid_base + slot`), no
supplementary groups and no_new_privs (`setpriv`). That uid is what keeps it out of the hub's
files and what tracks its process tree:

- it cannot read what the hub keeps to itself: the data dir is made traversable only, every entry
  in it except the way down to the workspaces loses its permissions for others (`o-rwx`), and the
  secrets are the hub's own files (0600) anyway;
- it owns its workspace (the tree is handed to its uid before each command), so it can change
  files the hub's file tools wrote;
- every process it leaves behind, `setsid` or double-forked included, still has its uid: after
  the command a process running as that uid sends SIGKILL to `-1` (all of the uid's processes).

Switching user needs the hub to run as root (CAP_SETUID/CAP_SETGID/CAP_CHOWN).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from servers.kit import ToolError

SETPRIV = shutil.which("setpriv")
KILL = shutil.which("kill")
# How long to wait for the run user's processes to disappear after SIGKILL (they die at once;
# this only bounds a pathological case such as a process stuck in uninterruptible sleep).
REAP_SECONDS = 5.0


@dataclass(frozen=True)
class RunUser:
    uid: int
    gid: int

    def wrapper(self) -> list[str]:
        """`setpriv ... --` that starts a command as this user, with no groups and no way back up."""
        assert SETPRIV is not None
        return [
            SETPRIV,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--no-new-privs",
            "--",
        ]


def unavailable_reason() -> str | None:
    """Why commands cannot run as a separate user here; None when they can."""
    if os.geteuid() != 0:
        return (
            f"sandbox: none runs commands as a separate unprivileged user, which needs the hub to run as root "
            f"(it runs as uid {os.geteuid()}); use bubblewrap instead"
        )
    if SETPRIV is None or KILL is None:
        return "sandbox: none needs setpriv and kill (Debian packages util-linux and procps)"
    return None


class RunUsers:
    """Hands out one uid per concurrent command, so ending one command kills nothing of another."""

    def __init__(self, base: int, slots: int) -> None:
        self.base = base
        self.slots = slots
        self._taken: set[int] = set()

    @contextmanager
    def claim(self) -> Iterator[RunUser]:
        free = next((slot for slot in range(self.slots) if slot not in self._taken), None)
        if free is None:
            raise ToolError(
                f"all {self.slots} shell slots are in use; try again when a command has finished",
                code="busy",
                retryable=True,
            )
        self._taken.add(free)
        try:
            yield RunUser(self.base + free, self.base + free)
        finally:
            self._taken.discard(free)


def own_tree(top: str, user: RunUser) -> None:
    """Give `top` and everything below it to `user` (links themselves, never what they point at)."""
    os.lchown(top, user.uid, user.gid)
    for _root, dirs, files, root_fd in os.fwalk(top, follow_symlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                if info.st_uid != user.uid or info.st_gid != user.gid:
                    os.chown(name, user.uid, user.gid, dir_fd=root_fd, follow_symlinks=False)


def _without_other_access(path: str, *, traverse: bool) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return
    mode = stat.S_IMODE(info.st_mode) & ~0o007
    if traverse:
        mode |= 0o001
    if mode != stat.S_IMODE(info.st_mode):
        os.chmod(path, mode)


def protect_data_dir(data_dir: Path, workspace_root: str) -> None:
    """Others may only pass through the data dir on the way to the workspaces, and read nothing else."""
    data = os.path.realpath(data_dir)
    root = os.path.realpath(workspace_root)
    if not os.path.isdir(data):
        return
    if not root.startswith(data + os.sep):
        _without_other_access(data, traverse=False)
        for name in os.listdir(data):
            _without_other_access(os.path.join(data, name), traverse=False)
        return
    current = data
    for part in Path(os.path.relpath(root, data)).parts:
        _without_other_access(current, traverse=True)
        for name in os.listdir(current):
            if name != part:
                _without_other_access(os.path.join(current, name), traverse=False)
        current = os.path.join(current, part)
    _without_other_access(current, traverse=True)  # the workspaces root: enter yours, list none


def alive_of(uid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose real uid is `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as status:
                fields = dict(line.split(b":", 1) for line in status.read().splitlines() if b":" in line)
        except OSError:  # gone meanwhile
            continue
        real_uid = fields.get(b"Uid", b"").split()[:1]
        if real_uid == [str(uid).encode()] and not fields.get(b"State", b"").strip().startswith(b"Z"):
            pids.append(int(entry.name))
    return pids


def _kill_all_sync(user: RunUser) -> None:
    assert KILL is not None
    # kill(-1) from a process of that uid reaches exactly that uid's processes (never root's, never
    # another slot's), atomically with respect to fork, so nothing escapes between scan and kill.
    deadline = time.monotonic() + REAP_SECONDS
    while True:
        subprocess.run([*user.wrapper(), KILL, "-KILL", "-1"], capture_output=True, check=False)
        if not alive_of(user.uid) or time.monotonic() > deadline:
            return
        time.sleep(0.01)  # SIGKILLed processes take a moment to exit; the kernel offers no event for that


async def kill_all(user: RunUser) -> None:
    """SIGKILL every process running as `user`; returns once none is left."""
    await anyio.to_thread.run_sync(_kill_all_sync, user)
