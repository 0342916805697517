"""The speech service: transcribe audio bytes, synthesize text, list what exists. No MCP in here.

`transcribe` probes the file, decodes it to 16 kHz mono (each stereo channel on its own when
diarizing), splits it on silences into chunks, runs the recognizer on each chunk through the
resource manager, and stitches the pieces into one timeline. `synthesize` runs a voice and
encodes its samples. Both take `progress`, called as chunks finish.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers.kit import ToolError
from servers.speech.audio import OUTPUT_FORMATS, Ffmpeg
from servers.speech.catalog import Catalog
from servers.speech.chunking import plan_chunks, samples_of
from servers.speech.config import SpeechConfig
from servers.speech.engines import SAMPLE_RATE, DiscoveryContext, ModelSpec, Pcm, Recognizer, Segment, Synthesizer
from servers.speech.formats import render
from servers.speech.hardware import GpuInfo, detect_gpu
from servers.speech.resources import ResourceManager
from servers.speech.timeline import stitch, transcript_text

_log = logging.getLogger("toolmux.speech")

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
CHANNEL_NAMES = ("L", "R")


async def _no_progress(progress: float, total: float | None = None, message: str | None = None) -> None:
    return None


@dataclass(frozen=True)
class Timeline:
    """A recording's segments on its own timeline: what every response format is rendered from."""

    segments: list[Segment]
    duration: float
    chunks: int


@dataclass
class Speech:
    pcm: Pcm
    audio: bytes
    content_type: str
    format: str
    voice: str
    engine: str


class SpeechService:
    def __init__(
        self,
        config: SpeechConfig,
        server_dir: Path,
        *,
        gpu: GpuInfo | None = None,
        stt_engines: dict[str, str] | None = None,
        tts_engines: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.gpu = gpu if gpu is not None else detect_gpu()
        self.catalog = Catalog(
            DiscoveryContext(config, server_dir, self.gpu), stt_engines=stt_engines, tts_engines=tts_engines
        )
        self.resources = ResourceManager(
            classes=("cpu", "gpu") if self.gpu.present else ("cpu",),
            idle_unload_seconds=config.idle_unload_seconds,
            busy_wait_seconds=config.busy_wait_seconds,
        )
        self.ffmpeg = Ffmpeg(config.ffmpeg)
        # Recent timelines, so the same audio asked again in another format is not decoded twice.
        self._timelines: OrderedDict[tuple[Any, ...], Timeline] = OrderedDict()

    # --- listings -------------------------------------------------------------------------------
    def hardware(self) -> dict[str, Any]:
        return {"gpu": self.gpu.to_dict(), "classes": list(self.resources.classes), "busy": self.resources.busy()}

    def list_models(self) -> dict[str, Any]:
        self.catalog.refresh()
        models: list[dict[str, Any]] = []
        for m in self.catalog.models:
            entry: dict[str, Any] = {
                "id": m.id,
                "task": "transcription",
                "engine": m.engine,
                "available": m.available,
                "languages": m.languages,
                "hardware": m.hardware,
                "loaded": self.resources.is_loaded(m.resource_key),
                "aliases": m.aliases,
                "description": m.description,
            }
            if m.reason:
                entry["reason"] = m.reason
            models.append(entry)
        for engine in self.catalog.tts_engines:
            voices = [v for v in self.catalog.voices if v.engine == engine]
            problem = next((p for p in self.catalog.problems if p.engine == engine), None)
            entry = {
                "id": engine,
                "task": "speech",
                "engine": engine,
                "available": bool(voices),
                "languages": sorted({v.language for v in voices}),
                "hardware": "cpu",
                "loaded": any(self.resources.is_loaded(v.resource_key) for v in voices),
                "aliases": [],
                "description": f"{len(voices)} voice(s); list_voices shows them",
            }
            if problem is not None:
                entry["reason"] = problem.reason
            models.append(entry)
        default_model = self.catalog.default_model()
        default_voice = self.catalog.default_voice()
        return {
            "models": models,
            "default_transcription_model": default_model.id if default_model else None,
            "default_voice": default_voice.id if default_voice else None,
            "hardware": self.hardware(),
        }

    def list_voices(self, language: str | None = None, engine: str | None = None) -> dict[str, Any]:
        self.catalog.refresh()
        wanted = language.replace("_", "-").lower() if language else None
        voices = []
        for v in self.catalog.voices:
            if engine is not None and v.engine != engine:
                continue
            if wanted is not None and not (v.language == wanted or v.language.startswith(wanted + "-")):
                continue
            entry: dict[str, Any] = {
                "id": v.id,
                "engine": v.engine,
                "language": v.language,
                "name": v.name,
                "aliases": v.aliases,
            }
            if v.sample_rate:
                entry["sample_rate"] = v.sample_rate
            voices.append(entry)
        default_voice = self.catalog.default_voice()
        return {
            "voices": voices,
            "default_voice": default_voice.id if default_voice else None,
            "unavailable": [{"engine": p.engine, "reason": p.reason} for p in self.catalog.problems],
        }

    # --- transcription --------------------------------------------------------------------------
    def check_audio_size(self, size: int, field: str) -> None:
        if size == 0:
            raise ToolError("the audio is empty (0 bytes)", field=field)
        if size > self.config.max_audio_bytes:
            raise ToolError(
                f"the audio is {size} bytes; the limit is {self.config.max_audio_bytes} bytes",
                code="too_large",
                field=field,
            )

    async def transcribe(
        self,
        audio: bytes,
        *,
        field: str = "audio_base64",
        model: str | None = None,
        language: str | None = None,
        response_format: str = "json",
        granularities: list[str] | None = None,
        diarize: str = "none",
        progress: Progress = _no_progress,
    ) -> dict[str, Any]:
        self.check_audio_size(len(audio), field)
        spec = self.catalog.model(model)
        code = self.catalog.language(spec, language)
        key = (hashlib.sha256(audio).hexdigest(), spec.id, code, diarize, self.config.chunk_seconds)
        timeline = self._timelines.get(key)
        if timeline is None:
            timeline = await self._timeline(audio, spec, code, diarize=diarize, field=field, progress=progress)
            self._remember(key, timeline)
        else:
            self._timelines.move_to_end(key)
        text = transcript_text(timeline.segments)
        result: dict[str, Any] = {
            "text": text,
            "language": code,
            "duration": round(timeline.duration, 3),
            "model": spec.id,
            "response_format": response_format,
            "chunks": timeline.chunks,
        }
        result.update(render(response_format, timeline.segments, text=text, granularities=granularities or ["segment"]))
        return result

    def _remember(self, key: tuple[Any, ...], timeline: Timeline) -> None:
        if self.config.cache_entries == 0:
            return
        self._timelines[key] = timeline
        while len(self._timelines) > self.config.cache_entries:
            self._timelines.popitem(last=False)

    async def _decode(self, audio: bytes, *, diarize: str, field: str) -> list[tuple[bytes, str | None]]:
        """16 kHz mono samples of the audio (of each channel when diarizing), checked against the limits."""
        with tempfile.TemporaryDirectory(prefix="toolmux-speech-") as tmp:
            source = Path(tmp) / "input"
            source.write_bytes(audio)
            try:
                probe = await self.ffmpeg.probe(source)
            except ToolError as exc:
                raise ToolError(exc.message, code=exc.code, field=field) from None
            if probe.duration is not None and probe.duration > self.config.max_audio_seconds:
                raise ToolError(
                    f"the audio lasts {probe.duration:.0f} s; the limit is {self.config.max_audio_seconds:g} s",
                    code="too_large",
                    field=field,
                )
            if diarize == "channels" and probe.channels < 2:
                raise ToolError(
                    f"diarize 'channels' needs stereo audio (one speaker per channel); this audio has "
                    f"{probe.channels} channel",
                    field="diarize",
                )
            channels: list[tuple[int | None, str | None]] = (
                [(0, CHANNEL_NAMES[0]), (1, CHANNEL_NAMES[1])] if diarize == "channels" else [(None, None)]
            )
            return [(await self.ffmpeg.decode(source, channel=ch), name) for ch, name in channels]

    async def _timeline(
        self, audio: bytes, spec: ModelSpec, code: str, *, diarize: str, field: str, progress: Progress
    ) -> Timeline:
        load = spec.load
        assert load is not None  # Catalog.model() only returns loadable models
        decoded = await self._decode(audio, diarize=diarize, field=field)
        duration = max(len(pcm) for pcm, _ in decoded) / 2 / SAMPLE_RATE
        if duration > self.config.max_audio_seconds:
            raise ToolError(
                f"the audio lasts {duration:.0f} s; the limit is {self.config.max_audio_seconds:g} s",
                code="too_large",
                field=field,
            )
        plans = [
            (pcm, name, plan_chunks(samples_of(pcm), SAMPLE_RATE, self.config.chunk_seconds)) for pcm, name in decoded
        ]
        total = sum(len(chunks) for _, _, chunks in plans)
        pieces: list[tuple[float, str | None, list[Segment]]] = []
        done = 0
        for pcm, speaker, chunks in plans:
            for chunk in chunks:
                piece = pcm[chunk.start * 2 : chunk.end * 2]

                def job(recognizer: Recognizer, piece: bytes = piece) -> list[Segment]:
                    return recognizer.transcribe(piece, code)

                segments = await self.resources.run(
                    spec.resource_key, spec.hardware, load, job, label=f"transcribe {spec.id}"
                )
                pieces.append((chunk.start / SAMPLE_RATE, speaker, segments))
                done += 1
                await progress(done, total, f"transcribed {done} of {total} chunks")
        return Timeline(stitch(pieces, duration), duration, total)

    # --- synthesis ------------------------------------------------------------------------------
    async def synthesize(
        self, text: str, *, voice: str | None = None, model: str | None = None, speed: float = 1.0, fmt: str = "mp3"
    ) -> Speech:
        if not text.strip():
            raise ToolError("'text' has nothing to say (only whitespace)", field="text")
        if len(text) > self.config.max_text_chars:
            raise ToolError(
                f"'text' has {len(text)} characters; the limit is {self.config.max_text_chars}",
                code="too_large",
                field="text",
            )
        spec = self.catalog.voice(voice, model)
        load = spec.load
        assert load is not None
        output = OUTPUT_FORMATS[fmt]

        def job(synthesizer: Synthesizer) -> Pcm:
            return synthesizer.synthesize(text, speed)

        began = time.perf_counter()
        try:
            pcm = await self.resources.run(spec.resource_key, spec.hardware, load, job, label=f"speak {spec.id}")
        except ToolError:
            raise
        except Exception as exc:
            _log.warning("speech: voice %s failed", spec.id, exc_info=True)
            raise ToolError(f"voice {spec.id!r} failed to speak: {exc}", code="internal") from None
        if not pcm.data:
            raise ToolError(f"voice {spec.id!r} produced no audio for this text", field="text")
        _log.info("speech: %s spoke %.1f s in %.2f s", spec.id, pcm.duration, time.perf_counter() - began)
        encoded = await self.ffmpeg.encode(pcm, output)
        return Speech(pcm, encoded, output.content_type, output.name, spec.id, spec.engine)

    def close(self) -> None:
        """Unload every engine now."""
        self.resources.idle_unload_seconds = 0
        self.resources.sweep()
