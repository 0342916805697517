"""The accuracy measures on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from servers.forecast import metrics


def test_mase_scales_by_the_in_sample_seasonal_naive_error() -> None:
    train = np.array([1.0, 2, 3, 5, 6, 7])  # lag-3 differences: 4, 4, 4
    assert metrics.naive_scale(train, 3) == 4.0
    assert metrics.mase(np.array([10.0, 10]), np.array([8.0, 12]), 4.0) == 0.5


def test_mase_falls_back_to_lag_one_when_the_history_is_shorter_than_a_season() -> None:
    assert metrics.naive_scale(np.array([1.0, 3, 4]), 12) == 1.5


def test_smape_is_a_percentage_and_zero_over_zero_counts_as_zero() -> None:
    assert metrics.smape(np.array([100.0, 0.0]), np.array([50.0, 0.0])) == pytest.approx(200 * (50 / 150) / 2)


def test_crps_of_a_perfect_point_mass_is_zero_and_grows_with_the_miss() -> None:
    levels = (0.25, 0.5, 0.75)
    actual = np.array([5.0])
    assert metrics.crps(actual, np.array([[5.0], [5.0], [5.0]]), levels) == 0
    # Quantiles all at 3, actual 5: pinball losses 0.5, 1.0, 1.5 -> 2 x mean = 2.0 (= |miss| for a point mass)
    assert metrics.crps(actual, np.array([[3.0], [3.0], [3.0]]), levels) == pytest.approx(2.0)


def test_coverage_counts_values_inside_the_interval_inclusive() -> None:
    assert metrics.coverage(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1, 1]), np.array([3.0, 3, 3, 3])) == 0.75


def test_mase_of_a_perfect_forecast_of_a_perfectly_seasonal_series_is_zero_and_a_miss_is_undefined() -> None:
    assert metrics.mase(np.array([1.0, 2]), np.array([1.0, 2]), 0.0) == 0.0
    assert np.isnan(metrics.mase(np.array([1.0, 2]), np.array([1.0, 3]), 0.0))
