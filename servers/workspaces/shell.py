"""The agent's shell: commands run in the workspace, sandboxed by bubblewrap when it works here.

Isolation is decided once, by trying it: `bwrap` is run with the exact options commands will
get. In containers bwrap often fails (no user namespaces, no mount rights); then commands run
with resource limits only, and `status` says so with bwrap's own reason.

Under bubblewrap a command sees: /usr (and the /bin, /lib... links) and a few files of /etc
read-only, its workspace read-write at its real path, a private /tmp, /proc and /dev, no network
(unless `shell.network`), no other workspace and none of the hub's data. Either way it gets a
scrubbed environment, rlimits, a timeout, capped output and its own process group.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from servers.kit import ToolError
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

    mode: str  # "bubblewrap" | "rlimits" | "unavailable"
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
    def __init__(self, config: ShellConfig) -> None:
        self.config = config
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
            return Isolation("rlimits", "sandbox: none in the config; resource limits only", True)
        failure = await self._try_bwrap()
        if failure is None:
            return Isolation("bubblewrap", "bubblewrap works here", self.config.network)
        if mode == "bubblewrap":
            return Isolation("unavailable", f"sandbox: bubblewrap is required but does not work here: {failure}", False)
        return Isolation("rlimits", f"bubblewrap does not work here ({failure}); resource limits only", True)

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
        inner = [self.shell, "-c", command]
        argv = self.bwrap_argv(workspace_dir, inner) if isolation.mode == "bubblewrap" else inner
        spec = ProcessSpec(
            argv=argv,
            cwd=workspace_dir,
            env=scrubbed_env(workspace_dir),
            timeout=min(max(wanted, 0.1), self.config.max_timeout),
            output_cap=self.config.output_cap,
            limits=self.limits,
            on_start=on_start,
            on_output=on_output,
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
