"""reportgen.stats.histogram: fine histograms with exact tie groups and every rank statistic computed from them.

References: expected errors and the AURC by brute force over every order of the tied samples; the AURC as a plain
sum over coverages; the risk-coverage curve from sorted samples; sklearn's roc_auc_score and DeLong's variance from
all positive-negative pairs; scipy's beta quantile for the SGR bounds. Intervals and the SGR guarantee are proven by
seeded simulation on models whose true AURC, AUROC and selective risk are known in closed form.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reportgen.stats import histogram as H
from reportgen.stats import intervals as iv
from reportgen.stats import resample

FAST = settings(max_examples=50, deadline=None)


def histograms(conf: np.ndarray, wrong: np.ndarray):
    """(count, errors, smallest confidence) per fine bin of 1 - confidence, as summary.summarize builds them."""
    b = H.bin_of(1.0 - conf)
    low = np.full(H.n_bins(), np.inf)
    np.minimum.at(low, b, conf)
    return H.counts(b), H.counts(b, wrong), low


def compact(x: np.ndarray, wrong: np.ndarray):
    """(count, errors) over the non-empty fine bins of x only, in order (empty bins add nothing to any statistic)."""
    _, inv = np.unique(H.bin_of(x), return_inverse=True)
    return np.bincount(inv), np.bincount(inv, weights=wrong).astype(np.int64)


# --------------------------------------------------------------------------- bins


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 1e6, allow_subnormal=True)))
def test_bins_ascend_with_the_value_and_keep_equal_values_together(x):
    b = H.bin_of(x)
    order = np.argsort(x, kind="stable")
    assert (np.diff(b[order]) >= 0).all()
    assert b.min() >= 0 and b.max() < H.n_bins()
    assert (b[x == 0] == 0).all() and (b[x > 0] > 0).all()
    # Equal values share a bin, whatever their position.
    for v in np.unique(x):
        assert len(np.unique(b[x == v])) == 1


def test_bins_resolve_one_part_in_a_thousand_over_the_whole_range():
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(math.log(2.0**-52), math.log(2.0**11.9), 100_000))
    b = H.bin_of(x)
    # Ratio above 1 + 2^-10: never the same bin; the largest ratio within one bin stays below 1 + 2^-10.
    np.testing.assert_array_equal(H.bin_of(x * (1 + 2.0**-9)) > b, True)
    order = np.argsort(x)
    xs, bs = x[order], b[order]
    same = bs[1:] == bs[:-1]
    assert same.any() and (xs[1:][same] / xs[:-1][same] < 1 + 2.0**-10).all()
    # Hand values: 0 and negatives in bin 0; 1.0 = 2^0 starts its exponent's first bin; 1 + 2^-10 is the next bin.
    one = 1 + (0 - H.MIN_EXPONENT) * 1024
    assert H.bin_of(np.array([-1.0, -0.0, 0.0, 1.0, 1 + 2.0**-10, 1 + 2.0**-11])).tolist() == [0, 0, 0, one, one + 1, one]
    # Below 2^-53 everything shares bin 1; above 2^12 the last bin.
    assert H.bin_of(np.array([1e-300, 5e-324, 2.0**-54])).tolist() == [1, 1, 1]
    assert H.bin_of(np.array([2.0**12, 1e300])).tolist() == [H.n_bins() - 1] * 2
    # Coarse bins: 16 per binary exponent.
    assert H.n_bins(H.COARSE_BITS) == 1 + 65 * 16
    assert H.bin_of(np.array([1.0, 1.0625]), bits=H.COARSE_BITS).tolist() == [1 + 53 * 16, 2 + 53 * 16]


def test_counts_and_weighted_sums():
    b = np.array([0, 3, 3, 7])
    np.testing.assert_array_equal(H.counts(b)[[0, 3, 7]], [1, 2, 1])
    assert H.counts(b).dtype == np.int64 and H.counts(b).sum() == 4
    np.testing.assert_array_equal(H.counts(b, np.array([False, True, False, True]))[[3, 7]], [1, 1])
    np.testing.assert_allclose(H.counts(b, weights=np.array([0.5, 1.0, 2.0, 4.0]))[[0, 3, 7]], [0.5, 3.0, 4.0])


# --------------------------------------------------------------------------- expected errors and AURC: ties


def over_every_tie_order(x: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """(N,) mean over all N! orders of the rows, each stably sorted by x, of the errors among the first q: the
    expected errors when ties are broken uniformly at random."""
    perms = np.array(list(itertools.permutations(range(len(x)))))
    rows = np.take_along_axis(perms, np.argsort(x[perms], axis=1, kind="stable"), axis=1)
    return np.cumsum(wrong[rows], axis=1).mean(axis=0)


GRID = [0.0, 0.02, 0.1, 0.25, 0.5, 0.9]


@FAST
@given(st.lists(st.tuples(st.sampled_from(GRID), st.booleans()), min_size=1, max_size=7))
def test_expected_errors_and_aurc_are_the_mean_over_random_tie_orders(rows):
    x = np.array([r[0] for r in rows])
    wrong = np.array([r[1] for r in rows])
    n = len(x)
    b = H.bin_of(x)
    count, errors = H.counts(b), H.counts(b, wrong)
    want = over_every_tie_order(x, wrong)
    np.testing.assert_allclose(H.expected_errors(count, errors, np.arange(1, n + 1)), want, rtol=1e-12, atol=1e-12)
    assert float(H.aurc(count, errors)) == pytest.approx(np.mean(want / np.arange(1, n + 1)), rel=1e-12, abs=1e-15)


def test_aurc_hand_cases():
    # Confidences .9 .8 .7 .6 .5 with right, right, wrong, right, wrong: risks 0, 0, 1/3, 1/4, 2/5.
    x = 1 - np.array([0.6, 0.9, 0.5, 0.7, 0.8])
    wrong = np.array([False, False, True, True, False])
    count, errors = H.counts(H.bin_of(x)), H.counts(H.bin_of(x), wrong)
    assert float(H.aurc(count, errors)) == pytest.approx((1 / 3 + 1 / 4 + 2 / 5) / 5, rel=1e-12)
    # Two tied samples, one wrong, in either order: expected risk 1/2 at both coverages.
    for w in ([True, False], [False, True]):
        c, e = H.counts(H.bin_of(np.array([0.1, 0.1]))), H.counts(H.bin_of(np.array([0.1, 0.1])), np.array(w))
        assert float(H.aurc(c, e)) == pytest.approx(0.5, rel=1e-12)
        np.testing.assert_allclose(H.expected_errors(c, e, np.array([1, 2])), [0.5, 1.0])
    # All wrong: risk 1 everywhere; none wrong: 0; no samples: NaN.
    c = H.counts(H.bin_of(np.array([0.1, 0.3, 0.3])))
    assert float(H.aurc(c, c)) == pytest.approx(1.0, rel=1e-12) and float(H.aurc(c, 0 * c)) == 0.0
    assert np.isnan(H.aurc(0 * c, 0 * c))


def test_aurc_equals_the_sum_over_coverages_beyond_the_harmonic_table():
    """N = 150,000 (> 2^16, where harmonic numbers come from their asymptotic series) on 2,000 tied values: the plain
    sum over every coverage q of (expected errors among q) / q, with the per-coverage expected errors checked by brute
    force above; and N = 20,000 values in distinct bins against the sorted cumulative errors."""
    rng = np.random.default_rng(1)
    n = 150_000
    x = rng.integers(1, 2001, n) / 2000.0
    wrong = rng.random(n) < x / 4
    b = H.bin_of(x)
    assert np.unique(b).size == 2000
    count, errors = H.counts(b), H.counts(b, wrong)
    q = np.arange(1, n + 1)
    assert float(H.aurc(count, errors)) == pytest.approx(math.fsum(H.expected_errors(count, errors, q) / q) / n, rel=1e-11)
    # Distinct bins for every sample: values 2^-9 relative apart.
    n = 20_000
    y = 2.0**-52 * (1 + 2.0**-9) ** np.arange(n)
    wrong = rng.random(n) < 0.1
    b = H.bin_of(y)
    assert np.unique(b).size == n
    q = np.arange(1, n + 1)
    assert float(H.aurc(H.counts(b), H.counts(b, wrong))) == pytest.approx(math.fsum(np.cumsum(wrong) / q) / n, rel=1e-11)


def test_aurc_is_vectorised_over_leading_axes():
    rng = np.random.default_rng(2)
    count = rng.integers(0, 5, (3, 4, 50))
    errors = rng.binomial(count, 0.3)
    got = H.aurc(count, errors)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert got[i, j] == pytest.approx(float(H.aurc(count[i, j], errors[i, j])), rel=1e-14)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 400), st.lists(st.integers(0, 400), max_size=4))
def test_histogram_statistics_do_not_depend_on_order_or_chunking(seed, n, cuts):
    rng = np.random.default_rng(seed)
    conf = np.round(rng.uniform(0.3, 1.0, n), rng.integers(1, 4))
    wrong = rng.random(n) > conf
    whole = histograms(conf, wrong)
    perm = rng.permutation(n)
    edges = [0, *sorted(min(c, n) for c in cuts), n]
    pieces = [histograms(conf[perm][a:b], wrong[perm][a:b]) for a, b in zip(edges, edges[1:])]
    merged = (sum(p[0] for p in pieces), sum(p[1] for p in pieces), np.minimum.reduce([p[2] for p in pieces]))
    for a, b in zip(whole, merged):
        np.testing.assert_array_equal(a, b)
    assert float(H.aurc(merged[0], merged[1])) == float(H.aurc(whole[0], whole[1]))


# --------------------------------------------------------------------------- curve and accuracy at coverage


def test_risk_coverage_curve_matches_sorted_samples():
    rng = np.random.default_rng(5)
    conf = 1 - rng.permutation(1e-6 * (1 + 2.0**-8) ** np.arange(2000))  # 1 - confidence 0.4 % apart: no shared bins
    wrong = rng.random(2000) < 0.2
    count, errors, _ = histograms(conf, wrong)
    assert np.unique(H.bin_of(1 - conf)).size == 2000
    coverage, risk = H.risk_coverage_curve(count, errors)
    full = np.cumsum(wrong[np.argsort(-conf)]) / np.arange(1, 2001)
    assert len(coverage) <= H.CURVE_POINTS and coverage[-1] == 1.0 and coverage[0] == 1 / 2000
    kept = np.round(coverage * 2000).astype(int)
    np.testing.assert_allclose(risk, full[kept - 1], rtol=1e-12)
    # Small N: every coverage.
    c, e, _ = histograms(conf[:50], wrong[:50])
    coverage, risk = H.risk_coverage_curve(c, e)
    np.testing.assert_allclose(coverage, np.arange(1, 51) / 50)
    np.testing.assert_allclose(risk, np.cumsum(wrong[:50][np.argsort(-conf[:50])]) / np.arange(1, 51), rtol=1e-12)


def test_accuracy_at_hand_cases():
    conf = np.array([0.6, 0.9, 0.5, 0.7, 0.8])
    wrong = np.array([False, False, True, True, False])
    count, errors, _ = histograms(conf, wrong)
    # 80 % of 5 = 4 kept: .9 .8 .7 .6 with one wrong -> 3/4; 90, 95, 99 % round up to all 5 -> 3/5.
    assert H.accuracy_at(count, errors, 80) == pytest.approx((0.75, 4, 1.0))
    for pct in (90, 95, 99):
        assert H.accuracy_at(count, errors, pct) == pytest.approx((0.6, 5, 2.0))
    # 7 % of 100 is 7 (7 / 100 * 100 is 7.000000000000001 in floats, whose ceiling would be 8).
    c, e, _ = histograms(np.linspace(0.99, 0.5, 100), np.arange(100) == 7)
    assert H.accuracy_at(c, e, 7) == (1.0, 7, 0.0)
    assert H.accuracy_at(c, e, 8) == (pytest.approx(7 / 8), 8, 1.0)
    # A tie across the cut: 4 samples at .9 (2 wrong) then .5; 50 % keeps 2 of the tie -> 1 expected error.
    c, e, _ = histograms(np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5]), np.array([1, 1, 0, 0, 0, 0, 0, 0], bool))
    assert H.accuracy_at(c, e, 25) == (0.5, 2, 1.0)


# --------------------------------------------------------------------------- AURC interval


def test_aurc_interval_ignores_empty_bins_and_is_none_without_errors():
    rng = np.random.default_rng(3)
    x = rng.beta(1, 20, 3000)
    wrong = rng.random(3000) < x
    b = H.bin_of(x)
    full = H.aurc_interval(H.counts(b), H.counts(b, wrong))
    assert full == pytest.approx(H.aurc_interval(*compact(x, wrong)), rel=1e-12)
    a = float(H.aurc(H.counts(b), H.counts(b, wrong)))
    assert full[0] < a < full[1] and full[0] * full[1] == pytest.approx(a * a, rel=1e-12)  # symmetric on the log scale
    assert H.aurc_interval(H.counts(b), 0 * H.counts(b)) is None
    assert H.aurc_interval(*compact(np.array([0.5]), np.array([True]))) is None  # N < 2


def functional(mass: np.ndarray, wrong_mass: np.ndarray) -> float:
    """AURC as integral of G / F dF over bins (F, G: shares at least as confident, and also wrong, bins inclusive)."""
    total = mass.sum()
    f, g = np.cumsum(mass) / total, np.cumsum(wrong_mass) / total
    return float(np.sum(mass / total * g / f))


def test_aurc_influence_is_the_derivative_of_the_functional():
    """Each bin's influence, right and wrong, equals the numerical derivative d/de T((1 - e) F + e delta), with T the
    functional above; on bins of one sample each T is exactly the AURC, and the influences average to 0."""
    rng = np.random.default_rng(6)
    n = 300
    x = 1e-4 * (1 + 2.0**-8) ** rng.permutation(np.arange(n) * 3)  # distinct bins
    wrong = rng.random(n) < 0.2
    count, errors = compact(x, wrong)
    assert (count == 1).all()
    a, influence = H.aurc_influence(count, errors)
    assert a == pytest.approx(functional(count.astype(float), errors.astype(float)), rel=1e-12)
    assert abs(np.sum(influence[np.arange(n), errors])) < 1e-10
    eps = 1e-7
    for j in (0, 1, 57, 150, n - 1):
        for e0 in (0, 1):
            bump = np.zeros(n)
            bump[j] = n * eps / (1 - eps)  # mass added so that it is a share eps of the whole
            numeric = (functional(count + bump, errors + e0 * bump) - a) / eps
            assert influence[j, e0] == pytest.approx(numeric, rel=1e-4, abs=1e-6), (j, e0)


def test_aurc_delta_variance_matches_the_poisson_bootstrap():
    """The delta method's standard error within 5 % of 2,000 Poisson(1) bootstrap replicates' (continuous confidences;
    the replicates' sd has ~1.6 % Monte-Carlo error; seen: 0.1 % apart)."""
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.beta(1, 32, n)
    wrong = rng.random(n) < x
    _, inv = np.unique(H.bin_of(x), return_inverse=True)
    count, errors = compact(x, wrong)
    lo, hi = H.aurc_interval(count, errors)
    se_delta = math.log(hi / lo) / (2 * iv.normal_quantile()) * float(H.aurc(count, errors))
    w = resample.poisson_weights(0, n, replicates=2000, seed=1).astype(np.float64)
    reps = [float(H.aurc(np.bincount(inv, weights=wb).astype(np.int64), np.bincount(inv, weights=wb * wrong).astype(np.int64)))
            for wb in w]
    assert se_delta == pytest.approx(np.std(reps), rel=0.05)


def beta_aurc(a: float, b: float) -> float:
    """Population AURC of a calibrated model with 1 - confidence U ~ Beta(a, b), wrong with probability U.

    AURC = integral over coverage v of (mean risk of the v most confident) dv = E[r(U) (-log F(U))] (swap the integrals).
    """
    from scipy import integrate, stats

    f = lambda u: u * -math.log(stats.beta.cdf(u, a, b)) * stats.beta.pdf(u, a, b)  # noqa: E731
    return integrate.quad(f, 0, 1, limit=200, points=[1e-6, 1e-4, 1e-2])[0]


def test_beta_aurc_reference_on_a_closed_form():
    # U uniform is Beta(1, 1); wrong with probability U: G/F = U/2, AURC = 1/4. With U^2: a/9 (see below).
    assert beta_aurc(1, 1) == pytest.approx(0.25, rel=1e-8)


@pytest.mark.parametrize("n,reps", [(1000, 500), (10_000, 400)])
def test_aurc_interval_coverage_on_a_simulated_accurate_model(n, reps):
    """Coverage 90-99 % of the true AURC (Monte-Carlo sd ~1 %). The model is calibrated, ~97 % accurate: 1 - confidence
    ~ Beta(1, 32) (mean 0.03), wrong with probability 1 - confidence; true AURC 0.01095 by quadrature.
    Seen with more repetitions: ~94 % at both sizes."""
    truth = beta_aurc(1, 32)
    rng = np.random.default_rng(n)
    hits = none = 0
    for _ in range(reps):
        x = rng.beta(1, 32, n)
        ci = H.aurc_interval(*compact(x, rng.random(n) < x))
        if ci is None:
            none += 1
            continue
        hits += ci[0] <= truth <= ci[1]
    assert none == 0
    assert 0.90 <= hits / reps <= 0.99, hits / reps


# --------------------------------------------------------------------------- selection with guaranteed risk


def three_groups():
    """100 samples at confidence .99 (0 wrong), 100 at .95 (1 wrong), 100 at .8 (10 wrong)."""
    conf = np.repeat([0.99, 0.95, 0.8], 100)
    wrong = np.zeros(300, bool)
    wrong[[150]] = True
    wrong[200:210] = True
    return conf, wrong


def test_sgr_hand_case_certified():
    from scipy.stats import beta

    conf, wrong = three_groups()
    rule = H.sgr(*histograms(conf, wrong), target=0.05, delta=0.05)
    # m = 3 candidates, k = ceil(log2 3) = 2 tests at delta / 2. Bisection: z = ceil((1 + 3) / 2) = 2 keeps the two most
    # confident groups (200 kept, 1 wrong): bound = beta.ppf(1 - .025, 2, 199) = 0.0274 < .05, so z_max = 2 and the
    # second test is z = 2 again. Reported: that rule.
    bound = beta.ppf(1 - 0.025, 2, 199)
    assert rule["certified"] and rule["tests"] == 2
    assert (rule["kept"], rule["errors"], rule["threshold"]) == (200, 1, 0.95)
    assert rule["bound"] == pytest.approx(bound, rel=1e-10)
    assert rule["coverage"] == pytest.approx(2 / 3) and rule["risk"] == pytest.approx(1 / 200)


def test_sgr_hand_case_not_certified_reports_the_lowest_tested_bound():
    from scipy.stats import beta

    conf, wrong = three_groups()
    rule = H.sgr(*histograms(conf, wrong), target=0.02, delta=0.05)
    # First test as above: 0.0274 >= .02, so z_min = 2; z = 3 keeps the top group only (100 kept, 0 wrong):
    # 1 - .025^(1/100) = 0.0362. Neither is below .02; the lower bound is the first rule's.
    assert 1 - 0.025 ** (1 / 100) == pytest.approx(beta.ppf(0.975, 1, 100), rel=1e-12)
    assert not rule["certified"]
    assert (rule["kept"], rule["errors"]) == (200, 1)
    assert rule["bound"] == pytest.approx(beta.ppf(0.975, 2, 199), rel=1e-10)


def record_bounds(monkeypatch) -> list:
    """Every (errors, kept, delta, bound) that sgr tests."""
    seen = []
    original = iv.clopper_pearson_upper

    def spy(x, n, *, delta):
        out = original(x, n, delta=delta)
        seen.append((int(x), int(n), delta, float(out)))
        return out

    monkeypatch.setattr(iv, "clopper_pearson_upper", spy)
    return seen


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 3000), st.sampled_from([0.005, 0.02, 0.1]), st.integers(1, 4))
def test_sgr_reports_the_best_tested_rule(seed, n, target, decimals):
    rng = np.random.default_rng(seed)
    conf = np.round(1 - rng.beta(1, 20, n), decimals)
    wrong = rng.random(n) > conf
    count, errors, low = histograms(conf, wrong)
    m = int(np.count_nonzero(count))
    with pytest.MonkeyPatch.context() as mp:
        seen = record_bounds(mp)
        rule = H.sgr(count, errors, low, target=target, delta=0.05)
    k = max(1, math.ceil(math.log2(m))) if m > 1 else 1
    assert rule["tests"] == k == len(seen) and all(s[2] == 0.05 / k for s in seen)
    good = [s for s in seen if s[3] < target]
    if good:
        best = max(good, key=lambda s: s[1])
        assert rule["certified"] and (rule["errors"], rule["kept"], rule["bound"]) == best[:2] + (best[3],)
    else:
        assert not rule["certified"] and rule["bound"] == min(s[3] for s in seen)
    # The rule is "keep confidence >= threshold", counted on the raw samples.
    keep = conf >= rule["threshold"]
    assert (int(keep.sum()), int(wrong[keep].sum())) == (rule["kept"], rule["errors"])
    assert rule["coverage"] == rule["kept"] / n and rule["risk"] == rule["errors"] / rule["kept"]


def beta_selective_risk(t, a: float, b: float):
    """P(wrong | U <= t) for U ~ Beta(a, b) wrong with probability U: E[U 1(U <= t)] / F(t)."""
    from scipy.special import betainc

    return a / (a + b) * betainc(a + 1, b, t) / betainc(a, b, t)


def test_sgr_certified_risk_holds_in_simulation():
    """True risk above the certified bound in at most 5 % of 500 data sets (+ 2.5 % Monte-Carlo slack).

    N = 10,000, 1 - confidence ~ Beta(0.5, 16) (3 % errors, calibrated), target 1 %, delta 5 %: the true selective
    risk at any threshold is known in closed form. Seen: certified in all, violated in ~0.2-0.8 % (the union bound
    over the ~13 tests is conservative)."""
    rng = np.random.default_rng(7)
    reps, n, a, b = 500, 10_000, 0.5, 16
    certified = violated = 0
    for _ in range(reps):
        x = rng.beta(a, b, n)
        conf = 1 - x
        wrong = rng.random(n) < x
        b_ = H.bin_of(1 - conf)
        bins, inv = np.unique(b_, return_inverse=True)
        low = np.full(len(bins), np.inf)
        np.minimum.at(low, inv, conf)
        rule = H.sgr(np.bincount(inv), np.bincount(inv, weights=wrong).astype(np.int64), low, target=0.01, delta=0.05)
        if rule["certified"]:
            certified += 1
            violated += beta_selective_risk(1 - rule["threshold"], a, b) > rule["bound"]
    assert certified >= 0.9 * reps
    assert violated / reps <= 0.075, violated / reps


def test_sgr_impossible_target_is_not_certified_and_reports_the_lowest_tested_bound(monkeypatch):
    """N = 1,000, 3 % errors, target 1 %: a bound below 1 % at delta / k = 0.005 needs over 500 kept samples without a
    single error (1 - 0.005^(1/n) < 0.01), which this model never gives; over 100 data sets nothing is certified."""
    rng = np.random.default_rng(8)
    seen = record_bounds(monkeypatch)
    for _ in range(100):
        x = rng.beta(1, 32, 1000)
        conf = 1 - x
        del seen[:]
        rule = H.sgr(*histograms(conf, rng.random(1000) < x), target=0.01, delta=0.05)
        assert not rule["certified"]
        assert rule["bound"] == min(s[3] for s in seen) >= 0.01


def test_sgr_single_group():
    rule = H.sgr(*histograms(np.full(500, 0.9), np.zeros(500, bool)), target=0.01, delta=0.05)
    assert rule["tests"] == 1 and rule["kept"] == 500 and rule["threshold"] == 0.9
    assert rule["bound"] == pytest.approx(1 - 0.05 ** (1 / 500), rel=1e-12) and rule["certified"]


# --------------------------------------------------------------------------- AUROC


def delong_by_pairs(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """(AUROC, DeLong variance) from the matrix of all positive-negative comparisons."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    a = psi.mean()
    if len(pos) < 2 or len(neg) < 2:
        return a, None
    return a, v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 60), st.integers(1, 60), st.integers(1, 3))
def test_auroc_matches_sklearn_and_pairwise_delong(seed, n_pos, n_neg, decimals):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    pos = np.round(rng.uniform(0, 1, n_pos) + 0.3, decimals)  # many exact ties, and ties across groups
    neg = np.round(rng.uniform(0, 1, n_neg), decimals)
    bp, bn = H.bin_of(pos), H.bin_of(neg)
    out = H.auroc(H.counts(bp), H.counts(bn))
    a, var = delong_by_pairs(pos, neg)
    assert out["auroc"] == pytest.approx(a, rel=1e-12)
    assert out["auroc"] == pytest.approx(roc_auc_score(np.r_[np.ones(n_pos), np.zeros(n_neg)], np.r_[pos, neg]), rel=1e-12)
    assert (out["n_positive"], out["n_negative"]) == (n_pos, n_neg)
    if n_pos > 1 and n_neg > 1:
        half = iv.normal_quantile() * math.sqrt(var)
        assert out["ci"] == pytest.approx([max(0.0, a - half), min(1.0, a + half)], rel=1e-9, abs=1e-12)


def test_auroc_edges():
    c = H.counts(H.bin_of(np.array([0.1, 0.2])))
    assert H.auroc(c, 0 * c) == {"auroc": None, "ci": None, "n_positive": 2, "n_negative": 0}
    # Perfect separation: 1 with a degenerate interval; all tied: 1/2.
    hi, lo = H.counts(H.bin_of(np.array([0.8, 0.9]))), H.counts(H.bin_of(np.array([0.1, 0.2])))
    assert H.auroc(hi, lo)["auroc"] == 1.0 and H.auroc(hi, lo)["ci"] == [1.0, 1.0]
    assert H.auroc(lo, hi)["auroc"] == 0.0
    assert H.auroc(c, c)["auroc"] == 0.5


@pytest.mark.parametrize("d,n_pos,n_neg", [(1.0, 100, 900), (2.5, 300, 9700)])
def test_delong_interval_coverage_on_a_binormal_model(d, n_pos, n_neg):
    """Coverage 90-99 % of AUC = Phi(d / sqrt 2) over 1,000 data sets (Monte-Carlo sd 0.7 %). Scores exp(N(d, 1)) for
    positives, exp(N(0, 1)) for negatives (positive, as the bins need; the AUROC is rank-based). Seen: ~95 % and ~94 %."""
    from scipy.stats import norm

    truth = norm.cdf(d / math.sqrt(2))
    rng = np.random.default_rng(int(d * 10))
    reps, hits = 1000, 0
    for _ in range(reps):
        b = H.bin_of(np.exp(np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]))
        _, inv = np.unique(b, return_inverse=True)
        out = H.auroc(np.bincount(inv[:n_pos], minlength=inv.max() + 1), np.bincount(inv[n_pos:], minlength=inv.max() + 1))
        hits += out["ci"][0] <= truth <= out["ci"][1]
    assert 0.90 <= hits / reps <= 0.99, hits / reps
