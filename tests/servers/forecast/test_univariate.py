"""Univariate forecasts: known answers, quantiles, calibration, ensembles, and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail, random_walks, seasonal

pytestmark = pytest.mark.anyio

PATTERN = [3.0, 9.0, 4.0, 1.0, 7.0]


async def test_seasonal_naive_repeats_a_pure_seasonal_series_exactly(forecast: Domain) -> None:
    out = await call(
        forecast,
        "univariate",
        {"context": [seasonal(PATTERN, 6)], "horizon": 7, "season_length": 5, "model": "SeasonalNaive"},
    )
    expected = [3.0, 9.0, 4.0, 1.0, 7.0, 3.0, 9.0]
    assert out["model"] == "SeasonalNaive"
    assert out["forecasts"][0]["median"] == expected
    assert out["forecasts"][0]["quantiles"]["0.1"] == expected  # no residual noise: a zero-width interval


@pytest.mark.parametrize("model", ["AutoETS", "AutoARIMA", "AutoTheta", "RandomWalkWithDrift"])
async def test_trend_models_extend_a_linear_trend(forecast: Domain, model: str) -> None:
    t = np.arange(80.0)
    noise = np.random.default_rng(3).normal(scale=0.05, size=t.size)
    out = await call(forecast, "univariate", {"context": [list(5 + 2 * t + noise)], "horizon": 6, "model": model})
    truth = 5 + 2 * np.arange(80.0, 86.0)
    assert np.allclose(out["forecasts"][0]["median"], truth, atol=0.02 * truth.max())


async def test_quantiles_never_cross_and_follow_the_requested_levels(forecast: Domain) -> None:
    context = [list(random_walks(1, 60, seed=1)[0])]
    levels = [0.9, 0.05, 0.25, 0.5, 0.75, 0.95, 0.1]
    out = await call(
        forecast, "univariate", {"context": context, "horizon": 8, "quantile_levels": levels, "model": "AutoETS"}
    )
    quantiles = out["forecasts"][0]["quantiles"]
    assert list(quantiles) == ["0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95"]
    stacked = np.array(list(quantiles.values()))
    assert (np.diff(stacked, axis=0) >= 0).all()
    assert (stacked[-1] - stacked[0] > 0).all()
    assert quantiles["0.5"] == out["forecasts"][0]["median"]


async def test_default_model_and_default_quantiles(forecast: Domain) -> None:
    out = await call(forecast, "univariate", {"context": [[1.0, 3, 2, 4, 3, 5, 4, 6, 5, 7]], "horizon": 2})
    assert out["model"] == "AutoETS"
    assert out["quantile_levels"] == [0.1, 0.5, 0.9]
    assert set(out["forecasts"][0]["quantiles"]) == {"0.1", "0.5", "0.9"}


async def test_prediction_intervals_cover_simulated_random_walks_at_their_nominal_rate(forecast: Domain) -> None:
    walks = random_walks(150, 63, seed=7)
    history, future = walks[:, :60], walks[:, 60:]
    out = await call(
        forecast,
        "univariate",
        {"context": history.tolist(), "horizon": 3, "model": "Naive", "quantile_levels": [0.1, 0.9, 0.025, 0.975]},
    )
    low80 = np.array([f["quantiles"]["0.1"] for f in out["forecasts"]])
    high80 = np.array([f["quantiles"]["0.9"] for f in out["forecasts"]])
    low95 = np.array([f["quantiles"]["0.025"] for f in out["forecasts"]])
    high95 = np.array([f["quantiles"]["0.975"] for f in out["forecasts"]])
    coverage80 = np.mean((future >= low80) & (future <= high80))
    coverage95 = np.mean((future >= low95) & (future <= high95))
    assert 0.72 <= coverage80 <= 0.88
    assert 0.90 <= coverage95 <= 0.99


async def test_series_of_different_lengths_are_forecast_independently(forecast: Domain) -> None:
    out = await call(
        forecast, "univariate", {"context": [[1.0, 2, 3], [5.0, 5, 5, 5, 6]], "horizon": 2, "model": "Naive"}
    )
    assert [f["median"] for f in out["forecasts"]] == [[3.0, 3.0], [6.0, 6.0]]


# --- ensembles ------------------------------------------------------------------------------------
ENSEMBLE_CONTEXT = [[4.0, 8, 6, 10, 8, 12, 10, 14], [1.0, 2, 1, 3, 2, 4, 3, 5]]


async def test_equal_weights_give_the_mean_of_the_members(forecast: Domain) -> None:
    out = await call(
        forecast, "univariate", {"context": ENSEMBLE_CONTEXT, "horizon": 3, "ensemble": ["Naive", "HistoricAverage"]}
    )
    assert out["model"] == "ensemble"
    assert out["weights"] == {"Naive": 0.5, "HistoricAverage": 0.5}
    for s in range(2):
        naive, average = out["individual"]["Naive"][s], out["individual"]["HistoricAverage"][s]
        assert np.allclose(out["forecasts"][s]["median"], (np.array(naive["median"]) + average["median"]) / 2)
        for level in ("0.1", "0.9"):
            mean = (np.array(naive["quantiles"][level]) + average["quantiles"][level]) / 2
            assert np.allclose(out["forecasts"][s]["quantiles"][level], mean)


async def test_weights_are_normalised_and_a_missing_weight_counts_as_one(forecast: Domain) -> None:
    out = await call(
        forecast,
        "univariate",
        {"context": ENSEMBLE_CONTEXT, "horizon": 2, "ensemble": ["Naive", "HistoricAverage"], "weights": {"Naive": 3}},
    )
    assert out["weights"] == {"Naive": 0.75, "HistoricAverage": 0.25}
    naive = np.array(out["individual"]["Naive"][0]["median"])
    average = np.array(out["individual"]["HistoricAverage"][0]["median"])
    assert np.allclose(out["forecasts"][0]["median"], 0.75 * naive + 0.25 * average)


async def test_a_weight_of_zero_removes_the_member(forecast: Domain) -> None:
    members = ["Naive", "HistoricAverage", "RandomWalkWithDrift"]
    out = await call(
        forecast,
        "univariate",
        {"context": ENSEMBLE_CONTEXT, "horizon": 2, "ensemble": members, "weights": {"RandomWalkWithDrift": 0}},
    )
    pair = await call(forecast, "univariate", {"context": ENSEMBLE_CONTEXT, "horizon": 2, "ensemble": members[:2]})
    assert out["members"] == ["Naive", "HistoricAverage"]
    assert out["disabled"] == ["RandomWalkWithDrift"]
    assert "RandomWalkWithDrift" not in out["individual"]
    assert out["forecasts"] == pair["forecasts"]


async def test_weights_alone_name_the_members(forecast: Domain) -> None:
    weights = {"naive": 2, "HistoricAverage": 0}  # names match case-insensitively
    out = await call(forecast, "univariate", {"context": ENSEMBLE_CONTEXT, "horizon": 1, "weights": weights})
    assert out["members"] == ["Naive"] and out["disabled"] == ["HistoricAverage"]
    assert out["weights"] == {"Naive": 1.0}


async def test_default_ensemble_runs_ets_arima_and_theta(forecast: Domain) -> None:
    out = await call(forecast, "univariate", {"context": [seasonal(PATTERN, 4)], "horizon": 2, "ensemble": "default"})
    assert out["members"] == ["AutoETS", "AutoARIMA", "AutoTheta"]
    assert set(out["individual"]) == set(out["members"])


# --- refused input --------------------------------------------------------------------------------
@pytest.mark.parametrize(("bad", "text"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
async def test_non_finite_values_are_refused_naming_the_position(forecast: Domain, bad: float, text: str) -> None:
    error = await fail(forecast, "univariate", {"context": [[1.0, 2.0], [1.0, 2.0, bad, 4.0]], "horizon": 2})
    assert error.code == "invalid_argument"
    assert error.field == "context.1.2"
    assert f"is {text}" in error.message


@pytest.mark.parametrize("horizon", [0, -3])
async def test_horizon_below_one_is_refused(forecast: Domain, horizon: int) -> None:
    error = await fail(forecast, "univariate", {"context": [[1.0, 2.0, 3.0]], "horizon": horizon})
    assert error.field == "horizon"


async def test_a_context_too_short_for_the_season_is_refused(forecast: Domain) -> None:
    args = {"context": [seasonal(PATTERN, 4), [1.0] * 9], "horizon": 2, "season_length": 12, "model": "AutoETS"}
    error = await fail(forecast, "univariate", args)
    assert error.field == "context.0"
    assert "needs at least 24" in error.message


async def test_seasonal_naive_needs_one_season_plus_a_point(forecast: Domain) -> None:
    error = await fail(
        forecast, "univariate", {"context": [[1.0] * 5], "horizon": 2, "season_length": 5, "model": "SeasonalNaive"}
    )
    assert error.field == "context.0" and "at least 6" in error.message


async def test_an_unknown_model_is_refused_listing_the_models(forecast: Domain) -> None:
    error = await fail(forecast, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "Prophet"})
    assert error.field == "model"
    assert "AutoETS" in error.message and "Prophet" in error.message


async def test_a_model_of_another_type_is_refused(forecast: Domain) -> None:
    error = await fail(forecast, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "ensemble": ["Naive", "VAR"]})
    assert error.field == "ensemble.1"
    assert "multivariate" in error.message


async def test_weights_for_a_model_of_another_type_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "ensemble": ["Naive", "HistoricAverage"], "weights": {"ARIMAX": 1}}
    error = await fail(forecast, "univariate", args)
    assert error.field == "weights.ARIMAX"
    assert "covariates" in error.message


async def test_weights_for_a_model_outside_the_ensemble_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "ensemble": ["Naive"], "weights": {"HistoricAverage": 1}}
    error = await fail(forecast, "univariate", args)
    assert error.field == "weights.HistoricAverage" and "not a member" in error.message


async def test_all_zero_weights_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "weights": {"Naive": 0, "HistoricAverage": 0}}
    error = await fail(forecast, "univariate", args)
    assert error.field == "weights"


async def test_model_and_ensemble_together_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "model": "Naive", "ensemble": ["Naive"]}
    assert (await fail(forecast, "univariate", args)).field == "ensemble"


async def test_negative_weights_are_refused_by_the_contract(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "weights": {"Naive": -1}}
    assert (await fail(forecast, "univariate", args)).field == "weights.Naive"


async def test_quantile_levels_outside_zero_one_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]], "horizon": 1, "quantile_levels": [0.5, 1.0]}
    assert (await fail(forecast, "univariate", args)).field == "quantile_levels.1"


async def test_a_horizon_above_the_configured_limit_is_refused(tmp_path: object) -> None:
    from tests.servers.forecast.conftest import make_domain

    domain = make_domain({"max_horizon": 10}, tmp_path)
    error = await fail(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 11})
    assert error.field == "horizon" and "10" in error.message


async def test_too_many_numbers_are_refused_as_too_large(tmp_path: object) -> None:
    from tests.servers.forecast.conftest import make_domain

    domain = make_domain({"max_points": 100}, tmp_path)
    error = await fail(domain, "univariate", {"context": [[1.0] * 60, [1.0] * 60], "horizon": 1})
    assert error.code == "too_large" and error.field == "context"
