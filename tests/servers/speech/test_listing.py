"""list_models and list_voices say what exists, what can run here, and what is loaded."""

from __future__ import annotations

import pytest

from tests.support.speech_env import SpeechStack

pytestmark = pytest.mark.anyio


async def test_list_models_shows_engines_hardware_and_why_some_cannot_run(speech_stack: SpeechStack) -> None:
    await speech_stack.call("speak", {"text": "Loaded.", "delivery": "inline"})
    listing = (await speech_stack.call("list_models", {}))["structuredContent"]
    models = {m["id"]: m for m in listing["models"]}
    assert models["pocketsphinx"]["available"] and models["pocketsphinx"]["task"] == "transcription"
    assert models["pocketsphinx"]["languages"] == ["en"]
    whisper = [m for m in listing["models"] if m["engine"] == "faster-whisper"]
    assert whisper and all(not m["available"] and m["reason"] for m in whisper)
    assert models["piper"]["available"] and models["piper"]["loaded"], "speaking loaded the piper voice"
    assert models["espeak"]["available"] and len(models["espeak"]["languages"]) > 50
    assert listing["default_transcription_model"] == "pocketsphinx"
    assert listing["default_voice"] == "en_US-joe-medium"
    gpu = listing["hardware"]["gpu"]
    assert gpu["reason"] and gpu["present"] == bool(gpu["devices"])
    assert listing["hardware"]["classes"] == (["cpu", "gpu"] if gpu["present"] else ["cpu"])


async def test_list_voices_filters_by_language_and_engine(speech_stack: SpeechStack) -> None:
    english = (await speech_stack.call("list_voices", {"language": "en"}))["structuredContent"]
    ids = [v["id"] for v in english["voices"]]
    assert "en_US-joe-medium" in ids and "espeak:en-us" in ids and "espeak:de" not in ids
    joe = next(v for v in english["voices"] if v["id"] == "en_US-joe-medium")
    assert joe["aliases"] == ["joe"] and joe["sample_rate"] == 22050 and joe["language"] == "en-us"
    german = (await speech_stack.call("list_voices", {"language": "de", "engine": "espeak"}))["structuredContent"]
    assert [v["id"] for v in german["voices"]] == ["espeak:de"]
    assert german["unavailable"] == []


async def test_health_reports_engines_resources_and_gpu(speech_stack: SpeechStack) -> None:
    assert speech_stack.speech.health is not None
    health = await speech_stack.speech.health()
    assert health["healthy"] and health["details"]["ffmpeg"] == "ok"
    assert "loaded" in health["details"]["resources"] and "present" in health["details"]["gpu"]
