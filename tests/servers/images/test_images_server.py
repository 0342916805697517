"""The images server alone: no backend, no tool; sizes are checked before any backend is called."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers.images.server import create
from servers.kit import ServerSettings, ToolContext
from tests.support.hub import DomainsHubCaller

pytestmark = pytest.mark.anyio


def test_without_a_backend_the_generate_tool_is_absent(tmp_path: Path) -> None:
    domain = create(ServerSettings(name="images", config={}, data_dir=tmp_path))
    assert domain.visible_tools() == []


async def test_a_size_too_big_for_the_backend_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = {"backends": {"sd": {"type": "openai", "base_url": "http://127.0.0.1:9", "max_pixels": 512 * 512}}}
    domain = create(ServerSettings(name="images", config=config, data_dir=tmp_path, hub=DomainsHubCaller()))
    result = await domain.call(
        "generate", {"prompt": "x", "size": "1024x1024"}, ToolContext("generate", request_id="t")
    )
    error = result["_meta"]["toolmux/error"]
    assert result["isError"] and error["code"] == "invalid_argument" and error["field"] == "size"


async def test_an_unreachable_backend_is_a_retryable_unavailable_error(tmp_path: Path) -> None:
    config = {"backends": {"sd": {"type": "a1111", "base_url": "http://127.0.0.1:9"}}}
    domain = create(ServerSettings(name="images", config=config, data_dir=tmp_path, hub=DomainsHubCaller()))
    result = await domain.call("generate", {"prompt": "x", "size": "64x64"}, ToolContext("generate", request_id="t"))
    error = result["_meta"]["toolmux/error"]
    assert error["code"] == "unavailable" and error["retryable"] is True
