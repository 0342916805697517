"""Documents to readable text: HTML through trafilatura, PDF through pypdf, text and JSON as they are.

Plain functions over bytes or text, CPU-bound: the service runs them in a worker thread. The
libraries are imported on first use, so a hub that never fetches never pays for them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

from servers.kit import ToolError

Kind = Literal["html", "pdf", "text", "json"]
HTML_TYPES = ("text/html", "application/xhtml+xml")
JSON_SUFFIX = "+json"
XML_TYPES = ("application/xml", "application/javascript", "application/x-yaml", "application/yaml")


@dataclass
class Extracted:
    kind: Kind
    content: str
    title: str | None = None
    author: str | None = None
    date: str | None = None
    language: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    site_name: str | None = None
    links: list[dict[str, str]] = field(default_factory=list)
    pages: int | None = None


def kind_of(media_type: str, body: bytes) -> Kind | None:
    """The document kind from its media type, or sniffed from the first bytes when that says nothing."""
    if media_type in HTML_TYPES:
        return "html"
    if media_type == "application/pdf":
        return "pdf"
    if media_type in ("application/json", "text/json") or media_type.endswith(JSON_SUFFIX):
        return "json"
    if media_type.startswith("text/") or media_type in XML_TYPES or media_type.endswith("+xml"):
        return "text"  # feeds and other XML read as their source text
    if media_type in ("", "application/octet-stream", "binary/octet-stream"):
        head = body[:1024].lstrip()
        if head.startswith(b"%PDF-"):
            return "pdf"
        lowered = head[:256].lower()
        if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
            return "html"
        if head[:1] in (b"{", b"[") or (head and b"\x00" not in body[:1024]):
            return "json" if head[:1] in (b"{", b"[") else "text"
    return None


def _clean(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def _links(body: Any, base: str, limit: int) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for ref in body.iter("ref") if body is not None else ():
        target = ref.get("target")
        if not target or target.startswith(("javascript:", "mailto:", "#")):
            continue
        url = urljoin(base, target)
        if url in seen:
            continue
        seen.add(url)
        links.append({"url": url, "text": " ".join("".join(ref.itertext()).split())})
        if len(links) >= limit:
            break
    return links


def _declared_canonical(tree: Any, base: str) -> str | None:
    for href in tree.xpath("//link[@rel='canonical']/@href | //meta[@property='og:url']/@content"):
        if isinstance(href, str) and href.strip():
            return urljoin(base, href.strip())
    return None


def extract_html(
    text: str, url: str, *, markdown: bool, max_links: int, language: str | None = None, fast: bool = False
) -> Extracted:
    """The main content of an HTML page (navigation, ads, banners and footers left out) with metadata."""
    from lxml import etree
    from trafilatura import bare_extraction, html2txt
    from trafilatura.settings import Document
    from trafilatura.utils import load_html
    from trafilatura.xml import xmltotxt

    tree = load_html(text)
    if tree is None:
        return Extracted(kind="html", content="")
    lang = _clean(tree.get("lang")) or language
    canonical = _declared_canonical(tree, url)
    document = bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_links=True,
        include_formatting=markdown,
        include_comments=False,
        include_tables=True,
        fast=fast,
    )
    if not isinstance(document, Document) or document.body is None:
        # Too little text for the extractor to call anything "main content": give the page's text.
        fallback_title = tree.findtext(".//title")
        return Extracted(
            kind="html", content=html2txt(load_html(text)) or "", title=_clean(fallback_title), language=lang
        )
    body = document.body
    links = _links(body, url, max_links)
    if not markdown:
        # Plain text: link targets out, their words kept.
        etree.strip_tags(body, "ref")
    return Extracted(
        kind="html",
        content=xmltotxt(body, markdown).strip(),
        title=_clean(document.title),
        author=_clean(document.author),
        date=_clean(document.date),
        language=_clean(document.language) or lang,
        canonical_url=canonical or _clean(document.url),
        description=_clean(document.description),
        site_name=_clean(document.sitename),
        links=links,
    )


def _pdf_date(value: Any) -> str | None:
    return value.date().isoformat() if hasattr(value, "date") else None


def extract_pdf(data: bytes, *, max_links: int, cut: bool = False) -> Extracted:
    """The text of every page of a PDF, with its title, author, date and link annotations."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ToolError("the PDF is encrypted with a password", code="unsupported", field="url")
        texts: list[str] = []
        links: list[dict[str, str]] = []
        for page in reader.pages:
            texts.append((page.extract_text() or "").strip())
            for annotation in page.get("/Annots") or []:
                uri = (annotation.get_object().get("/A") or {}).get("/URI")
                if isinstance(uri, str) and len(links) < max_links and all(link["url"] != uri for link in links):
                    links.append({"url": uri, "text": ""})
        info = reader.metadata
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        hint = " (the body was cut at the size limit; raise fetch.max_bytes)" if cut else ""
        raise ToolError(f"the PDF could not be read: {exc}{hint}", code="unsupported", field="url") from None
    return Extracted(
        kind="pdf",
        content="\n\n".join(t for t in texts if t),
        title=_clean(info.title) if info else None,
        author=_clean(info.author) if info else None,
        date=_pdf_date(info.creation_date) if info else None,
        links=links,
        pages=len(texts),
    )


def passthrough(text: str, kind: Kind) -> Extracted:
    """Plain text and JSON as they came (JSON is not re-encoded: the bytes' own layout is kept)."""
    return Extracted(kind=kind, content=text)
