"""Ready-to-paste client configuration for a running hub: Claude Desktop JSON, LibreChat YAML."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import yaml

KEY_PLACEHOLDER = "<your toolmux API key>"


def claude_desktop(*, url: str, config_path: str | None, use_stdio: bool) -> str:
    """`mcpServers` JSON for claude_desktop_config.json.

    stdio launches the hub itself (Claude Desktop's native mode). Claude Desktop's file accepts
    only stdio entries, so for a running hub the entry is the `mcp-remote` stdio-to-HTTP bridge.
    """
    if use_stdio:
        command = shutil.which("toolmux") or sys.executable
        args = ["stdio"] if command.endswith("toolmux") else ["-m", "aggregator", "stdio"]
        if config_path:
            args += ["--config", config_path]
        entry: dict[str, Any] = {"command": command, "args": args}
    else:
        entry = {
            "command": "npx",
            "args": ["-y", "mcp-remote", url, "--header", "Authorization:Bearer ${TOOLMUX_KEY}"],
            "env": {"TOOLMUX_KEY": KEY_PLACEHOLDER},
        }
    return json.dumps({"mcpServers": {"toolmux": entry}}, indent=2)


def librechat(*, url: str) -> str:
    """The `mcpServers` section of librechat.yaml (streamable HTTP with a bearer key)."""
    section = {
        "mcpServers": {
            "toolmux": {
                "type": "streamable-http",
                "url": url,
                "headers": {"Authorization": "Bearer ${TOOLMUX_API_KEY}"},
                "timeout": 120000,
            }
        }
    }
    note = "# Put your toolmux key in LibreChat's environment as TOOLMUX_API_KEY.\n"
    return note + yaml.safe_dump(section, sort_keys=False)
