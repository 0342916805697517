"""pocketsphinx: the built-in recognizer (its wheel ships the US English model, nothing to download)."""

from __future__ import annotations

import importlib.util
import re

from servers.speech.engines import DiscoveryContext, ModelSpec, Segment, Word
from servers.speech.timeline import segments_from_words

MODEL_ID = "pocketsphinx"
LANGUAGES = ["en"]
# pocketsphinx marks alternative pronunciations as "word(2)"; fillers look like <sil>, [NOISE].
_ALTERNATE = re.compile(r"\(\d+\)$")


class PocketsphinxRecognizer:
    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, loglevel="ERROR")
        self.frame_rate = int(self.decoder.config["frate"])

    def transcribe(self, pcm: bytes, language: str) -> list[Segment]:
        decoder = self.decoder
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        words: list[Word] = []
        for seg in decoder.seg():
            token = str(seg.word)
            if not token or token[0] in "<[":
                continue
            words.append(
                Word(
                    _ALTERNATE.sub("", token),
                    seg.start_frame / self.frame_rate,
                    (seg.end_frame + 1) / self.frame_rate,
                    float(seg.prob),
                )
            )
        return segments_from_words(words)


class PocketsphinxProvider:
    name = "pocketsphinx"

    def discover(self, context: DiscoveryContext) -> list[ModelSpec]:
        spec = ModelSpec(
            id=MODEL_ID,
            engine=self.name,
            languages=list(LANGUAGES),
            description="CMU PocketSphinx with its US English model: small and fast, fair accuracy on clear speech",
            load=PocketsphinxRecognizer,
        )
        if importlib.util.find_spec("pocketsphinx") is None:
            spec.available = False
            spec.reason = "Python package 'pocketsphinx' is not installed (pip install 'toolmux[speech]')"
            spec.load = None
        return [spec]
