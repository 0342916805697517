"""Reader-mode text from an HTML email body: what a person would read, without markup noise.

Email HTML is layout tables, hidden preheaders, tracking pixels and inline styles. This keeps
paragraph and line structure, list bullets, quoted replies (`> `), link targets and image alt
text; it drops scripts, styles, hidden elements, zero-width padding and 1x1 images.

Built on the standard library's tolerant `html.parser`: no dependency, and it never raises on
malformed markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP_CONTENT = {"script", "style", "head", "title", "noscript", "template", "svg", "object", "iframe"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr"}
_LINE = {
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "li",
    "tr",
    "dt",
    "dd",
    "form",
    "fieldset",
    "address",
    "figure",
    "figcaption",
    "center",
    "tbody",
    "thead",
    "tfoot",
}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|max-height\s*:\s*0(?![.\d])", re.I)
# Characters newsletters pad preheaders with; invisible but they cost tokens.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad\u180e"), None)
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_LINK_SCHEMES = ("http://", "https://", "mailto:", "ftp://")


def _hidden(attrs: dict[str, str | None]) -> bool:
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(attrs.get("style") or ""))


def _is_pixel(attrs: dict[str, str | None]) -> bool:
    return (attrs.get("width") or "").strip() in {"0", "1"} or (attrs.get("height") or "").strip() in {"0", "1"}


class _ReaderParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.at_line_start = True
        self.pending_breaks = 0
        self.quote_depth = 0
        self.pre_depth = 0
        self.skip_stack: list[str] = []  # tags whose content is being dropped, innermost last
        self.links: list[tuple[str, int]] = []  # (href, index into parts where the link text starts)
        self.list_counters: list[int | None] = []

    # --- output ------------------------------------------------------------------------------
    def _break(self, count: int) -> None:
        if self.parts:
            self.pending_breaks = max(self.pending_breaks, count)

    def _emit(self, text: str) -> None:
        if self.pending_breaks:
            self.parts.append("\n" * self.pending_breaks)
            self.pending_breaks = 0
            self.at_line_start = True
        if self.at_line_start and self.quote_depth:
            self.parts.append("> " * self.quote_depth)
        if self.quote_depth and "\n" in text:
            text = text.replace("\n", "\n" + "> " * self.quote_depth)
        self.parts.append(text)
        self.at_line_start = text.endswith("\n")

    def _last_char(self) -> str:
        for part in reversed(self.parts):
            if part:
                return part[-1]
        return "\n"

    def write(self, text: str) -> None:
        text = text.translate(_INVISIBLE)
        if self.pre_depth:
            if text:
                self._emit(text)
            return
        text = _SPACES.sub(" ", text)
        if self.at_line_start or self.pending_breaks or self._last_char() in " \n":
            text = text.lstrip(" ")
        if text:
            self._emit(text)

    # --- parser callbacks ----------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attrs_list)
        if self.skip_stack:
            if tag not in _VOID:
                self.skip_stack.append(tag)
            return
        if tag in _SKIP_CONTENT or (_hidden(attrs) and tag not in _VOID):
            self.skip_stack.append(tag)
            return
        self._open(tag, attrs)

    def handle_startendtag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        if self.skip_stack:
            return
        attrs = dict(attrs_list)
        if tag in _VOID:
            self._open(tag, attrs)
        elif not _hidden(attrs) and tag not in _SKIP_CONTENT:
            self._open(tag, attrs)
            self._close(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip_stack:
            # Drop up to the matching open tag; tolerate the unclosed children real mail is full of.
            if tag in self.skip_stack:
                while self.skip_stack and self.skip_stack.pop() != tag:
                    pass
            return
        self._close(tag)

    def handle_data(self, data: str) -> None:
        if not self.skip_stack:
            self.write(data)

    def _open(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "br":
            self._emit("\n")
        elif tag == "img":
            alt = (attrs.get("alt") or "").strip()
            if alt and not _is_pixel(attrs):
                self.write(f" [{alt}] ")
        elif tag == "a":
            self.links.append(((attrs.get("href") or "").strip(), len(self.parts)))
        elif tag in ("ul", "ol"):
            self._break(1)
            self.list_counters.append(0 if tag == "ol" else None)
        elif tag == "li":
            self._break(1)
            counter = self.list_counters[-1] if self.list_counters else None
            indent = "  " * max(0, len(self.list_counters) - 1)
            if counter is None:
                self.write(f"{indent}- ")
            else:
                self.list_counters[-1] = counter + 1
                self.write(f"{indent}{counter + 1}. ")
        elif tag == "blockquote":
            self._break(2)
            self.quote_depth += 1
        elif tag == "pre":
            self._break(2)
            self.pre_depth += 1
        elif tag in ("td", "th"):
            if self._last_char() not in " \n":
                self.write(" ")
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def _close(self, tag: str) -> None:
        if tag == "a" and self.links:
            href, start = self.links.pop()
            shown = "".join(self.parts[start:]).strip()
            if href.lower().startswith(_LINK_SCHEMES):
                target = href[7:] if href.lower().startswith("mailto:") else href
                if target.rstrip("/") not in shown:
                    self.write(f" <{target}>" if shown else f"<{target}>")
        elif tag in ("ul", "ol"):
            if self.list_counters:
                self.list_counters.pop()
            self._break(1)
        elif tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
            self._break(2)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self._break(2)
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = [line.rstrip() for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """Reader-mode plain text of an HTML document or fragment."""
    parser = _ReaderParser()
    parser.feed(html)
    parser.close()
    return parser.text()
