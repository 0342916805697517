"""Forecast accuracy measures used by the backtest (all on numpy arrays of one channel).

- MASE: mean absolute error scaled by the in-sample MAE of the seasonal naive forecast (below 1: better
  than the seasonal naive forecast was in sample).
- sMAPE: 200/h * sum |y - f| / (|y| + |f|), in percent (0-200; 0/0 counts as 0).
- CRPS: approximated by twice the mean pinball loss over a grid of quantile levels.
- Coverage: share of actual values inside a central prediction interval.
"""

from __future__ import annotations

import numpy as np


def naive_scale(train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (falls back to lag 1 when too short)."""
    lag = season if season > 1 and train.size > season else 1
    if train.size <= lag:
        return float("nan")
    return float(np.mean(np.abs(train[lag:] - train[:-lag])))


def mase(actual: np.ndarray, point: np.ndarray, scale: float) -> float:
    """NaN when undefined: no scale, or a series the seasonal naive fits exactly yet the forecast misses
    (a perfect forecast of such a series scores 0)."""
    error = float(np.mean(np.abs(actual - point)))
    if not np.isfinite(scale) or scale == 0:
        return 0.0 if error == 0 and np.isfinite(scale) else float("nan")
    return error / scale


def smape(actual: np.ndarray, point: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(point)
    ratio = np.divide(np.abs(actual - point), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(200.0 * np.mean(ratio))


def pinball(actual: np.ndarray, quantile: np.ndarray, level: float) -> np.ndarray:
    diff = actual - quantile
    loss: np.ndarray = np.maximum(level * diff, (level - 1.0) * diff)
    return loss


def crps(actual: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...]) -> float:
    """Mean over the horizon of 2 x mean pinball loss across `levels` (rows of `quantiles`)."""
    losses = np.vstack([pinball(actual, quantiles[i], q) for i, q in enumerate(levels)])
    return float(2.0 * losses.mean())


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actual >= lower) & (actual <= upper)))
