"""Splitting long audio on silences into bounded chunks.

Recognizers want short pieces (whisper reads 30 s windows; pocketsphinx slows down and drifts
on long utterances), and silence need not be decoded at all. `plan_chunks` finds the stretches
with speech by frame energy, then packs them into chunks no longer than `max_seconds`, cutting
only in pauses (or, in speech that never pauses, at the quietest frame near the limit). Each
chunk keeps its offset, so the words found in it land on the recording's own timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_SECONDS = 0.02
# Frames quieter than this are silence whatever the recording (about -56 dBFS).
ABSOLUTE_FLOOR = 50.0
# Speech is louder than the noise floor by this share of the floor-to-peak range.
RELATIVE_THRESHOLD = 0.1
MIN_PAUSE_SECONDS = 0.3  # shorter quiet stretches are part of the speech around them
PAD_SECONDS = 0.2  # kept around each stretch of speech so soft word edges survive
LONG_PAUSE_SECONDS = 2.0  # a pause this long always ends a chunk


@dataclass(frozen=True)
class Chunk:
    start: int  # sample index, inclusive
    end: int  # sample index, exclusive

    def seconds(self, rate: int) -> tuple[float, float]:
        return self.start / rate, self.end / rate


def frame_energy(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each `frame`-sample frame (the last partial frame included)."""
    count = -(-len(samples) // frame)
    padded = np.zeros(count * frame, dtype=np.float64)
    padded[: len(samples)] = samples
    energy: np.ndarray = np.sqrt(np.mean(padded.reshape(count, frame) ** 2, axis=1))
    return energy


def speech_regions(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """`(start, end)` sample ranges that hold sound above the silence threshold, padded."""
    if len(samples) == 0:
        return []
    frame = max(1, round(rate * FRAME_SECONDS))
    energy = frame_energy(samples, frame)
    noise, peak = np.percentile(energy, 10), float(energy.max())
    threshold = max(ABSOLUTE_FLOOR, noise + RELATIVE_THRESHOLD * (peak - noise))
    voiced = energy > threshold
    if not voiced.any():
        return []
    # Runs of voiced frames, as [start, end) frame indices.
    edges = np.diff(np.concatenate(([0], voiced.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    min_gap = round(MIN_PAUSE_SECONDS / FRAME_SECONDS)
    runs: list[list[int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if runs and start - runs[-1][1] < min_gap:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    pad = round(PAD_SECONDS * rate)
    regions: list[tuple[int, int]] = []
    for start, end in runs:
        lo, hi = max(0, start * frame - pad), min(len(samples), end * frame + pad)
        if regions and lo <= regions[-1][1]:
            regions[-1] = (regions[-1][0], hi)
        else:
            regions.append((lo, hi))
    return regions


def _split_long(samples: np.ndarray, rate: int, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut a stretch of unbroken speech longer than `limit` at its quietest frames."""
    frame = max(1, round(rate * FRAME_SECONDS))
    pieces: list[tuple[int, int]] = []
    while end - start > limit:
        window_lo, window_hi = start + limit // 2, start + limit
        energy = frame_energy(samples[window_lo:window_hi], frame)
        cut = window_lo + int(np.argmin(energy)) * frame
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def plan_chunks(samples: np.ndarray, rate: int, max_seconds: float) -> list[Chunk]:
    """Chunks covering every stretch of speech, each at most `max_seconds` long."""
    limit = max(1, round(max_seconds * rate))
    long_pause = round(LONG_PAUSE_SECONDS * rate)
    pieces: list[tuple[int, int]] = []
    for start, end in speech_regions(samples, rate):
        pieces.extend(_split_long(samples, rate, start, end, limit))
    chunks: list[Chunk] = []
    lo = hi = -1
    for start, end in pieces:
        if lo >= 0 and end - lo <= limit and start - hi < long_pause:
            hi = end
            continue
        if lo >= 0:
            chunks.append(Chunk(lo, hi))
        lo, hi = start, end
    if lo >= 0:
        chunks.append(Chunk(lo, hi))
    return chunks


def samples_of(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")
