"""IMAP syntax imaplib leaves to its caller: quoting arguments, parsing responses, folder names.

imaplib hands back responses as a list of lines, with each literal `{n}` split off into a
`(line, literal_bytes)` tuple. `parse()` turns that list into Python values:

    atom                 -> str        (FLAGS, \\Seen, 42, BODY[HEADER.FIELDS (FROM)])
    "quoted" / {literal} -> bytes
    NIL                  -> None
    ( ... )              -> list
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from typing import Any

_LITERAL_MARKER = re.compile(rb"\{\d+\+?\}$")


class WireError(ValueError):
    """A response that does not parse (a server bug or a parser gap): reported, never guessed."""


class _Literal(bytes):
    """A literal's bytes, kept apart from the surrounding line so its content is never lexed."""


def _segments(data: Iterable[Any]) -> Iterator[bytes]:
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            head, literal = item[0], item[1]
            yield b" " + _LITERAL_MARKER.sub(b"", head.rstrip())
            yield _Literal(literal)
        else:
            yield b" " + bytes(item)


_SPACE = re.compile(rb"[ \t\r\n]*")
# One token: a parenthesis, a quoted string, or an atom (brackets may hold spaces and parentheses:
# BODY[HEADER.FIELDS (FROM TO)]<0>).
_TOKEN = re.compile(rb'(\()|(\))|"((?:[^"\\]|\\.)*)"|((?:[^\s()"\[\]]|\[[^\]]*\])+)', re.S)
_UNESCAPE = re.compile(rb"\\(.)", re.S)


def _tokens(data: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    for segment in _segments(data):
        if isinstance(segment, _Literal):
            yield "string", bytes(segment)
            continue
        pos, end = 0, len(segment)
        while True:
            pos = _SPACE.match(segment, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                break
            match = _TOKEN.match(segment, pos)
            if match is None:
                raise WireError(f"unparsable IMAP response near {segment[pos : pos + 20]!r}")
            pos = match.end()
            if match.group(1):
                yield "(", None
            elif match.group(2):
                yield ")", None
            elif match.group(3) is not None:
                yield "string", _UNESCAPE.sub(rb"\1", match.group(3))
            else:
                yield "atom", match.group(4).decode("utf-8", "replace")


def parse(data: Iterable[Any]) -> list[Any]:
    """Every top-level value in an imaplib response list, in order."""
    stack: list[list[Any]] = [[]]
    for kind, value in _tokens(data):
        if kind == "(":
            stack.append([])
        elif kind == ")":
            if len(stack) == 1:
                raise WireError("unbalanced ')' in IMAP response")
            done = stack.pop()
            stack[-1].append(done)
        elif kind == "atom":
            stack[-1].append(None if value.upper() == "NIL" else value)
        else:
            stack[-1].append(value)
    if len(stack) != 1:
        raise WireError("unbalanced '(' in IMAP response")
    return stack[0]


def fetch_items(data: Iterable[Any]) -> list[dict[str, Any]]:
    """`UID FETCH` responses as dicts keyed by upper-case item name (UID, FLAGS, BODY[...] ...)."""
    values = parse(data)
    out: list[dict[str, Any]] = []
    i = 0
    while i + 1 < len(values):
        seq, items = values[i], values[i + 1]
        i += 2
        if not isinstance(seq, str) or not seq.isdigit() or not isinstance(items, list):
            raise WireError("unexpected FETCH response shape")
        record: dict[str, Any] = {}
        for k in range(0, len(items) - 1, 2):
            key = items[k]
            if isinstance(key, str):
                record[key.upper()] = items[k + 1]
        out.append(record)
    return out


def body_section(record: dict[str, Any], prefix: str = "BODY[") -> bytes | None:
    """The bytes of the first `BODY[...]` item in a fetch record."""
    for key, value in record.items():
        if key.startswith(prefix):
            return value if isinstance(value, bytes) else b"" if value is None else str(value).encode()
    return None


def list_entries(data: Iterable[Any]) -> list[tuple[list[str], str | None, str]]:
    """`LIST` responses as (flags, delimiter, decoded folder name)."""
    values = parse(data)
    out = []
    for i in range(0, len(values) - 2, 3):
        flags, delimiter, name = values[i], values[i + 1], values[i + 2]
        if not isinstance(flags, list):
            raise WireError("unexpected LIST response shape")
        raw = name if isinstance(name, bytes) else str(name).encode()
        delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
        out.append(([str(f) for f in flags], delim, decode_folder(raw)))
    return out


# --- arguments -----------------------------------------------------------------------------------
def quoted(value: str) -> bytes:
    """An ASCII string as an IMAP quoted string."""
    raw = value.encode("ascii")
    if b"\r" in raw or b"\n" in raw:
        raise ValueError("line breaks are not allowed here")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(value: str, *, literal_plus: bool) -> bytes:
    """A search/argument string: quoted when ASCII, else a non-synchronising literal (LITERAL+)."""
    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed in search terms")
    if value.isascii():
        return quoted(value)
    if not literal_plus:
        raise ValueError("this IMAP server cannot take non-ASCII search terms (it lacks LITERAL+)")
    raw = value.encode("utf-8")
    return b"{%d+}\r\n" % len(raw) + raw


def folder_arg(name: str) -> bytes:
    return quoted(encode_folder(name))


def uid_set(uids: Iterable[int]) -> str:
    """A compact UID set: 1,2,3,7 -> 1:3,7."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# --- folder names: modified UTF-7 (RFC 3501 5.1.3) -----------------------------------------------
def encode_folder(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_folder(raw: bytes) -> str:
    text = raw.decode("ascii", "replace")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i)
        if end == -1:
            out.append(text[i:])
            break
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                out.append(base64.b64decode(b64).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(text[i : end + 1])
        i = end + 1
    return "".join(out)
