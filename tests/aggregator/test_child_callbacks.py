"""A built-in running as a child process uses other hub tools through the hub (speech → storage)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.aggregator.hubkit import MASTER_KEY, running_hub

pytestmark = pytest.mark.anyio


async def test_speech_in_a_child_stores_its_audio_in_storage_through_the_hub(tmp_path: Path) -> None:
    servers = {"speech": {"mode": "stdio"}}
    async with running_hub(tmp_path, servers, builtins=["storage", "speech"]) as running:
        assert running.hub.upstreams["speech"].kind == "builtin-stdio"
        async with running.client() as hub:
            spoken = await hub.call("speech-speak", text="hello from the child", voice="espeak:en-us", format="wav")
        async with httpx2.AsyncClient() as http:
            audio = await http.get(spoken["url"], headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert spoken["delivery"] == "storage" and spoken["bucket"] == "default"
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF" and len(audio.content) == spoken["size"]
