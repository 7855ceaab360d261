"""How sure a comparison is: mean, spread and a 95% interval of a gain measured over seeds.

A comparison fine-tunes each start (pre-trained, random) with the same K seeds; seed i of both
starts shares its training subset, data order and head initialisation, so the K differences
are paired. The interval is Student's t over those K paired differences:

    mean(d) +- t(0.975, K-1) * sd(d) / sqrt(K)

It treats the seeds as a sample of the fine-tuning noise (initialisation, order, subset), which
is the noise a user re-running the comparison sees; it does not cover the finite test set's own
sampling error, which the seeds share. With K = 3 the t factor is 4.30, so only gains that are
large next to their seed spread exclude zero: that is the point. A verdict word ("helped",
"hurt") is used only when the interval excludes zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (standard tables).
_T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile_975(degrees_of_freedom: int) -> float:
    """Student's t quantile at 0.975 (a two-sided 95% interval)."""
    if degrees_of_freedom < 1:
        raise ValueError("a t interval needs at least 2 values (1 degree of freedom)")
    if degrees_of_freedom <= len(_T_975):
        return _T_975[degrees_of_freedom - 1]
    # Beyond the table, the first terms of the Cornish-Fisher expansion around the normal
    # quantile are accurate to better than 1e-3.
    z = 1.959964
    n = degrees_of_freedom
    return z + (z**3 + z) / (4 * n) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)


@dataclass
class PairedGain:
    """The gain of one start over another, per seed and summarised."""

    mean: float
    per_seed: list[float]
    low: float | None  # None with one seed: no interval can be given
    high: float | None

    @property
    def verdict(self) -> str:
        """ "helped" or "hurt" only where the 95% interval excludes zero."""
        if self.low is None or self.high is None:
            return "one seed: no interval"
        if self.low > 0:
            return "helped"
        if self.high < 0:
            return "hurt"
        return "no clear difference"


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def paired_gain(treated: Sequence[float], baseline: Sequence[float]) -> PairedGain:
    """The gain `treated - baseline`, paired by position (seed), with a 95% t-interval."""
    if len(treated) != len(baseline) or not treated:
        raise ValueError("paired values need the same, non-zero number of seeds on both sides")
    differences = [a - b for a, b in zip(treated, baseline)]
    mean, spread = mean_and_spread(differences)
    if len(differences) < 2:
        return PairedGain(mean, differences, None, None)
    half_width = t_quantile_975(len(differences) - 1) * spread / math.sqrt(len(differences))
    return PairedGain(mean, differences, mean - half_width, mean + half_width)
