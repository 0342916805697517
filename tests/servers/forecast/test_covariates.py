"""Covariates: future-known regressors (ARIMAX), past-only covariates (VARX), and their checks."""

from __future__ import annotations

import numpy as np
import pytest

from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail

pytestmark = pytest.mark.anyio


async def test_future_covariates_that_carry_signal_move_the_forecast(forecast: Domain) -> None:
    rng = np.random.default_rng(5)
    n, horizon = 120, 6
    driver = rng.normal(size=n + horizon)
    target = 10 + 3 * driver[:n] + rng.normal(scale=0.1, size=n)
    args = {"context": [target.tolist()], "future_covariates": [[driver.tolist()]], "horizon": horizon}
    with_driver = await call(forecast, "covariates", {**args, "model": "ARIMAX"})
    baseline = await call(forecast, "covariates", {**args, "model": "AutoETS"})
    truth = 10 + 3 * driver[n:]
    arimax_error = np.abs(np.array(with_driver["forecasts"][0]["median"]) - truth).mean()
    baseline_error = np.abs(np.array(baseline["forecasts"][0]["median"]) - truth).mean()
    assert arimax_error < 0.3
    assert baseline_error > 5 * arimax_error


async def test_past_covariates_inform_varx(forecast: Domain) -> None:
    rng = np.random.default_rng(8)
    n = 150
    driver = rng.normal(size=n)
    target = np.r_[0.0, 2 * driver[:-1]] + rng.normal(scale=0.05, size=n)  # target follows the driver a step later
    args = {"context": [target.tolist()], "past_covariates": [[driver.tolist()]], "horizon": 1}
    out = await call(forecast, "covariates", args)
    assert out["model"] == "VARX"  # the default when only past covariates are given
    assert abs(out["forecasts"][0]["median"][0] - 2 * driver[-1]) < 0.2


async def test_default_ensemble_keeps_the_members_the_covariates_suit(forecast: Domain) -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=40).tolist()
    out = await call(
        forecast,
        "covariates",
        {"context": [target], "past_covariates": [[rng.normal(size=40).tolist()]], "horizon": 2, "ensemble": "default"},
    )
    assert out["members"] == ["VARX", "AutoETS"]


async def test_arimax_without_future_covariates_is_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3, 4, 5, 6, 7, 8]], "past_covariates": [[[1.0] * 8]], "horizon": 2, "model": "ARIMAX"}
    error = await fail(forecast, "covariates", args)
    assert error.field == "context.0" and "future_covariates" in error.message


async def test_covariates_must_be_given(forecast: Domain) -> None:
    error = await fail(forecast, "covariates", {"context": [[1.0, 2, 3]], "horizon": 1})
    assert error.field == "past_covariates"


async def test_future_covariates_must_cover_the_horizon(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3, 4]], "future_covariates": [[[1.0, 2, 3, 4, 5]]], "horizon": 2}
    error = await fail(forecast, "covariates", args)
    assert error.field == "future_covariates.0.0"
    assert "has 5 points" in error.message and "6" in error.message


async def test_past_covariates_must_match_the_context_length(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3, 4]], "past_covariates": [[[1.0, 2, 3, 4], [1.0, 2]]], "horizon": 1}
    assert (await fail(forecast, "covariates", args)).field == "past_covariates.0.1"


async def test_one_covariate_entry_per_series_is_required(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3], [1.0, 2, 3]], "past_covariates": [[[1.0, 2, 3]]], "horizon": 1}
    error = await fail(forecast, "covariates", args)
    assert error.field == "past_covariates" and "2 series" in error.message


async def test_a_univariate_only_model_name_is_fine_but_var_is_not(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3, 4, 5]], "future_covariates": [[[1.0, 2, 3, 4, 5, 6]]], "horizon": 1, "model": "VAR"}
    error = await fail(forecast, "covariates", args)
    assert error.field == "model" and "multivariate" in error.message
