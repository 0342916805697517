"""Bad input and failures get clear, machine-readable errors, and the session stays usable afterwards."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from servers.kit import Domain
from tests.support.browser_site import Site, call, error_of, ok, running_browser

pytestmark = pytest.mark.anyio


async def still_usable(browser: Domain, site: Site, session: str) -> None:
    page = await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    assert page["title"] == "Sign up"


@pytest.mark.parametrize(
    "case",
    [
        ("click", {"selector": "button[[["}, "invalid_argument", "selector", "invalid selector"),
        ("click", {"selector": "//button[@@]"}, "invalid_argument", "selector", "invalid selector"),
        ("click", {"selector": "#absent", "timeout": 0.3}, "timeout", "selector", "Timeout 300ms"),
        ("click", {"selector": "input"}, "invalid_argument", "selector", "matches 2 elements"),
        ("click", {}, "invalid_argument", "ref", "give 'ref'"),
        ("click", {"ref": "e1", "selector": "input"}, "invalid_argument", "selector", "not both"),
        ("fill", {"selector": "input[name=name]"}, "invalid_argument", "value", "missing required field 'value'"),
        ("goto", {"url": "http://127.0.0.1:1/", "bogus": 1}, "invalid_argument", "bogus", "unexpected field"),
        ("eval_js", {"expression": "notDefined.x"}, "invalid_argument", "expression", "notDefined"),
        ("select_option", {"selector": "select"}, "invalid_argument", "values", "either 'values'"),
        ("tabs", {"action": "select", "index": 7}, "invalid_argument", "index", "no tab 7"),
    ],
)
async def test_bad_input_is_a_clear_error_and_the_session_stays_usable(
    browser: Domain, site: Site, session: str, case: tuple[str, dict, str, str, str]
) -> None:
    tool, args, code, field, words = case
    await ok(browser, "goto", {"session": session, "url": f"{site.url}/form"})
    error = error_of(await call(browser, tool, {"session": session, **args}))

    assert (error["code"], error.get("field")) == (code, field)
    assert words in error["message"]
    assert "Traceback" not in error["message"] and "Call log" not in error["message"]
    await still_usable(browser, site, session)


async def test_unknown_tool_and_unknown_script_action_are_named(browser: Domain, session: str) -> None:
    unknown = error_of(await call(browser, "teleport", {"session": session}))
    assert unknown["code"] == "not_found" and "goto" in unknown["message"]
    scripted = error_of(await call(browser, "run_script", {"session": session, "steps": [{"action": "teleport"}]}))
    assert scripted["field"] == "steps.0.action"


async def test_navigation_timeouts_are_retried_with_backoff_then_reported(
    browser: Domain, site: Site, session: str
) -> None:
    slow = f"{site.url}/slow?s=2"
    failed = error_of(await call(browser, "goto", {"session": session, "url": slow, "timeout": 0.3, "retries": 1}))
    assert failed["code"] == "timeout" and failed["retryable"] is True
    assert failed["data"] == {"attempts": 2} and "0.3 s" in failed["message"]

    patient = await ok(browser, "goto", {"session": session, "url": f"{site.url}/slow?s=0.3", "retries": 1})
    assert patient["title"] == "Slow" and patient["attempts"] == 1
    await still_usable(browser, site, session)


async def test_a_missing_chromium_is_reported_as_unavailable(tmp_path: Path, site: Site) -> None:
    config = {"executable_path": str(tmp_path / "no-chromium")}
    async with running_browser(tmp_path, config, with_storage=False) as domain:
        error = error_of(await call(domain, "goto", {"url": f"{site.url}/form"}))
        assert error["code"] == "unavailable" and "cannot start Chromium" in error["message"]
        assert str(tmp_path / "no-chromium") in error["message"]


async def test_standalone_server_without_eval_js_returns_screenshots_inline(tmp_path: Path, site: Site) -> None:
    config = {"eval_js": False, "viewport_width": 640, "viewport_height": 480}
    async with running_browser(tmp_path, config, with_storage=False) as domain:
        assert "eval_js" not in domain.visible_tools()
        assert error_of(await call(domain, "eval_js", {"expression": "1"}))["code"] == "not_found"
        script = await ok(domain, "run_script", {"steps": [{"action": "eval_js", "expression": "1"}]})
        assert script["steps"][0]["error"]["field"] == "steps.0.action"

        await ok(domain, "goto", {"url": f"{site.url}/form"})
        result = await call(domain, "screenshot", {})
        assert result["structuredContent"]["screenshot"]["url"] is None  # no hub, so no storage
        image_block = result["content"][1]
        assert image_block["type"] == "image" and image_block["mimeType"] == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(image_block["data"]))) as image:
            assert image.size == (640, 480)
