"""95 % intervals and tests from mergeable counts and sums: Wilson, Clopper–Pearson, Student t, percentile, Holm.

Every function here takes counts or sums that add across shards (or bootstrap replicates of them), so the
local engine and a sharded run get the same interval from the same merged numbers. scipy is imported inside
the functions that need it (TensorFlow imports it anyway; an audit of saved probabilities pays only when asked).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ..errors import DataError

# Confidence level of every interval unless told otherwise.
LEVEL = 0.95
# Family-wise error rate of the per-class pairwise comparisons (Holm).
FAMILY_ALPHA = 0.05


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise DataError(f"level must lie strictly between 0 and 1; got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def _counts(successes, n) -> tuple[np.ndarray, np.ndarray]:
    x, m = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    for a, name in ((x, "successes"), (m, "n")):
        if not np.isfinite(a).all() or (a != np.floor(a)).any() or (a < 0).any():
            raise DataError(f"{name} must be whole numbers >= 0")
    try:
        x, m = np.broadcast_arrays(x, m)
    except ValueError:
        raise DataError(f"successes {x.shape} and n {m.shape} do not broadcast") from None
    if (x > m).any():
        raise DataError("successes must not exceed n")
    return x, m


def wilson(successes, n, *, level: float = LEVEL) -> np.ndarray:
    """Wilson score interval of a binomial proportion, vectorised over arrays of counts.

    Args:
        successes, n: whole numbers, broadcastable, 0 <= successes <= n.
    Returns:
        (..., 2) float64 [low, high] within [0, 1]; NaN where n == 0.
    Raises:
        DataError: counts that are not whole, negative, or above n; a level outside (0, 1).
    """
    z = _z(level)
    x, n = _counts(successes, n)
    z2 = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        center = (x + z2 / 2) / (n + z2)
        half = z / (n + z2) * np.sqrt(x * (n - x) / n + z2 / 4)
        low = np.where(x == 0, 0.0, np.clip(center - half, 0.0, 1.0))
        high = np.where(x == n, 1.0, np.clip(center + half, 0.0, 1.0))
    out = np.stack([low, high], axis=-1)
    out[n == 0] = np.nan
    return out


def clopper_pearson_upper(successes, n, *, delta: float) -> np.ndarray:
    """One-sided exact (Clopper–Pearson) upper bound: the p with P(Binomial(n, p) <= successes) = delta.

    The bound of selection with guaranteed risk (Geifman & El-Yaniv 2017, their B*): a true error rate above it
    would give so few errors with probability at most delta.

    Args:
        successes, n: whole numbers, broadcastable; delta: in (0, 1).
    Returns:
        (...) float64 in [0, 1]; 1 where successes == n; NaN where n == 0.
    """
    from scipy.special import betaincinv

    if not 0 < delta < 1:
        raise DataError(f"delta must lie strictly between 0 and 1; got {delta!r}")
    x, n = _counts(successes, n)
    with np.errstate(invalid="ignore"):
        out = np.where(x >= n, 1.0, betaincinv(x + 1, np.maximum(n - x, 1), 1 - delta))
    return np.where(n == 0, np.nan, out)


def mean_interval(n, total, total_sq, total_cu=None, *, level: float = LEVEL) -> np.ndarray:
    """Interval of a mean from its count and power sums (the sums a shard adds up).

    With the sum of cubes, Hall's (1992) skewness-corrected interval ("On the removal of skewness by transformation",
    JRSS B 54): the studentised mean T is mapped through g(T) = T + a T²/3 + a² T³/27 + a/6, a = γ/√n with γ the
    sample skewness, which removes the n^(-1/2) skewness term of T's distribution; the interval is
    [m − s/√n g⁻¹(z_(1−α/2)), m − s/√n g⁻¹(z_(α/2))] and g is monotone, so it always exists. Per-sample losses of an
    accurate model (NLL, Brier) are strongly right-skewed (skewness about 10 at 99 % accuracy), where the Student-t
    interval under-covers: 92 % at N = 1,000 in tests/test_stats_intervals.py's simulation, against 95–97 % here.
    Without it, the Student-t interval.

    Args:
        n: number of values; total, total_sq, total_cu: their sum, sum of squares and sum of cubes (any broadcastable
            shapes).
    Returns:
        (..., 2) float64 [low, high]; NaN where n < 2.
    """
    from scipy.stats import t as student

    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.asarray(total, dtype=np.float64) / n
        var = np.maximum(np.asarray(total_sq, dtype=np.float64) / n - mean * mean, 0.0)  # population variance
        s = np.sqrt(var * n / (n - 1))
        if total_cu is None:
            half = student.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * s / np.sqrt(n)
            out = np.stack([mean - half, mean + half], axis=-1)
        else:
            third = np.asarray(total_cu, dtype=np.float64) / n - 3 * mean * np.asarray(total_sq, dtype=np.float64) / n + 2 * mean ** 3
            a = np.where(var > 0, third / np.where(var > 0, var, 1.0) ** 1.5, 0.0) / np.sqrt(n)
            z = normal_quantile(level)
            out = np.stack([mean - s / np.sqrt(n) * _hall_inverse(z, a), mean - s / np.sqrt(n) * _hall_inverse(-z, a)], axis=-1)
    out[n < 2] = np.nan
    return out


def _hall_inverse(z, a):
    """g⁻¹(z) of Hall's transformation g(T) = ((1 + aT/3)³ − 1)/a + a/6 (g(T) = T + a/6 at a = 0)."""
    a = np.asarray(a, dtype=np.float64)
    small = np.abs(a) < 1e-9
    safe = np.where(small, 1.0, a)
    return np.where(small, z - a / 6, (3 / safe) * (np.cbrt(1 + safe * (z - safe / 6)) - 1))


def percentile(replicates, *, level: float = LEVEL) -> np.ndarray:
    """Percentile interval of bootstrap replicates, NaN replicates left out: (2,) [low, high] (NaN if none)."""
    v = np.asarray(replicates, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not v.size:
        return np.array([np.nan, np.nan])
    return np.percentile(v, [50 * (1 - level), 50 * (1 + level)])


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control under any dependence).

    Sorted ascending, the i-th smallest (1-based) of m is multiplied by m - i + 1, made non-decreasing, capped
    at 1; a hypothesis is rejected at family-wise level alpha when its adjusted p-value is below alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def fisher_two_sided(a: int, n_a: int, b: int, n_b: int) -> float:
    """Fisher's exact two-sided p-value that two binomial proportions a/n_a and b/n_b are equal."""
    from scipy.stats import fisher_exact

    if n_a == 0 or n_b == 0:
        return 1.0
    return float(fisher_exact([[a, n_a - a], [b, n_b - b]]).pvalue)


def normal_quantile(level: float = LEVEL) -> float:
    """The two-sided standard normal quantile of `level` (1.96 for 95 %)."""
    return _z(level)


def isclose_or_nan(a: float, b: float) -> bool:
    """a == b within 1e-12 relative, or both NaN (helper for comparing merged results)."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
