"""The agent's shell: commands run in the workspace, isolated from the hub, or not at all.

Isolation is decided once, by trying it: `bwrap` is run with the exact options commands will
get. Under bubblewrap a command sees: /usr (and the /bin, /lib... links) and a few files of /etc
read-only, its workspace read-write at its real path, a private /tmp, /proc and /dev, no network
(unless `shell.network`), no other workspace and none of the hub's data; it runs in its own PID
namespace, so everything it started dies with it.

In containers bwrap often fails (no user namespaces, no mount rights). Isolation is never
dropped silently: with `sandbox: auto` or `bubblewrap` the shell is then off (`status` says why).
Only `sandbox: none`, the operator's explicit choice, runs commands without namespaces, and then
as a separate unprivileged user (`run_user`). Every mode adds a scrubbed environment, rlimits, a
timeout and capped output.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from servers.kit import ToolError
from servers.workspaces import run_user
from servers.workspaces.config import ShellConfig
from servers.workspaces.process import Limits, ProcessResult, ProcessSpec, run_process

_log = logging.getLogger("toolmux.workspaces")

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Harmless files programs look for (dynamic linker cache, alternatives links, names of users).
ETC_FILES = (
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/mime.types",
)  # fmt: skip
NETWORK_ETC_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Isolation:
    """What actually confines shell commands here (found by trying bubblewrap)."""

    mode: str  # "bubblewrap" | "separate-user" | "unavailable"
    reason: str
    network: bool

    def as_dict(self, limits: Limits) -> dict[str, Any]:
        return {"shell": self.mode, "reason": self.reason, "network": self.network, "limits": limits.as_dict()}


def scrubbed_env(workspace_dir: str, *, tmp: str = "/tmp") -> dict[str, str]:
    """The whole environment a command gets: nothing of the hub's (no keys, no tokens)."""
    return {
        "PATH": SAFE_PATH,
        "HOME": workspace_dir,
        "PWD": workspace_dir,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "NO_COLOR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class Shell:
    def __init__(self, config: ShellConfig, *, data_dir: Path | None = None, workspace_root: str | None = None) -> None:
        """`data_dir` and `workspace_root` let `sandbox: none` shut the run user out of the hub's data."""
        self.config = config
        self.data_dir = data_dir
        self.workspace_root = workspace_root
        self.run_users = run_user.RunUsers(config.run_uid_base, config.run_uid_slots)
        self.limits = Limits(
            cpu_seconds=config.cpu_seconds,
            address_space=config.address_space,
            file_size=config.file_size,
            nproc=config.nproc,
            open_files=config.open_files,
        )
        self.shell = shutil.which(config.shell) or "/bin/sh"
        self._isolation: Isolation | None = None
        self._probe_lock = anyio.Lock()

    # --- isolation ---------------------------------------------------------------------------------
    def bwrap_argv(self, workspace_dir: str, inner: list[str]) -> list[str]:
        config = self.config
        argv = [shutil.which(config.bwrap_path) or config.bwrap_path, "--die-with-parent", "--unshare-all"]
        if config.network:
            argv.append("--share-net")
        if os.geteuid() == 0:
            argv += ["--cap-drop", "ALL"]  # root keeps capabilities in the sandbox unless told otherwise
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        etc = ETC_FILES + (NETWORK_ETC_FILES if config.network else ())
        for path in (*etc, *config.extra_ro_binds):
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        argv += ["--bind", workspace_dir, workspace_dir, "--chdir", workspace_dir, "--", *inner]
        return argv

    async def isolation(self) -> Isolation:
        """Which isolation commands get; bubblewrap is tried once, for real, on first use."""
        if self._isolation is not None:
            return self._isolation
        async with self._probe_lock:
            if self._isolation is None:
                self._isolation = await self._probe()
                _log.info("workspaces shell isolation: %s (%s)", self._isolation.mode, self._isolation.reason)
        return self._isolation

    async def _probe(self) -> Isolation:
        mode = self.config.sandbox
        if mode == "none":
            failure = await self._try_run_user()
            if failure is not None:
                return Isolation("unavailable", f"the shell is off: {failure}", False)
            return Isolation(
                "separate-user",
                "sandbox: none in the config; no namespaces, commands run as a separate unprivileged user "
                "that cannot read the hub's data dir",
                True,
            )
        failure = await self._try_bwrap()
        if failure is None:
            return Isolation("bubblewrap", "bubblewrap works here", self.config.network)
        if mode == "bubblewrap":
            return Isolation("unavailable", f"sandbox: bubblewrap is required but does not work here: {failure}", False)
        return Isolation(
            "unavailable",
            f"the shell is off: bubblewrap does not work here ({failure}); set shell.sandbox: none to run "
            "commands as a separate unprivileged user instead",
            False,
        )

    async def _try_run_user(self) -> str | None:
        """None when a command ran as a separate user that cannot list the hub's data dir; else why not."""
        reason = run_user.unavailable_reason()
        if reason is not None:
            return reason
        if self.data_dir is not None:
            root = self.workspace_root or str(self.data_dir)
            await anyio.to_thread.run_sync(run_user.protect_data_dir, self.data_dir, root)
        data = str(self.data_dir.resolve()) if self.data_dir is not None else None
        check = f"ls {shlex.quote(data)} >/dev/null 2>&1 && echo exposed; id -u" if data else "id -u"
        with tempfile.TemporaryDirectory(prefix="toolmux-user-probe-") as probe_dir:
            try:
                result = await self._run_as_user([self.shell, "-c", check], probe_dir, timeout=10.0, output_cap=4096)
            except OSError as exc:
                return f"cannot start {run_user.SETPRIV}: {exc.strerror}"
        lines = result.stdout.text().split()
        if result.exit_code != 0 or not lines or lines[-1] == "0":
            return f"a probe command could not run as a separate user: {' '.join(lines) or result.exit_code}"
        if "exposed" in lines:
            return f"the separate user can still list the data dir {data}"
        return None

    async def _try_bwrap(self) -> str | None:
        """None when bwrap ran a command with our options; else why not."""
        if shutil.which(self.config.bwrap_path) is None:
            return f"{self.config.bwrap_path!r} is not installed (Debian package bubblewrap)"
        with tempfile.TemporaryDirectory(prefix="toolmux-bwrap-probe-") as probe_dir:
            spec = ProcessSpec(
                argv=self.bwrap_argv(probe_dir, [self.shell, "-c", "echo ok > probe"]),
                cwd=probe_dir,
                env=scrubbed_env(probe_dir),
                timeout=10.0,
                output_cap=4096,
                limits=self.limits,
            )
            try:
                result = await run_process(spec)
            except OSError as exc:
                return f"cannot start {self.config.bwrap_path}: {exc.strerror}"
            written = await anyio.Path(probe_dir, "probe").exists()
        if result.exit_code == 0 and written:
            return None
        detail = result.stdout.text().strip().splitlines()
        return detail[-1] if detail else f"exit code {result.exit_code}"

    # --- running -----------------------------------------------------------------------------------
    async def run(
        self,
        command: str,
        workspace_dir: str,
        *,
        timeout: float | None = None,
        on_start: Callable[[int], Awaitable[None]] | None = None,
        on_output: Callable[[bytes], None] | None = None,
    ) -> ProcessResult:
        isolation = await self.isolation()
        if isolation.mode == "unavailable":
            raise ToolError(isolation.reason, code="unavailable")
        wanted = timeout if timeout is not None else self.config.timeout
        limit = min(max(wanted, 0.1), self.config.max_timeout)
        inner = [self.shell, "-c", command]
        if isolation.mode == "separate-user":
            return await self._run_as_user(
                inner, workspace_dir, timeout=limit, on_start=on_start, on_output=on_output, own_workspace=True
            )
        spec = ProcessSpec(
            argv=self.bwrap_argv(workspace_dir, inner),
            cwd=workspace_dir,
            env=scrubbed_env(workspace_dir),
            timeout=limit,
            output_cap=self.config.output_cap,
            limits=self.limits,
            on_start=on_start,
            on_output=on_output,
        )
        return await run_process(spec)

    async def _run_as_user(
        self,
        inner: list[str],
        workspace_dir: str,
        *,
        timeout: float,
        output_cap: int | None = None,
        on_start: Callable[[int], Awaitable[None]] | None = None,
        on_output: Callable[[bytes], None] | None = None,
        own_workspace: bool = False,
    ) -> ProcessResult:
        """Run `inner` as a fresh unprivileged uid; every process of that uid is killed afterwards."""
        with self.run_users.claim() as user:
            if own_workspace:
                await anyio.to_thread.run_sync(run_user.own_tree, workspace_dir, user)
            spec = ProcessSpec(
                # The hub enters the workspace before dropping to the user, so the user needs no
                # rights on the directories above it.
                argv=[*user.wrapper(), *inner],
                cwd=workspace_dir,
                env=scrubbed_env(workspace_dir),
                timeout=timeout,
                output_cap=output_cap or self.config.output_cap,
                limits=self.limits,
                on_start=on_start,
                on_output=on_output,
                after_exit=lambda: run_user.kill_all(user),
            )
            return await run_process(spec)


def describe(result: ProcessResult, timeout: float | None = None) -> str:
    """A command's outcome as the agent reads it."""
    if result.timed_out:
        status = f"timed out after {timeout or result.duration_s:g} s; the command and its children were killed"
    elif result.signal is not None:
        status = f"killed by signal {result.signal}"
    else:
        status = f"exit code {result.exit_code}"
    output = result.stdout.text()
    return f"[{status}]\n{output}" if output else f"[{status}] (no output)"
