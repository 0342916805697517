"""Long recordings are split on silences into bounded chunks and put back on one timeline."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from servers.kit import ToolContext, error_from_result
from tests.support.speech_env import SENTENCES, WER_BOUND, SpeechStack, wav_bytes, wav_samples, word_error_rate

pytestmark = pytest.mark.anyio

CHUNK_SECONDS = 10.0


def build_recording(spoken: dict[str, bytes]) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """Over two minutes: a talkative stretch longer than a chunk, long silences, more talk.

    Returns the samples, their rate, and where each sentence was placed: (start s, end s, text).
    """
    clips = [(s, *wav_samples(spoken[s])) for s in SENTENCES]
    rate = clips[0][2]
    parts: list[np.ndarray] = []
    placed: list[tuple[float, float, str]] = []
    position = 0

    def talk(count: int, pause: float) -> None:
        nonlocal position
        for n in range(count):
            sentence, samples, _ = clips[n % len(clips)]
            placed.append((position / rate, (position + len(samples)) / rate, sentence))
            parts.append(samples)
            position += len(samples)
            silence(pause)

    def silence(seconds: float) -> None:
        nonlocal position
        parts.append(np.zeros(round(seconds * rate), dtype="<i2"))
        position += round(seconds * rate)

    silence(3.0)
    talk(6, 0.8)  # ~20 s with short pauses only: must be cut below CHUNK_SECONDS, in a pause
    silence(40.0)
    talk(2, 0.8)
    silence(45.0)
    talk(2, 0.5)
    silence(4.0)
    return np.concatenate(parts), rate, placed


async def test_two_minutes_of_speech_and_silence_land_on_one_continuous_timeline(
    speech_stack: SpeechStack, spoken: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    samples, rate, placed = build_recording(spoken)
    total = len(samples) / rate
    assert total >= 120
    monkeypatch.setattr(speech_stack.speech.service.config, "chunk_seconds", CHUNK_SECONDS)
    arguments = {
        "audio_base64": base64.b64encode(wav_bytes(samples, rate)).decode(),
        "response_format": "verbose_json",
        "timestamp_granularities": ["word", "segment"],
    }
    progress: list[tuple[float, float | None]] = []

    class Recorder(ToolContext):
        async def progress(self, done: float, of: float | None = None, message: str | None = None) -> None:
            progress.append((done, of))

    result = await speech_stack.speech.call("transcribe", arguments, Recorder("transcribe", "test"))
    assert error_from_result(result) is None, result
    verbose = result["structuredContent"]

    assert abs(verbose["duration"] - total) < 0.05
    # 6 sentences (~16 s with pauses) cannot fit one 10 s chunk; the long silences end chunks too.
    assert verbose["chunks"] >= 4
    assert progress[-1] == (verbose["chunks"], verbose["chunks"])
    words = verbose["words"]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts), "words are in time order across chunks"
    for sentence_start, sentence_end, sentence in placed:
        heard = " ".join(w["word"] for w in words if sentence_start - 0.3 <= w["start"] < sentence_end + 0.3)
        assert word_error_rate(sentence, heard) <= 2 * WER_BOUND, (sentence_start, sentence, heard)
    spoken_spans = [(s - 0.3, e + 0.3) for s, e, _ in placed]
    stray = [w for w in words if not any(lo <= w["start"] <= hi for lo, hi in spoken_spans)]
    assert stray == [], "no words are placed inside the long silences"
    assert words[-1]["end"] > 110, "the last sentence keeps its place near the end of the recording"
