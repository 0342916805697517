"""Audio in and out through ffmpeg (Debian): any container/codec → 16 kHz mono PCM; PCM → mp3/opus/...

ffmpeg reads from and writes to temporary files rather than pipes: some containers (m4a with
its index at the end) cannot be read from a pipe, and WAV/FLAC headers are only right when the
writer can seek back. Every run has a timeout and is killed on cancellation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

from servers.kit import ToolError
from servers.speech.engines import SAMPLE_RATE, Pcm

PROBE_TIMEOUT_SECONDS = 30.0
# ffmpeg decodes far faster than real time; this bounds even hours of audio.
DECODE_TIMEOUT_SECONDS = 600.0
ENCODE_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class OutputFormat:
    name: str
    content_type: str
    extension: str
    args: tuple[str, ...]
    sample_rate: int | None = None  # resample to this (None: keep the voice's rate)


# OpenAI's speech formats: mp3, Ogg Opus, ADTS AAC, FLAC, WAV, raw PCM (24 kHz 16-bit mono LE).
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "mp3": OutputFormat("mp3", "audio/mpeg", "mp3", ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3")),
    "opus": OutputFormat("opus", "audio/ogg", "opus", ("-c:a", "libopus", "-b:a", "32k", "-f", "ogg"), 24000),
    "aac": OutputFormat("aac", "audio/aac", "aac", ("-c:a", "aac", "-b:a", "64k", "-f", "adts")),
    "flac": OutputFormat("flac", "audio/flac", "flac", ("-c:a", "flac", "-f", "flac")),
    "wav": OutputFormat("wav", "audio/wav", "wav", ("-c:a", "pcm_s16le", "-f", "wav")),
    "pcm": OutputFormat("pcm", "audio/pcm", "pcm", ("-c:a", "pcm_s16le", "-f", "s16le"), 24000),
}


@dataclass(frozen=True)
class Probe:
    channels: int
    duration: float | None
    container: str
    codec: str


class Ffmpeg:
    def __init__(self, ffmpeg: str = "ffmpeg") -> None:
        self.ffmpeg = ffmpeg
        found = shutil.which(ffmpeg)
        self.ffprobe = str(Path(found).with_name("ffprobe")) if found else "ffprobe"

    def problem(self) -> str | None:
        if shutil.which(self.ffmpeg) is None or shutil.which(self.ffprobe) is None:
            return f"'{self.ffmpeg}' (with ffprobe) is not on PATH (scripts/setup installs ffmpeg from Debian)"
        return None

    def _require(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise ToolError(problem, code="unavailable")

    async def _run(self, command: list[str], timeout: float, what: str) -> bytes:
        try:
            with anyio.fail_after(timeout):
                done = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
        except TimeoutError:
            raise ToolError(f"{what} took longer than {timeout:g} s", code="timeout") from None
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, detail[-1] if detail else "")
        return done.stdout

    async def probe(self, path: Path) -> Probe:
        """Channels and duration of the first audio stream; ToolError when the file is not audio."""
        self._require()
        command = [
            self.ffprobe,
            *("-v", "error", "-of", "json", "-show_entries"),
            "stream=codec_type,codec_name,channels:format=format_name,duration",
            str(path),
        ]
        try:
            raw = await self._run(command, PROBE_TIMEOUT_SECONDS, "reading the audio's format")
        except subprocess.CalledProcessError as exc:
            raise ToolError(
                f"the file is not audio that ffmpeg can read ({exc.stderr or 'unknown format'})", field="audio"
            ) from None
        info = json.loads(raw or b"{}")
        streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
        container = str(info.get("format", {}).get("format_name", "unknown"))
        if not streams:
            raise ToolError(f"the file ({container}) holds no audio stream", field="audio")
        duration = info.get("format", {}).get("duration")
        try:
            seconds = float(duration) if duration not in (None, "N/A") else None
        except ValueError:
            seconds = None
        return Probe(int(streams[0].get("channels") or 1), seconds, container, str(streams[0].get("codec_name")))

    async def decode(self, path: Path, *, channel: int | None = None) -> bytes:
        """16 kHz mono s16le samples of the first audio stream (one channel of it when `channel` is given)."""
        self._require()
        mix = ["-af", f"pan=mono|c0=c{channel}"] if channel is not None else ["-ac", "1"]
        command = [
            self.ffmpeg,
            *("-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn"),
            *mix,
            *("-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"),
        ]
        try:
            return await self._run(command, DECODE_TIMEOUT_SECONDS, "decoding the audio")
        except subprocess.CalledProcessError as exc:
            raise ToolError(f"ffmpeg could not decode the audio ({exc.stderr})", field="audio") from None

    async def encode(self, pcm: Pcm, output: OutputFormat) -> bytes:
        """`pcm` encoded as `output`."""
        self._require()
        with tempfile.TemporaryDirectory(prefix="toolmux-speech-") as tmp:
            source, target = Path(tmp) / "in.raw", Path(tmp) / f"out.{output.extension}"
            source.write_bytes(pcm.data)
            rate = ["-ar", str(output.sample_rate)] if output.sample_rate else []
            command = [
                self.ffmpeg,
                *("-nostdin", "-hide_banner", "-v", "error", "-y"),
                *("-f", "s16le", "-ar", str(pcm.sample_rate), "-ac", "1", "-i", str(source)),
                *rate,
                *output.args,
                str(target),
            ]
            try:
                await self._run(command, ENCODE_TIMEOUT_SECONDS, f"encoding {output.name}")
            except subprocess.CalledProcessError as exc:
                raise ToolError(f"ffmpeg could not encode {output.name}: {exc.stderr}", code="internal") from None
            return target.read_bytes()
