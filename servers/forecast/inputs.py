"""Turning tool arguments into `Series` and checking them, with errors that name the field.

The JSON Schema already guarantees shapes of nested number arrays; this adds what it cannot say:
finite numbers, channels and covariates as long as their series, size limits, seasonality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from servers.forecast.config import ForecastConfig
from servers.forecast.core import SEASONS_BY_FREQ, QuantileGrid, Seasonality, Series
from servers.kit import ToolError

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class Request:
    forecast_type: str
    series: list[Series]
    horizon: int
    grid: QuantileGrid
    seasonality: Seasonality
    timeout_s: float

    @property
    def has_past(self) -> bool:
        return any(s.past is not None for s in self.series)

    @property
    def has_future(self) -> bool:
        return any(s.future is not None for s in self.series)


def finite_row(values: list[float], field: str) -> np.ndarray:
    try:
        row = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        row = np.empty((0, 0))
    if row.ndim != 1:
        raise ToolError(f"{field} must be a list of numbers (check the nesting for this forecast type)", field=field)
    bad = np.flatnonzero(~np.isfinite(row))
    if bad.size:
        where = f"{field}.{int(bad[0])}"
        raise ToolError(
            f"{where} is {float(row[bad[0]])}: forecasts need finite numbers (fill or drop missing values first; "
            f"{bad.size} non-finite value(s) in {field})",
            field=where,
        )
    return row


def _matrix(rows: list[list[float]], field: str, length: int | None, what: str) -> np.ndarray:
    arrays = [finite_row(row, f"{field}.{i}") for i, row in enumerate(rows)]
    expected = length if length is not None else arrays[0].size
    for i, array in enumerate(arrays):
        if array.size != expected:
            raise ToolError(
                f"{field}.{i} has {array.size} points but {what} {expected}; ragged arrays are not accepted",
                field=f"{field}.{i}",
            )
    return np.vstack(arrays)


def seasonality_of(args: dict[str, Any]) -> Seasonality:
    season = args.get("season_length")
    if season is not None:
        periods = (season,) if isinstance(season, int) else tuple(season)
        return Seasonality(periods=tuple(int(p) for p in periods))
    freq = args.get("freq")
    if freq is not None:
        return Seasonality(periods=SEASONS_BY_FREQ[freq], from_freq=True)
    return Seasonality()


def _covariates(args: dict[str, Any], name: str, n_series: int) -> list[Any] | None:
    value = args.get(name)
    if value is None:
        return None
    if len(value) != n_series:
        raise ToolError(
            f"{name} has {len(value)} entries but context has {n_series} series; give one per series", field=name
        )
    return list(value)


def parse_request(
    args: dict[str, Any], forecast_type: str, config: ForecastConfig, *, extra_levels: tuple[float, ...] = ()
) -> Request:
    horizon = int(args["horizon"])
    if horizon > config.max_horizon:
        raise ToolError(f"horizon {horizon} is above this server's limit of {config.max_horizon}", field="horizon")
    context = args["context"]
    if len(context) > config.max_series:
        raise ToolError(
            f"context has {len(context)} series; this server takes at most {config.max_series} per call",
            code="too_large",
            field="context",
        )
    series = _parse_series(args, forecast_type, context, horizon)
    points = sum(
        s.target.size + (0 if s.past is None else s.past.size) + (0 if s.future is None else s.future.size)
        for s in series
    )
    if points > config.max_points:
        raise ToolError(
            f"the call carries {points} numbers; this server takes at most {config.max_points}",
            code="too_large",
            field="context",
        )
    timeout = min(float(args.get("timeout_s") or config.timeout_s), config.timeout_s)
    grid = QuantileGrid.of(args.get("quantile_levels") or DEFAULT_QUANTILES, extra_levels)
    return Request(forecast_type, series, horizon, grid, seasonality_of(args), timeout)


def _parse_series(args: dict[str, Any], forecast_type: str, context: list[Any], horizon: int) -> list[Series]:
    if forecast_type == "multivariate":
        return [Series(target=_matrix(rows, f"context.{i}", None, "channel 0 has")) for i, rows in enumerate(context)]
    targets = [finite_row(row, f"context.{i}")[None, :] for i, row in enumerate(context)]
    if forecast_type != "covariates":
        return [Series(target=t) for t in targets]
    past = _covariates(args, "past_covariates", len(targets))
    future = _covariates(args, "future_covariates", len(targets))
    if past is None and future is None:
        raise ToolError(
            "give past_covariates, future_covariates or both (for no covariates use the univariate tool)",
            field="past_covariates",
        )
    series = []
    for i, target in enumerate(targets):
        n = target.shape[1]
        series.append(
            Series(
                target=target,
                past=None if past is None else _matrix(past[i], f"past_covariates.{i}", n, f"context.{i} has"),
                future=None
                if future is None
                else _matrix(future[i], f"future_covariates.{i}", n + horizon, f"context.{i} + horizon needs"),
            )
        )
    return series
