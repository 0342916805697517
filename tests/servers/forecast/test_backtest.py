"""Rolling-origin backtests: scores a user can pick a model by."""

from __future__ import annotations

import numpy as np
import pytest

from servers.forecast import metrics
from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail, seasonal

pytestmark = pytest.mark.anyio


def by_model(out: dict) -> dict:
    return {row["model"]: row for row in out["results"]}


async def test_the_exact_model_wins_with_zero_error_and_full_coverage(forecast: Domain) -> None:
    context = [seasonal([2.0, 8, 5, 3], 10)]
    args = {
        "context": context,
        "horizon": 4,
        "season_length": 4,
        "models": ["SeasonalNaive", "Naive", "HistoricAverage"],
    }
    out = await call(forecast, "backtest", {**args, "windows": 3})
    rows = by_model(out)
    assert out["best"] == "SeasonalNaive" and out["ranking"][0] == "SeasonalNaive"
    assert rows["SeasonalNaive"]["mase"] == 0 and rows["SeasonalNaive"]["smape"] == 0
    assert rows["SeasonalNaive"]["crps"] == 0
    assert rows["SeasonalNaive"]["coverage"] == {"80": 1.0, "95": 1.0}
    # The in-sample seasonal naive error is 0 here, so any miss has an undefined MASE: ranked last.
    assert rows["Naive"]["mase"] is None and rows["Naive"]["smape"] > 10
    assert rows["SeasonalNaive"]["evaluated"] == 3 and rows["SeasonalNaive"]["failures"] == 0


async def test_scores_match_a_hand_computed_window(forecast: Domain) -> None:
    series = [1.0, 3, 2, 4, 3, 5]
    out = await call(forecast, "backtest", {"context": [series], "horizon": 2, "windows": 1, "models": ["Naive"]})
    row = by_model(out)["Naive"]
    train, actual, point = np.array(series[:4]), np.array(series[4:]), np.array([4.0, 4.0])
    assert row["mase"] == pytest.approx(metrics.mase(actual, point, metrics.naive_scale(train, 1)))
    assert row["smape"] == pytest.approx(200 * np.mean(np.abs(actual - point) / (np.abs(actual) + np.abs(point))))


async def test_an_ensemble_row_is_scored_beside_its_members(forecast: Domain) -> None:
    context = [list(np.sin(np.arange(40) / 3) * 5 + 20)]
    out = await call(
        forecast,
        "backtest",
        {"context": context, "horizon": 3, "models": ["Naive"], "ensemble": ["Naive", "HistoricAverage"]},
    )
    assert [row["model"] for row in out["results"]] == ["Naive", "HistoricAverage", "ensemble"]
    assert out["weights"] == {"Naive": 0.5, "HistoricAverage": 0.5}
    rows = by_model(out)
    assert set(rows["ensemble"]["coverage"]) == {"80", "95"}
    members_seconds = rows["Naive"]["fit_seconds"] + rows["HistoricAverage"]["fit_seconds"]
    assert rows["ensemble"]["fit_seconds"] == pytest.approx(members_seconds, abs=2e-4)


async def test_multivariate_backtests_score_every_channel(forecast: Domain) -> None:
    rng = np.random.default_rng(0)
    context = [[rng.normal(size=50).tolist(), rng.normal(size=50).tolist()]]
    out = await call(
        forecast, "backtest", {"type": "multivariate", "context": context, "horizon": 2, "models": ["VAR", "Naive"]}
    )
    assert by_model(out)["VAR"]["evaluated"] == 3 * 2


async def test_too_short_a_history_for_the_windows_is_refused(forecast: Domain) -> None:
    args = {"context": [[1.0] * 10], "horizon": 4, "windows": 3, "models": ["Naive"]}
    error = await fail(forecast, "backtest", args)
    assert error.field == "context.0" and "reduce windows" in error.message


async def test_the_earliest_origin_must_leave_enough_for_each_model(forecast: Domain) -> None:
    args = {
        "context": [seasonal([1.0, 2, 3], 8)],
        "horizon": 3,
        "windows": 6,
        "season_length": 3,
        "models": ["AutoETS"],
    }
    error = await fail(forecast, "backtest", args)
    assert error.field == "context.0" and "earliest backtest origin" in error.message


async def test_a_context_nested_for_another_type_is_refused(forecast: Domain) -> None:
    channels = [[[1.0, 2, 3, 4, 5, 6], [2.0, 3, 4, 5, 6, 7]]]
    error = await fail(forecast, "backtest", {"context": channels, "horizon": 1, "models": ["Naive"]})
    assert error.field == "context.0" and "list of numbers" in error.message
    flat = await fail(forecast, "backtest", {"type": "multivariate", "context": [[1.0, 2, 3]], "horizon": 1})
    assert flat.field == "context.0.0"
