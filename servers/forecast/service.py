"""`ForecastService`: the forecast domain's logic behind the tools (no MCP in here).

A call is parsed (`inputs`), its models chosen (`ensemble.select`), every (series, model) pair
checked before anything is fitted, then fitted off the event loop (`runner`), and the members
combined. Output is plain JSON-ready dicts matching `schemas/forecast.json`.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import anyio
import numpy as np

from servers.forecast.catalog import ModelCatalog
from servers.forecast.config import ForecastConfig
from servers.forecast.core import Forecast, Series
from servers.forecast.ensemble import Selection, allocate, combine, select
from servers.forecast.inputs import Request, parse_request
from servers.forecast.runner import Job, Outcome, ProgressFn, run_jobs
from servers.kit import ToolError

DEFAULT_NUM_SAMPLES = 200


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


class ForecastService:
    def __init__(self, config: ForecastConfig, catalog: ModelCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.limiter = anyio.CapacityLimiter(config.max_concurrent_fits)

    def list_models(self, forecast_type: str | None = None) -> dict[str, Any]:
        return self.catalog.describe(forecast_type)

    # --- shared steps ---------------------------------------------------------------------------
    def selection(self, args: dict[str, Any], request: Request) -> Selection:
        t = request.forecast_type
        return select(
            args,
            t,
            self.catalog,
            default_model=self.catalog.default_model(t, has_future=request.has_future),
            default_ensemble=self.catalog.default_ensemble(t, has_past=request.has_past, has_future=request.has_future),
        )

    def check(
        self,
        request: Request,
        members: tuple[str, ...] | list[str],
        *,
        series_list: list[Series] | None = None,
        note: str = "",
    ) -> None:
        """Refuse, before fitting anything, a series some member cannot fit (too short, no covariates)."""
        for i, series in enumerate(series_list if series_list is not None else request.series):
            for name in members:
                reason = self.catalog.specs[name].check(series, request.seasonality, request.horizon)
                if reason:
                    raise ToolError(f"context.{i} {reason}{note}", field=f"context.{i}")

    def fit_job(self, name: str, series: Series, request: Request, label: str) -> Job:
        spec = self.catalog.specs[name]
        return Job(label, partial(spec.fit, series, request.horizon, request.grid, request.seasonality))

    async def run(self, jobs: list[Job], request: Request, progress: ProgressFn | None) -> list[Outcome]:
        return await run_jobs(
            jobs, limiter=self.limiter, timeout_s=request.timeout_s, progress=progress or _no_progress
        )

    # --- univariate / multivariate / covariates -------------------------------------------------
    async def forecast(
        self, forecast_type: str, args: dict[str, Any], progress: ProgressFn | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        request = parse_request(args, forecast_type, self.config)
        selection = self.selection(args, request)
        self.check(request, selection.members)
        n = len(request.series)
        jobs = [
            self.fit_job(name, series, request, f"{name} on series {i + 1}/{n}")
            for i, series in enumerate(request.series)
            for name in selection.members
        ]
        outcomes = iter(await self.run(jobs, request, progress))
        warnings: list[str] = []
        individual: dict[str, list[list[Forecast] | None]] = {name: [] for name in selection.members}
        combined: list[list[Forecast]] = []
        for i in range(n):
            fitted: dict[str, list[Forecast]] = {}
            failures: list[str] = []
            for name in selection.members:
                outcome = next(outcomes)
                problem = outcome.error or (None if all(f.is_finite() for f in outcome.value) else "non-finite output")
                if problem:
                    failures.append(f"{name} failed on context.{i}: {problem}")
                    individual[name].append(None)
                else:
                    fitted[name] = outcome.value
                    individual[name].append(outcome.value)
            if not fitted:
                raise ToolError("; ".join(failures), field=f"context.{i}")
            if failures:
                warnings.extend(f"{f} (left out; the other members were reweighted)" for f in failures)
            channels = request.series[i].channels if forecast_type == "multivariate" else 1
            combined.append(
                [combine({m: fc[c] for m, fc in fitted.items()}, selection.weights) for c in range(channels)]
                if selection.ensemble
                else fitted[selection.members[0]]
            )

        def shape(channels: list[Forecast] | None) -> Any:
            if channels is None:
                return None
            if forecast_type == "multivariate":
                return [f.to_json(request.grid) for f in channels]
            return channels[0].to_json(request.grid)

        result = self._header(request, selection, started, warnings)
        result["forecasts"] = [shape(channels) for channels in combined]
        if selection.ensemble:
            result["individual"] = {name: [shape(c) for c in per_series] for name, per_series in individual.items()}
        result["elapsed_s"] = round(time.perf_counter() - started, 4)
        return result

    def _header(self, request: Request, selection: Selection, started: float, warnings: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "model": "ensemble" if selection.ensemble else selection.members[0],
            "horizon": request.horizon,
            "quantile_levels": list(request.grid.requested),
            "season_length": list(request.seasonality.periods),
        }
        if selection.ensemble:
            result["members"] = list(selection.members)
            result["weights"] = dict(selection.weights)
            result["disabled"] = list(selection.disabled)
        result["warnings"] = warnings
        return result

    # --- samples --------------------------------------------------------------------------------
    async def samples(self, args: dict[str, Any], progress: ProgressFn | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        request = parse_request(args, "samples", self.config)
        num_samples = int(args.get("num_samples", DEFAULT_NUM_SAMPLES))
        values = len(request.series) * num_samples * request.horizon
        if values > self.config.max_sample_values:
            raise ToolError(
                f"series x num_samples x horizon = {values} values; this server returns at most "
                f"{self.config.max_sample_values}",
                code="too_large",
                field="num_samples",
            )
        seed = args.get("seed")
        selection = self.selection(args, request)
        self.check(request, selection.members)
        counts = allocate(num_samples, selection.weights)
        n = len(request.series)
        plan = [(i, k, name) for i in range(n) for k, name in enumerate(selection.members) if counts[name] > 0]
        jobs = []
        for i, k, name in plan:
            simulate = self.catalog.specs[name].simulate
            assert simulate is not None
            member_seed = None if seed is None else int(seed) + 7919 * i + 104729 * k
            work = partial(
                simulate, request.series[i].target[0], request.horizon, counts[name], request.seasonality, member_seed
            )
            jobs.append(Job(f"{name} paths for series {i + 1}/{n}", work))
        outcomes = await self.run(jobs, request, progress)
        paths: list[list[np.ndarray]] = [[] for _ in range(n)]
        for (i, _, name), outcome in zip(plan, outcomes, strict=True):
            if outcome.error or not np.isfinite(outcome.value).all():
                raise ToolError(
                    f"{name} failed on context.{i}: {outcome.error or 'non-finite paths'}", field=f"context.{i}"
                )
            paths[i].append(outcome.value)
        forecasts = []
        for per_member in paths:
            stacked = np.vstack(per_member)
            forecast = Forecast(
                mean=stacked.mean(axis=0), quantiles=request.grid.from_samples(stacked), samples=stacked
            )
            forecasts.append(forecast.to_json(request.grid, with_samples=True))
        result = self._header(request, selection, started, [])
        result["num_samples"] = num_samples
        if selection.ensemble:
            result["sample_counts"] = {name: counts[name] for name in selection.members}
        result["forecasts"] = forecasts
        result["elapsed_s"] = round(time.perf_counter() - started, 4)
        return result
