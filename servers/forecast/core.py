"""The shapes every model and tool shares: a series to forecast, its seasonality, quantile grids, forecasts.

Arrays are numpy float64. A series' target is always 2-D `(channels, time)` (one channel for
univariate and covariate forecasts) so that a univariate model can be lifted channel by channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Frequency hints and the seasonal periods they imply, primary period first. Models with one
# seasonality use the first; MSTL uses every period the data is long enough for.
SEASONS_BY_FREQ: dict[str, tuple[int, ...]] = {
    "min": (60, 1440),
    "5min": (12, 288),
    "15min": (4, 96),
    "30min": (48, 336),
    "H": (24, 168),
    "D": (7,),
    "B": (5,),
    "W": (52,),
    "M": (12,),
    "Q": (4,),
    "Y": (1,),
}


@dataclass(frozen=True)
class Seasonality:
    """Seasonal periods in observations (1 = no seasonality). `from_freq`: derived from a hint."""

    periods: tuple[int, ...] = (1,)
    from_freq: bool = False

    @property
    def primary(self) -> int:
        return self.periods[0]

    def usable(self, length: int) -> tuple[int, ...]:
        """Periods a multi-seasonal model can use on `length` points: explicit periods all stay
        (a too-short series is refused elsewhere); periods implied by a frequency hint are dropped
        when the data holds fewer than two cycles."""
        periods = tuple(p for p in self.periods if p > 1)
        if self.from_freq:
            periods = tuple(p for p in periods if 2 * p <= length)
        return periods

    def describe(self) -> str:
        text = ", ".join(str(p) for p in self.periods)
        return f"season_length {text}" + (" (from freq)" if self.from_freq else "")


def quantile_key(level: float) -> str:
    """The JSON key of a quantile level: Python's shortest round-trip text, e.g. 0.1 -> "0.1"."""
    return repr(float(level))


@dataclass(frozen=True)
class QuantileGrid:
    """The quantile levels a call computes: the requested ones plus the median, ascending."""

    levels: tuple[float, ...]
    requested: tuple[float, ...]

    @classmethod
    def of(cls, requested: list[float] | tuple[float, ...], extra: tuple[float, ...] = ()) -> QuantileGrid:
        wanted = tuple(sorted({float(q) for q in requested}))
        levels = tuple(sorted({*wanted, 0.5, *(float(q) for q in extra)}))
        return cls(levels=levels, requested=wanted)

    @property
    def median_index(self) -> int:
        return self.levels.index(0.5)

    def index(self, level: float) -> int:
        return self.levels.index(level)

    def interval_levels(self) -> list[float]:
        """Central-interval levels in percent (statsforecast's `level`) that yield every quantile."""
        return sorted({_interval_level(q) for q in self.levels if q != 0.5})

    def from_intervals(self, out: dict[str, Any], horizon: int) -> np.ndarray:
        """`(quantiles, horizon)` from statsforecast's `{"mean", "lo-L", "hi-L"}` output."""
        rows = []
        mean = np.asarray(out["mean"], dtype=float)[:horizon]
        for q in self.levels:
            if q == 0.5:
                rows.append(mean)
            else:
                side = "lo" if q < 0.5 else "hi"
                rows.append(np.asarray(out[f"{side}-{_interval_level(q)}"], dtype=float)[:horizon])
        return monotone(np.vstack(rows))

    def from_gaussian(self, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        from scipy.stats import norm

        z = norm.ppf(np.asarray(self.levels))[:, None]
        return monotone(mean[None, :] + z * np.maximum(sd, 0.0)[None, :])

    def from_samples(self, samples: np.ndarray) -> np.ndarray:
        """Empirical quantiles of `(paths, horizon)` sample paths."""
        return monotone(np.quantile(samples, self.levels, axis=0))


def _interval_level(q: float) -> float:
    return round(abs(1.0 - 2.0 * q) * 100.0, 8)


def monotone(quantiles: np.ndarray) -> np.ndarray:
    """Sort along the level axis so quantiles never cross (numerical noise, averaged members)."""
    return np.sort(quantiles, axis=0)


@dataclass
class Forecast:
    """One channel's forecast: the mean path and quantiles aligned with a QuantileGrid."""

    mean: np.ndarray
    quantiles: np.ndarray
    samples: np.ndarray | None = None

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.quantiles).all())

    def to_json(self, grid: QuantileGrid, *, with_samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mean": self.mean.tolist(),
            "median": self.quantiles[grid.median_index].tolist(),
            "quantiles": {quantile_key(q): self.quantiles[grid.index(q)].tolist() for q in grid.requested},
        }
        if with_samples and self.samples is not None:
            out["samples"] = self.samples.tolist()
        return out


@dataclass
class Series:
    """One item of a batch: the target (channels x time) and its covariates, if any."""

    target: np.ndarray
    past: np.ndarray | None = None
    future: np.ndarray | None = None

    @property
    def length(self) -> int:
        return int(self.target.shape[1])

    @property
    def channels(self) -> int:
        return int(self.target.shape[0])

    def truncated(self, origin: int, horizon: int) -> Series:
        """The series as it was known at `origin` (for rolling-origin backtests)."""
        return Series(
            target=self.target[:, :origin],
            past=None if self.past is None else self.past[:, :origin],
            future=None if self.future is None else self.future[:, : origin + horizon],
        )
