"""Multivariate forecasts: VAR uses the other channels, univariate models go channel by channel."""

from __future__ import annotations

import numpy as np
import pytest

from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail

pytestmark = pytest.mark.anyio


def leader_and_follower(length: int = 200, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Channel 1 repeats channel 0 one step later: only a cross-channel model can see it coming."""
    rng = np.random.default_rng(seed)
    leader = np.zeros(length)
    for t in range(1, length):
        leader[t] = 0.3 * leader[t - 1] + rng.normal()
    follower = np.r_[0.0, leader[:-1]] + rng.normal(scale=0.05, size=length)
    return leader, follower


async def test_var_forecasts_a_channel_from_another_channels_past(forecast: Domain) -> None:
    leader, follower = leader_and_follower()
    context = [[leader.tolist(), follower.tolist()]]
    var = await call(forecast, "multivariate", {"context": context, "horizon": 1, "model": "VAR"})
    alone = await call(forecast, "multivariate", {"context": context, "horizon": 1, "model": "AutoETS"})
    next_follower = leader[-1]
    var_error = abs(var["forecasts"][0][1]["median"][0] - next_follower)
    alone_error = abs(alone["forecasts"][0][1]["median"][0] - next_follower)
    assert var_error < 0.15
    assert alone_error > 3 * var_error


async def test_univariate_models_forecast_each_channel_on_its_own(forecast: Domain) -> None:
    context = [[[1.0, 2, 3, 4], [10.0, 10, 10, 12], [5.0, 4, 3, 2]], [[7.0, 7, 8]]]
    out = await call(forecast, "multivariate", {"context": context, "horizon": 2, "model": "Naive"})
    assert [[c["median"] for c in s] for s in out["forecasts"]] == [
        [[4.0, 4.0], [12.0, 12.0], [2.0, 2.0]],
        [[8.0, 8.0]],
    ]


async def test_ensembles_mix_var_with_per_channel_models(forecast: Domain) -> None:
    leader, follower = leader_and_follower(80)
    context = [[leader.tolist(), follower.tolist()]]
    out = await call(forecast, "multivariate", {"context": context, "horizon": 3, "ensemble": ["VAR", "Naive"]})
    for channel in range(2):
        var = np.array(out["individual"]["VAR"][0][channel]["median"])
        naive = np.array(out["individual"]["Naive"][0][channel]["median"])
        assert np.allclose(out["forecasts"][0][channel]["median"], (var + naive) / 2)


async def test_a_failing_member_is_left_out_with_a_warning(forecast: Domain) -> None:
    base = np.random.default_rng(2).normal(size=40)
    context = [[base.tolist(), (2 * base + 1).tolist()]]  # collinear channels: VAR's covariance is singular
    out = await call(forecast, "multivariate", {"context": context, "horizon": 2, "ensemble": ["VAR", "Naive"]})
    assert out["individual"]["VAR"] == [None]
    assert any("VAR failed on context.0" in w for w in out["warnings"])
    assert out["forecasts"][0][0]["median"] == out["individual"]["Naive"][0][0]["median"]


async def test_channels_of_different_lengths_are_refused(forecast: Domain) -> None:
    error = await fail(forecast, "multivariate", {"context": [[[1.0, 2, 3, 4], [1.0, 2, 3]]], "horizon": 1})
    assert error.field == "context.0.1"
    assert "ragged" in error.message


async def test_var_needs_two_varying_channels(forecast: Domain) -> None:
    error = await fail(forecast, "multivariate", {"context": [[[1.0] * 30]], "horizon": 1, "model": "VAR"})
    assert error.field == "context.0" and "two" in error.message
    constant = {"context": [[list(np.arange(30.0)), [2.0] * 30]], "horizon": 1, "model": "VAR"}
    error = await fail(forecast, "multivariate", constant)
    assert "channel 1 is constant" in error.message


async def test_a_nan_inside_a_channel_names_series_channel_and_step(forecast: Domain) -> None:
    error = await fail(forecast, "multivariate", {"context": [[[1.0, 2, 3], [1.0, float("nan"), 3]]], "horizon": 1})
    assert error.field == "context.0.1.1"
