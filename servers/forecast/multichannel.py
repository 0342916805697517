"""Models that use information across channels or covariates.

- `VAR` (statsmodels): vector autoregression over all channels of a series jointly.
- `VARX` (statsmodels): VAR over the target plus its past-only covariates (forecast jointly),
  with future-known covariates, when given, as exogenous regressors.
- `ARIMAX` (statsforecast AutoARIMA with exogenous regressors): future-known covariates.

Quantiles of the VAR family come from the model's Gaussian forecast-error covariance.
"""

from __future__ import annotations

import numpy as np

from servers.forecast.core import Forecast, QuantileGrid, Seasonality, Series
from servers.forecast.specs import ModelSpec

MAX_VAR_LAGS = 12


def _max_lags(length: int, k_endog: int, k_exog: int) -> int:
    """Largest lag order that leaves each equation at least two rows per parameter."""
    lags = MAX_VAR_LAGS
    while lags > 1 and (length - lags) < 2 * (1 + k_endog * lags + k_exog):
        lags -= 1
    return lags


def _min_var_length(k_endog: int, k_exog: int) -> int:
    return max(10, 2 * (1 + k_endog + k_exog) + 1)


def _constant_rows(matrix: np.ndarray) -> list[int]:
    return [i for i in range(matrix.shape[0]) if np.ptp(matrix[i]) == 0]


def _var_forecast(
    endog: np.ndarray, exog: np.ndarray | None, exog_future: np.ndarray | None, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean `(horizon, k)` and standard deviation `(horizon, k)` of a VAR(X) fitted to `endog (t, k)`."""
    from statsmodels.tsa.api import VAR

    lags = _max_lags(endog.shape[0], endog.shape[1], 0 if exog is None else exog.shape[1])
    results = VAR(endog, exog=exog).fit(maxlags=lags, ic="aic")
    if results.k_ar == 0:  # AIC preferred no lags; one lag keeps the forecast conditional on the data
        results = VAR(endog, exog=exog).fit(1)
    mean = results.forecast(endog[-results.k_ar :], horizon, exog_future=exog_future)
    cov = results.forecast_cov(horizon)
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    return np.asarray(mean, dtype=float), sd


# --- VAR ----------------------------------------------------------------------------------------
def _var_fit(series: Series, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> list[Forecast]:
    mean, sd = _var_forecast(series.target.T, None, None, horizon)
    return [
        Forecast(mean=mean[:, c], quantiles=grid.from_gaussian(mean[:, c], sd[:, c])) for c in range(series.channels)
    ]


def _var_check(series: Series, seasonality: Seasonality, horizon: int) -> str | None:
    if series.channels < 2:
        return "has one channel; VAR needs at least two (use a univariate model)"
    constant = _constant_rows(series.target)
    if constant:
        return f"channel {constant[0]} is constant; VAR needs variation in every channel"
    need = _min_var_length(series.channels, 0)
    if series.length < need:
        return f"has {series.length} points; VAR on {series.channels} channels needs at least {need}"
    return None


# --- VARX ---------------------------------------------------------------------------------------
def _varx_fit(series: Series, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> list[Forecast]:
    assert series.past is not None
    n = series.length
    endog = np.vstack([series.target, series.past]).T
    exog = exog_future = None
    if series.future is not None:
        exog, exog_future = series.future[:, :n].T, series.future[:, n : n + horizon].T
    mean, sd = _var_forecast(endog, exog, exog_future, horizon)
    return [Forecast(mean=mean[:, 0], quantiles=grid.from_gaussian(mean[:, 0], sd[:, 0]))]


def _varx_check(series: Series, seasonality: Seasonality, horizon: int) -> str | None:
    if series.past is None:
        return "VARX needs past_covariates (for future-known covariates alone use ARIMAX)"
    constant = _constant_rows(np.vstack([series.target, series.past]))
    if constant:
        what = "the target" if constant[0] == 0 else f"past covariate {constant[0] - 1}"
        return f"{what} is constant; VARX needs variation in the target and every past covariate"
    k_exog = 0 if series.future is None else series.future.shape[0]
    need = _min_var_length(1 + series.past.shape[0], k_exog)
    if series.length < need:
        return f"has {series.length} points; VARX with these covariates needs at least {need}"
    return None


# --- ARIMAX -------------------------------------------------------------------------------------
def _arimax_one(
    y: np.ndarray, future: np.ndarray, horizon: int, grid: QuantileGrid, seasonality: Seasonality
) -> Forecast:
    from statsforecast.models import AutoARIMA

    n = y.shape[0]
    model = AutoARIMA(season_length=seasonality.primary)
    levels = grid.interval_levels()
    # statsforecast annotates `level` as list[int] but computes with any float percentage (80.0, 99.5).
    out = model.forecast(
        y=y,
        h=horizon,
        X=future[:, :n].T,
        X_future=future[:, n : n + horizon].T,
        level=levels or None,  # type: ignore[arg-type]
    )
    return Forecast(mean=np.asarray(out["mean"], dtype=float)[:horizon], quantiles=grid.from_intervals(out, horizon))


def _arimax_fit(series: Series, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> list[Forecast]:
    assert series.future is not None
    return [_arimax_one(series.target[0], series.future, horizon, grid, seasonality)]


def _arimax_check(series: Series, seasonality: Seasonality, horizon: int) -> str | None:
    if series.future is None:
        return "ARIMAX needs future_covariates (for past-only covariates use VARX)"
    constant = _constant_rows(series.future[:, : series.length])
    if constant:
        return f"future covariate {constant[0]} is constant over the context; it cannot explain anything"
    m = seasonality.primary
    need = max(5 + series.future.shape[0], 2 * m if m > 1 else 0)
    if series.length < need:
        return f"has {series.length} points; ARIMAX with these covariates needs at least {need}"
    return None


def statsmodels_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="VAR",
            library="statsmodels",
            summary="Vector autoregression: forecasts all channels jointly, so one channel's past informs the "
            "others (lag order by AIC, Gaussian intervals). Needs stationary-ish, non-constant channels.",
            native="multivariate",
            fit=_var_fit,
            check=_var_check,
            intervals="gaussian",
            seasonality="none",
            cross_channel=True,
            min_context="max(10, 2 x (channels + 1) + 1) points",
        ),
        ModelSpec(
            name="VARX",
            library="statsmodels",
            summary="VAR over the target and its past-only covariates (forecast jointly); future-known "
            "covariates, when given, enter as exogenous regressors. Needs past_covariates.",
            native="covariates",
            fit=_varx_fit,
            check=_varx_check,
            intervals="gaussian",
            seasonality="none",
            cross_channel=True,
            past_covariates=True,
            future_covariates=True,
            min_context="max(10, 2 x (covariates + 2) + 1) points",
        ),
        ModelSpec(
            name="ARIMAX",
            library="statsforecast",
            summary="AutoARIMA with future-known covariates as regressors (holidays, prices, temperature "
            "forecasts). Needs future_covariates; past-only covariates are not used.",
            native="covariates",
            fit=_arimax_fit,
            check=_arimax_check,
            future_covariates=True,
            min_context="5 + covariates points, or 2 x season_length when seasonal",
        ),
    ]
