"""faster-whisper: the better recognizer, used when installed AND given a local model directory.

Models are never downloaded: a CTranslate2 whisper model directory (holding `model.bin`) must be
listed in `whisper.model_dirs` or placed under `<data>/speech/models/whisper/<name>/`. Each one
found becomes a model `faster-whisper:<name>`. What is missing is reported, with the fix.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from servers.speech.config import WhisperConfig
from servers.speech.engines import DiscoveryContext, ModelSpec, Segment, Word

ENGINE = "faster-whisper"
INSTALL_HINT = "pip install 'toolmux[speech-whisper]'"
# The languages multilingual whisper models know (ISO 639-1, plus 'haw', 'yue').
# One string keeps the ~100 codes readable; SIM905 would explode it one per line.
WHISPER_LANGUAGES = (  # noqa: SIM905
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr "
    "bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn "
    "yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su "
    "yue"
).split()


def model_dirs(config: WhisperConfig, data_dir: Path) -> list[Path]:
    found = list(config.model_dirs)
    shelf = data_dir / "models" / "whisper"
    if shelf.is_dir():
        found.extend(sorted(p for p in shelf.iterdir() if p.is_dir()))
    return found


# Whisper's English-only models have one token fewer than the multilingual ones (51864 vs 51865+).
ENGLISH_ONLY_VOCABULARY = 51864


def languages_of(model_dir: Path) -> list[str]:
    """English-only models: named *.en (tiny.en, base.en...) or with the English-only vocabulary size."""
    if model_dir.name.endswith((".en", "-en")):
        return ["en"]
    vocabulary = model_dir / "vocabulary.txt"
    try:
        with vocabulary.open(encoding="utf-8") as handle:
            size = sum(1 for _ in handle)
    except OSError:
        return list(WHISPER_LANGUAGES)
    return ["en"] if size <= ENGLISH_ONLY_VOCABULARY else list(WHISPER_LANGUAGES)


class WhisperRecognizer:
    def __init__(self, model_dir: Path, device: str, config: WhisperConfig) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device=device, compute_type=config.compute_type)
        self.beam_size = config.beam_size

    def transcribe(self, pcm: bytes, language: str) -> list[Segment]:
        import numpy as np

        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        pieces, _info = self.model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # chunking already skipped the silences
        )
        segments: list[Segment] = []
        for piece in pieces:
            words = [
                Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                for w in (piece.words or [])
                if w.word.strip()
            ]
            segments.append(Segment(float(piece.start), float(piece.end), piece.text.strip(), words))
        return segments

    def close(self) -> None:
        del self.model


class WhisperProvider:
    name = ENGINE

    def discover(self, context: DiscoveryContext) -> list[ModelSpec]:
        config = context.config.whisper
        installed = importlib.util.find_spec("faster_whisper") is not None
        use_gpu = config.device == "cuda" or (config.device == "auto" and context.gpu.present)
        device, hardware = ("cuda", "gpu") if use_gpu else ("cpu", "cpu")
        dirs = model_dirs(config, context.data_dir)
        if not dirs:
            reason = (
                "no local whisper model: put a CTranslate2 model directory (with model.bin) in "
                f"{context.data_dir / 'models' / 'whisper'}/<name>/ or list it in whisper.model_dirs "
                "(models are never downloaded)"
            )
            if not installed:
                reason = f"Python package 'faster-whisper' is not installed ({INSTALL_HINT}); and {reason}"
            return [ModelSpec(ENGINE, ENGINE, list(WHISPER_LANGUAGES), hardware, False, reason)]
        specs: list[ModelSpec] = []
        for model_dir in dirs:
            spec = ModelSpec(
                id=f"{ENGINE}:{model_dir.name}",
                engine=ENGINE,
                languages=languages_of(model_dir),
                hardware=hardware,
                description=f"faster-whisper model from {model_dir} on {device.upper()}",
            )
            if not installed:
                spec.available, spec.reason = (
                    False,
                    f"Python package 'faster-whisper' is not installed ({INSTALL_HINT})",
                )
            elif not (model_dir / "model.bin").is_file():
                spec.available, spec.reason = False, f"{model_dir} holds no model.bin (a CTranslate2 whisper model)"
            else:
                spec.load = _loader(model_dir, device, config)
            specs.append(spec)
        return specs


def _loader(model_dir: Path, device: str, config: WhisperConfig) -> Any:
    def load() -> WhisperRecognizer:
        return WhisperRecognizer(model_dir, device, config)

    return load
