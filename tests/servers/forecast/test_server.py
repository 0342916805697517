"""The server as users meet it: progress, timeouts, the registry entry, a real stdio child."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

from servers import registry
from servers.forecast.catalog import ModelCatalog
from servers.forecast.config import ForecastConfig
from servers.forecast.core import Forecast, QuantileGrid, Seasonality, Series
from servers.forecast.service import ForecastService
from servers.forecast.specs import ModelSpec
from servers.forecast.statistical import statsforecast_models
from servers.kit import Domain, ToolError
from tests.servers.forecast.conftest import call

pytestmark = pytest.mark.anyio


async def test_progress_is_reported_per_series_and_model(forecast: Domain) -> None:
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    service: ForecastService = forecast.service
    args = {"context": [[1.0, 2, 3], [4.0, 5, 6]], "horizon": 1, "ensemble": ["Naive", "HistoricAverage"]}
    await service.forecast("univariate", args, on_progress)
    assert steps == [
        (1, 4, "Naive on series 1/2"),
        (2, 4, "HistoricAverage on series 1/2"),
        (3, 4, "Naive on series 2/2"),
        (4, 4, "HistoricAverage on series 2/2"),
    ]


async def test_a_fit_running_past_the_timeout_is_answered_with_a_timeout_error() -> None:
    release = threading.Event()
    started = threading.Event()

    def blocking_fit(series: Series, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> list[Forecast]:
        started.set()
        release.wait(30)
        return [Forecast(mean=np.zeros(horizon), quantiles=np.zeros((len(grid.levels), horizon)))]

    blocker = ModelSpec(
        name="Blocker",
        library="test",
        summary="waits",
        native="univariate",
        fit=blocking_fit,
        check=lambda s, z, h: None,
    )
    service = ForecastService(ForecastConfig(timeout_s=0.5), ModelCatalog([*statsforecast_models(), blocker]))
    begun = time.monotonic()
    try:
        with pytest.raises(ToolError) as caught:
            await service.forecast("univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "Blocker"})
    finally:
        release.set()  # let the abandoned worker thread finish
    assert started.is_set()
    assert caught.value.code == "timeout"
    assert "0.5 s" in caught.value.message
    assert time.monotonic() - begun < 5


async def test_a_call_may_ask_for_a_shorter_timeout_but_not_a_longer_one(forecast: Domain) -> None:
    from servers.forecast.inputs import parse_request

    config = ForecastConfig(timeout_s=20)
    assert parse_request({"context": [[1.0]], "horizon": 1, "timeout_s": 3}, "univariate", config).timeout_s == 3
    assert parse_request({"context": [[1.0]], "horizon": 1, "timeout_s": 999}, "univariate", config).timeout_s == 20


async def test_list_models_shows_each_types_models_and_defaults(forecast: Domain) -> None:
    listing = await call(forecast, "list_models", {})
    types = {t["type"]: t for t in listing["types"]}
    assert list(types) == ["univariate", "multivariate", "covariates", "samples"]
    names = {t: {m["name"] for m in entry["models"]} for t, entry in types.items()}
    required = {"AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive", "Naive", "HistoricAverage", "CrostonOptimized"}
    assert required | {"MSTL"} <= names["univariate"]
    assert "VAR" in names["multivariate"] and "VAR" not in names["univariate"]
    assert {"ARIMAX", "VARX"} <= names["covariates"]
    assert "CrostonOptimized" not in names["samples"] and "MSTL" not in names["samples"]
    assert types["univariate"]["default_ensemble"] == ["AutoETS", "AutoARIMA", "AutoTheta"]
    croston = next(m for m in types["univariate"]["models"] if m["name"] == "CrostonOptimized")
    assert croston["supports"]["intermittent"] is True and croston["supports"]["intervals"] == "conformal"


async def test_intermittent_demand_is_forecast_by_croston_with_conformal_intervals(forecast: Domain) -> None:
    demand = np.random.default_rng(9).poisson(0.4, size=60).astype(float)
    out = await call(forecast, "univariate", {"context": [demand.tolist()], "horizon": 4, "model": "CrostonOptimized"})
    median = np.array(out["forecasts"][0]["median"])
    assert np.allclose(median, median[0]) and 0.1 < median[0] < 1.0
    assert all(np.array(out["forecasts"][0]["quantiles"]["0.9"]) > median)


async def test_mstl_uses_several_seasonal_periods(forecast: Domain) -> None:
    t = np.arange(24 * 7 * 3, dtype=float)
    noise = np.random.default_rng(1).normal(scale=0.05, size=t.size)
    load = 10 + np.sin(2 * np.pi * t / 24) + 2 * np.sin(2 * np.pi * t / 168) + noise
    out = await call(forecast, "univariate", {"context": [load.tolist()], "horizon": 24, "freq": "H", "model": "MSTL"})
    assert out["season_length"] == [24, 168]
    future = np.arange(t.size, t.size + 24)
    truth = 10 + np.sin(2 * np.pi * future / 24) + 2 * np.sin(2 * np.pi * future / 168)
    assert np.abs(np.array(out["forecasts"][0]["median"]) - truth).max() < 0.5


def test_the_registry_offers_forecast_as_a_stdio_server_available_here() -> None:
    entry = registry.get("forecast")
    assert entry.default_mode == "stdio" and entry.extra == "forecast"
    assert entry.unavailable_reason() is None


async def test_health_reports_library_versions_and_foundation_status(forecast: Domain) -> None:
    assert forecast.health is not None
    health = await forecast.health()
    assert health["healthy"] is True
    assert health["details"]["statsforecast"][0].isdigit()
    assert set(health["details"]["foundation_models"]) == {"Chronos", "TimesFM", "Moirai"}


async def test_toolmux_server_forecast_runs_as_a_stdio_child_with_progress() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "aggregator", "server", "forecast", "--stdio"])
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    args: dict[str, Any] = {
        "context": [[112.0, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118] * 3],
        "horizon": 3,
        "season_length": 12,
        "ensemble": ["SeasonalNaive", "AutoETS"],
    }
    with anyio.fail_after(60):
        async with Client(params, mode="legacy") as client:
            tools = await client.list_tools()
            assert {t.name for t in tools.tools} == {
                "univariate",
                "multivariate",
                "covariates",
                "samples",
                "backtest",
                "list_models",
            }
            result = await client.call_tool("univariate", args, progress_callback=on_progress)
            assert result.structured_content is not None
            assert result.structured_content["forecasts"][0]["median"][:1] == [pytest.approx(112.0, abs=15)]
            bad = await client.call_tool("univariate", {"context": [[1.0]], "horizon": 0})
            assert bad.is_error
    assert steps == [1, 2]
