"""Reading and acting on real pages in real Chromium: snapshots and refs, forms, text, waits, screenshots."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from servers.kit import Domain
from tests.support.browser_site import Site, call, error_of, ok

pytestmark = pytest.mark.anyio


def ref_of(snapshot: str, role: str, name: str) -> str:
    match = re.search(rf'- {role} "{re.escape(name)}"[^\n]*\[ref=(e\d+)\]', snapshot)
    assert match, f"no {role} {name!r} in snapshot:\n{snapshot}"
    return match.group(1)


async def test_snapshot_refs_fill_and_submit_a_form(browser: Domain, site: Site, session: str) -> None:
    opened = await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    assert opened["title"] == "Sign up" and opened["status"] == 200

    snap = await ok(browser, "snapshot", {"session": session})
    text = snap["snapshot"]
    assert 'heading "Sign up"' in text
    await ok(
        browser, "fill", {"session": session, "ref": ref_of(text, "textbox", "Full name"), "value": "Ada Lovelace"}
    )
    await ok(browser, "fill", {"session": session, "ref": ref_of(text, "textbox", "Email"), "value": "ada@example.com"})
    chosen = await ok(
        browser, "select_option", {"session": session, "selector": "select[name=plan]", "labels": ["Pro"]}
    )
    assert chosen["selected"] == ["pro"]
    after = await ok(browser, "click", {"session": session, "ref": ref_of(text, "button", "Create account")})

    # The click waited for the next page: the result already shows where the form led.
    assert after["title"] == "Welcome" and after["url"].endswith("/submit")
    page = await ok(browser, "get_text", {"session": session})
    assert "name=Ada Lovelace" in page["text"]
    assert "email=ada@example.com" in page["text"] and "plan=pro" in page["text"]


async def test_a_ref_from_before_a_navigation_is_refused_with_a_hint(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    snap = await ok(browser, "snapshot", {"session": session})
    ref = ref_of(snap["snapshot"], "textbox", "Full name")
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/article"})

    stale = error_of(await call(browser, "fill", {"session": session, "ref": ref, "value": "x"}))
    assert stale["field"] == "ref" and "snapshot" in stale["message"]
    invented = await call(browser, "click", {"session": session, "ref": "e999"})
    assert error_of(invented)["field"] == "ref"


async def test_text_extraction_truncates_with_a_marker_and_reads_on(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/article"})
    first = await ok(browser, "get_text", {"session": session, "max_chars": 500})

    assert first["text"].startswith("Long read\n\nParagraph 0: the quick brown fox")
    assert first["truncated"] is True and first["next_offset"] == 500
    assert "[... truncated at 500 of" in first["text"]
    rest = await ok(browser, "get_text", {"session": session, "offset": first["next_offset"], "max_chars": 100000})
    assert rest["truncated"] is False
    assert rest["text"].endswith("Paragraph 199: the quick brown fox jumps over the lazy dog.")
    assert len(first["text"].split("\n[...")[0]) + len(rest["text"]) == first["total_chars"]

    heading = await ok(browser, "get_text", {"session": session, "selector": "h1"})
    assert heading["text"] == "Long read"
    html = await ok(browser, "get_html", {"session": session, "selector": "h1"})
    assert html["html"] == "<h1>Long read</h1>"


async def test_waits_for_an_element_rendered_by_javascript(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/late", "wait_until": "domcontentloaded"})
    before = await ok(browser, "get_text", {"session": session})
    assert "Rendered by JavaScript" not in before["text"]

    waited = await ok(browser, "wait_for_element", {"session": session, "selector": "p.ready", "timeout": 5})
    assert waited["count"] == 1
    assert "Rendered by JavaScript" in (await ok(browser, "get_text", {"session": session}))["text"]
    await ok(browser, "wait_for_text", {"session": session, "text": "loading", "gone": True, "timeout": 5})

    console = await ok(browser, "console_messages", {"session": session})
    assert {"level": "log", "text": "rendered late"} in [
        {"level": m["level"], "text": m["text"]} for m in console["messages"]
    ]
    errors = await ok(browser, "console_messages", {"session": session, "level": "error"})
    assert [m["text"] for m in errors["messages"]] == ["a test error"]
    network = await ok(browser, "network_requests", {"session": session, "url_contains": "/late"})
    assert [(r["method"], r["status"]) for r in network["requests"]] == [("GET", 200)]


async def test_interactive_elements_are_listed_with_unique_selectors(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    found = await ok(browser, "get_interactive_elements", {"session": session})

    by_text = {e["text"]: e for e in found["elements"]}
    assert set(by_text) >= {"Full name", "Email", "Create account", "Read the article"}
    assert by_text["Create account"]["tag"] == "button" and by_text["Create account"]["box"]["width"] > 0
    assert by_text["Read the article"]["href"] == f"{site.url}/article"
    # Each selector finds exactly the element it was listed for: clicking it follows the link.
    moved = await ok(browser, "click", {"session": session, "selector": by_text["Read the article"]["selector"]})
    assert moved["title"] == "Article"


async def test_screenshot_is_stored_as_a_png_of_the_viewport_size(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/tall"})
    result = await call(browser, "screenshot", {"session": session})
    shot = result["structuredContent"]["screenshot"]
    assert (shot["width"], shot["height"]) == (1280, 720)
    assert shot["bucket"] == "default" and shot["url"]

    stored = await browser.hub.call_tool("storage-get_object", {"bucket": shot["bucket"], "key": shot["key"]})  # type: ignore[union-attr]
    png = base64.b64decode(stored["structuredContent"]["base64"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (1280, 720)
    kinds = [c["type"] for c in result["content"]]
    assert kinds == ["text", "resource_link", "image"]
    thumb = base64.b64decode(result["content"][2]["data"])
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.size == (320, 180)

    full = await ok(browser, "screenshot", {"session": session, "full_page": True, "width": 400})
    assert full["screenshot"]["width"] == 400 and full["screenshot"]["height"] > 900


async def test_run_script_collects_outputs_and_stops_at_the_first_error(
    browser: Domain, site: Site, session: str
) -> None:
    steps = [
        {"action": "goto", "url": f"{site.url}/form"},
        {"action": "fill", "selector": "input[name=name]", "value": "Grace"},
        {"action": "click", "selector": "button[type=submit]"},
        {"action": "get_text", "selector": "ul", "output_id": "summary"},
        {"action": "click", "selector": "#missing", "timeout": 0.3},
        {"action": "get_text", "output_id": "never"},
    ]
    stopped = await ok(browser, "run_script", {"session": session, "steps": steps})

    assert stopped["completed"] is False and stopped["failed"] == 1
    assert [s["ok"] for s in stopped["steps"]] == [True, True, True, True, False]
    assert stopped["steps"][4]["error"]["code"] == "timeout"
    assert "name=Grace" in stopped["outputs"]["summary"]["text"]
    assert "never" not in stopped["outputs"]

    went_on = await ok(browser, "run_script", {"session": session, "steps": steps[3:], "on_error": "continue"})
    assert went_on["completed"] is True and went_on["failed"] == 1
    assert set(went_on["outputs"]) == {"summary", "never"}


async def test_run_script_checks_each_step_against_its_tool_contract(browser: Domain, session: str) -> None:
    bad = await ok(browser, "run_script", {"session": session, "steps": [{"action": "fill", "selector": "input"}]})
    assert bad["steps"][0]["error"]["field"] == "steps.0.value"
    nested = await ok(
        browser,
        "run_script",
        {"session": session, "steps": [{"action": "goto", "url": "about:blank", "session": "other"}]},
    )
    assert nested["steps"][0]["error"]["field"] == "steps.0.session"


async def test_typing_key_by_key_and_pressing_enter_submits(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    await ok(browser, "type", {"session": session, "selector": "input[name=name]", "text": "Linus"})
    await ok(browser, "send_key", {"session": session, "key": "Tab"})  # focus moves on to the email field
    await ok(browser, "type", {"session": session, "text": "linus@example.org"})  # into the focused element
    submitted = await ok(browser, "send_key", {"session": session, "selector": "input[name=name]", "key": "Enter"})

    assert submitted["title"] == "Welcome"
    text = (await ok(browser, "get_text", {"session": session}))["text"]
    assert "name=Linus" in text and "email=linus@example.org" in text


async def test_dialogs_are_accepted_and_reported(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/dialog"})
    clicked = await ok(browser, "click", {"session": session, "selector": "button"})

    assert clicked["dialogs"] == [{"type": "confirm", "message": "Proceed?", "handled": "accepted"}]
    assert (await ok(browser, "get_text", {"session": session, "selector": "#answer"}))["text"] == "yes"


async def test_tabs_open_from_links_and_history_moves_back(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/popup"})
    await ok(browser, "click", {"session": session, "selector": "a"})
    listed = await ok(browser, "wait_for_text", {"session": session, "text": "open form"})
    tabs = await ok(browser, "tabs", {"session": session})
    assert len(tabs["tabs"]) == 2 and tabs["tabs"][1]["url"].endswith("/form")

    switched = await ok(browser, "tabs", {"session": session, "action": "select", "index": 1})
    assert switched["tab"] == 1 and switched["url"].endswith("/form")
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/article"})
    back = await ok(browser, "back", {"session": session})
    assert back["moved"] and back["url"].endswith("/form")
    forward = await ok(browser, "forward", {"session": session})
    assert forward["url"].endswith("/article")
    closed = await ok(browser, "tabs", {"session": session, "action": "close", "index": 1})
    assert len(closed["tabs"]) == 1 and closed["url"] == listed["url"]


async def test_upload_scroll_keys_and_eval(browser: Domain, site: Site, session: str) -> None:
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/upload"})
    payload = base64.b64encode(b"hello world").decode()
    uploaded = await ok(
        browser,
        "upload_file",
        {"session": session, "selector": "#file", "files": [{"name": "a.txt", "base64": payload}]},
    )
    assert uploaded["files"] == [{"name": "a.txt", "size": 11}]
    assert (await ok(browser, "get_text", {"session": session, "selector": "#out"}))["text"] == "a.txt:11"

    await ok(browser, "goto", {"session": session, "url": f"{site.url}/tall"})
    scrolled = await ok(browser, "scroll", {"session": session, "to": "bottom"})
    assert scrolled["scroll"]["y"] > 2000
    up = await ok(browser, "scroll", {"session": session, "direction": "up", "amount": 500})
    assert up["scroll"]["y"] == scrolled["scroll"]["y"] - 500
    value = await ok(browser, "eval_js", {"session": session, "expression": "() => window.scrollY"})
    assert value["result"] == up["scroll"]["y"]
    doubled = await ok(browser, "eval_js", {"session": session, "expression": "(n) => n * 2", "arg": 21})
    assert doubled["result"] == 42
