"""Content type from an object's first bytes (and, for text, its key's extension).

Binary formats are recognised by their signatures (the WHATWG MIME-sniffing tables plus a few
media formats the other domain servers produce); text is told apart from binary by decoding as
UTF-8, and the key's extension then picks among text types (`.json`, `.csv`, `.md`, ...).
"""

from __future__ import annotations

import mimetypes

SNIFF_BYTES = 4096

# (offset, signature, content type), checked in order.
_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
    (0, b"\x1f\x8b\x08", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"(\xb5/\xfd", "application/zstd"),
    (0, b"7z\xbc\xaf'\x1c", "application/x-7z-compressed"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"wOFF", "font/woff"),
    (0, b"wOF2", "font/woff2"),
    (0, b"\x00\x01\x00\x00\x00", "font/ttf"),
    (0, b"OTTO", "font/otf"),
    (0, b"\x00asm", "application/wasm"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (257, b"ustar", "application/x-tar"),
]


def _riff(data: bytes) -> str | None:
    if data[:4] != b"RIFF" or len(data) < 12:
        return None
    return {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}.get(data[8:12])


def _iso_media(data: bytes) -> str | None:
    if data[4:8] != b"ftyp" or len(data) < 12:
        return None
    brand = data[8:12]
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand in (b"heic", b"heix", b"mif1"):
        return "image/heic"
    if brand in (b"M4A ", b"M4B "):
        return "audio/mp4"
    if brand == b"qt  ":
        return "video/quicktime"
    return "video/mp4"


def _mp3_frame(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] & 0x06) != 0


def _text_type(head: str, key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    if guessed and (guessed.startswith("text/") or guessed.endswith(("json", "xml", "javascript", "yaml", "+xml"))):
        base = guessed
    else:
        stripped = head.lstrip().lower()
        if stripped.startswith(("<!doctype html", "<html")):
            base = "text/html"
        elif stripped.startswith("<svg") or ("<svg" in stripped[:512] and stripped.startswith("<?xml")):
            base = "image/svg+xml"
        elif stripped.startswith("<?xml"):
            base = "application/xml"
        elif stripped[:1] in ("{", "[") and key.lower().endswith(".json"):
            base = "application/json"
        else:
            base = "text/plain"
    if base.startswith("text/") or base in ("application/json", "image/svg+xml", "application/xml"):
        return f"{base}; charset=utf-8"
    return base


def _decodes_as_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sample may end inside a multi-byte character.
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    if any(ch in text for ch in "\x00\x01\x02\x03\x04\x05\x06\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b"):
        return None
    return text


def sniff(head: bytes, key: str = "") -> str:
    """The content type of an object whose first bytes are `head` (up to SNIFF_BYTES)."""
    head = head[:SNIFF_BYTES]
    for offset, signature, content_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return content_type
    detected = _riff(head) or _iso_media(head)
    if detected:
        return detected
    if _mp3_frame(head):
        return "audio/mpeg"
    if not head:
        guessed, _ = mimetypes.guess_type(key, strict=False)
        return guessed or "application/octet-stream"
    text = _decodes_as_text(head)
    if text is not None:
        return _text_type(text, key)
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def is_textual(content_type: str) -> bool:
    """Whether objects of this type are text an LLM can read directly."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base in (
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "image/svg+xml",
    )
