"""A real speech server beside a real storage server, shared by the speech and audio-facade tests.

Engines take a second or two to load, so one stack lives for the whole session (the speech
server keeps its engines loaded between tests). `speech_stack` routes the speech server's
`ctx.hub` calls to the in-process storage domain, as the hub would.

Import in a conftest: `from tests.support.speech_env import speech_stack, spoken  # noqa: F401`.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result
from servers.speech.resources import ResourceManager
from servers.speech.server import create
from tests.support.hub import DomainsHubCaller
from tests.support.storage import make_domain

PUBLIC_URL = "http://hub.test"

# Sentences the built-in pair (piper joe → pocketsphinx) gets right or nearly: the WER bound
# below is measured over all of them together.
SENTENCES = (
    "I would like a cup of coffee with milk.",
    "The meeting will start at nine in the morning.",
    "She reads a book every night before going to sleep.",
    "The train to the city leaves from the main station.",
    "The children are playing in the garden.",
)
# piper samples noise on every synthesis, so a round trip is not bit-for-bit repeatable;
# measured WER over SENTENCES is 0-5 %, the bound leaves room for that variation.
WER_BOUND = 0.2


def words_of(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by word-level edit distance."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            above = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
            diagonal = above
    return row[len(hyp)] / max(1, len(ref))


@dataclass
class SpeechStack:
    speech: Domain
    storage: Domain
    hub: DomainsHubCaller
    data_dir: Path

    async def call(self, tool: str, args: dict[str, Any], *, hub: Any = "default") -> dict[str, Any]:
        """The whole CallToolResult of a successful call (fails the test with the error otherwise)."""
        result = await self.raw(tool, args, hub=hub)
        error = error_from_result(result)
        assert error is None, f"{tool} failed: {error.message if error else ''}"
        return result

    async def error(self, tool: str, args: dict[str, Any], *, hub: Any = "default") -> ToolError:
        result = await self.raw(tool, args, hub=hub)
        error = error_from_result(result)
        assert error is not None, f"{tool} unexpectedly succeeded: {result.get('structuredContent')}"
        return error

    async def raw(self, tool: str, args: dict[str, Any], *, hub: Any = "default") -> dict[str, Any]:
        ctx = ToolContext(tool=tool, request_id="test", hub=self.hub if hub == "default" else hub)
        return await self.speech.call(tool, args, ctx)


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2"), reader.getframerate()


# One stack and one set of recordings per test process, however many conftests import the
# fixtures (each import would otherwise make its own session fixture, loading engines again).
_shared: dict[str, Any] = {}


@asynccontextmanager
async def slot_held(resources: ResourceManager, job: str, hardware: str = "cpu") -> AsyncIterator[None]:
    """For the block, `hardware` is busy with another `job` (released when the block ends)."""
    held, release = anyio.Event(), anyio.Event()

    async def hold() -> None:
        async with resources.slot(hardware, job=job):
            held.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await held.wait()
        try:
            yield
        finally:
            release.set()


@pytest.fixture(scope="session")
def speech_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechStack]:
    if "stack" not in _shared:
        data_dir = tmp_path_factory.mktemp("speech-stack")
        storage = make_domain(data_dir, public_url=PUBLIC_URL)
        hub = DomainsHubCaller({"storage": storage})
        speech = create(ServerSettings(name="speech", data_dir=data_dir, hub=hub, public_url=PUBLIC_URL))
        hub.domains["speech"] = speech
        _shared["stack"] = SpeechStack(speech, storage, hub, data_dir)
    stack: SpeechStack = _shared["stack"]
    yield stack
    if _shared.pop("stack", None) is not None:
        stack.speech.service.close()
        stack.storage.service.close()


@pytest.fixture(scope="session")
def spoken(speech_stack: SpeechStack) -> dict[str, bytes]:
    """Each of SENTENCES spoken once by the default piper voice, as 22.05 kHz mono WAV."""

    async def speak_all() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for sentence in SENTENCES:
            result = await speech_stack.call("speak", {"text": sentence, "format": "wav", "delivery": "inline"})
            block = next(c for c in result["content"] if c["type"] == "audio")
            out[sentence] = base64.b64decode(block["data"])
        return out

    if "spoken" not in _shared:
        _shared["spoken"] = anyio.run(speak_all)
    recordings: dict[str, bytes] = _shared["spoken"]
    return recordings
