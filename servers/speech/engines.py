"""What every speech engine speaks, and the registry that finds engines by name.

Engines are picked by name from two small registries (as uvicorn picks its loop and protocol
implementations): each entry is "module:Class" of a *provider*. Importing a provider module is
cheap (standard library only); the engine's heavy libraries (onnxruntime, pocketsphinx,
CTranslate2) are imported by `load()` callables the resource manager runs on first use.

A provider offers `discover(context) -> list[ModelSpec | VoiceSpec]`: what this machine has,
including what is *not* usable and why (a missing package, a missing local model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from servers.speech.config import SpeechConfig
from servers.speech.hardware import GpuInfo

STT_ENGINES: dict[str, str] = {
    "pocketsphinx": "servers.speech.stt_pocketsphinx:PocketsphinxProvider",
    "faster-whisper": "servers.speech.stt_whisper:WhisperProvider",
}
TTS_ENGINES: dict[str, str] = {
    "piper": "servers.speech.tts_piper:PiperProvider",
    "espeak": "servers.speech.tts_espeak:EspeakProvider",
}

SAMPLE_RATE = 16_000  # what every recognizer is fed: 16 kHz mono signed 16-bit little-endian


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None
    speaker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3)}
        if self.probability is not None:
            out["probability"] = round(min(1.0, max(0.0, self.probability)), 4)
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None

    def shifted(self, seconds: float, speaker: str | None = None) -> Segment:
        words = [
            Word(w.word, w.start + seconds, w.end + seconds, w.probability, speaker or w.speaker) for w in self.words
        ]
        return Segment(self.start + seconds, self.end + seconds, self.text, words, speaker or self.speaker)


@dataclass
class Pcm:
    """Mono signed 16-bit little-endian samples."""

    data: bytes
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.data) / 2 / self.sample_rate


class Recognizer(Protocol):
    def transcribe(self, pcm: bytes, language: str) -> list[Segment]:
        """Segments (times in seconds from the start of `pcm`, 16 kHz mono s16le)."""
        ...


class Synthesizer(Protocol):
    def synthesize(self, text: str, speed: float) -> Pcm: ...


@dataclass
class DiscoveryContext:
    config: SpeechConfig
    data_dir: Path  # the speech server's own directory (<data>/speech)
    gpu: GpuInfo


@dataclass
class ModelSpec:
    """A transcription model this server knows of (usable or not)."""

    id: str
    engine: str
    languages: list[str]
    hardware: str = "cpu"
    available: bool = True
    reason: str = ""
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    load: Callable[[], Recognizer] | None = None

    @property
    def resource_key(self) -> str:
        return f"stt:{self.id}"


@dataclass
class VoiceSpec:
    """A voice `speak` can use."""

    id: str
    engine: str
    language: str
    name: str
    aliases: list[str] = field(default_factory=list)
    sample_rate: int | None = None
    hardware: str = "cpu"
    load: Callable[[], Synthesizer] | None = None

    @property
    def resource_key(self) -> str:
        return f"tts:{self.id}"


@dataclass
class EngineProblem:
    engine: str
    reason: str


class Provider(Protocol):
    name: str

    def discover(self, context: DiscoveryContext) -> list[Any]: ...


def import_from_string(target: str) -> Any:
    """`"package.module:Attribute"` → the attribute."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"engine {target!r} must look like 'package.module:Class'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no {attribute!r}") from None


def provider(registry: dict[str, str], name: str) -> Provider:
    try:
        target = registry[name]
    except KeyError:
        raise KeyError(f"no speech engine {name!r}; engines: {', '.join(registry)}") from None
    factory = import_from_string(target)
    instance: Provider = factory()
    return instance
