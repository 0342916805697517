"""Sample paths: their empirical quantiles match the quantile forecast; seeds; ensemble mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail, random_walks, seasonal

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("model", ["AutoETS", "Naive"])
async def test_empirical_quantiles_of_the_paths_agree_with_the_quantile_forecast(forecast: Domain, model: str) -> None:
    context = [random_walks(1, 80, seed=4)[0].tolist()]
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    args = {"context": context, "horizon": 5, "model": model, "quantile_levels": levels}
    quantile_forecast = await call(forecast, "univariate", args)
    paths = await call(forecast, "samples", {**args, "num_samples": 4000, "seed": 1})
    samples = np.array(paths["forecasts"][0]["samples"])
    assert samples.shape == (4000, 5)
    expected = quantile_forecast["forecasts"][0]["quantiles"]
    width = np.array(expected["0.9"]) - np.array(expected["0.1"])
    for level in levels:
        empirical = np.quantile(samples, level, axis=0)
        assert np.all(np.abs(empirical - expected[repr(level)]) < 0.06 * width), level
        assert np.allclose(paths["forecasts"][0]["quantiles"][repr(level)], empirical)


async def test_the_same_seed_gives_the_same_paths(forecast: Domain) -> None:
    args = {"context": [seasonal([1.0, 4, 2, 6], 6)], "horizon": 3, "num_samples": 20, "seed": 42, "model": "Naive"}
    first, second = await call(forecast, "samples", args), await call(forecast, "samples", args)
    other = await call(forecast, "samples", {**args, "seed": 43})
    assert first["forecasts"] == second["forecasts"]
    assert first["forecasts"] != other["forecasts"]


async def test_an_ensemble_mixes_member_paths_in_proportion_to_the_weights(forecast: Domain) -> None:
    args = {
        "context": [[10.0, 12, 11, 13, 12, 14, 13, 15]],
        "horizon": 2,
        "num_samples": 10,
        "seed": 3,
        "ensemble": ["Naive", "HistoricAverage"],
        "weights": {"Naive": 7, "HistoricAverage": 3},
    }
    out = await call(forecast, "samples", args)
    assert out["sample_counts"] == {"Naive": 7, "HistoricAverage": 3}
    assert len(out["forecasts"][0]["samples"]) == 10


async def test_models_that_cannot_simulate_are_refused(forecast: Domain) -> None:
    args = {"context": [[0.0, 1, 0, 0, 2, 0, 0, 1, 0, 0]], "horizon": 2, "model": "CrostonOptimized"}
    error = await fail(forecast, "samples", args)
    assert error.field == "model" and "without sample paths" in error.message


async def test_too_many_sample_values_are_refused(forecast: Domain) -> None:
    args = {"context": [[1.0, 2, 3]] * 100, "horizon": 1000, "num_samples": 100, "model": "Naive"}
    error = await fail(forecast, "samples", args)
    assert error.code == "too_large" and error.field == "num_samples"
