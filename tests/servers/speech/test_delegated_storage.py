"""Speech reads storage with the caller's scopes, not its own: no confused deputy.

A key scoped to `speech-*` may not read storage. Asking `speech-transcribe` to read a private
object for it (by reference or by its URL on this hub) gets the refusal a direct read gets, and
the same answer whether the object exists or not. Run through a real hub, with speech both in
the hub's process and as a child calling back over HTTP.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from servers.kit import error_from_result
from tests.aggregator.hubkit import running_hub

pytestmark = pytest.mark.anyio

SPEAKER_KEY = "speaker-key-0123456789abcdef"
AUTH = {"keys": [{"name": "speaker", "key": SPEAKER_KEY, "tools": ["speech-*"]}]}


def wire(result: types.CallToolResult) -> dict[str, Any]:
    dumped: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


@pytest.mark.parametrize("mode", ["inprocess", "stdio"])
async def test_a_speech_only_key_cannot_read_private_storage_through_transcribe(tmp_path: Path, mode: str) -> None:
    servers = {"speech": {"mode": "stdio"}} if mode == "stdio" else {}
    async with running_hub(tmp_path, servers, builtins=["storage", "speech"], auth=AUTH) as running:
        async with running.client() as master:
            await master.call(
                "storage-put_object",
                bucket="default",
                key="private.wav",
                base64=base64.b64encode(b"RIFF private audio").decode(),
                content_type="audio/wav",
            )
        async with running.client(SPEAKER_KEY) as speaker:
            direct = []
            for key in ("private.wav", "missing.wav"):
                with pytest.raises(MCPError) as refused:
                    await speaker.call_tool("storage-get_object", {"bucket": "default", "key": key})
                direct.append(refused.value.error.code)
            answers = []
            for arguments in (
                {"object": {"bucket": "default", "key": "private.wav"}},
                {"object": {"bucket": "default", "key": "missing.wav"}},
                {"url": "/storage/default/private.wav"},
                {"url": "/storage/default/missing.wav"},
            ):
                error = error_from_result(wire(await speaker.call_tool("speech-transcribe", arguments)))
                assert error is not None, arguments
                answers.append((error.code, error.message))
    assert direct == [types.INVALID_PARAMS, types.INVALID_PARAMS]  # out of scope reads as nonexistent
    # Refused like the direct read, before storage is asked: nothing tells an existing object from a missing one.
    assert answers[0] == answers[1] and answers[2] == answers[3]
    assert all("storage-get_object" in message and "private audio" not in message for _, message in answers)
    assert answers[0][0] != "invalid_argument"  # not an audio-decoding failure: the bytes were never read
