"""speak → storage → transcribe with the built-in engines (piper joe, pocketsphinx), through real storage."""

from __future__ import annotations

import base64
import itertools
import re

import pytest

from tests.support.speech_env import PUBLIC_URL, SENTENCES, WER_BOUND, SpeechStack, word_error_rate

pytestmark = pytest.mark.anyio


async def test_spoken_sentences_come_back_as_text_within_the_word_error_bound(speech_stack: SpeechStack) -> None:
    heard: list[str] = []
    for sentence in SENTENCES:
        spoken = await speech_stack.call("speak", {"text": sentence})
        stored = spoken["structuredContent"]
        assert stored["delivery"] == "storage" and stored["format"] == "mp3"
        result = await speech_stack.call("transcribe", {"object": {"bucket": stored["bucket"], "key": stored["key"]}})
        heard.append(result["structuredContent"]["text"])
    error_rate = word_error_rate(" ".join(SENTENCES), " ".join(heard))
    assert error_rate <= WER_BOUND, f"WER {error_rate:.2f} over the bound {WER_BOUND}: {heard}"


async def test_speak_stores_the_audio_and_answers_with_its_url_and_a_resource_link(speech_stack: SpeechStack) -> None:
    result = await speech_stack.call("speak", {"text": "Hello there.", "format": "opus", "voice": "joe"})
    stored = result["structuredContent"]
    assert stored["voice"] == "en_US-joe-medium" and stored["engine"] == "piper"
    assert stored["url"].startswith(f"{PUBLIC_URL}/storage/default/speech/") and stored["key"].endswith(".opus")
    links = [c for c in result["content"] if c["type"] == "resource_link"]
    assert links == [
        {
            "type": "resource_link",
            "uri": stored["url"],
            "name": stored["key"].rsplit("/", 1)[-1],
            "mimeType": "audio/ogg",
            "size": stored["size"],
        }
    ]
    assert not any(c["type"] == "audio" for c in result["content"]), "storage delivery must not inline base64"
    record, data = await speech_stack.storage.service.read("default", stored["key"], 10_000_000)
    assert record.content_type == "audio/ogg" and data[:4] == b"OggS" and len(data) == stored["size"]
    assert record.metadata == {"voice": "en_US-joe-medium", "engine": "piper"}


async def test_transcribe_reads_a_storage_url_of_this_hub(speech_stack: SpeechStack) -> None:
    stored = (await speech_stack.call("speak", {"text": SENTENCES[0], "bucket": "uploads"}))["structuredContent"]
    result = await speech_stack.call("transcribe", {"url": stored["url"], "response_format": "text"})
    assert word_error_rate(SENTENCES[0], result["structuredContent"]["text"]) <= WER_BOUND
    assert result["content"][0]["text"] == result["structuredContent"]["formatted"]
    assert result["structuredContent"]["formatted"].endswith("\n")


async def test_each_output_format_is_the_container_it_names(speech_stack: SpeechStack) -> None:
    magic = {
        "mp3": lambda b: b[:3] == b"ID3" or b[0] == 0xFF,
        "opus": lambda b: b[:4] == b"OggS" and b"OpusHead" in b[:64],
        "aac": lambda b: b[0] == 0xFF and (b[1] & 0xF6) == 0xF0,
        "flac": lambda b: b[:4] == b"fLaC",
        "wav": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE",
    }
    for fmt, looks_right in magic.items():
        result = await speech_stack.call("speak", {"text": "One two.", "format": fmt, "delivery": "inline"})
        block = next(c for c in result["content"] if c["type"] == "audio")
        audio = base64.b64decode(block["data"])
        assert looks_right(audio), f"{fmt} output starts {audio[:16]!r}"
        assert block["mimeType"] == result["structuredContent"]["content_type"]
    pcm = await speech_stack.call("speak", {"text": "One two.", "format": "pcm", "delivery": "inline"})
    raw = base64.b64decode(next(c for c in pcm["content"] if c["type"] == "audio")["data"])
    seconds = pcm["structuredContent"]["duration"]
    assert abs(len(raw) / 2 / 24000 - seconds) < 0.05, "pcm is 16-bit mono at 24 kHz"


async def test_espeak_voices_speak_other_languages(speech_stack: SpeechStack) -> None:
    result = await speech_stack.call(
        "speak", {"text": "Guten Tag", "voice": "espeak:de", "format": "wav", "delivery": "inline"}
    )
    assert result["structuredContent"]["engine"] == "espeak"
    assert result["structuredContent"]["duration"] > 0.3
    slow = await speech_stack.call(
        "speak", {"text": "Guten Tag", "voice": "espeak:de", "format": "wav", "delivery": "inline", "speed": 0.5}
    )
    assert slow["structuredContent"]["duration"] > result["structuredContent"]["duration"] * 1.4


async def test_srt_vtt_and_verbose_json_have_ordered_timestamps(
    speech_stack: SpeechStack, spoken: dict[str, bytes]
) -> None:
    audio = base64.b64encode(spoken[SENTENCES[1]]).decode()
    verbose = (
        await speech_stack.call(
            "transcribe",
            {"audio_base64": audio, "response_format": "verbose_json", "timestamp_granularities": ["segment", "word"]},
        )
    )["structuredContent"]
    assert verbose["duration"] > 1.0 and verbose["language"] == "en"
    segments, words = verbose["segments"], verbose["words"]
    assert segments and words
    assert [s["id"] for s in segments] == list(range(len(segments)))
    for earlier, later in itertools.pairwise(words):
        assert earlier["start"] <= earlier["end"] <= later["start"] + 1e-6
    assert segments[0]["start"] >= 0 and segments[-1]["end"] <= verbose["duration"]
    assert [w["word"] for s in segments for w in s["words"]] == [w["word"] for w in words]

    srt = (await speech_stack.call("transcribe", {"audio_base64": audio, "response_format": "srt"}))["content"][0][
        "text"
    ]
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", srt)
    assert cues and [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert_monotonic([(c[1], c[2]) for c in cues])

    vtt = (await speech_stack.call("transcribe", {"audio_base64": audio, "response_format": "vtt"}))["content"][0][
        "text"
    ]
    assert vtt.startswith("WEBVTT\n\n")
    times = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n", vtt)
    assert len(times) == len(cues)
    assert_monotonic(times)


def seconds_of(stamp: str) -> float:
    hours, minutes, rest = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def assert_monotonic(pairs: list[tuple[str, str]]) -> None:
    previous_end = 0.0
    for start, end in pairs:
        assert previous_end <= seconds_of(start) <= seconds_of(end), pairs
        previous_end = seconds_of(end)


async def test_stereo_channels_are_transcribed_apart_and_tagged(
    speech_stack: SpeechStack, spoken: dict[str, bytes]
) -> None:
    import numpy as np

    from tests.support.speech_env import wav_bytes, wav_samples

    left, rate = wav_samples(spoken[SENTENCES[2]])
    right, _ = wav_samples(spoken[SENTENCES[4]])
    gap = np.zeros(rate, dtype="<i2")
    # Left talks first; right answers after it finished.
    left_track = np.concatenate([left, gap, np.zeros(len(right), dtype="<i2")])
    right_track = np.concatenate([np.zeros(len(left), dtype="<i2"), gap, right])
    stereo = np.column_stack([left_track, right_track]).reshape(-1)
    audio = base64.b64encode(wav_bytes(stereo, rate, channels=2)).decode()
    result = (
        await speech_stack.call(
            "transcribe", {"audio_base64": audio, "diarize": "channels", "response_format": "verbose_json"}
        )
    )["structuredContent"]
    speakers = [s["speaker"] for s in result["segments"]]
    assert speakers[0] == "L" and speakers[-1] == "R" and set(speakers) == {"L", "R"}
    left_text = " ".join(s["text"] for s in result["segments"] if s["speaker"] == "L")
    right_text = " ".join(s["text"] for s in result["segments"] if s["speaker"] == "R")
    assert word_error_rate(SENTENCES[2], left_text) <= WER_BOUND
    assert word_error_rate(SENTENCES[4], right_text) <= WER_BOUND
    first_right = min(s["start"] for s in result["segments"] if s["speaker"] == "R")
    assert first_right >= len(left) / rate, "the right channel keeps its own place on the timeline"
    srt = await speech_stack.call(
        "transcribe", {"audio_base64": audio, "diarize": "channels", "response_format": "srt"}
    )
    assert "[L] " in srt["content"][0]["text"] and "[R] " in srt["content"][0]["text"]


async def test_running_alone_speak_returns_the_audio_inline_and_says_so(speech_stack: SpeechStack) -> None:
    result = await speech_stack.call("speak", {"text": "Alone.", "format": "wav"}, hub=None)
    structured = result["structuredContent"]
    assert structured["delivery"] == "inline" and "no hub" in structured["note"]
    block = next(c for c in result["content"] if c["type"] == "audio")
    assert block["mimeType"] == "audio/wav" and base64.b64decode(block["data"])[:4] == b"RIFF"


async def test_the_same_audio_in_another_format_is_not_decoded_again(speech_stack: SpeechStack) -> None:
    from servers.kit import ToolContext

    spoken = await speech_stack.call("speak", {"text": "Another format please.", "delivery": "inline"})
    audio = next(c for c in spoken["content"] if c["type"] == "audio")["data"]
    decoded: list[float] = []

    class Recorder(ToolContext):
        async def progress(self, done: float, of: float | None = None, message: str | None = None) -> None:
            decoded.append(done)

    first = await speech_stack.speech.call("transcribe", {"audio_base64": audio}, Recorder("transcribe", "t"))
    assert decoded, "the first call decodes"
    decoded.clear()
    again = await speech_stack.speech.call(
        "transcribe", {"audio_base64": audio, "response_format": "vtt"}, Recorder("transcribe", "t")
    )
    assert decoded == [], "the second format comes from the cached timeline"
    assert again["structuredContent"]["text"] == first["structuredContent"]["text"]
    assert again["structuredContent"]["formatted"].startswith("WEBVTT")
