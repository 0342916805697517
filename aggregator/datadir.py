"""Where toolmux keeps its state (master key, stored objects, usage records, workspaces).

One rule for every command, so a hub started by Claude Desktop from an arbitrary directory and
`toolmux usage` typed in a terminal find the same files:

    --data-dir  >  $TOOLMUX_DATA_DIR  >  server.data_dir in the config file  >  the platform's user data dir

The platform's user data dir is `$XDG_DATA_HOME/toolmux` (default `~/.local/share/toolmux`) on
Linux, `~/Library/Application Support/toolmux` on macOS and `%LOCALAPPDATA%\\toolmux` on Windows.
A relative `server.data_dir` is taken relative to the config file that names it, never to the
directory the hub happens to be launched from.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

ENV_DATA_DIR = "TOOLMUX_DATA_DIR"


class DataDirError(RuntimeError):
    """The data dir cannot be created or written; the message is one line meant for a person."""


def platform_default() -> Path:
    """The per-user data directory the platform expects applications to use."""
    import platformdirs

    return Path(platformdirs.user_data_dir("toolmux", appauthor=False, roaming=False))


def resolve(
    flag: str | os.PathLike[str] | None = None,
    configured: str | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The data dir as an absolute path, by the precedence in this module's docstring."""
    env = os.environ if environ is None else environ
    if flag:
        return Path(flag).expanduser().absolute()
    if env.get(ENV_DATA_DIR):
        return Path(env[ENV_DATA_DIR]).expanduser().absolute()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and config_file and not config_file.startswith("<"):
            path = Path(config_file).absolute().parent / path
        return path.absolute()
    return platform_default()


def ensure_usable(path: Path) -> Path:
    """Create the data dir (mode 0700 when new) and prove it is writable, or raise DataDirError."""
    hint = f"choose another with --data-dir or ${ENV_DATA_DIR}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # access() says nothing true for root or on read-only mounts; writing a file does.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise DataDirError(f"toolmux: the data dir {path} is not usable ({why}); {hint}") from None
    return path
