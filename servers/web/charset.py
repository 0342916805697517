"""Bytes of a fetched document to text: which charset, and why.

The order follows what browsers do: a byte-order mark, then the charset the server declared,
then (HTML) a `<meta charset>` near the top, then UTF-8 when the bytes are valid UTF-8, and only
then detection (charset-normalizer). Undeclared legacy pages are mostly Western, and detection
on a short page often picks a Baltic or Central European code page that decodes the same bytes
differently, so windows-1252 (the web's default for undeclared pages) wins whenever it reads
the bytes about as cleanly as the best guess. ISO-8859-1 labels mean windows-1252 (WHATWG).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import charset_normalizer

DETECT_BYTES = 64 * 1024
META_SCAN_BYTES = 4096
# How much more "chaos" (mis-decoded looking text) windows-1252 may show than the best guess.
CP1252_TOLERANCE = 0.1
WHATWG_ALIASES = {"iso8859-1": "cp1252", "latin-1": "cp1252", "iso-8859-1": "cp1252", "ascii": "cp1252"}
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # Python codec name, e.g. "utf-8", "cp1252"
    source: str  # "bom", "header", "meta", "utf-8" (valid UTF-8) or "detected"


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return WHATWG_ALIASES.get(name, name)


def _valid_utf8(body: bytes, cut: bool) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A body cut at the size limit may end inside a multi-byte character.
        return cut and exc.start >= len(body) - 3 and exc.reason == "unexpected end of data"
    return True


def detect(body: bytes) -> str:
    matches = charset_normalizer.from_bytes(body[:DETECT_BYTES])
    best = matches.best()
    if best is None:
        return "cp1252"
    for match in matches:
        if "cp1252" in match.could_be_from_charset and match.chaos <= best.chaos + CP1252_TOLERANCE:
            return "cp1252"
    return _codec(best.encoding) or "cp1252"


def decode(body: bytes, *, declared: str | None, html: bool, cut: bool = False) -> Decoded:
    for bom, name in BOMS:
        if body.startswith(bom):
            return Decoded(body.decode(name, errors="replace"), name.removesuffix("-sig"), "bom")
    charset, source = _codec(declared), "header"
    if charset is None and html:
        found = META_CHARSET.search(body[:META_SCAN_BYTES])
        charset, source = _codec(found.group(1).decode("ascii")) if found else None, "meta"
    if charset is None and _valid_utf8(body, cut):
        charset, source = "utf-8", "utf-8"
    if charset is None:
        charset, source = detect(body), "detected"
    return Decoded(body.decode(charset, errors="replace"), charset, source)
