"""MIME decoding of messy real-world mail, and composing outgoing mail."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from servers.kit import ToolError
from servers.mail import message as mime
from servers.mail.compose import compose, parse_address
from servers.mail.config import Account


def parse(raw: bytes) -> mime.EmailMessage:
    return mime.parse_message(raw)


def test_raw_8bit_headers_in_latin1_become_valid_unicode() -> None:
    msg = parse(b"From: J\xf6rg <joerg@example.test>\r\nSubject: Gr\xfc\xdfe\r\n\r\nbody")
    fields = mime.header_fields(msg)
    assert fields["subject"] == "Grüße"
    assert fields["from"] == {"name": "Jörg", "address": "joerg@example.test"}


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("shift_jis", "こんにちは世界"),
        ("iso-2022-jp", "会議は水曜日です"),
        ("gb2312", "你好世界"),
        ("windows-1251", "Добрый день"),
        ("iso-8859-15", "Prix : 10 €"),
        ("ks_c_5601-1987", "안녕하세요"),
    ],
)
def test_bodies_in_legacy_charsets_decode(charset: str, text: str) -> None:
    codec = {"gb2312": "gb2312", "ks_c_5601-1987": "cp949"}.get(charset, charset)
    raw = f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
    raw += text.encode(codec)
    found = mime.bodies(parse(raw))
    assert found.plain == text


def test_unknown_charset_label_falls_back_to_utf8() -> None:
    raw = b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nna\xc3\xafve"
    assert mime.bodies(parse(raw)).plain == "naïve"


def test_forwarded_message_is_one_attachment_named_after_its_subject() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nFYI\r\n'
        b"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: Old news\r\nFrom: a@b.test\r\n\r\ninner body\r\n"
        b"--o--\r\n"
    )
    found = mime.bodies(parse(raw))
    assert found.plain is not None and found.plain.strip() == "FYI"
    assert [(a.filename, a.content_type) for a in found.attachments] == [("Old news.eml", "message/rfc822")]
    inner = BytesParser(policy=policy.default).parsebytes(mime.part_bytes(found.attachments[0].part))
    assert inner["Subject"] == "Old news"


def test_inline_image_is_listed_with_its_content_id() -> None:
    raw = (
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n'
        b'<img src="cid:logo@x">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n'
        b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n"
    )
    found = mime.bodies(parse(raw))
    assert found.html is not None
    (image,) = found.attachments
    assert (image.content_type, image.inline, image.content_id, image.size) == ("image/png", True, "<logo@x>", 8)


def test_broken_date_and_address_headers_do_not_raise() -> None:
    msg = parse(b"Date: someday soon\r\nFrom: <<<>>>\r\nTo: undisclosed-recipients:;\r\n\r\nx")
    fields = mime.header_fields(msg)
    assert fields["date"] is None and fields["to"] == []


ACCOUNT = Account.model_validate(
    {
        "name": "me",
        "address": "me@example.test",
        "display_name": "Mé Myself",
        "smtp": {"host": "localhost", "tls": "none"},
    }
)


def test_composed_message_has_threading_headers_and_no_bcc_header() -> None:
    outgoing = compose(
        ACCOUNT,
        {
            "to": ["Zoë <zoe@example.test>"],
            "bcc": ["hidden@example.test"],
            "subject": "Über",
            "text": "hi",
            "in_reply_to": "abc@host.test",
            "references": ["<root@host.test>"],
        },
        attachments=[],
    )
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.as_bytes())
    assert parsed["Bcc"] is None
    assert outgoing.recipients == ["zoe@example.test", "hidden@example.test"]
    assert parsed["In-Reply-To"] == "<abc@host.test>"
    assert parsed["References"] == "<root@host.test> <abc@host.test>"
    assert str(parsed["From"]) == "Mé Myself <me@example.test>" and parsed["Subject"] == "Über"
    assert outgoing.as_bytes().isascii()  # 7-bit clean for any SMTP server


def test_header_injection_through_fields_is_impossible() -> None:
    with pytest.raises(ToolError) as caught:
        parse_address("a@b.test\r\nBcc: evil@x.test", "to[0]")
    assert caught.value.field == "to[0]"
    outgoing = compose(ACCOUNT, {"to": ["a@b.test"], "subject": "hi\r\nBcc: evil@x.test", "text": "x"}, attachments=[])
    assert b"\r\nBcc:" not in outgoing.as_bytes()


def test_international_domain_is_sent_as_punycode() -> None:
    assert parse_address("anna@bücher.example", "to[0]").addr_spec == "anna@xn--bcher-kva.example"
