"""The web server's plain logic: `search` over the configured backend, `fetch` a URL as clean text.

Tool arguments arrive validated against schemas/web.json (every field present, null meaning
"the default"); what a schema cannot say (a blank URL host, a query too long for this server,
an offset past the end) is checked here and answered with a ToolError naming the field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import anyio

from servers.kit import HubCaller, ToolError
from servers.kit import storage_link as storage
from servers.kit.netpolicy import NetworkPolicy
from servers.web.cache import TTLCache
from servers.web.charset import decode
from servers.web.config import WebConfig
from servers.web.extract import Extracted, extract_html, extract_pdf, kind_of, passthrough
from servers.web.netclient import PolicyClient, RawDocument
from servers.web.render import BrowserRenderer
from servers.web.search import SearchBackend, SearchQuery, build_backend

EXTENSIONS = {"html": "html", "pdf": "pdf", "text": "txt", "json": "json"}
# Where a cut favours a line or word boundary: at most this share of the window is given up for it.
SOFT_CUT_SHARE = 0.2


@dataclass
class Document:
    """A fetched and extracted document (cached, so paging with offset reads it once)."""

    raw: RawDocument
    extracted: Extracted
    charset: str | None
    rendered: bool


def _page(content: str, offset: int, max_chars: int) -> tuple[str, int | None]:
    """The window of `content` starting at `offset`, ending at a line or word break when one is
    near the limit; and the offset to continue from (None at the end)."""
    if offset > len(content):
        raise ToolError(f"offset {offset} is past the end of the document ({len(content)} characters)", field="offset")
    end = offset + max_chars
    if end >= len(content):
        return content[offset:], None
    floor = end - int(max_chars * SOFT_CUT_SHARE)
    for separator in ("\n\n", "\n", " "):
        at = content.rfind(separator, floor, end)
        if at > offset:
            end = at + len(separator)
            break
    return content[offset:end], end


def _arg(args: dict[str, Any], name: str, default: Any) -> Any:
    value = args.get(name)
    return default if value is None else value


class WebService:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.policy = NetworkPolicy(config.network, subject="the web server", allow_setting="network.allow_hosts")
        fetch = config.fetch
        self.client = PolicyClient(
            self.policy,
            user_agent=fetch.user_agent,
            timeout_s=fetch.timeout_s,
            connect_timeout_s=fetch.connect_timeout_s,
            max_redirects=fetch.max_redirects,
        )
        chosen = config.search.chosen()
        self.backend: SearchBackend | None = (
            build_backend(chosen, config.search.searxng, config.search.brave) if chosen else None
        )
        self.search_cache: TTLCache[dict[str, Any]] = TTLCache(config.search.cache_ttl_s, config.search.cache_entries)
        self.documents: TTLCache[Document] = TTLCache(fetch.cache_ttl_s, fetch.cache_entries)
        self.renderer = BrowserRenderer(config.render)
        self.extractions = anyio.CapacityLimiter(fetch.extract_concurrency)

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.backend is not None:
            await self.backend.aclose()

    # --- search -------------------------------------------------------------------------------
    def _query(self, args: dict[str, Any]) -> SearchQuery:
        text = " ".join(str(args["query"]).split())
        if not text:
            raise ToolError("query is empty", field="query")
        if len(text) > self.config.search.max_query_chars:
            raise ToolError(f"query is longer than {self.config.search.max_query_chars} characters", field="query")
        return SearchQuery(
            query=text,
            categories=tuple(dict.fromkeys(_arg(args, "categories", []))),
            language=args.get("language"),
            time_range=args.get("time_range"),
            safe_search=args.get("safe_search"),
            page=int(_arg(args, "page", 1)),
        )

    async def search(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.backend is None:
            raise ToolError("no search backend is configured", code="unavailable")
        query = self._query(args)
        key = query.cache_key(self.backend.name)
        cached = self.search_cache.get(key)
        if cached is not None:
            return {**cached, "cached": True}
        page = await self.backend.search(query)
        answer = {
            "query": query.query,
            "backend": self.backend.name,
            "page": query.page,
            "results": page.results[: self.config.search.max_results],
            "suggestions": page.suggestions,
            "answers": page.answers,
            "corrections": page.corrections,
            "unresponsive_engines": page.unresponsive_engines,
            "number_of_results": page.number_of_results,
        }
        self.search_cache.put(key, answer)
        return {**answer, "cached": False}

    # --- fetch --------------------------------------------------------------------------------
    async def fetch(self, args: dict[str, Any], hub: HubCaller | None) -> dict[str, Any]:
        url = str(args["url"]).strip()
        markdown = _arg(args, "format", "markdown") == "markdown"
        render = bool(_arg(args, "render", False))
        save = bool(_arg(args, "save", False))
        max_chars = int(_arg(args, "max_chars", self.config.fetch.max_chars))
        offset = int(_arg(args, "offset", 0))
        self.policy.check_scheme(url)
        key = (url, markdown, render)
        document = None if save else self.documents.get(key)
        if document is None:
            document = await self._load(url, markdown=markdown, render=render, hub=hub)
            self.documents.put(key, document)
        saved = await self._save(document, hub) if save else None
        content, next_offset = _page(document.extracted.content, offset, max_chars)
        return self._answer(document, content, offset, next_offset, markdown, saved)

    async def _load(self, url: str, *, markdown: bool, render: bool, hub: HubCaller | None) -> Document:
        try:
            with anyio.fail_after(self.config.render.timeout_s if render else self.config.fetch.timeout_s):
                if render:
                    raw = await self._render(url, hub)
                else:
                    raw = await self.client.get(url, max_bytes=self.config.fetch.max_bytes)
        except TimeoutError:
            raise ToolError(f"reading {url} took too long", code="timeout", field="url", retryable=True) from None
        self._check_status(raw)
        kind = kind_of(raw.media_type, raw.body)
        if kind is None:
            raise ToolError(
                f"{raw.final_url} is {raw.media_type or 'binary data'}; fetch reads HTML, PDF, text and JSON",
                code="unsupported",
                field="url",
            )
        charset: str | None = None
        async with self.extractions:
            if kind == "pdf":
                limit, cut = self.config.fetch.max_links, raw.cut
                extracted = await anyio.to_thread.run_sync(lambda: extract_pdf(raw.body, max_links=limit, cut=cut))
            else:
                decoded = decode(raw.body, declared=raw.charset, html=kind == "html", cut=raw.cut)
                charset = decoded.charset
                if kind == "html":
                    extracted = await anyio.to_thread.run_sync(lambda: self._html(decoded.text, raw, markdown))
                else:
                    extracted = passthrough(decoded.text, kind)
        return Document(raw, extracted, charset, render)

    def _html(self, text: str, raw: RawDocument, markdown: bool) -> Extracted:
        language = (raw.content_language or "").split(",")[0].strip() or None
        fetch = self.config.fetch
        return extract_html(
            text,
            raw.final_url,
            markdown=markdown,
            max_links=fetch.max_links,
            language=language,
            fast=len(raw.body) > fetch.thorough_html_bytes,
        )

    async def _render(self, url: str, hub: HubCaller | None) -> RawDocument:
        await self.policy.check_url(url)
        rendered = await self.renderer.render(hub, url, max_chars=self.config.fetch.max_bytes)
        body = rendered.html.encode("utf-8")
        return RawDocument(
            url=url,
            final_url=rendered.final_url,
            status=rendered.status or 200,
            media_type="text/html",
            charset="utf-8",
            content_language=None,
            body=body,
            cut=rendered.cut,
        )

    @staticmethod
    def _check_status(raw: RawDocument) -> None:
        status = raw.status
        if status < 300:
            return
        data = {"status": status, "final_url": raw.final_url}
        if status == 429:
            raise ToolError(
                f"{raw.final_url} answered 429 (too many requests)", code="rate_limited", retryable=True, data=data
            )
        what = "a redirect without a usable Location" if status < 400 else f"HTTP {status}"
        raise ToolError(
            f"{raw.final_url} answered {what}", code="upstream_error", field="url", retryable=status >= 500, data=data
        )

    async def _save(self, document: Document, hub: HubCaller | None) -> dict[str, Any]:
        hub = storage.require_hub(
            hub, "save", "save: true needs the storage server, reached through a toolmux hub; this server runs alone"
        )
        save = self.config.save
        kind = document.extracted.kind
        day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        key = f"{save.prefix.strip('/')}/{day}/{uuid.uuid4().hex}.{EXTENSIONS[kind]}"
        media = document.raw.media_type or {"pdf": "application/pdf", "html": "text/html"}.get(kind, "text/plain")
        if document.charset and kind != "pdf":
            media = f"{media}; charset={document.charset}"
        result = await storage.put_object(
            hub,
            bucket=save.bucket,
            key=key,
            data=document.raw.body,
            content_type=media,
            metadata={"source-url": document.raw.final_url[:1024]},
            ttl_seconds=save.ttl_seconds,
        )
        stored = storage.stored_result(result, f"saving the document to storage {save.bucket}/{key} failed", "save")
        return {k: stored.get(k) for k in ("bucket", "key", "url", "size", "content_type")}

    def _answer(
        self,
        document: Document,
        content: str,
        offset: int,
        next_offset: int | None,
        markdown: bool,
        saved: dict[str, Any] | None,
    ) -> dict[str, Any]:
        raw, extracted = document.raw, document.extracted
        return {
            "url": raw.url,
            "final_url": raw.final_url,
            "redirects": raw.redirects,
            "status": raw.status,
            "kind": extracted.kind,
            "content_type": raw.media_type or None,
            "charset": document.charset,
            "format": "markdown"
            if markdown and extracted.kind == "html"
            else "json"
            if extracted.kind == "json"
            else "text",
            "title": extracted.title,
            "author": extracted.author,
            "date": extracted.date,
            "language": extracted.language,
            "canonical_url": extracted.canonical_url,
            "description": extracted.description,
            "site_name": extracted.site_name,
            "links": extracted.links,
            "pages": extracted.pages,
            "content": content,
            "offset": offset,
            "total_chars": len(extracted.content),
            "truncated": next_offset is not None,
            "next_offset": next_offset,
            "bytes": len(raw.body),
            "cut": raw.cut,
            "rendered": document.rendered,
            "saved": saved,
        }
