"""The speech server's config section (`servers.speech.config` in the hub's YAML).

servers:
  speech:
    config:
      default_voice: en_US-joe-medium
      piper_voices: [/srv/voices]          # more piper voices: *.onnx files with their .onnx.json
      whisper:
        model_dirs: [/srv/models/whisper-small.en]   # CTranslate2 models, never downloaded
        device: auto
      idle_unload_seconds: 600
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024

# OpenAI's names, accepted so that unchanged OpenAI clients work: they mean "the default".
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_STT_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")


class WhisperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_dirs: list[Path] = Field(
        default_factory=list,
        description="CTranslate2 whisper model directories (each holds model.bin); <data>/speech/models/whisper/* "
        "is searched too",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="'auto': the GPU when one is found")
    compute_type: str = Field(default="default", description="CTranslate2 compute type, e.g. int8, float16")
    beam_size: int = Field(default=5, ge=1, le=20)


class SpeechConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_model: str | None = Field(
        default=None, description="transcription model used when a call names none (default: the best available)"
    )
    default_voice: str = Field(default="en_US-joe-medium", description="voice id or alias used when none is named")
    piper_voices: list[Path] = Field(
        default_factory=list,
        description="directories (or .onnx files) with more piper voices; <data>/speech/voices is searched too",
    )
    whisper: WhisperConfig = Field(default_factory=WhisperConfig)
    espeak: bool = Field(default=True, description="offer the espeak-ng voices (when espeak-ng is installed)")
    idle_unload_seconds: float = Field(default=600.0, gt=0, description="unload an engine unused this long")
    busy_wait_seconds: float = Field(
        default=30.0, ge=0, description="how long a call waits for a busy CPU/GPU before answering 'busy'"
    )
    max_audio_bytes: int = Field(default=25 * MiB, gt=0, description="largest audio file transcribe accepts")
    max_audio_seconds: float = Field(default=4 * 3600.0, gt=0, description="longest audio transcribe accepts")
    max_text_chars: int = Field(default=4096, ge=1, le=100_000, description="longest text speak accepts")
    chunk_seconds: float = Field(
        default=30.0, ge=5, le=600, description="long audio is split on silences into pieces at most this long"
    )
    storage_bucket: str = Field(default="default", description="bucket speak writes audio to")
    storage_prefix: str = Field(default="speech/", description="key prefix of the audio speak writes")
    storage_ttl_seconds: int | None = Field(default=7 * 24 * 3600, gt=0, description="stored audio expires after")
    max_inline_bytes: int = Field(default=32 * MiB, gt=0, description="largest audio speak returns inline")
    cache_entries: int = Field(
        default=16, ge=0, le=1024, description="recent transcripts kept, so another format of the same audio is free"
    )
    timeout_seconds: float = Field(default=900.0, gt=0, description="longest one transcribe or speak call may take")
    ffmpeg: str = Field(default="ffmpeg", description="ffmpeg executable")
    espeak_ng: str = Field(default="espeak-ng", description="espeak-ng executable")
