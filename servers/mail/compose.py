"""Build an outgoing message: validated addresses, threading headers, bodies, attachments."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

from servers.kit import ToolError
from servers.mail.config import Account
from servers.mail.html_text import html_to_text

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MESSAGE_ID = re.compile(r"^<[^<>\s]+@[^<>\s]+>$")
SEND_POLICY = policy.SMTP


def parse_address(value: str, field_name: str) -> Address:
    """One recipient ("a@b.example" or "Name <a@b.example>") or a ToolError naming the field."""
    if "\r" in value or "\n" in value:
        raise ToolError(f"{field_name}: line breaks are not allowed in an address", field=field_name)
    parsed = getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1]:
        raise ToolError(f"{field_name}: {value!r} is not one email address", field=field_name)
    display, spec = parsed[0]
    local, at, domain = spec.rpartition("@")
    if not at or not _LOCAL.match(local) or len(local) > 64:
        raise ToolError(f"{field_name}: {value!r} is not a valid email address", field=field_name)
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ToolError(f"{field_name}: {value!r} has an invalid domain", field=field_name) from None
    labels = ascii_domain.split(".")
    if (len(labels) < 2 and ascii_domain.lower() != "localhost") or not all(_LABEL.match(x) for x in labels):
        raise ToolError(f"{field_name}: {value!r} is not a valid email address", field=field_name)
    return Address(display_name=display, username=local, domain=ascii_domain)


def parse_addresses(values: list[str] | None, field_name: str) -> list[Address]:
    return [parse_address(v, f"{field_name}[{i}]") for i, v in enumerate(values or [])]


def _message_id(value: str, field_name: str) -> str:
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not _MESSAGE_ID.match(value):
        raise ToolError(f"{field_name}: {value!r} is not a Message-ID like <id@host>", field=field_name)
    return value


@dataclass
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Outgoing:
    """A composed message and its SMTP envelope."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    message_id: str
    bcc: list[str] = field(default_factory=list)

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=SEND_POLICY)


def _set_text(msg: EmailMessage, text: str, subtype: str = "plain", *, alternative: bool = False) -> None:
    cte = "7bit" if text.isascii() and all(len(line) < 990 for line in text.splitlines()) else "quoted-printable"
    if alternative:
        msg.add_alternative(text, subtype=subtype, charset="utf-8", cte=cte)
    else:
        msg.set_content(text, subtype=subtype, charset="utf-8", cte=cte)


def compose(
    account: Account,
    args: dict[str, Any],
    *,
    attachments: list[OutgoingAttachment],
    thread: dict[str, Any] | None = None,
) -> Outgoing:
    """The message `send` delivers. `thread` holds the replied-to message's ids and subject."""
    thread = thread or {}
    to = parse_addresses(args.get("to"), "to")
    cc = parse_addresses(args.get("cc"), "cc")
    bcc = parse_addresses(args.get("bcc"), "bcc")
    reply_to = parse_addresses(args.get("reply_to"), "reply_to")
    if not to and thread.get("reply_to"):
        to = [_named(parse_address(str(a.get("address") or ""), "to"), a.get("name")) for a in thread["reply_to"]]
    if not (to or cc or bcc):
        raise ToolError("give at least one recipient in 'to', 'cc' or 'bcc'", field="to")

    msg = EmailMessage(policy=SEND_POLICY)
    domain = account.address.rpartition("@")[2]
    message_id = make_msgid(domain=domain)
    msg["From"] = Address(display_name=account.display_name or "", addr_spec=account.address)
    if to:
        msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if reply_to:
        msg["Reply-To"] = reply_to
    subject = args.get("subject")
    if subject is None and thread.get("subject") is not None:
        original = str(thread["subject"])
        subject = original if original.lower().startswith("re:") else f"Re: {original}"
    msg["Subject"] = (subject or "").replace("\r", " ").replace("\n", " ")
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id

    in_reply_to = args.get("in_reply_to") or thread.get("message_id")
    references = [_message_id(r, f"references[{i}]") for i, r in enumerate(args.get("references") or [])]
    if not references and thread:
        references = list(thread.get("references") or [])
    if in_reply_to:
        parent = _message_id(str(in_reply_to), "in_reply_to")
        msg["In-Reply-To"] = parent
        if parent not in references:
            references.append(parent)
    if references:
        msg["References"] = " ".join(references)

    text, html = args.get("text"), args.get("html")
    if html is not None:
        # Mail clients that show plain text (and spam filters) want a text part beside the HTML.
        _set_text(msg, text if text is not None else html_to_text(html))
        _set_text(msg, html, "html", alternative=True)
    else:
        _set_text(msg, text or "")
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        msg.add_attachment(item.data, maintype=maintype, subtype=subtype or "octet-stream", filename=item.filename)

    recipients = [a.addr_spec for a in (*to, *cc, *bcc)]
    return Outgoing(
        message=msg,
        sender=account.address,
        recipients=list(dict.fromkeys(recipients)),
        message_id=message_id,
        bcc=[a.addr_spec for a in bcc],
    )


def _named(address: Address, name: str | None) -> Address:
    return Address(display_name=name or "", username=address.username, domain=address.domain)


def guess_type(filename: str, declared: str | None) -> str:
    if declared and "/" in declared:
        return declared.strip().lower()
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"
