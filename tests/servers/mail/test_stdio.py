"""The mail server as its own process: `toolmux server mail --stdio --config FILE` driven by an MCP client."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters

from tests.support.mail_env import MailEnv, call

pytestmark = pytest.mark.anyio


async def test_mail_server_runs_as_a_stdio_child_against_real_dovecot(mail: MailEnv, tmp_path: Path) -> None:
    await call(mail.domain(), "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "hi", "text": "x"})
    config_file = tmp_path / "mail.yaml"
    config_file.write_text(yaml.safe_dump(mail.config()))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "server", "mail", "--stdio", "--config", str(config_file)],
        env={"TOOLMUX_DATA_DIR": str(tmp_path / "data")},
    )
    with anyio.fail_after(60):
        async with Client(params, mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"mailboxes", "inbox", "search", "get_message", "send", "move", "delete"} <= tools
            found = await client.call_tool("search", {"mailbox": "bob", "subject": "hi"})
            assert found.structured_content is not None
            assert [m["subject"] for m in found.structured_content["messages"]] == ["hi"]
            missing = await client.call_tool("get_message", {"mailbox": "nobody", "uid": 1})
            assert missing.is_error
