"""MIME decoding: headers in any encoding, text bodies in any charset, attachments listed.

Real mail is messy: undeclared 8-bit headers, wrong charset labels, charsets Python calls by
another name. Every string that leaves here is valid Unicode (never a surrogate escape), and
a body whose declared charset fails is decoded with the next plausible one rather than dropped.
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from servers.mail.html_text import html_to_text

# Labels seen in real mail that Python's codec registry spells differently (or supersets).
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "x-euc-jp": "euc_jp",
    "unicode-1-1-utf-7": "utf-7",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
    "iso-8859-1": "cp1252",  # mail labelled Latin-1 is in practice Windows-1252 (as browsers assume)
    "latin1": "cp1252",
}
_FALLBACKS = ("utf-8", "cp1252", "latin-1")

SUMMARY_HEADERS = ("FROM", "TO", "CC", "SUBJECT", "DATE", "MESSAGE-ID", "IN-REPLY-TO")


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    name = _CHARSET_ALIASES.get(label.strip().lower().strip('"'), label.strip().strip('"'))
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(payload: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8, else Windows-1252, else Latin-1 (never fails)."""
    tried: list[str] = []
    for label in (charset, *_FALLBACKS):
        name = _codec(label)
        if name is None or name in tried:
            continue
        tried.append(name)
        try:
            return payload.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return payload.decode("utf-8", "replace")


def _has_raw_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def clean(text: str) -> str:
    """Valid Unicode from a value that may carry undecodable raw 8-bit bytes."""
    if _has_raw_bytes(text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return text.replace("\x00", "")


def raw_header(msg: Message, name: str) -> str | None:
    """The header's value as sent (encoded words intact, folding undone), or None."""
    lowered = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lowered:
            return " ".join(str(value).split())
    return None


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words (=?charset?Q?...?=) in any charset Python knows."""
    value = clean(value)
    if "=?" not in value:
        return value
    try:
        parts = [(text, _codec(charset) or "utf-8") for text, charset in decode_header(value)]
        return "".join(
            decode_bytes(text, charset) if isinstance(text, bytes) else text
            for text, charset in parts  # decode_header leaves unencoded runs as raw bytes
        )
    except (HeaderParseError, ValueError, LookupError, UnicodeError, binascii.Error):
        return value


def header_text(msg: Message, name: str) -> str | None:
    raw = raw_header(msg, name)
    if raw is None:
        return None
    return decode_words(raw) or None


def addresses(msg: Message, name: str) -> list[dict[str, Any]]:
    """`[{name, address}]` of an address header; malformed entries are kept as best understood."""
    raw = raw_header(msg, name)
    if not raw:
        return []
    out: list[dict[str, Any]] = []
    for display, spec in email.utils.getaddresses([clean(raw)]):
        if spec or display:
            out.append({"name": decode_words(display) or None, "address": spec})
    return out


def iso_date(msg: Message) -> str | None:
    raw = raw_header(msg, "Date")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def message_ids(msg: Message, name: str) -> list[str]:
    value = header_text(msg, name)
    if not value:
        return []
    ids = [token for token in value.replace(",", " ").split() if token.startswith("<") and token.endswith(">")]
    return ids or [value]


def parse_headers(raw: bytes) -> Message:
    # compat32 keeps values as sent; the header helpers here decode them (several times faster
    # than policy.default's header objects, which matters for a page of summaries).
    return BytesHeaderParser(policy=policy.compat32).parsebytes(raw)


def parse_message(raw: bytes) -> EmailMessage:
    parsed: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    return parsed


def header_fields(msg: Message) -> dict[str, Any]:
    """The headers every message view shares."""
    sender = addresses(msg, "From")
    return {
        "subject": header_text(msg, "Subject"),
        "from": sender[0] if sender else None,
        "to": addresses(msg, "To"),
        "cc": addresses(msg, "Cc"),
        "date": iso_date(msg),
        "message_id": header_text(msg, "Message-ID"),
        "in_reply_to": header_text(msg, "In-Reply-To"),
    }


# --- bodies and attachments ------------------------------------------------------------------------
def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


def _leaves(part: Message) -> list[Message]:
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        out: list[Message] = []
        for sub in part.get_payload():
            if isinstance(sub, Message):
                out.extend(_leaves(sub))
        return out
    return [part]


def part_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message" and part.is_multipart():
        inner = part.get_payload(0)
        return inner.as_bytes(policy=policy.SMTP) if isinstance(inner, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


@dataclass
class Attachment:
    index: int
    filename: str | None
    content_type: str
    size: int
    inline: bool
    content_id: str | None
    part: Message

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "inline": self.inline,
            "content_id": self.content_id,
        }


@dataclass
class Bodies:
    plain: str | None
    html: str | None
    attachments: list[Attachment]


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, LookupError, TypeError):
        name = None
    if not name and part.get_content_maintype() == "message":
        inner = part.get_payload(0) if part.is_multipart() else None
        subject = header_text(inner, "Subject") if isinstance(inner, Message) else None
        name = f"{subject or 'message'}.eml"
    return clean(name) if name else None


def bodies(msg: EmailMessage) -> Bodies:
    """The text and HTML bodies a reader sees, and every other part as an attachment."""
    plain_part = html_part = None
    try:
        plain_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
    except (KeyError, ValueError, TypeError):
        pass
    attachments: list[Attachment] = []
    for leaf in _leaves(msg):
        if leaf is plain_part or leaf is html_part:
            continue
        disposition = (leaf.get_content_disposition() or "").lower()
        filename = _filename(leaf)
        if leaf is msg and leaf.get_content_maintype() == "text" and not filename:
            continue
        attachments.append(
            Attachment(
                index=len(attachments),
                filename=filename,
                content_type=leaf.get_content_type(),
                size=len(part_bytes(leaf)),
                inline=disposition == "inline",
                content_id=header_text(leaf, "Content-ID"),
                part=leaf,
            )
        )
    plain = part_text(plain_part) if plain_part is not None else None
    html = part_text(html_part) if html_part is not None else None
    return Bodies(plain, html, attachments)


def readable_text(found: Bodies, prefer: str) -> tuple[str | None, str | None]:
    """(text, source): the plain body, or reader-mode text of the HTML body, as preferred."""
    if found.html is not None and (prefer == "html" or found.plain is None or not found.plain.strip()):
        return html_to_text(found.html), "html"
    if found.plain is not None:
        return found.plain.replace("\r\n", "\n").strip("\n"), "plain"
    return None, None


def truncate(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit], True


def imap_datetime(value: str | None) -> str | None:
    """INTERNALDATE ("22-Nov-2026 18:13:35 +0000") as ISO 8601."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%d-%b-%Y %H:%M:%S %z").isoformat()
    except ValueError:
        return None


def has_attachment(structure: Any) -> bool:
    """Whether a parsed BODYSTRUCTURE declares an attachment (or a named non-text part)."""
    if not isinstance(structure, list) or not structure:
        return False
    if isinstance(structure[0], list):  # multipart: its parts first, then the subtype
        return any(has_attachment(sub) for sub in structure if isinstance(sub, list))
    maintype = structure[0].lower() if isinstance(structure[0], bytes) else b""
    if maintype == b"message":
        return True
    for item in structure[2:]:
        if isinstance(item, list) and item and isinstance(item[0], bytes) and item[0].lower() == b"attachment":
            return True
    params = structure[2] if len(structure) > 2 and isinstance(structure[2], list) else []
    names = {p.lower() for p in params[0::2] if isinstance(p, bytes)}
    return maintype not in (b"text", b"multipart") and b"name" in names
