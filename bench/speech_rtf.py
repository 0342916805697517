"""Speech real-time factors: how long synthesis and transcription take per second of audio.

    .venv/bin/python bench/speech_rtf.py [--rounds 3] [--whisper-model DIR]

RTF = processing seconds / audio seconds (below 1 is faster than real time). Measured:
- synthesis with piper (en_US-joe-medium) and espeak-ng, the engine alone and end to end
  (engine + ffmpeg mp3 encoding);
- transcription with pocketsphinx of the piper speech, the engine alone and end to end (ffprobe +
  ffmpeg decoding + chunking + decoding), plus its word error rate on those sentences;
- a 2-minute recording (speech and silence) transcribed in chunks;
- faster-whisper on CPU, and on the GPU when one is found, when the package is installed and a
  local model directory is given (`--whisper-model`, or one under <data>/speech/models/whisper/).
First calls (engine loading) are reported apart from the steady state.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers.speech.chunking import samples_of  # noqa: E402
from servers.speech.config import SpeechConfig  # noqa: E402
from servers.speech.engines import SAMPLE_RATE  # noqa: E402
from servers.speech.hardware import detect_gpu  # noqa: E402
from servers.speech.service import SpeechService  # noqa: E402
from tests.support.speech_env import SENTENCES, word_error_rate  # noqa: E402

TEXT = " ".join(SENTENCES)


def row(name: str, audio_s: float, took_s: float, note: str = "") -> None:
    rtf = took_s / audio_s if audio_s else float("nan")
    print(f"  {name:<44} {audio_s:8.2f} s audio  {took_s:7.2f} s  RTF {rtf:6.3f}  {note}")


async def synthesis(service: SpeechService, rounds: int) -> bytes:
    print("synthesis")
    wav = b""
    for voice in ("en_US-joe-medium", "espeak:en-us"):
        spec = service.catalog.voice(voice, None)
        assert spec.load is not None
        began = time.perf_counter()
        engine: Any = await anyio.to_thread.run_sync(spec.load)
        print(f"  {voice}: load {time.perf_counter() - began:.2f} s")
        took, audio_s = 0.0, 0.0
        for _ in range(rounds):
            began = time.perf_counter()
            pcm = await anyio.to_thread.run_sync(engine.synthesize, TEXT, 1.0)
            took += time.perf_counter() - began
            audio_s += pcm.duration
        row(f"{voice} engine only", audio_s, took)
        took, audio_s = 0.0, 0.0
        for _ in range(rounds):
            began = time.perf_counter()
            speech = await service.synthesize(TEXT, voice=voice, fmt="mp3")
            took += time.perf_counter() - began
            audio_s += speech.pcm.duration
        row(f"{voice} end to end (mp3)", audio_s, took)
        if voice.startswith("en_US"):
            wav = (await service.synthesize(TEXT, voice=voice, fmt="wav")).audio
    return wav


async def transcription(service: SpeechService, wav: bytes, rounds: int, model: str) -> None:
    spec = service.catalog.model(model)
    assert spec.load is not None
    print(f"transcription ({spec.id}, {spec.hardware.upper()})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.wav"
        path.write_bytes(wav)
        pcm = await service.ffmpeg.decode(path)
    audio_s = len(pcm) / 2 / SAMPLE_RATE
    began = time.perf_counter()
    engine: Any = await anyio.to_thread.run_sync(spec.load)
    print(f"  load {time.perf_counter() - began:.2f} s")
    took, text = 0.0, ""
    for _ in range(rounds):
        began = time.perf_counter()
        segments = await anyio.to_thread.run_sync(engine.transcribe, pcm, "en")
        took += time.perf_counter() - began
        text = " ".join(s.text for s in segments)
    row("engine only", audio_s * rounds, took, f"WER {word_error_rate(TEXT, text):.3f}")
    took = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        result = await service.transcribe(wav, model=spec.id)
        took += time.perf_counter() - began
    row("end to end", audio_s * rounds, took, f"WER {word_error_rate(TEXT, result['text']):.3f}")


async def long_recording(service: SpeechService, wav: bytes, model: str) -> None:
    import numpy as np

    from tests.support.speech_env import wav_bytes

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.wav"
        path.write_bytes(wav)
        speech = samples_of(await service.ffmpeg.decode(path))
    silence = np.zeros(8 * SAMPLE_RATE, dtype="<i2")
    parts = []
    while sum(len(p) for p in parts) < 120 * SAMPLE_RATE:
        parts += [speech, silence]
    recording = wav_bytes(np.concatenate(parts), SAMPLE_RATE)
    began = time.perf_counter()
    result = await service.transcribe(recording, model=model)
    row(f"2-minute recording in {result['chunks']} chunks", result["duration"], time.perf_counter() - began)


async def main(rounds: int, whisper_model: str | None) -> None:
    gpu = detect_gpu()
    print(f"GPU: {'present' if gpu.present else 'none'} ({gpu.reason}) {' '.join(gpu.devices)}")
    with tempfile.TemporaryDirectory() as data:
        config: dict[str, Any] = {}
        if whisper_model:
            config["whisper"] = {"model_dirs": [whisper_model]}
        service = SpeechService(SpeechConfig.model_validate(config), Path(data), gpu=gpu)
        wav = await synthesis(service, rounds)
        await transcription(service, wav, rounds, "pocketsphinx")
        await long_recording(service, wav, "pocketsphinx")
        whisper = [m for m in service.catalog.models if m.engine == "faster-whisper"]
        usable = [m for m in whisper if m.available]
        if not usable:
            print("faster-whisper: not measured: " + "; ".join(m.reason for m in whisper))
        for spec in usable:
            await transcription(service, wav, rounds, spec.id)
            if gpu.present and spec.hardware == "gpu":
                cpu_config = {**config, "whisper": {**config.get("whisper", {}), "device": "cpu"}}
                cpu = SpeechService(SpeechConfig.model_validate(cpu_config), Path(data), gpu=gpu)
                await transcription(cpu, wav, rounds, spec.id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--whisper-model", help="a local CTranslate2 whisper model directory")
    options = parser.parse_args()
    anyio.run(main, options.rounds, options.whisper_model)
