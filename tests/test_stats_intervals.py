"""reportgen.stats.intervals: Wilson, Clopper–Pearson, the Student-t mean interval from sums, percentile, Holm, Fisher.

References: the Wilson interval as the roots of its defining quadratic, scipy's beta quantile and binomial CDF,
scipy's t interval from raw values, Holm's step-down procedure written out from its definition, scipy's Fisher test.
The Student-t interval is proven by seeded simulation on a skewed NLL-like value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.errors import DataError
from reportgen.stats import intervals as iv

Z95 = 1.959963984540054  # standard normal 97.5 % quantile
FAST = settings(max_examples=50, deadline=None)


# --------------------------------------------------------------------------- Wilson


def wilson_by_quadratic(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Roots in p of (x/n - p)^2 = z^2 p (1 - p) / n: the score interval from its definition."""
    ph = x / n
    roots = np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph])
    return float(roots.real.min()), float(roots.real.max())


def test_wilson_86_of_100_matches_hand_value():
    low, high = iv.wilson(86, 100)
    # Centre (86 + 1.96^2/2) / (100 + 1.96^2) = 0.84668; half-width 1.96 / 103.8415 * sqrt(86 * 14 / 100 + 1.96^2 / 4) = 0.06806.
    assert low == pytest.approx(0.7786, abs=5e-5) and high == pytest.approx(0.9147, abs=5e-5)


@pytest.mark.parametrize("x,n", [(86, 100), (1, 10), (5, 10), (9, 10), (3, 1000), (999, 1000), (1, 2), (12345, 20000)])
def test_wilson_matches_quadratic_roots(x, n):
    assert tuple(iv.wilson(x, n)) == pytest.approx(wilson_by_quadratic(x, n), abs=1e-12)


def test_wilson_edges_are_exact():
    z2 = Z95 * Z95
    assert iv.wilson(0, 20).tolist() == [0.0, pytest.approx(z2 / (20 + z2), abs=1e-15)]
    assert iv.wilson(20, 20).tolist() == [pytest.approx(20 / (20 + z2), abs=1e-15), 1.0]
    assert np.isnan(iv.wilson(0, 0)).all()


def test_wilson_level_changes_z():
    z90 = 1.6448536269514722
    assert tuple(iv.wilson(30, 50, level=0.90)) == pytest.approx(wilson_by_quadratic(30, 50, z90), abs=1e-12)
    assert iv.normal_quantile(0.90) == pytest.approx(z90, abs=1e-14)
    assert iv.normal_quantile() == pytest.approx(Z95, abs=1e-14)


def test_wilson_is_vectorised_and_broadcasts():
    x = np.array([[0, 5, 10], [2, 0, 0]])
    n = np.array([[10, 10, 10], [4, 3, 0]])
    out = iv.wilson(x, n)
    assert out.shape == (2, 3, 2)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out[i, j], iv.wilson(int(x[i, j]), int(n[i, j])))
    assert iv.wilson(np.arange(4), 3).shape == (4, 2)


def test_wilson_exact_coverage_p09_n400_is_nominal():
    """Coverage summed over the binomial pmf (no Monte-Carlo error): Wilson is near 95 % at p = 0.9, n = 400."""
    from scipy.stats import binom

    n = 400
    ci = iv.wilson(np.arange(n + 1), n)
    for p in (0.9, 0.5, 0.97):
        covered = (ci[:, 0] <= p) & (p <= ci[:, 1])
        exact = float(binom.pmf(np.arange(n + 1), n, p)[covered].sum())
        assert 0.93 <= exact <= 0.97, (p, exact)


@FAST
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=20))
def test_wilson_contains_the_proportion_and_lies_in_0_1(pairs):
    x = np.array([min(a, b) for a, b in pairs])
    n = np.array([max(a, b) for a, b in pairs])
    out = iv.wilson(x, n)
    ok = n > 0
    assert np.isnan(out[~ok]).all()
    lo, hi = out[ok, 0], out[ok, 1]
    p = x[ok] / n[ok]
    assert (0 <= lo).all() and (lo <= p + 1e-15).all() and (p - 1e-15 <= hi).all() and (hi <= 1).all()


BAD = [
    (lambda: iv.wilson([1, 2], [3, 4, 5]), "do not broadcast"),
    (lambda: iv.wilson(5, 4), "must not exceed n"),
    (lambda: iv.wilson(1.5, 4), "whole numbers"),
    (lambda: iv.wilson(np.nan, 4), "whole numbers"),
    (lambda: iv.wilson(-1, 4), "whole numbers"),
    (lambda: iv.wilson(1, 4, level=95), "level"),
    (lambda: iv.clopper_pearson_upper(1, 4, delta=0), "delta"),
    (lambda: iv.clopper_pearson_upper(5, 4, delta=0.05), "must not exceed n"),
]


@pytest.mark.parametrize("call,message", BAD, ids=[m for _, m in BAD])
def test_bad_counts_raise_one_line_data_error(call, message):
    with pytest.raises(DataError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- Clopper–Pearson


@pytest.mark.parametrize("x,n,delta", [(0, 10, 0.05), (3, 100, 0.05), (10, 1000, 0.004), (99, 100, 0.05), (0, 5000, 0.001),
                                       (250, 10_000, 0.05 / 14)])
def test_clopper_pearson_upper_is_the_beta_quantile(x, n, delta):
    from scipy.stats import beta, binom

    got = float(iv.clopper_pearson_upper(x, n, delta=delta))
    assert got == pytest.approx(beta.ppf(1 - delta, x + 1, n - x), rel=1e-10)
    # Its definition: a true rate this high gives at most x errors with probability delta.
    assert binom.cdf(x, n, got) == pytest.approx(delta, rel=1e-7)


def test_clopper_pearson_hand_value_and_edges():
    # No errors in n: (1 - p)^n = delta, p = 1 - delta^(1/n) (the "rule of three": ~3/n at delta = 0.05).
    assert float(iv.clopper_pearson_upper(0, 300, delta=0.05)) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-12)
    assert float(iv.clopper_pearson_upper(7, 7, delta=0.05)) == 1.0
    assert np.isnan(iv.clopper_pearson_upper(0, 0, delta=0.05))
    out = iv.clopper_pearson_upper(np.array([0, 2, 5]), np.array([5, 5, 5]), delta=0.1)
    assert out.shape == (3,) and out[-1] == 1.0 and out[0] < out[1] < 1


def test_clopper_pearson_holds_for_every_true_rate():
    """P(p > bound) <= delta exactly, summed over the binomial pmf, at many p (the exact test is conservative)."""
    from scipy.stats import binom

    n, delta = 200, 0.05
    bound = iv.clopper_pearson_upper(np.arange(n + 1), n, delta=delta)
    for p in np.linspace(0.001, 0.2, 60):
        miss = float(binom.pmf(np.arange(n + 1), n, p)[bound < p].sum())
        assert miss <= delta + 1e-12, (p, miss)


# --------------------------------------------------------------------------- Student t mean interval


def test_mean_interval_equals_scipy_t_interval_from_the_values():
    from scipy.stats import sem, t

    rng = np.random.default_rng(0)
    for n in (2, 3, 30, 1000):
        v = rng.exponential(2.0, n) + 5
        got = iv.mean_interval(n, v.sum(), (v * v).sum())
        want = t.interval(0.95, n - 1, loc=v.mean(), scale=sem(v))
        np.testing.assert_allclose(got, want, rtol=1e-9)
        got90 = iv.mean_interval(n, v.sum(), (v * v).sum(), level=0.9)
        np.testing.assert_allclose(got90, t.interval(0.9, n - 1, loc=v.mean(), scale=sem(v)), rtol=1e-9)


def test_mean_interval_hand_value_and_edges():
    # Values 1, 2, 3: mean 2, s = 1; t with 2 degrees of freedom has the closed-form quantile
    # (2q - 1) sqrt(2 / (4 q (1 - q))), 4.30265 at q = 0.975: 2 -+ 4.30265 / sqrt(3).
    half = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025)) / math.sqrt(3)
    np.testing.assert_allclose(iv.mean_interval(3, 6.0, 14.0), [2 - half, 2 + half], rtol=1e-12)
    np.testing.assert_array_equal(iv.mean_interval(5, 10.0, 20.0), [2.0, 2.0])  # no spread: a point
    assert np.isnan(iv.mean_interval(1, 3.0, 9.0)).all() and np.isnan(iv.mean_interval(0, 0.0, 0.0)).all()
    # Vectorised over counts, NaN exactly where n < 2.
    out = iv.mean_interval(np.array([0, 1, 3]), np.array([0.0, 3.0, 6.0]), np.array([0.0, 9.0, 14.0]))
    assert out.shape == (3, 2) and np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2], [2 - half, 2 + half], rtol=1e-12)


def nll_pool(rng, lift: float, m: int = 1_000_000, k: int = 10):
    """Per-sample NLL -log p_y of a calibrated K=10 model (labels drawn from its probabilities), and its accuracy.

    Logits: N(0, 1.5^2) noise plus `lift` on the favoured class (7.6: about 97 % accurate, NLL skewness ~6.6; 9.0: about
    99 %, skewness ~10). The NLL is mostly near 0 with a long tail from the few wrong predictions.
    """
    z = 1.5 * rng.standard_normal((m, k))
    z[:, 0] += lift
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.minimum((rng.random(m)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), k - 1)
    return (p.argmax(axis=1) == y).mean(), -np.log(np.maximum(p[np.arange(m), y], 1e-12))


@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(20240701)
    return {lift: nll_pool(rng, lift) for lift in (7.6, 9.0)}


def _coverage(nll, n, *, cubes: bool, reps: int = 2000) -> tuple[float, float]:
    """(coverage, share of misses above) of mean_interval over `reps` seeded draws of n values from the pool."""
    truth = nll.mean()
    rng = np.random.default_rng(n)
    hits = above = 0
    for _ in range(reps // 100):
        v = nll[rng.integers(0, len(nll), (100, n))]
        ci = iv.mean_interval(n, v.sum(axis=1), (v ** 2).sum(axis=1), (v ** 3).sum(axis=1) if cubes else None)
        hits += int(np.sum((ci[:, 0] <= truth) & (truth <= ci[:, 1])))
        above += int(np.sum(truth > ci[:, 1]))
    return hits / reps, above / reps


@pytest.mark.parametrize("lift, accuracy", [(7.6, (0.96, 0.975)), (9.0, (0.985, 0.995))])
@pytest.mark.parametrize("n", [1000, 10_000])
def test_mean_interval_covers_the_mean_of_a_skewed_nll(pools, lift, accuracy, n):
    """Coverage 93-97.5 % over 2,000 seeded data sets (Monte-Carlo sd 0.5 %) with the sums of cubes (Hall's interval).

    The population is a pool of 10^6 per-sample NLLs of the simulated model, so its mean is known exactly; each data
    set draws n of them.
    """
    acc, nll = pools[lift]
    assert accuracy[0] < acc < accuracy[1]
    cover, above = _coverage(nll, n, cubes=True)
    assert 0.93 <= cover <= 0.975, (cover, above)


def test_the_student_t_interval_under_covers_what_halls_interval_covers(pools):
    """Why the sums of cubes: at 99 % accuracy and N = 1,000 the symmetric t interval misses the right-skewed NLL's mean
    above far more often than 2.5 %; Hall's interval does not."""
    _, nll = pools[9.0]
    t_cover, t_above = _coverage(nll, 1000, cubes=False)
    h_cover, h_above = _coverage(nll, 1000, cubes=True)
    assert t_cover < 0.935 and t_above > 0.05, (t_cover, t_above)
    assert h_cover > t_cover + 0.02 and h_above < 0.035, (h_cover, h_above)


def test_halls_interval_by_hand():
    """Hall's interval from its formula with scipy's skewness, on a small right-skewed sample; symmetric data give
    back the normal interval's width."""
    from scipy.stats import norm, skew

    x = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.9, 1.5, 3.0, 7.0])
    n, m, s = len(x), x.mean(), x.std(ddof=1)
    a = skew(x) / np.sqrt(n)  # population (biased) skewness, as from the power sums
    z = norm.ppf(0.975)
    g_inv = lambda q: (3 / a) * (np.cbrt(1 + a * (q - a / 6)) - 1)  # noqa: E731
    want = [m - s / np.sqrt(n) * g_inv(z), m - s / np.sqrt(n) * g_inv(-z)]
    got = iv.mean_interval(n, x.sum(), (x ** 2).sum(), (x ** 3).sum())
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got[1] - m > m - got[0]  # longer on the skewed side
    sym = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(iv.mean_interval(5, sym.sum(), (sym ** 2).sum(), (sym ** 3).sum()),
                               [-z * sym.std(ddof=1) / np.sqrt(5), z * sym.std(ddof=1) / np.sqrt(5)], rtol=1e-12)


# --------------------------------------------------------------------------- percentile, Holm, Fisher


def test_percentile_hand_values():
    np.testing.assert_allclose(iv.percentile(np.arange(101.0), level=0.9), [5.0, 95.0])
    np.testing.assert_allclose(iv.percentile(np.r_[np.arange(101.0), np.nan, np.nan], level=0.9), [5.0, 95.0])
    np.testing.assert_allclose(iv.percentile(np.arange(41.0)), [1.0, 39.0])  # 2.5 % and 97.5 % of 0..40
    assert np.isnan(iv.percentile(np.array([np.nan, np.nan]))).all()


def holm_by_definition(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down rejections at level alpha: reject the i-th smallest while p_(i) <= alpha / (m - i + 1)."""
    order = np.argsort(p, kind="stable")
    reject = np.zeros(len(p), bool)
    for i, j in enumerate(order):
        if p[j] > alpha / (len(p) - i):
            break
        reject[j] = True
    return reject


def test_holm_hand_values():
    # Sorted .01, .02, .03, .5 times 4, 3, 2, 1: .04, .06, .06, .5.
    np.testing.assert_allclose(iv.holm([0.03, 0.5, 0.01, 0.02]), [0.06, 0.5, 0.04, 0.06])
    # Monotone: .04 * 2 = .08 but the first is already .09 (.03 * 3): adjusted .09, .09, capped at 1.
    np.testing.assert_allclose(iv.holm([0.03, 0.04, 0.6]), [0.09, 0.09, 0.6])
    np.testing.assert_allclose(iv.holm([0.4, 0.5]), [0.8, 0.8])
    np.testing.assert_allclose(iv.holm([0.7, 0.9]), [1.0, 1.0])
    assert iv.holm([]).shape == (0,)


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=15), st.sampled_from([0.01, 0.05, 0.2]))
def test_holm_rejects_what_the_step_down_procedure_rejects(p, alpha):
    p = np.array(p)
    adjusted = iv.holm(p)
    assert (adjusted >= p).all() and (adjusted <= 1).all()
    # "Adjusted <= alpha" is the step-down rule (the module calls a difference at adjusted < alpha; equal is measure 0).
    np.testing.assert_array_equal(adjusted <= alpha, holm_by_definition(p, alpha))


def test_fisher_matches_scipy_and_handles_empty_groups():
    from scipy.stats import fisher_exact

    assert iv.fisher_two_sided(3, 10, 9, 10) == pytest.approx(fisher_exact([[3, 7], [9, 1]]).pvalue, rel=1e-12)
    # Hand value: 1 of 2 vs 0 of 2: the table's hypergeometric probabilities are 1/6, 4/6, 1/6 -> two-sided p = 1.
    assert iv.fisher_two_sided(1, 2, 0, 2) == pytest.approx(1.0)
    # 5 of 5 vs 0 of 5: only the two extreme tables, each 1 / C(10, 5) = 1/252.
    assert iv.fisher_two_sided(5, 5, 0, 5) == pytest.approx(2 / 252, rel=1e-12)
    assert iv.fisher_two_sided(0, 0, 3, 5) == 1.0


def test_isclose_or_nan():
    assert iv.isclose_or_nan(float("nan"), float("nan"))
    assert iv.isclose_or_nan(1.0, 1.0 + 1e-13) and not iv.isclose_or_nan(1.0, 1.0 + 1e-10)
    assert not iv.isclose_or_nan(float("nan"), 1.0)
