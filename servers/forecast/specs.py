"""`ModelSpec`: what the catalog knows about one model, and the types of forecast it serves.

Every model fits one `Series` and returns one `Forecast` per channel. A univariate model serves
the `univariate` and `samples` types directly, `multivariate` channel by channel, and
`covariates` as a baseline that ignores the covariates; multivariate and covariate models serve
only their own type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from servers.forecast.core import Forecast, QuantileGrid, Seasonality, Series

FORECAST_TYPES = ("univariate", "multivariate", "covariates", "samples")
Native = Literal["univariate", "multivariate", "covariates"]

FitFn = Callable[[Series, int, QuantileGrid, Seasonality], list[Forecast]]
# (one channel's history, horizon, number of paths, seasonality, seed) -> (paths, horizon)
SimulateFn = Callable[[np.ndarray, int, int, Seasonality, int | None], np.ndarray]
# (series, seasonality, horizon) -> why the model cannot fit this series, or None
CheckFn = Callable[[Series, Seasonality, int], "str | None"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    library: str
    summary: str
    native: Native
    fit: FitFn
    check: CheckFn
    simulate: SimulateFn | None = None
    intervals: str = "native"
    seasonality: str = "single"
    cross_channel: bool = False
    past_covariates: bool = False
    future_covariates: bool = False
    intermittent: bool = False
    kind: str = "statistical"
    min_context: str = ""
    # "ready", or why the model cannot run here ("not installed ...", "no local weights at ...").
    status: Callable[[], str] = field(default=lambda: "ready", compare=False)

    def serves(self, forecast_type: str) -> bool:
        if forecast_type == "samples":
            return self.native == "univariate" and self.simulate is not None
        if self.native == "univariate":
            return forecast_type in ("univariate", "multivariate", "covariates")
        return forecast_type == self.native

    def describe(self, forecast_type: str) -> dict[str, Any]:
        status = self.status()
        how = {
            "univariate": "each series",
            "multivariate": "each channel separately" if self.native == "univariate" else "all channels jointly",
            "covariates": "the target only, ignoring covariates"
            if self.native == "univariate"
            else "target+covariates",
            "samples": "sample paths of each series",
        }[forecast_type]
        return {
            "name": self.name,
            "library": self.library,
            "kind": self.kind,
            "description": self.summary,
            "status": status,
            "available": status == "ready",
            "fits": how,
            "min_context": self.min_context,
            "supports": {
                "quantiles": True,
                "intervals": self.intervals,
                "samples": self.simulate is not None,
                "seasonality": self.seasonality,
                "cross_channel": self.cross_channel,
                "past_covariates": self.past_covariates,
                "future_covariates": self.future_covariates,
                "intermittent": self.intermittent,
            },
        }
