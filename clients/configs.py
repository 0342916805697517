"""Ready-to-paste client configuration for a hub.

MCP: Claude Desktop (stdio launch, or the `mcp-remote` bridge to a running hub), LibreChat,
Open WebUI, Continue. OpenAI-compatible `/v1`: LibreChat's custom endpoint, Open WebUI's
connection, Continue's model, and environment lines for any OpenAI SDK app.

Generated entries never hold a real key (a placeholder or the app's own `${VAR}`), use absolute
paths, and pin the data dir, so an app launching the hub from anywhere finds the same state.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

KEY_PLACEHOLDER = "<your toolmux API key>"
DEFAULT_MCP_URL = "http://127.0.0.1:4000/mcp/"


def base_url(url: str) -> str:
    """The hub's root URL from its MCP URL (or from the root itself)."""
    url = url.rstrip("/")
    return url.removesuffix("/mcp")


def mcp_url(url: str) -> str:
    return base_url(url) + "/mcp/"


def _toolmux_command() -> tuple[str, list[str]]:
    found = shutil.which("toolmux")
    if found:
        return str(Path(found).absolute()), []
    return str(Path(sys.executable).absolute()), ["-m", "aggregator"]


def claude_desktop(*, url: str, config_path: str | None, use_stdio: bool, data_dir: str | Path | None = None) -> str:
    """`mcpServers` JSON for claude_desktop_config.json.

    stdio launches the hub itself (Claude Desktop's native mode), with absolute paths and the data
    dir pinned. Claude Desktop's file accepts only stdio entries, so for a running hub the entry is
    the `mcp-remote` stdio-to-HTTP bridge; its header's whole value travels in an environment
    variable, since arguments with spaces are mangled on Windows.
    """
    if use_stdio:
        command, args = _toolmux_command()
        args = [*args, "stdio"]
        if config_path:
            args += ["--config", str(Path(config_path).expanduser().absolute())]
        entry: dict[str, Any] = {"command": command, "args": args}
        if data_dir is not None:
            entry["env"] = {"TOOLMUX_DATA_DIR": str(Path(data_dir).expanduser().absolute())}
    else:
        entry = {
            "command": "npx",
            "args": ["-y", "mcp-remote", mcp_url(url), "--header", "Authorization:${TOOLMUX_AUTH}"],
            "env": {"TOOLMUX_AUTH": f"Bearer {KEY_PLACEHOLDER}"},
        }
    return json.dumps({"mcpServers": {"toolmux": entry}}, indent=2)


def librechat(*, url: str) -> str:
    """The `mcpServers` section of librechat.yaml (streamable HTTP with a bearer key)."""
    section = {
        "mcpServers": {
            "toolmux": {
                "type": "streamable-http",
                "url": mcp_url(url),
                "headers": {"Authorization": "Bearer ${TOOLMUX_API_KEY}"},
                "timeout": 120000,
            }
        }
    }
    note = "# Put your toolmux key in LibreChat's environment as TOOLMUX_API_KEY.\n"
    return note + yaml.safe_dump(section, sort_keys=False)


def librechat_endpoint(*, url: str, model: str = "main") -> str:
    """A LibreChat custom endpoint (`endpoints.custom`) for the hub's OpenAI-compatible `/v1`."""
    section = {
        "endpoints": {
            "custom": [
                {
                    "name": "toolmux",
                    "apiKey": "${TOOLMUX_API_KEY}",
                    "baseURL": base_url(url) + "/v1",
                    "models": {"default": [model], "fetch": True},
                    "titleConvo": True,
                    "titleModel": "current_model",
                    "modelDisplayLabel": "toolmux",
                }
            ]
        }
    }
    note = "# librechat.yaml: the models of the hub's /v1 as a custom endpoint; key from TOOLMUX_API_KEY.\n"
    return note + yaml.safe_dump(section, sort_keys=False)


def open_webui(*, url: str) -> str:
    """Environment lines for Open WebUI: the hub as an OpenAI connection and as an MCP tool server."""
    tool_server = [
        {
            "type": "mcp",
            "url": mcp_url(url),
            "auth_type": "bearer",
            "key": KEY_PLACEHOLDER,
            "config": {"enable": True},
            "info": {"id": "toolmux", "name": "toolmux"},
        }
    ]
    return "\n".join(
        [
            "# Open WebUI environment (or Admin Settings > Connections, and > External Tools with",
            "# Type 'MCP (Streamable HTTP)', URL and Bearer key as below). MCP needs Open WebUI 0.6.31+.",
            f"OPENAI_API_BASE_URL={base_url(url)}/v1",
            f"OPENAI_API_KEY={KEY_PLACEHOLDER}",
            "ENABLE_PERSISTENT_CONFIG=false",
            f"TOOL_SERVER_CONNECTIONS='{json.dumps(tool_server)}'",
        ]
    )


def continue_dev(*, url: str, model: str = "main") -> str:
    """A Continue `config.yaml` block: a model on the hub's /v1 and the hub as an MCP server."""
    block = {
        "models": [
            {
                "name": f"toolmux {model}",
                "provider": "openai",
                "model": model,
                "apiBase": base_url(url) + "/v1",
                "apiKey": "${{ secrets.TOOLMUX_API_KEY }}",
            }
        ],
        "mcpServers": [
            {
                "name": "toolmux",
                "type": "streamable-http",
                "url": mcp_url(url),
                "requestOptions": {"headers": {"Authorization": "Bearer ${{ secrets.TOOLMUX_API_KEY }}"}},
            }
        ],
    }
    note = "# ~/.continue/config.yaml (merge into yours); TOOLMUX_API_KEY in Continue's secrets or .env.\n"
    return note + yaml.safe_dump(block, sort_keys=False)


def openai_env(*, url: str) -> str:
    """Environment lines any OpenAI SDK app reads (Python, Node, and most tools built on them)."""
    return "\n".join(
        [
            "# For apps built on an OpenAI SDK: models are the hub's aliases (toolmux call models-list_models).",
            f"OPENAI_BASE_URL={base_url(url)}/v1",
            f"OPENAI_API_KEY={KEY_PLACEHOLDER}",
        ]
    )


APPS = {
    "claude-desktop": "Claude Desktop (stdio launch; --http for the mcp-remote bridge)",
    "librechat": "LibreChat MCP server (librechat.yaml mcpServers)",
    "librechat-endpoint": "LibreChat custom endpoint for /v1 (librechat.yaml endpoints.custom)",
    "open-webui": "Open WebUI: OpenAI connection + MCP tool server (environment)",
    "continue": "Continue: model on /v1 + MCP server (config.yaml)",
    "openai-env": "OPENAI_BASE_URL / OPENAI_API_KEY lines for OpenAI SDK apps",
}
