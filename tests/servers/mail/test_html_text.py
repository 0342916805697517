"""Reader-mode text from real-world email HTML."""

from __future__ import annotations

from servers.mail.html_text import html_to_text

NEWSLETTER = """<!doctype html><html><head><title>Weekly</title>
<style>.x{display:none}</style><script>var t=1;</script></head><body>
<div style="display: none; max-height: 0px; overflow: hidden;">Preview text&zwnj;&nbsp;&zwnj;&nbsp;</div>
<table role="presentation"><tr><td><img src="logo.png" alt="ACME"></td></tr>
<tr><td><h2>This   week</h2><p>Three things:</p>
<ol><li>New <b>pricing</b></li><li>A <a href="https://acme.example/blog">blog post</a></li><li>Hiring</li></ol>
</td></tr><tr><td><p>Questions? <a href="mailto:help@acme.example">help@acme.example</a></p>
<img src="https://t.example/open.gif" width="1" height="1" alt="tracking">
<p hidden>secret</p><span aria-hidden="true">decor</span>
</td></tr></table></body></html>"""


def test_newsletter_keeps_structure_and_links_and_drops_hidden_noise() -> None:
    assert html_to_text(NEWSLETTER) == (
        "[ACME]\n\nThis week\n\nThree things:\n\n"
        "1. New pricing\n2. A blog post <https://acme.example/blog>\n3. Hiring\n\n"
        "Questions? help@acme.example"
    )


def test_quoted_reply_and_preformatted_text() -> None:
    html = (
        "<div>Sounds good!</div><div class=gmail_quote>On Monday Ann wrote:<br>"
        "<blockquote>Lunch at <i>noon</i>?<br>Or later?</blockquote></div><pre>  a = 1\n    b = 2</pre>"
    )
    assert html_to_text(html) == (
        "Sounds good!\nOn Monday Ann wrote:\n\n> Lunch at noon?\n> Or later?\n\n  a = 1\n    b = 2"
    )


def test_malformed_markup_never_raises_and_keeps_text() -> None:
    assert html_to_text("<p>unclosed <b>bold <div>block</p></b>&amp; <x-custom>tag") == "unclosed bold\nblock\n\n& tag"
    assert html_to_text("<style>a{}") == ""
    assert html_to_text("") == ""


def test_table_cells_are_separated_and_rows_are_lines() -> None:
    html = "<table><tr><td>Item</td><td>Price</td></tr><tr><td>Tea</td><td>3 &euro;</td></tr></table>"
    assert html_to_text(html) == "Item Price\nTea 3 €"
