"""espeak-ng (Debian): robotic but always there, in about a hundred languages.

Voices are `espeak:<language>` (e.g. espeak:en-us, espeak:de, espeak:pt-br), read once from
`espeak-ng --voices`. Text goes in on stdin (never on the command line) and WAV comes back on stdout.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from functools import cache

from servers.speech.engines import DiscoveryContext, EngineProblem, Pcm, VoiceSpec

ENGINE = "espeak"
PREFIX = "espeak:"
DEFAULT_WORDS_PER_MINUTE = 175
SYNTH_TIMEOUT_SECONDS = 120.0


class EspeakError(RuntimeError):
    pass


def wav_pcm(wav: bytes) -> Pcm:
    """Samples and rate of a mono 16-bit WAV stream (whose size fields may be bogus, as from a pipe)."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise EspeakError("espeak-ng produced no WAV audio")
    pos, rate = 12, 0
    while pos + 8 <= len(wav):
        chunk_id, size = wav[pos : pos + 4], struct.unpack("<I", wav[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            channels, rate, bits = (*struct.unpack("<HI", wav[body + 2 : body + 8]), wav[body + 14])
            if channels != 1 or bits != 16:
                raise EspeakError(f"unexpected espeak-ng audio: {channels} channels, {bits} bits")
        elif chunk_id == b"data":
            data = wav[body:]
            return Pcm(data[: len(data) - len(data) % 2], rate)
        pos = body + size + (size & 1)
    raise EspeakError("espeak-ng produced WAV without audio data")


@cache
def list_voices(executable: str) -> tuple[tuple[str, str], ...]:
    """`(language, name)` of every espeak-ng voice."""
    listing = subprocess.run([executable, "--voices"], capture_output=True, text=True, timeout=30, check=True)
    voices: list[tuple[str, str]] = []
    for line in listing.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4:
            voices.append((fields[1].lower(), fields[3].replace("_", " ")))
    return tuple(voices)


class EspeakSynthesizer:
    def __init__(self, executable: str, language: str) -> None:
        self.executable = executable
        self.language = language

    def synthesize(self, text: str, speed: float) -> Pcm:
        words_per_minute = max(80, min(500, round(DEFAULT_WORDS_PER_MINUTE * speed)))
        done = subprocess.run(
            [self.executable, "-v", self.language, "-s", str(words_per_minute), "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=SYNTH_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise EspeakError(done.stderr.decode("utf-8", "replace").strip() or f"espeak-ng exit {done.returncode}")
        return wav_pcm(done.stdout)


class EspeakProvider:
    name = ENGINE

    def problem(self, context: DiscoveryContext) -> EngineProblem | None:
        executable = context.config.espeak_ng
        if not context.config.espeak:
            return EngineProblem(ENGINE, "switched off in the config (espeak: false)")
        if shutil.which(executable) is None:
            return EngineProblem(
                ENGINE, f"'{executable}' is not on PATH (scripts/setup installs espeak-ng from Debian)"
            )
        return None

    def discover(self, context: DiscoveryContext) -> list[VoiceSpec]:
        executable = context.config.espeak_ng
        if self.problem(context) is not None:
            return []
        try:
            voices = list_voices(executable)
        except (OSError, subprocess.SubprocessError):
            return []
        specs: list[VoiceSpec] = []
        for language, name in voices:

            def load(language: str = language) -> EspeakSynthesizer:
                return EspeakSynthesizer(executable, language)

            specs.append(VoiceSpec(PREFIX + language, ENGINE, language, f"{name} (espeak-ng)", [], 22050, load=load))
        return specs
