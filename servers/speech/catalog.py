"""What this machine can transcribe with and speak with, and turning a caller's names into engines.

Discovery runs at start-up and again on every list_models / list_voices call, so a model
directory or voice dropped in place is picked up without a restart. Unknown names are answered
with an error that lists what exists.
"""

from __future__ import annotations

import logging
from typing import Any

from servers.kit import ToolError
from servers.speech.config import OPENAI_STT_MODELS, OPENAI_TTS_MODELS, OPENAI_VOICES
from servers.speech.engines import (
    STT_ENGINES,
    TTS_ENGINES,
    DiscoveryContext,
    EngineProblem,
    ModelSpec,
    VoiceSpec,
    provider,
)

_log = logging.getLogger("toolmux.speech")

DEFAULT_ALIASES = ("default", *OPENAI_VOICES)
ESPEAK_EXAMPLES = ("espeak:en-us", "espeak:de", "espeak:fr", "espeak:es")


def normalize_language(value: str) -> str:
    """'en-US' / 'EN_us' / 'en' → 'en' (the primary subtag, as OpenAI's `language` is ISO 639-1)."""
    return value.strip().replace("_", "-").lower().split("-")[0]


class Catalog:
    def __init__(
        self,
        context: DiscoveryContext,
        *,
        stt_engines: dict[str, str] | None = None,
        tts_engines: dict[str, str] | None = None,
    ) -> None:
        self.context = context
        self.stt_engines = dict(STT_ENGINES if stt_engines is None else stt_engines)
        self.tts_engines = dict(TTS_ENGINES if tts_engines is None else tts_engines)
        self.models: list[ModelSpec] = []
        self.voices: list[VoiceSpec] = []
        self.problems: list[EngineProblem] = []
        self.refresh()

    def refresh(self) -> None:
        models: list[ModelSpec] = []
        for name in self.stt_engines:
            models.extend(provider(self.stt_engines, name).discover(self.context))
        voices: list[VoiceSpec] = []
        problems: list[EngineProblem] = []
        for name in self.tts_engines:
            engine: Any = provider(self.tts_engines, name)
            problem = engine.problem(self.context)
            if problem is not None:
                problems.append(problem)
                continue
            found = engine.discover(self.context)
            if not found:
                problems.append(EngineProblem(name, "no voices found"))
            voices.extend(found)
        self.models, self.voices, self.problems = models, voices, problems

    # --- transcription models -------------------------------------------------------------------
    def default_model(self) -> ModelSpec | None:
        configured = self.context.config.default_model
        if configured:
            return self._find_model(configured)
        available = [m for m in self.models if m.available]
        # faster-whisper beats pocketsphinx on accuracy wherever a model is at hand.
        available.sort(key=lambda m: m.engine != "faster-whisper")
        return available[0] if available else None

    def _find_model(self, name: str) -> ModelSpec | None:
        lowered = name.lower()
        for model in self.models:
            if lowered == model.id.lower() or lowered in (a.lower() for a in model.aliases):
                return model
        engine_models = [m for m in self.models if m.engine == lowered]
        usable = [m for m in engine_models if m.available]
        found = usable or engine_models
        return found[0] if found else None

    def describe_models(self) -> str:
        return ", ".join(m.id if m.available else f"{m.id} (unavailable: {m.reason})" for m in self.models)

    def model(self, name: str | None) -> ModelSpec:
        """The model to transcribe with, or a ToolError naming the `model` field."""
        if name is None or name.lower() in OPENAI_STT_MODELS or name.lower() == "default":
            spec = self.default_model()
            if spec is None:
                raise ToolError(
                    f"no transcription model can run here: {self.describe_models() or 'none installed'}",
                    code="unavailable",
                    field="model",
                )
        else:
            found = self._find_model(name)
            if found is None:
                raise ToolError(
                    f"unknown model {name!r}; models: {self.describe_models()} "
                    f"(OpenAI names {', '.join(OPENAI_STT_MODELS)} mean the default)",
                    field="model",
                )
            spec = found
        if not spec.available or spec.load is None:
            raise ToolError(f"model {spec.id!r} cannot run here: {spec.reason}", code="unavailable", field="model")
        return spec

    @staticmethod
    def language(model: ModelSpec, language: str | None) -> str:
        if not language:
            return model.languages[0]
        code = normalize_language(language)
        if code not in model.languages:
            shown = ", ".join(model.languages[:20]) + (" ..." if len(model.languages) > 20 else "")
            raise ToolError(
                f"model {model.id!r} does not understand language {language!r}; it knows: {shown}",
                field="language",
            )
        return code

    # --- voices ---------------------------------------------------------------------------------
    def _find_voice(self, name: str) -> VoiceSpec | None:
        lowered = name.lower()
        for voice in self.voices:
            if lowered == voice.id.lower() or lowered in (a.lower() for a in voice.aliases):
                return voice
        return None

    def default_voice(self, engine: str | None = None) -> VoiceSpec | None:
        candidates = [v for v in self.voices if engine is None or v.engine == engine]
        configured = self._find_voice(self.context.config.default_voice)
        if configured is not None and configured in candidates:
            return configured
        for voice in candidates:
            if voice.engine == "piper":
                return voice
        english = [v for v in candidates if v.language in ("en-us", "en")]
        found = english or candidates
        return found[0] if found else None

    def describe_voices(self) -> str:
        piper = [
            v.id + (f" (alias {', '.join(v.aliases)})" if v.aliases else "")
            for v in self.voices
            if v.engine != "espeak"
        ]
        espeak = [v for v in self.voices if v.engine == "espeak"]
        parts = []
        if piper:
            parts.append("piper voices: " + ", ".join(piper))
        if espeak:
            examples = [e for e in ESPEAK_EXAMPLES if self._find_voice(e)] or [espeak[0].id]
            parts.append(f"espeak-ng voices: espeak:<language> for {len(espeak)} languages, e.g. {', '.join(examples)}")
        for problem in self.problems:
            parts.append(f"{problem.engine} unavailable: {problem.reason}")
        return "; ".join(parts) or "no voices at all"

    def voice(self, name: str | None, model: str | None) -> VoiceSpec:
        """The voice to speak with (a ToolError naming `voice` or `model` otherwise)."""
        engine: str | None = None
        if model is not None and model.lower() not in OPENAI_TTS_MODELS and model.lower() != "default":
            engine = model.lower()
            if engine not in self.tts_engines:
                raise ToolError(
                    f"unknown model {model!r}; speech models: {', '.join(self.tts_engines)} "
                    f"(OpenAI names {', '.join(OPENAI_TTS_MODELS)} mean: the voice's own engine)",
                    field="model",
                )
            if not any(v.engine == engine for v in self.voices):
                reason = next((p.reason for p in self.problems if p.engine == engine), "no voices found")
                raise ToolError(f"model {engine!r} cannot run here: {reason}", code="unavailable", field="model")
        if name is None or name.lower() in DEFAULT_ALIASES:
            chosen = self.default_voice(engine)
            if chosen is None:
                raise ToolError(f"no voice can speak here: {self.describe_voices()}", code="unavailable", field="voice")
            return chosen
        found = self._find_voice(name)
        if found is None:
            raise ToolError(f"unknown voice {name!r}; {self.describe_voices()}", field="voice")
        if engine is not None and found.engine != engine:
            raise ToolError(
                f"voice {found.id!r} belongs to {found.engine}, but model {model!r} was asked for", field="voice"
            )
        return found
