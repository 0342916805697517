"""OpenAI's audio routes over real HTTP on loopback, driven by httpx2 and by the `openai` package itself."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx2
import numpy as np
import openai
import pytest
from starlette.applications import Starlette

from aggregator.config import FacadesConfig
from aggregator.facade import audio
from aggregator.facade.base import DirectFacadeContext
from tests.support.asgi import serve_asgi
from tests.support.speech_env import (  # noqa: F401  (fixtures)
    SENTENCES,
    WER_BOUND,
    SpeechStack,
    slot_held,
    speech_stack,
    spoken,
    wav_bytes,
    wav_samples,
    word_error_rate,
)

pytestmark = pytest.mark.anyio

KEY = "test-audio-key-0123456789"


@dataclass
class Served:
    url: str
    http: httpx2.AsyncClient
    sdk: openai.AsyncOpenAI
    stack: SpeechStack

    async def transcribe(self, audio_bytes: bytes, **fields: str | list[str]) -> httpx2.Response:
        data = {k: v for k, v in fields.items()}
        return await self.http.post(
            f"{self.url}/v1/audio/transcriptions",
            files={"file": ("speech.wav", audio_bytes, "audio/wav")},
            data=data,
            headers={"authorization": f"Bearer {KEY}"},
        )


def fresh_audio(wav: bytes) -> bytes:
    """The same speech with a little more silence: audio the server has not transcribed yet (no cache hit)."""
    samples, rate = wav_samples(wav)
    return wav_bytes(np.concatenate([samples, np.zeros(rate // 10 + secrets.randbelow(rate), dtype="<i2")]), rate)


@pytest.fixture
def facades() -> FacadesConfig:
    return FacadesConfig()


@pytest.fixture
async def served(speech_stack: SpeechStack, facades: FacadesConfig) -> AsyncIterator[Served]:  # noqa: F811
    domains = {"speech": speech_stack.speech, "storage": speech_stack.storage}
    ctx = DirectFacadeContext(domains, master_key=KEY, facades=facades)
    app = Starlette(routes=audio.routes(ctx))
    async with serve_asgi(app) as url, httpx2.AsyncClient(timeout=120) as http:
        sdk = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0, timeout=120)
        try:
            yield Served(url, http, sdk, speech_stack)
        finally:
            await sdk.close()


async def test_the_openai_package_speaks_and_transcribes_a_round_trip(served: Served) -> None:
    sentence = SENTENCES[3]
    speech = await served.sdk.audio.speech.create(model="tts-1", voice="alloy", input=sentence, response_format="mp3")
    mp3 = speech.read()
    assert speech.response.headers["content-type"] == "audio/mpeg" and len(mp3) > 1000
    transcription = await served.sdk.audio.transcriptions.create(
        model="whisper-1", file=("said.mp3", mp3, "audio/mpeg")
    )
    assert word_error_rate(sentence, transcription.text) <= WER_BOUND, transcription.text


async def test_the_openai_package_reads_verbose_json_with_word_timestamps(
    served: Served,
    spoken: dict[str, bytes],  # noqa: F811
) -> None:
    verbose = await served.sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("s.wav", spoken[SENTENCES[0]], "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert verbose.duration > 1 and verbose.language == "en"
    assert verbose.words and verbose.segments
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and verbose.words[-1].end <= verbose.duration
    text = await served.sdk.audio.transcriptions.create(
        model="whisper-1", file=("s.wav", spoken[SENTENCES[0]], "audio/wav"), response_format="srt"
    )
    assert isinstance(text, str) and text.startswith("1\n00:00:")


async def test_each_transcription_format_has_its_content_type(served: Served, spoken: dict[str, bytes]) -> None:  # noqa: F811
    wav = spoken[SENTENCES[1]]
    expected = {
        "json": "application/json",
        "verbose_json": "application/json",
        "text": "text/plain; charset=utf-8",
        "srt": "application/x-subrip",
        "vtt": "text/vtt; charset=utf-8",
    }
    bodies = {}
    for fmt, content_type in expected.items():
        response = await served.transcribe(wav, response_format=fmt)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == content_type, fmt
        bodies[fmt] = response.text
    assert set(json.loads(bodies["json"])) == {"text"}
    verbose = json.loads(bodies["verbose_json"])
    assert verbose["task"] == "transcribe" and verbose["segments"] and "words" not in verbose
    assert bodies["text"].strip() == verbose["text"]
    assert bodies["vtt"].startswith("WEBVTT") and " --> " in bodies["srt"]
    words = await served.transcribe(wav, response_format="verbose_json", **{"timestamp_granularities[]": ["word"]})
    assert "words" in words.json() and "segments" not in words.json()


async def test_voices_are_listed(served: Served) -> None:
    response = await served.http.get(
        f"{served.url}/v1/audio/voices", params={"language": "en"}, headers={"authorization": f"Bearer {KEY}"}
    )
    body = response.json()
    assert response.status_code == 200 and body["object"] == "list"
    assert body["default_voice"] == "en_US-joe-medium"
    assert {"en_US-joe-medium", "espeak:en-us"} <= {v["id"] for v in body["data"]}


async def test_errors_are_openai_shaped_with_the_right_status(served: Served) -> None:
    anonymous = await served.http.get(f"{served.url}/v1/audio/voices")
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) == {"message", "type", "param", "code"}

    not_audio = await served.transcribe(b"just some text, not a recording" * 10)
    assert not_audio.status_code == 400
    error = not_audio.json()["error"]
    assert error["type"] == "invalid_request_error" and "not audio" in error["message"]

    empty = await served.transcribe(b"")
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "file"

    bad_format = await served.transcribe(b"RIFF", response_format="docx")
    assert bad_format.status_code == 400 and bad_format.json()["error"]["param"] == "response_format"

    no_file = await served.http.post(
        f"{served.url}/v1/audio/transcriptions", data={"model": "whisper-1"}, headers={"authorization": f"Bearer {KEY}"}
    )
    assert no_file.status_code == 400

    with pytest.raises(openai.BadRequestError) as unknown_voice:
        await served.sdk.audio.speech.create(model="tts-1", voice="nobody", input="hi")  # type: ignore[arg-type]
    assert unknown_voice.value.param == "voice" and "en_US-joe-medium" in unknown_voice.value.message

    with pytest.raises(openai.BadRequestError) as unknown_model:
        await served.sdk.audio.transcriptions.create(model="whisper-9", file=("a.wav", b"RIFF", "audio/wav"))
    assert unknown_model.value.param == "model" and "pocketsphinx" in unknown_model.value.message

    bad_speech_format = await served.http.post(
        f"{served.url}/v1/audio/speech",
        json={"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "ogg"},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert bad_speech_format.status_code == 400 and bad_speech_format.json()["error"]["param"] == "response_format"


async def test_oversized_uploads_are_refused_with_413(
    served: Served,
    spoken: dict[str, bytes],  # noqa: F811
    facades: FacadesConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wav = spoken[SENTENCES[0]]
    monkeypatch.setattr(served.stack.speech.service.config, "max_audio_bytes", len(wav) - 1)
    by_server = await served.transcribe(wav)
    assert by_server.status_code == 413 and by_server.json()["error"]["code"] == "too_large"
    monkeypatch.setattr(facades.audio_transcription, "max_body_bytes", 1000)
    by_facade = await served.transcribe(wav)
    assert by_facade.status_code == 413 and "larger than" in by_facade.json()["error"]["message"]


async def test_a_busy_engine_answers_503_with_retry_after(
    served: Served,
    spoken: dict[str, bytes],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = served.stack.speech.service.resources
    monkeypatch.setattr(resources, "busy_wait_seconds", 0.1)
    with anyio.fail_after(60):
        async with slot_held(resources, job="another transcription"):
            response = await served.transcribe(fresh_audio(spoken[SENTENCES[0]]))
            with pytest.raises(openai.InternalServerError) as busy:
                await served.sdk.audio.speech.create(model="tts-1", voice="alloy", input="hi")
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "busy"
    assert busy.value.response.headers["retry-after"]


async def test_only_the_audio_paths_are_mounted(served: Served) -> None:
    assert [getattr(r, "path", None) for r in audio.routes(DirectFacadeContext({}))] == [
        "/v1/audio/transcriptions",
        "/v1/audio/speech",
        "/v1/audio/voices",
    ]
    other = await served.http.get(f"{served.url}/v1/models", headers={"authorization": f"Bearer {KEY}"})
    assert other.status_code == 404
