"""Rolling-origin backtest: refit each model at several past origins and score the next `horizon`.

With `windows` W and `step` S, the origins are n - h - (W-1)*S, ..., n - h - S, n - h: every
model is fitted on the data before an origin and scored on the `horizon` points after it.
Scores average over series, windows and channels (see `metrics` for the definitions); the point
forecast scored by MASE and sMAPE is the median.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from servers.forecast import metrics
from servers.forecast.core import Forecast, Series
from servers.forecast.ensemble import Selection, combine, resolve_model
from servers.forecast.inputs import parse_request
from servers.forecast.runner import Job, ProgressFn
from servers.forecast.service import ForecastService
from servers.kit import ToolError

CRPS_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))
DEFAULT_INTERVALS = (80, 95)
ENSEMBLE_ROW = "ensemble"


class _Scores:
    def __init__(self, interval_levels: tuple[float, ...]) -> None:
        self.mase: list[float] = []
        self.smape: list[float] = []
        self.crps: list[float] = []
        self.hits: dict[float, list[float]] = {level: [] for level in interval_levels}
        self.failures = 0
        self.seconds = 0.0

    def add(
        self, forecast: Forecast, actual: np.ndarray, train: np.ndarray, season: int, levels: tuple[float, ...]
    ) -> None:
        median = forecast.quantiles[levels.index(0.5)]
        self.mase.append(metrics.mase(actual, median, metrics.naive_scale(train, season)))
        self.smape.append(metrics.smape(actual, median))
        rows = [levels.index(q) for q in CRPS_LEVELS]
        self.crps.append(metrics.crps(actual, forecast.quantiles[rows], CRPS_LEVELS))
        for level, hits in self.hits.items():
            lower, upper = _interval_quantiles(level)
            hits.append(
                metrics.coverage(
                    actual, forecast.quantiles[levels.index(lower)], forecast.quantiles[levels.index(upper)]
                )
            )

    def to_json(self, name: str) -> dict[str, Any]:
        return {
            "model": name,
            "mase": _mean(self.mase),
            "smape": _mean(self.smape),
            "crps": _mean(self.crps),
            "coverage": {f"{level:g}": _mean(hits) for level, hits in self.hits.items()},
            "evaluated": len(self.smape),
            "failures": self.failures,
            "fit_seconds": round(self.seconds, 4),
        }


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _interval_quantiles(level: float) -> tuple[float, float]:
    tail = round((100.0 - level) / 200.0, 8)
    return tail, round(1.0 - tail, 8)


def _models(
    args: dict[str, Any], forecast_type: str, service: ForecastService, has_past: bool, has_future: bool
) -> list[str]:
    catalog = service.catalog
    if args.get("models"):
        names = [resolve_model(name, f"models.{i}", forecast_type, catalog) for i, name in enumerate(args["models"])]
        if len(set(names)) != len(names):
            raise ToolError("models names a model twice", field="models")
        return names
    names = catalog.default_ensemble(forecast_type, has_past=has_past, has_future=has_future)
    baseline = "SeasonalNaive" if args.get("season_length") or args.get("freq") else "Naive"
    return [*names, baseline] if baseline not in names else names


async def backtest(
    service: ForecastService, args: dict[str, Any], progress: ProgressFn | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    forecast_type = args.get("type", "univariate")
    intervals = tuple(float(v) for v in sorted(set(args.get("interval_levels") or DEFAULT_INTERVALS)))
    extra = CRPS_LEVELS + tuple(q for level in intervals for q in _interval_quantiles(level))
    request = parse_request(args, forecast_type, service.config, extra_levels=extra)
    horizon, windows = request.horizon, int(args.get("windows", 3))
    step = int(args.get("step") or horizon)
    models = _models(args, forecast_type, service, request.has_past, request.has_future)
    selection: Selection | None = None
    if args.get("ensemble") is not None or args.get("weights") is not None:
        selection = service.selection(args, request)
        models += [m for m in selection.members if m not in models]

    cuts: list[list[Series]] = []
    for i, series in enumerate(request.series):
        origins = [series.length - horizon - (windows - 1 - w) * step for w in range(windows)]
        if origins[0] < 2:
            raise ToolError(
                f"context.{i} has {series.length} points: too short for {windows} window(s) of horizon {horizon} "
                f"with step {step}; reduce windows, step or horizon",
                field=f"context.{i}",
            )
        cuts.append([series.truncated(origin, horizon) for origin in origins])
    earliest = [per_series[0] for per_series in cuts]
    note = f" at the earliest backtest origin ({windows} windows, step {step}); reduce windows, step or horizon"
    service.check(request, models, series_list=earliest, note=note)

    plan = [(i, w, name) for i, per_series in enumerate(cuts) for w in range(windows) for name in models]
    jobs: list[Job] = [
        service.fit_job(name, cuts[i][w], request, f"{name} on series {i + 1}/{len(cuts)}, window {w + 1}/{windows}")
        for i, w, name in plan
    ]
    outcomes = await service.run(jobs, request, progress)

    scores = {name: _Scores(intervals) for name in [*models, *([ENSEMBLE_ROW] if selection else [])]}
    warnings: list[str] = []
    fitted: dict[tuple[int, int], dict[str, list[Forecast]]] = {}
    for (i, w, name), outcome in zip(plan, outcomes, strict=True):
        scores[name].seconds += outcome.seconds
        if outcome.error or not all(f.is_finite() for f in outcome.value):
            scores[name].failures += 1
            warnings.append(f"{name} failed on context.{i}, window {w + 1}: {outcome.error or 'non-finite output'}")
            continue
        fitted.setdefault((i, w), {})[name] = outcome.value
    levels = request.grid.levels
    for (i, w), by_model in fitted.items():
        train = cuts[i][w]
        origin = train.length
        actual = request.series[i].target[:, origin : origin + horizon]
        rows = list(by_model.items())
        if selection is not None:
            present = {m: by_model[m] for m in selection.members if m in by_model}
            if present:
                channels = len(next(iter(present.values())))
                merged = [combine({m: fc[c] for m, fc in present.items()}, selection.weights) for c in range(channels)]
                rows.append((ENSEMBLE_ROW, merged))
        for name, channels_fc in rows:
            for c, forecast in enumerate(channels_fc):
                scores[name].add(forecast, actual[c], train.target[c], request.seasonality.primary, levels)

    if selection is not None:  # an ensemble costs what its members cost
        scores[ENSEMBLE_ROW].seconds = sum(scores[m].seconds for m in selection.members)
    results = [score.to_json(name) for name, score in scores.items()]
    # By MASE, then CRPS; a model whose MASE is undefined (see `metrics.mase`) ranks after the rest.
    ranked = sorted(
        (r for r in results if r["evaluated"]),
        key=lambda r: (
            r["mase"] is None,
            r["mase"] or 0.0,
            r["crps"] if r["crps"] is not None else float("inf"),
        ),
    )
    out: dict[str, Any] = {
        "type": forecast_type,
        "horizon": horizon,
        "windows": windows,
        "step": step,
        "season_length": list(request.seasonality.periods),
        "interval_levels": list(intervals),
        "results": results,
        "ranking": [r["model"] for r in ranked],
        "best": ranked[0]["model"] if ranked else None,
        "warnings": warnings,
    }
    if selection is not None:
        out["weights"] = dict(selection.weights)
    out["elapsed_s"] = round(time.perf_counter() - started, 4)
    return out
