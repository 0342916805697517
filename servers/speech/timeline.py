"""Putting recognized words on one timeline: segments from words, chunks and channels merged."""

from __future__ import annotations

from servers.speech.engines import Segment, Word

# A pause this long starts a new segment (subtitle line); so does a segment growing this long.
SEGMENT_GAP_SECONDS = 0.6
SEGMENT_MAX_SECONDS = 10.0
SEGMENT_MAX_WORDS = 24


def segments_from_words(
    words: list[Word],
    *,
    gap: float = SEGMENT_GAP_SECONDS,
    max_seconds: float = SEGMENT_MAX_SECONDS,
    max_words: int = SEGMENT_MAX_WORDS,
) -> list[Segment]:
    """Group words into segments, breaking at pauses and at a length fit for a subtitle."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        if current and (
            word.start - current[-1].end >= gap
            or word.end - current[0].start > max_seconds
            or len(current) >= max_words
        ):
            segments.append(_segment(current))
            current = []
        current.append(word)
    if current:
        segments.append(_segment(current))
    return segments


def _segment(words: list[Word]) -> Segment:
    return Segment(words[0].start, words[-1].end, " ".join(w.word for w in words), list(words))


def stitch(pieces: list[tuple[float, str | None, list[Segment]]], duration: float) -> list[Segment]:
    """One timeline from `(offset seconds, speaker, segments relative to the piece)` pieces.

    Times are shifted to the whole recording, clamped into [0, duration], ordered by start
    (channels interleave by time), and made monotonic where engines overlap a boundary.
    """
    merged: list[Segment] = []
    for offset, speaker, segments in pieces:
        merged.extend(s.shifted(offset, speaker) for s in segments if s.text.strip())
    merged.sort(key=lambda s: (s.start, s.speaker or ""))
    for segment in merged:
        segment.start = min(max(0.0, segment.start), duration)
        segment.end = min(max(segment.start, segment.end), duration)
        for word in segment.words:
            word.start = min(max(segment.start, word.start), segment.end)
            word.end = min(max(word.start, word.end), segment.end)
    return merged


def transcript_text(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())
