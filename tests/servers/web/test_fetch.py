"""web-fetch over real HTTP on loopback: extraction, formats, charsets, paging, size and time limits."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio
import psutil
import pytest

from servers.kit import Domain
from tests.servers.web.conftest import FETCH_NULLS, call, error_of, fetch, fetch_error, web_config, web_server
from tests.servers.web.site import (
    ARTICLE_PARAGRAPHS,
    BOILERPLATE,
    LATIN1_TEXT,
    Site,
)

pytestmark = pytest.mark.anyio


async def test_an_article_comes_back_without_navigation_ads_or_cookie_banner(web: Domain, site: Site) -> None:
    page = await fetch(web, f"{site.url}/article")

    assert page["kind"] == "html" and page["format"] == "markdown" and page["status"] == 200
    for paragraph in ARTICLE_PARAGRAPHS:
        assert paragraph in page["content"]
    for noise in BOILERPLATE:
        assert noise not in page["content"], noise
    assert page["content"].startswith("# Council expands riverside park")
    assert f"[flood map]({site.url}/flood-map)" in page["content"]
    assert page["title"] == "Council expands riverside park"
    assert page["author"] == "Jane Reporter"
    assert page["date"] == "2024-05-14"
    assert page["language"] == "en"
    assert page["canonical_url"] == "https://news.example/2024/05/park"
    assert page["links"] == [{"url": f"{site.url}/flood-map", "text": "flood map"}]
    assert page["truncated"] is False and page["next_offset"] is None and page["cut"] is False


async def test_plain_text_format_keeps_the_words_of_links_but_not_their_targets(web: Domain, site: Site) -> None:
    page = await fetch(web, f"{site.url}/article", format="text")

    assert page["format"] == "text"
    assert "See the flood map." in page["content"]
    assert "](" not in page["content"] and "#" not in page["content"]
    assert page["links"] == [{"url": f"{site.url}/flood-map", "text": "flood map"}]


async def test_a_pdf_comes_back_as_text_with_its_metadata(web: Domain, site: Site) -> None:
    for path in ("/report.pdf", "/report-untyped"):
        pdf = await fetch(web, f"{site.url}{path}")
        assert pdf["kind"] == "pdf" and pdf["pages"] == 2 and pdf["charset"] is None
        assert pdf["content"] == (
            "Revenue grew by twelve percent.\nCosts were flat.\n\nPage two is about hiring river wardens."
        )
        assert (pdf["title"], pdf["author"], pdf["date"]) == ("Quarterly report", "Ada Lovelace", "2024-03-01")
        assert pdf["links"] == [{"url": "https://example.org/annex", "text": ""}]


@pytest.mark.parametrize("path", ["/latin1", "/latin1-undeclared"])
async def test_a_latin1_page_reads_correctly_whether_or_not_it_declares_its_charset(
    web: Domain, site: Site, path: str
) -> None:
    page = await fetch(web, f"{site.url}{path}")

    assert LATIN1_TEXT in page["content"]
    assert page["title"] == "Le café fermé" and page["language"] == "fr"
    assert page["charset"] == "cp1252"


async def test_text_and_json_are_passed_through_unchanged(web: Domain, site: Site) -> None:
    text = await fetch(web, f"{site.url}/notes.txt")
    data = await fetch(web, f"{site.url}/data.json")

    assert (text["kind"], text["format"], text["content"]) == ("text", "text", "first line\nsecond line\n")
    assert (data["kind"], data["format"], data["content"]) == ("json", "json", '{"river": "Mill", "levels": [3, 4]}')


async def test_a_long_document_is_read_in_windows_that_join_up_exactly(web: Domain, site: Site) -> None:
    whole = await fetch(web, f"{site.url}/long", max_chars=1_000_000, format="text")
    hits_before = site.hits["/long"]
    pieces, offset = [], 0
    while True:
        window = await fetch(web, f"{site.url}/long", max_chars=2000, offset=offset, format="text")
        assert len(window["content"]) <= 2000 and window["total_chars"] == whole["total_chars"]
        pieces.append(window["content"])
        if not window["truncated"]:
            break
        offset = window["next_offset"]

    assert whole["total_chars"] > 20000 and len(pieces) > 10
    assert "".join(pieces) == whole["content"]
    assert all(p.endswith(("\n", " ")) for p in pieces[:-1])  # cut at a line or word break
    assert site.hits["/long"] == hits_before  # paging reads the cached document, not the site again


async def test_an_offset_past_the_end_is_refused_naming_the_field(web: Domain, site: Site) -> None:
    error = await fetch_error(web, f"{site.url}/notes.txt", offset=10_000)

    assert error["code"] == "invalid_argument" and error["field"] == "offset"


async def test_a_50_mb_body_is_cut_at_the_limit_while_memory_stays_flat(site: Site) -> None:
    limit = 2 * 1024 * 1024
    async with web_server(web_config(fetch={"max_bytes": limit, "timeout_s": 60})) as web:
        baseline = _reset_peak_rss()
        page = await fetch(web, f"{site.url}/huge.txt", max_chars=1000)
        growth = _peak_rss() - baseline
    print(f"50 MB text body cut at 2 MiB: peak RSS grew by {growth / 2**20:.1f} MiB")

    assert page["cut"] is True and page["bytes"] == limit and page["truncated"] is True
    assert page["content"].startswith("<p>Lorem ipsum")
    # Buffering the body would add 50 MiB; reading 2 MiB and decoding it, a few times that.
    assert growth < 16 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


async def test_a_50_mb_html_page_is_cut_at_the_limit_and_its_start_extracted(site: Site) -> None:
    limit = 512 * 1024
    async with web_server(web_config(fetch={"max_bytes": limit, "timeout_s": 60})) as web:
        baseline = _reset_peak_rss()
        page = await fetch(web, f"{site.url}/huge.html", max_chars=1000)
        growth = _peak_rss() - baseline
    print(f"50 MB HTML body cut at 512 KiB: peak RSS grew by {growth / 2**20:.1f} MiB")

    assert page["cut"] is True and page["bytes"] == limit and page["title"] == "Huge"
    assert page["content"].startswith("Lorem ipsum") and page["total_chars"] > 400_000
    # Less than the body alone would take if it were read whole (extraction of the 512 KiB included).
    assert growth < 50 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


async def test_a_gzip_bomb_is_inflated_only_up_to_the_limit(site: Site) -> None:
    limit = 1024 * 1024
    async with web_server(web_config(fetch={"max_bytes": limit})) as web:
        squeezed = await fetch(web, f"{site.url}/squeezed.txt", max_chars=100_000)
        baseline = _reset_peak_rss()
        page = await fetch(web, f"{site.url}/bomb.txt", max_chars=1000)
        growth = _peak_rss() - baseline
    print(f"gzip bomb of 64 MiB cut at 1 MiB: peak RSS grew by {growth / 2**20:.1f} MiB")

    assert squeezed["content"] == "squeezed text\n" * 1000 and squeezed["cut"] is False
    assert page["cut"] is True and page["bytes"] == limit and page["content"].startswith("bomb\nbomb\n")
    # 64 MiB once inflated; inflated only up to the 1 MiB limit, a few MiB at most.
    assert growth < 16 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


def _reset_peak_rss() -> int:
    """The current RSS (psutil), with the kernel's peak-RSS mark (VmHWM) reset to it."""
    gc.collect()
    current = psutil.Process().memory_info().rss
    Path("/proc/self/clear_refs").write_text("5")
    return int(current)


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


async def test_a_body_that_stalls_past_the_time_limit_gives_a_timeout_error(site: Site) -> None:
    async with web_server(web_config(fetch={"timeout_s": 0.5})) as web:
        with anyio.fail_after(10):
            error = await fetch_error(web, f"{site.url}/stall")

    assert error["code"] == "timeout" and error["field"] == "url" and error["retryable"] is True


@pytest.mark.parametrize(
    ("path", "code"),
    [("/missing", "upstream_error"), ("/pixel.png", "unsupported"), ("/busy", "rate_limited")],
)
async def test_unreadable_answers_give_errors_a_caller_can_act_on(
    web: Domain, site: Site, path: str, code: str
) -> None:
    error = await fetch_error(web, f"{site.url}{path}")

    assert error["code"] == code


async def test_the_status_of_a_failed_page_is_given(web: Domain, site: Site) -> None:
    error = await fetch_error(web, f"{site.url}/missing")

    assert error["data"] == {"status": 404, "final_url": f"{site.url}/missing"}


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "invalid_argument"),
        ("file:///etc/passwd", "forbidden"),
        ("ftp://example.org/file", "forbidden"),
        ("javascript:alert(1)", "forbidden"),
        ("example.org/page", "forbidden"),
        ("http://", "invalid_argument"),
    ],
)
async def test_bad_urls_are_refused_naming_the_field(web: Domain, url: str, code: str) -> None:
    error = error_of(await call(web, "fetch", {**FETCH_NULLS, "url": url}))

    assert error["code"] == code and error["field"] == "url"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"format": "html"}, "format"), ({"max_chars": 10}, "max_chars"), ({"offset": -1}, "offset")],
)
async def test_bad_fetch_options_are_refused_naming_the_field(
    web: Domain, site: Site, arguments: dict[str, object], field: str
) -> None:
    error = await fetch_error(web, f"{site.url}/article", **arguments)

    assert error["code"] == "invalid_argument" and error["field"] == field


async def test_saving_needs_a_hub_when_the_server_runs_alone(web: Domain, site: Site) -> None:
    error = await fetch_error(web, f"{site.url}/article", save=True)

    assert error["code"] == "unavailable" and error["field"] == "save"
