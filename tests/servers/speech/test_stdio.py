"""The speech server as its own process: `python -m aggregator server speech --stdio` driven by an MCP client."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.support.speech_env import WER_BOUND, word_error_rate

pytestmark = pytest.mark.anyio

SENTENCE = "The children are playing in the garden."


async def test_speech_server_runs_as_a_stdio_child_and_round_trips_speech(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "server", "speech", "--stdio"],
        env={"TOOLMUX_DATA_DIR": str(tmp_path / "data")},
    )
    with anyio.fail_after(90):
        async with Client(params, mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"transcribe", "speak", "list_models", "list_voices"}
            spoken = await client.call_tool("speak", {"text": SENTENCE, "format": "flac"})
            assert not spoken.is_error and spoken.structured_content is not None
            # Alone (no hub, so no storage) the audio comes back inline, and the result says so.
            assert spoken.structured_content["delivery"] == "inline"
            audio = next(c for c in spoken.content if c.type == "audio")
            assert audio.mime_type == "audio/flac"
            heard = await client.call_tool("transcribe", {"audio_base64": audio.data, "response_format": "text"})
            assert heard.structured_content is not None
            assert word_error_rate(SENTENCE, heard.structured_content["text"]) <= WER_BOUND
            assert base64.b64decode(audio.data)[:4] == b"fLaC"
            refused = await client.call_tool("speak", {"text": "hi", "voice": "nobody"})
            assert refused.is_error
