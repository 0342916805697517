"""Forecast accuracy and time per model and for the ensemble, on datasets shipped inside installed packages.

    .venv/bin/python bench/forecast_accuracy.py [--windows 3]

1. AirPassengers (monthly, 144 points; `statsforecast.utils`): rolling-origin backtest with
   horizon 12 at `windows` origins, every univariate model plus the equal-weight ensemble of
   AutoETS + AutoARIMA + AutoTheta; then the wall time of one 12-step forecast per model.
2. US macro data (quarterly growth of real GDP, consumption, investment, 1959-2009;
   `statsmodels.datasets.macrodata`): VAR against per-channel models, horizon 4.

Runs the same `ForecastService` the tools call (no MCP framing), in this process, on this CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from servers.forecast.backtest import backtest
from servers.forecast.config import ForecastConfig
from servers.forecast.server import build_service

UNIVARIATE = [
    "AutoETS",
    "AutoARIMA",
    "AutoTheta",
    "MSTL",
    "SeasonalNaive",
    "Naive",
    "RandomWalkWithDrift",
    "HistoricAverage",
    "CrostonOptimized",
]
ENSEMBLE = ["AutoETS", "AutoARIMA", "AutoTheta"]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(out: dict[str, Any], seconds_label: str = "fit s") -> None:
    levels = [f"{level:g}" for level in out["interval_levels"]]
    header = f"{'model':<20} {'MASE':>7} {'sMAPE%':>7} {'CRPS':>8} " + " ".join(f"{'cov' + lv:>6}" for lv in levels)
    print(header + f" {seconds_label:>7}")
    for row in sorted(out["results"], key=lambda r: (r["mase"] is None, r["mase"] or 0)):
        coverage = " ".join(f"{_fmt(row['coverage'][lv], 2):>6}" for lv in levels)
        print(
            f"{row['model']:<20} {_fmt(row['mase']):>7} {_fmt(row['smape'], 2):>7} {_fmt(row['crps'], 2):>8} "
            f"{coverage} {row['fit_seconds']:>7.2f}"
        )


async def air_passengers(windows: int) -> None:
    from statsforecast.utils import AirPassengers

    service = build_service(ForecastConfig(timeout_s=3600, warm_up=False), Path("/nonexistent"))
    context = [[float(v) for v in AirPassengers]]
    args = {
        "context": context,
        "horizon": 12,
        "season_length": 12,
        "windows": windows,
        "models": UNIVARIATE,
        "ensemble": ENSEMBLE,
    }
    # Import the libraries first so that the first model's time does not include them.
    await service.forecast("univariate", {"context": context, "horizon": 1, "model": "Naive"})
    started = time.perf_counter()
    out = await backtest(service, args)
    print(f"\n## AirPassengers: {len(context[0])} monthly points, horizon 12, {windows} rolling origins")
    print(f"(ensemble = equal weights of {', '.join(ENSEMBLE)}; its fit time is its members' sum)\n")
    print_table(out)
    print(f"\nbest by MASE: {out['best']}; backtest wall time {time.perf_counter() - started:.1f} s")

    print("\nOne 12-step forecast of the full series (median of 3 runs, after a warm-up call):")
    for name in [*UNIVARIATE, "ensemble"]:
        request: dict[str, Any] = {"context": context, "horizon": 12, "season_length": 12}
        request.update({"ensemble": ENSEMBLE} if name == "ensemble" else {"model": name})
        await service.forecast("univariate", request)
        times = []
        for _ in range(3):
            begun = time.perf_counter()
            await service.forecast("univariate", request)
            times.append(time.perf_counter() - begun)
        print(f"  {name:<20} {1000 * float(np.median(times)):8.1f} ms")


async def macro(windows: int) -> None:
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    channels = ["realgdp", "realcons", "realinv"]
    growth = [np.diff(np.log(data[c].to_numpy())) * 100 for c in channels]
    service = build_service(ForecastConfig(timeout_s=3600, warm_up=False), Path("/nonexistent"))
    args = {
        "type": "multivariate",
        "context": [[g.tolist() for g in growth]],
        "horizon": 4,
        "windows": windows * 4,
        "step": 1,
        "models": ["VAR", "AutoETS", "AutoARIMA", "HistoricAverage", "Naive"],
        "ensemble": ["VAR", "AutoETS"],
    }
    out = await backtest(service, args)
    print(
        f"\n## US macro growth (statsmodels macrodata): {len(growth)} channels ({', '.join(channels)}), "
        f"{growth[0].size} quarters, horizon 4, {args['windows']} origins one quarter apart"
    )
    print("(sMAPE is large for growth rates near zero: read MASE and CRPS here)\n")
    print_table(out)


async def main(windows: int) -> None:
    print(f"forecast accuracy bench: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    await air_passengers(windows)
    await macro(windows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3, help="rolling origins for AirPassengers (default 3)")
    anyio.run(main, parser.parse_args().windows)
