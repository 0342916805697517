"""Transcripts in the formats OpenAI's transcription API answers with: json, text, verbose_json, srt, vtt."""

from __future__ import annotations

from typing import Any

from servers.speech.engines import Segment

TEXT_FORMATS = ("text", "srt", "vtt")

# What each format is served as over HTTP.
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
}


def clock(seconds: float, separator: str) -> str:
    """`HH:MM:SS<sep>mmm` (',' for SubRip, '.' for WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _line(segment: Segment) -> str:
    return f"[{segment.speaker}] {segment.text}" if segment.speaker else segment.text


def srt(segments: list[Segment]) -> str:
    blocks = [
        f"{n}\n{clock(s.start, ',')} --> {clock(s.end, ',')}\n{_line(s)}\n" for n, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[Segment]) -> str:
    cues = []
    for s in segments:
        text = f"<v {s.speaker}>{s.text}" if s.speaker else s.text
        cues.append(f"{clock(s.start, '.')} --> {clock(s.end, '.')}\n{text}\n")
    return "WEBVTT\n\n" + "\n".join(cues)


def segment_dicts(segments: list[Segment], *, words: bool) -> list[dict[str, Any]]:
    out = []
    for number, s in enumerate(segments):
        entry: dict[str, Any] = {"id": number, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
        if s.speaker is not None:
            entry["speaker"] = s.speaker
        if words:
            entry["words"] = [w.to_dict() for w in s.words]
        out.append(entry)
    return out


def render(
    response_format: str,
    segments: list[Segment],
    *,
    text: str,
    granularities: list[str],
) -> dict[str, Any]:
    """The format-specific part of a transcribe result: `segments`/`words`, or `formatted` text."""
    if response_format == "text":
        return {"formatted": text + "\n" if text else ""}
    if response_format == "srt":
        return {"formatted": srt(segments)}
    if response_format == "vtt":
        return {"formatted": vtt(segments)}
    if response_format == "verbose_json":
        with_words = "word" in granularities
        shaped: dict[str, Any] = {}
        if "segment" in granularities or not granularities:
            shaped["segments"] = segment_dicts(segments, words=with_words)
        if with_words:
            shaped["words"] = [w.to_dict() for s in segments for w in s.words]
        return shaped
    return {}
