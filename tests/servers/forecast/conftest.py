"""Helpers for the forecast tests: a server built from real config, called the way the hub calls it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from servers.forecast.server import create
from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result


def make_domain(config: dict[str, Any] | None = None, tmp_path: Any = None) -> Domain:
    settings = ServerSettings(name="forecast", config={"warm_up": False, **(config or {})})
    if tmp_path is not None:
        settings.data_dir = tmp_path
    return create(settings)


@pytest.fixture(scope="session")
def forecast(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    # One server for every test that needs the default config: building a Domain compiles the
    # contract's validators (~0.4 s), and the service keeps no state between calls.
    return make_domain(tmp_path=tmp_path_factory.mktemp("forecast-data"))


async def call(domain: Domain, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """The structured result of a successful call (fails the test with the error text otherwise)."""
    result = await domain.call(tool, args, ToolContext(tool=tool, request_id="test"))
    assert result["isError"] is False, result["content"][0]["text"]
    structured: dict[str, Any] = result["structuredContent"]
    return structured


async def fail(domain: Domain, tool: str, args: dict[str, Any]) -> ToolError:
    """The error of a call that must fail."""
    result = await domain.call(tool, args, ToolContext(tool=tool, request_id="test"))
    error = error_from_result(result)
    assert error is not None, f"expected an error, got {result.get('structuredContent')}"
    return error


def seasonal(pattern: list[float], cycles: int) -> list[float]:
    return [float(v) for v in np.tile(pattern, cycles)]


def random_walks(count: int, length: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(size=(count, length)), axis=1)
