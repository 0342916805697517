"""Bad input gets a clear error naming the field; a busy engine answers 'busy' with a retry hint."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import pytest

from servers.kit import ServerSettings, ToolContext, error_from_result
from servers.speech.server import create
from tests.support.speech_env import SENTENCES, SpeechStack, slot_held

pytestmark = pytest.mark.anyio


async def test_bytes_that_are_not_audio_are_refused_naming_the_field(speech_stack: SpeechStack) -> None:
    text = base64.b64encode(b"this is a plain text file, not a recording\n" * 20).decode()
    error = await speech_stack.error("transcribe", {"audio_base64": text})
    assert error.code == "invalid_argument" and error.field == "audio_base64"
    assert "not audio" in error.message


async def test_a_video_file_without_sound_is_refused_as_having_no_audio(speech_stack: SpeechStack) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    )
    error = await speech_stack.error("transcribe", {"audio_base64": base64.b64encode(png).decode()})
    assert error.code == "invalid_argument" and "no audio" in error.message


async def test_an_empty_file_is_refused(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("transcribe", {"audio_base64": ""})
    assert error.code == "invalid_argument" and error.field == "audio_base64" and "empty" in error.message


async def test_broken_base64_is_refused(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("transcribe", {"audio_base64": "not base64 at all!"})
    assert error.code == "invalid_argument" and error.field == "audio_base64"


async def test_exactly_one_audio_source_is_required(speech_stack: SpeechStack) -> None:
    none = await speech_stack.error("transcribe", {})
    both = await speech_stack.error("transcribe", {"audio_base64": "AAAA", "url": "/storage/default/x.wav"})
    assert none.code == both.code == "invalid_argument"
    assert "exactly one" in none.message and both.field in ("url", "audio_base64")


async def test_unsupported_formats_are_refused_listing_the_supported_ones(speech_stack: SpeechStack) -> None:
    speak = await speech_stack.error("speak", {"text": "hi", "format": "ogg-vorbis"})
    assert speak.field == "format" and "mp3" in speak.message
    transcribe = await speech_stack.error("transcribe", {"audio_base64": "AAAA", "response_format": "docx"})
    assert transcribe.field == "response_format" and "srt" in transcribe.message


async def test_an_unknown_voice_is_refused_listing_the_voices_that_exist(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("speak", {"text": "hi", "voice": "no-such-voice"})
    assert error.code == "invalid_argument" and error.field == "voice"
    assert "en_US-joe-medium" in error.message and "espeak:en-us" in error.message


async def test_openai_voice_names_mean_the_default_voice(speech_stack: SpeechStack) -> None:
    result = await speech_stack.call("speak", {"text": "hi", "voice": "alloy", "model": "tts-1", "delivery": "inline"})
    assert result["structuredContent"]["voice"] == "en_US-joe-medium"


async def test_a_voice_of_another_engine_than_the_model_asked_for_is_refused(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("speak", {"text": "hi", "voice": "joe", "model": "espeak"})
    assert error.field == "voice" and "piper" in error.message
    unknown = await speech_stack.error("speak", {"text": "hi", "model": "festival"})
    assert unknown.field == "model" and "piper" in unknown.message and "espeak" in unknown.message


async def test_an_unknown_model_is_refused_listing_the_models_and_why_some_cannot_run(
    speech_stack: SpeechStack,
) -> None:
    error = await speech_stack.error("transcribe", {"audio_base64": "AAAA", "model": "whisper-large-v9"})
    assert error.code == "invalid_argument" and error.field == "model"
    assert "pocketsphinx" in error.message and "faster-whisper (unavailable: " in error.message


async def test_a_model_that_exists_but_cannot_run_says_why(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("transcribe", {"audio_base64": "AAAA", "model": "faster-whisper"})
    assert error.code == "unavailable" and error.field == "model" and "never downloaded" in error.message


async def test_a_language_the_model_does_not_know_is_refused(speech_stack: SpeechStack) -> None:
    error = await speech_stack.error("transcribe", {"audio_base64": "AAAA", "language": "de"})
    assert error.field == "language" and "en" in error.message


async def test_mono_audio_cannot_be_split_by_channel(speech_stack: SpeechStack, spoken: dict[str, bytes]) -> None:
    audio = base64.b64encode(spoken[SENTENCES[0]]).decode()
    error = await speech_stack.error("transcribe", {"audio_base64": audio, "diarize": "channels"})
    assert error.field == "diarize" and "stereo" in error.message


async def test_oversized_audio_and_text_are_refused_as_too_large(tmp_path: Path, spoken: dict[str, bytes]) -> None:
    domain = create(
        ServerSettings(name="speech", data_dir=tmp_path, config={"max_audio_bytes": 10_000, "max_text_chars": 50})
    )
    audio = base64.b64encode(spoken[SENTENCES[0]]).decode()
    assert len(spoken[SENTENCES[0]]) > 10_000
    result = await domain.call("transcribe", {"audio_base64": audio}, ToolContext("transcribe", "t"))
    error = error_from_result(result)
    assert error is not None and error.code == "too_large" and error.field == "audio_base64"
    assert "10000" in error.message
    result = await domain.call("speak", {"text": "x" * 51}, ToolContext("speak", "t"))
    error = error_from_result(result)
    assert error is not None and error.code == "too_large" and error.field == "text"


async def test_storage_sources_need_a_hub_and_an_existing_object(speech_stack: SpeechStack) -> None:
    alone = await speech_stack.error("transcribe", {"object": {"bucket": "default", "key": "x.wav"}}, hub=None)
    assert alone.code == "unavailable" and alone.field == "object"
    missing = await speech_stack.error("transcribe", {"object": {"bucket": "default", "key": "nothing/here.wav"}})
    assert missing.code == "not_found" and missing.field == "object"


async def test_urls_off_this_hub_are_never_fetched(speech_stack: SpeechStack) -> None:
    calls_before = len(speech_stack.hub.calls)
    for url in ("http://elsewhere.example/storage/default/a.wav", "file:///etc/passwd", "/v1/models"):
        error = await speech_stack.error("transcribe", {"url": url})
        assert error.field == "url", url
    assert len(speech_stack.hub.calls) == calls_before, "nothing was fetched"


async def test_a_busy_engine_past_its_wait_answers_busy_with_a_retry_hint(
    tmp_path: Path, spoken: dict[str, bytes]
) -> None:
    domain = create(ServerSettings(name="speech", data_dir=tmp_path, config={"busy_wait_seconds": 0.2}))
    resources = domain.service.resources
    audio = base64.b64encode(spoken[SENTENCES[0]]).decode()
    with anyio.fail_after(30):
        async with slot_held(resources, job="a long transcription"):
            result = await domain.call("transcribe", {"audio_base64": audio}, ToolContext("transcribe", "t"))
    error = error_from_result(result)
    assert error is not None and error.code == "busy" and error.retryable
    assert error.retry_after is not None and error.retry_after >= 1
    assert "a long transcription" in error.message
    # Once the slot is free the same call goes through.
    again = await domain.call("transcribe", {"audio_base64": audio}, ToolContext("transcribe", "t"))
    assert error_from_result(again) is None
    domain.service.close()
