"""The interval behind every "helped": Student's t over paired seeds, checked against scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from prefine.metrics.intervals import mean_and_spread, paired_gain, t_quantile_975


@pytest.mark.parametrize("degrees_of_freedom", [1, 2, 3, 4, 9, 29, 30, 31, 60, 200])
def test_t_quantile_matches_scipy(degrees_of_freedom):
    assert t_quantile_975(degrees_of_freedom) == pytest.approx(stats.t.ppf(0.975, degrees_of_freedom), abs=2e-3)


def test_paired_gain_is_scipys_paired_t_interval():
    treated, baseline = [0.71, 0.69, 0.75, 0.70], [0.62, 0.66, 0.64, 0.60]
    gain = paired_gain(treated, baseline)
    differences = [a - b for a, b in zip(treated, baseline)]
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=sum(differences) / 4, scale=stats.sem(differences))
    assert (gain.low, gain.high) == pytest.approx((low, high), abs=1e-4)
    assert gain.per_seed == pytest.approx(differences) and gain.verdict == "helped"


def test_verdicts_follow_the_interval_not_the_mean():
    assert paired_gain([0.80, 0.70, 0.90], [0.75, 0.78, 0.80]).verdict == "no clear difference"  # mean +2.3, seeds disagree
    assert paired_gain([0.50, 0.52, 0.51], [0.60, 0.61, 0.60]).verdict == "hurt"
    one = paired_gain([0.9], [0.5])
    assert one.low is None and one.verdict == "one seed: no interval"
    mean, spread = mean_and_spread([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(spread, 1.0)
