"""What `toolmux doctor` says about the workspaces shell: is it on here, and how is it isolated."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from servers.workspaces.config import WorkspacesConfig
from servers.workspaces.shell import Isolation, Shell


def shell_isolation(config: Mapping[str, Any] | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """`{"ok", "shell", "reason", "network"}` for the workspaces server's config, found by trying it.

    `config` is the workspaces server's `config:` section; `data_dir` the hub's data dir. `ok` is
    false when the agent's shell is off here (no working sandbox, and `sandbox: none` not chosen
    or not possible). With `sandbox: none` this also shuts other users out of `data_dir`, as the
    server does at start. Safe to call with or without a running event loop.
    """
    parsed = WorkspacesConfig.model_validate(dict(config or {}))
    root = parsed.root or (data_dir / "workspaces" / "workspaces" if data_dir is not None else None)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    shell = Shell(parsed.shell, data_dir=data_dir, workspace_root=str(root) if root is not None else None)
    found: list[Isolation] = []
    # A thread of its own: the probe runs subprocesses in an event loop, and the caller may be in one.
    worker = threading.Thread(target=lambda: found.append(anyio.run(shell.isolation)))
    worker.start()
    worker.join()
    isolation = found[0]
    return {
        "ok": isolation.mode != "unavailable",
        "shell": isolation.mode,
        "reason": isolation.reason,
        "network": isolation.network,
    }
