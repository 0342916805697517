"""IMAP syntax: responses as imaplib hands them over, quoting, UID sets, folder-name encoding."""

from __future__ import annotations

import pytest

from servers.mail import imap_wire as wire


def test_fetch_response_with_literals_parses_into_records() -> None:
    data = [
        (
            b'1 (UID 7 FLAGS (\\Seen $Label) INTERNALDATE "22-Nov-2026 18:13:35 +0000" RFC822.SIZE 55 '
            b"BODY[HEADER.FIELDS (SUBJECT FROM)] {23}",
            b'Subject: (a) "quoted"\r\n',
        ),
        b")",
        (b"2 (UID 9 FLAGS () BODY[HEADER.FIELDS (SUBJECT FROM)] {0}", b""),
        b" RFC822.SIZE 3)",
    ]
    first, second = wire.fetch_items(data)
    assert first["UID"] == "7" and first["FLAGS"] == ["\\Seen", "$Label"]
    assert first["INTERNALDATE"] == b"22-Nov-2026 18:13:35 +0000"
    assert wire.body_section(first) == b'Subject: (a) "quoted"\r\n'
    assert second["UID"] == "9" and second["FLAGS"] == [] and second["RFC822.SIZE"] == "3"
    assert wire.body_section(second) == b""


def test_bodystructure_parses_nested_lists_and_nil() -> None:
    data = [
        b'3 (UID 1 BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL) '
        b'("application" "pdf" ("name" "a \\"b\\".pdf") NIL NIL "base64" 200 NIL ("attachment" ("filename" "a.pdf")) '
        b'NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL))'
    ]
    record = wire.fetch_items(data)[0]
    structure = record["BODYSTRUCTURE"]
    assert structure[0][:3] == [b"text", b"plain", [b"charset", b"utf-8"]]
    assert structure[0][3] is None
    assert structure[1][2] == [b"name", b'a "b".pdf']


def test_unbalanced_response_is_an_error_not_a_guess() -> None:
    with pytest.raises(wire.WireError):
        wire.parse([b"1 (UID 1"])
    with pytest.raises(wire.WireError):
        wire.parse([b'1 (UID 1 "open)'])


def test_list_responses_decode_folder_names_and_literals() -> None:
    data = [b'(\\HasNoChildren \\Trash) "/" Trash', b'(\\Noselect) "." "Caf&AOk-"', (b'() "/" {7}', b"My Mail"), b""]
    assert wire.list_entries(data) == [
        (["\\HasNoChildren", "\\Trash"], "/", "Trash"),
        (["\\Noselect"], ".", "Café"),
        ([], "/", "My Mail"),
    ]


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Café", "Caf&AOk-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("日本語", "&ZeVnLIqe-"),
        ("Geschäft/Verträge", "Gesch&AOQ-ft/Vertr&AOQ-ge"),
        ("😀 emoji", "&2D3eAA- emoji"),
    ],
)
def test_folder_names_round_trip_through_modified_utf7(name: str, encoded: str) -> None:
    assert wire.encode_folder(name) == encoded
    assert wire.decode_folder(encoded.encode()) == name


def test_quoting_escapes_and_refuses_line_breaks() -> None:
    assert wire.quoted('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    with pytest.raises(ValueError, match="line breaks"):
        wire.quoted("a\r\nb")


def test_non_ascii_search_terms_become_literals_only_with_literal_plus() -> None:
    assert wire.astring("über", literal_plus=True) == b"{5+}\r\n\xc3\xbcber"
    assert wire.astring("plain", literal_plus=False) == b'"plain"'
    with pytest.raises(ValueError, match="LITERAL\\+"):
        wire.astring("über", literal_plus=False)


def test_uid_sets_are_compact_and_sorted() -> None:
    assert wire.uid_set([5, 1, 2, 3, 9, 10, 3]) == "1:3,5,9:10"
    assert wire.uid_set([42]) == "42"
