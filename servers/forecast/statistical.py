"""Univariate models from statsforecast, wrapped as `ModelSpec`s.

statsforecast is imported inside the fit functions, never at module import: the hub imports the
server registry at start-up and the catalog (names, capabilities) must stay cheap to list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from servers.forecast.core import Forecast, QuantileGrid, Seasonality, Series
from servers.forecast.specs import CheckFn, FitFn, ModelSpec, SimulateFn

# AutoETS ignores seasonal periods above this (a statsforecast limit).
ETS_MAX_SEASON = 24

Builder = Callable[[np.ndarray, int, Seasonality], Any]


def channelwise(one: Callable[[np.ndarray, int, QuantileGrid, Seasonality], Forecast]) -> FitFn:
    """Lift a one-channel fit to every channel of a series (independently)."""

    def fit(series: Series, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> list[Forecast]:
        return [one(series.target[c], horizon, grid, seasonality) for c in range(series.channels)]

    return fit


def _fit_with(build: Builder) -> FitFn:
    def one(y: np.ndarray, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> Forecast:
        model = build(y, horizon, seasonality)
        levels = grid.interval_levels()
        out = model.forecast(y=y, h=horizon, level=levels or None)
        return Forecast(
            mean=np.asarray(out["mean"], dtype=float)[:horizon], quantiles=grid.from_intervals(out, horizon)
        )

    return channelwise(one)


def _simulate_with(build: Builder) -> SimulateFn:
    def simulate(y: np.ndarray, horizon: int, paths: int, seasonality: Seasonality, seed: int | None) -> np.ndarray:
        model = build(y, horizon, seasonality)
        return np.asarray(model.simulate(h=horizon, n_paths=paths, y=y, seed=seed), dtype=float)

    return simulate


def _needs(name: str, minimum: Callable[[Seasonality, int], int], why: str = "") -> CheckFn:
    def check(series: Series, seasonality: Seasonality, horizon: int) -> str | None:
        need = minimum(seasonality, horizon)
        if series.length < need:
            note = f" ({why.format(m=seasonality.primary, h=horizon)})" if why else ""
            return f"has {series.length} points; {name} needs at least {need}{note}"
        return None

    return check


def _seasonal(m: int, floor: int) -> int:
    return max(floor, 2 * m) if m > 1 else floor


# --- builders (imports stay inside) -------------------------------------------------------------
def _auto_ets(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import AutoETS

    return AutoETS(season_length=s.primary if s.primary <= ETS_MAX_SEASON else 1)


def _auto_arima(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import AutoARIMA

    return AutoARIMA(season_length=s.primary)


def _auto_theta(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import AutoTheta

    return AutoTheta(season_length=s.primary)


def _seasonal_naive(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import SeasonalNaive

    return SeasonalNaive(season_length=s.primary)


def _naive(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import Naive

    return Naive()


def _historic_average(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import HistoricAverage

    return HistoricAverage()


def _drift(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import RandomWalkWithDrift

    return RandomWalkWithDrift()


def _croston(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import CrostonOptimized
    from statsforecast.utils import ConformalIntervals

    # Croston has no error model: intervals come from conformal scores over past windows.
    windows = max(2, min(5, (len(y) - 1) // horizon))
    return CrostonOptimized(prediction_intervals=ConformalIntervals(h=horizon, n_windows=windows))


def _mstl(y: np.ndarray, horizon: int, s: Seasonality) -> Any:
    from statsforecast.models import MSTL

    return MSTL(season_length=list(s.usable(len(y))))


def _mstl_check(series: Series, seasonality: Seasonality, horizon: int) -> str | None:
    periods = seasonality.usable(series.length)
    if not periods:
        if seasonality.from_freq or seasonality.primary > 1:
            return f"has {series.length} points; MSTL needs two full cycles of a seasonal period"
        return "MSTL needs a seasonal period > 1 (give season_length or freq)"
    need = max(7, 2 * max(periods))
    if series.length < need:
        return f"has {series.length} points; MSTL with season_length {list(periods)} needs at least {need}"
    return None


def statsforecast_models() -> list[ModelSpec]:
    two_seasons = "two seasons of {m}"
    return [
        ModelSpec(
            name="AutoETS",
            library="statsforecast",
            summary="Exponential smoothing (error/trend/season chosen by AICc). Strong default for trend and "
            f"seasonality; seasonal periods above {ETS_MAX_SEASON} are ignored.",
            native="univariate",
            fit=_fit_with(_auto_ets),
            simulate=_simulate_with(_auto_ets),
            check=_needs("AutoETS", lambda s, h: _seasonal(s.primary if s.primary <= ETS_MAX_SEASON else 1, 7)),
            min_context="7 points, or 2 x season_length when seasonal",
        ),
        ModelSpec(
            name="AutoARIMA",
            library="statsforecast",
            summary="ARIMA with orders chosen by stepwise search (Hyndman-Khandakar). Accurate, the slowest "
            "model here (about 0.3-1.5 s per seasonal series).",
            native="univariate",
            fit=_fit_with(_auto_arima),
            simulate=_simulate_with(_auto_arima),
            check=_needs("AutoARIMA", lambda s, h: _seasonal(s.primary, 5), two_seasons),
            min_context="5 points, or 2 x season_length when seasonal",
        ),
        ModelSpec(
            name="AutoTheta",
            library="statsforecast",
            summary="Theta method (best of standard/optimized/dynamic variants), seasonally adjusted. Fast, "
            "robust for trending series.",
            native="univariate",
            fit=_fit_with(_auto_theta),
            simulate=_simulate_with(_auto_theta),
            check=_needs("AutoTheta", lambda s, h: _seasonal(s.primary, 5), two_seasons),
            min_context="5 points, or 2 x season_length when seasonal",
        ),
        ModelSpec(
            name="SeasonalNaive",
            library="statsforecast",
            summary="Repeats the last season. Exact for a purely seasonal series; the baseline MASE compares to.",
            native="univariate",
            fit=_fit_with(_seasonal_naive),
            simulate=_simulate_with(_seasonal_naive),
            check=_needs("SeasonalNaive", lambda s, h: max(2, s.primary + 1), "one season of {m} plus one point"),
            min_context="season_length + 1 points",
        ),
        ModelSpec(
            name="Naive",
            library="statsforecast",
            summary="Repeats the last value (random walk). Baseline for non-seasonal series.",
            native="univariate",
            fit=_fit_with(_naive),
            simulate=_simulate_with(_naive),
            check=_needs("Naive", lambda s, h: 2),
            seasonality="none",
            min_context="2 points",
        ),
        ModelSpec(
            name="HistoricAverage",
            library="statsforecast",
            summary="The mean of the whole history. Baseline for stationary, level series.",
            native="univariate",
            fit=_fit_with(_historic_average),
            simulate=_simulate_with(_historic_average),
            check=_needs("HistoricAverage", lambda s, h: 2),
            seasonality="none",
            min_context="2 points",
        ),
        ModelSpec(
            name="RandomWalkWithDrift",
            library="statsforecast",
            summary="Last value plus the average change: extends a linear trend.",
            native="univariate",
            fit=_fit_with(_drift),
            simulate=_simulate_with(_drift),
            check=_needs("RandomWalkWithDrift", lambda s, h: 3),
            seasonality="none",
            min_context="3 points",
        ),
        ModelSpec(
            name="CrostonOptimized",
            library="statsforecast",
            summary="Croston's method for intermittent demand (many zeros); conformal intervals from past windows.",
            native="univariate",
            fit=_fit_with(_croston),
            check=_needs("CrostonOptimized", lambda s, h: 2 * h + 1, "2 x horizon + 1 for conformal intervals"),
            intervals="conformal",
            seasonality="none",
            intermittent=True,
            min_context="2 x horizon + 1 points",
        ),
        ModelSpec(
            name="MSTL",
            library="statsforecast",
            summary="STL decomposition with several seasonal periods (e.g. hourly data: 24 and 168), trend by "
            "AutoETS. Give season_length as a list, or freq.",
            native="univariate",
            fit=_fit_with(_mstl),
            check=_mstl_check,
            seasonality="multiple",
            min_context="2 x the longest season_length (at least 7)",
        ),
    ]
