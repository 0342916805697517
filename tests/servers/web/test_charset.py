"""Which charset a document is read with: BOM, declaration, meta, valid UTF-8, then detection."""

from __future__ import annotations

import codecs

import pytest

from servers.web.charset import decode

RUSSIAN = "Привет, как дела? Это тестовая страница на русском языке, и в ней довольно много слов."
FRENCH = "Le café de la gare est fermé. Déjà vu, à bientôt, garçon ! Ça coûte trop cher, hélas."


@pytest.mark.parametrize(
    ("body", "declared", "html", "charset", "source"),
    [
        (codecs.BOM_UTF8 + "é".encode(), "iso-8859-1", False, "utf-8", "bom"),
        (FRENCH.encode("latin-1"), "ISO-8859-1", False, "cp1252", "header"),
        (f"<meta charset='windows-1251'><p>{RUSSIAN}</p>".encode("cp1251"), None, True, "cp1251", "meta"),
        (FRENCH.encode(), None, True, "utf-8", "utf-8"),
        (FRENCH.encode("latin-1"), None, False, "cp1252", "detected"),
        (RUSSIAN.encode("cp1251"), None, False, "cp1251", "detected"),
        (FRENCH.encode(), "no-such-charset", False, "utf-8", "utf-8"),
    ],
)
def test_the_charset_comes_from_the_strongest_evidence(
    body: bytes, declared: str | None, html: bool, charset: str, source: str
) -> None:
    decoded = decode(body, declared=declared, html=html)

    assert (decoded.charset, decoded.source) == (charset, source)
    assert "�" not in decoded.text


def test_a_body_cut_inside_a_utf8_character_is_still_read_as_utf8() -> None:
    body = FRENCH.encode()
    cut = body[: body.index("é".encode()) + 1]  # half of the two bytes of é

    decoded = decode(cut, declared=None, html=False, cut=True)

    assert decoded.charset == "utf-8" and decoded.text.startswith("Le caf")
