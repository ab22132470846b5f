"""Intervals, the mergeable Poisson bootstrap, and calibration beyond plain ECE.

Statistics are proven by seeded simulation (coverage of 95 % intervals, hit rates of the
calibration verdict); metrics by hand-computed cases and independent reference code.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.stats import intervals as iv
from reportgen.errors import DataError
from reportgen.stats.uncertainty import calibration_bins, selective_prediction

Z95 = 1.959963984540054  # standard normal 97.5 % quantile
K = 10
# Logit scale of the simulated K=10 model: E[max softmax(10.5 z)] ~ 0.90, i.e. ~90 % accuracy.
LOGIT_SCALE = 10.5
VALUE_NAMES = ("nll", "brier", "confidence", "total", "aleatoric", "epistemic")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def simulated_model(rng, n: int, sharpen: float = 1.0):
    """(reported probs (n, K), labels (n,), true probs (n, K)) of a K=10 model.

    Labels are drawn from softmax(z), so sharpen=1 reports calibrated probabilities and
    sharpen=2 reports over-confident ones, softmax(2z).
    """
    z = LOGIT_SCALE * rng.standard_normal((n, K))
    true = softmax(z)
    labels = np.minimum((rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1), K - 1)
    return softmax(sharpen * z), labels, true


def top_label(probs, labels):
    return probs.max(axis=1), probs.argmax(axis=1) == labels


def one_line_data_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# --------------------------------------------------------------------------- Wilson


def wilson_by_quadratic(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Roots in p of (x/n - p)^2 = z^2 p (1 - p) / n: the score interval from its definition."""
    ph = x / n
    roots = np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph])
    return float(roots.real.min()), float(roots.real.max())


def test_wilson_86_of_100_matches_definition_and_hand_value():
    low, high = iv.wilson(86, 100)
    assert (low, high) == pytest.approx(wilson_by_quadratic(86, 100), abs=1e-12)
    # By hand: centre (86 + 1.96^2/2) / (100 + 1.96^2) = 0.84668, half-width
    # 1.96 / 103.8415 * sqrt(86 * 14 / 100 + 1.96^2 / 4) = 0.06806.
    assert low == pytest.approx(0.7786, abs=5e-5) and high == pytest.approx(0.9147, abs=5e-5)


@pytest.mark.parametrize("x,n", [(1, 10), (5, 10), (9, 10), (3, 1000), (999, 1000)])
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


def test_wilson_is_vectorised_and_broadcasts():
    x = np.array([[0, 5, 10], [2, 0, 0]])
    n = np.array([[10, 10, 10], [4, 3, 0]])
    out = iv.wilson(x, n)
    assert out.shape == (2, 3, 2)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out[i, j], iv.wilson(int(x[i, j]), int(n[i, j])))
    assert iv.wilson(np.arange(4), 3).shape == (4, 2)
    np.testing.assert_allclose(iv.wilson(np.arange(4), 3)[2], wilson_by_quadratic(2, 3), atol=1e-12)


def test_wilson_coverage_p09_n400_is_nominal():
    """p = 0.9, n = 400: Wilson is close to nominal there (exact coverage ~0.95)."""
    p, n, draws = 0.9, 400, 4000
    x = np.random.default_rng(11).binomial(n, p, size=draws)
    ci = iv.wilson(x, n)
    covered = float(np.mean((ci[:, 0] <= p) & (p <= ci[:, 1])))
    assert 0.93 <= covered <= 0.97, covered
    # The exact coverage, summed over the binomial pmf, agrees with the simulation.
    xs = np.arange(n + 1)
    all_ci = iv.wilson(xs, n)
    pmf = np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    exact = float(pmf[(all_ci[:, 0] <= p) & (p <= all_ci[:, 1])].sum())
    assert 0.93 <= exact <= 0.97 and abs(covered - exact) < 0.015, (covered, exact)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=20), st.randoms())
def test_wilson_elementwise_under_permutation(pairs, rnd):
    x = np.array([min(a, b) for a, b in pairs])
    n = np.array([max(a, b) for a, b in pairs])
    perm = list(range(len(pairs)))
    rnd.shuffle(perm)
    np.testing.assert_array_equal(iv.wilson(x, n)[perm], iv.wilson(x[perm], n[perm]))


# --------------------------------------------------------------------------- Poisson weights


def test_poisson_thresholds_are_the_rounded_cdf():
    getcontext().prec = 60
    e, term, cdf, expected = Decimal(-1).exp(), Decimal(1), Decimal(0), []
    for k in range(12):
        if k:
            term /= k
        cdf += e * term
        expected.append(int((cdf * 2**32).to_integral_value()))
    assert list(iv.POISSON_THRESHOLDS) == expected
    assert max(expected) < 2**32  # k = 12 would round to 2^32: weights stop at 12


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(1, 4))
def test_poisson_weights_do_not_depend_on_the_split(a, b, offset_blocks):
    lo, hi = sorted((a, b))
    start = offset_blocks * iv.BLOCK_ROWS - 7  # not block-aligned
    whole = iv.poisson_weights(start, start + 5000, replicates=3, seed=5)
    parts = [iv.poisson_weights(start + s, start + e, replicates=3, seed=5) for s, e in ((0, lo), (lo, hi), (hi, 5000))]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))


def test_poisson_weights_of_a_replicate_do_not_depend_on_how_many():
    few = iv.poisson_weights(100, 3000, replicates=3, seed=9)
    many = iv.poisson_weights(100, 3000, replicates=10, seed=9)
    np.testing.assert_array_equal(few, many[:3])
    assert not np.array_equal(many[3], many[4])
    assert not np.array_equal(iv.poisson_weights(0, 500, replicates=1, seed=10), many[:1, :500])


def test_poisson_weights_have_poisson1_moments():
    w = iv.poisson_weights(0, 10_000, replicates=100, seed=0)
    assert w.dtype == np.uint8 and w.shape == (100, 10_000)
    assert abs(w.mean() - 1) < 0.004  # sd of the mean is 0.001
    assert abs(w.var() - 1) < 0.01  # sd ~0.0016
    assert abs(np.mean(w == 0) - math.exp(-1)) < 0.003
    assert abs(np.mean(w == 2) - math.exp(-1) / 2) < 0.003
    assert w.max() <= 12


# --------------------------------------------------------------------------- bootstrap sums


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    n = 3000
    probs, labels, _ = simulated_model(rng, n)
    conf, ok = top_label(probs, labels)
    values = {name: rng.standard_normal(n) * (i + 1) for i, name in enumerate(VALUE_NAMES)}
    return conf, ok, values


def test_bootstrap_sums_equal_direct_weighted_sums(rows):
    conf, ok, values = rows
    s = iv.bootstrap_sums(0, conf, ok, values, replicates=20, seed=4, n_bins=15)
    w = iv.poisson_weights(0, len(conf), replicates=20, seed=4).astype(np.int64)
    idx = np.minimum((conf * 15).astype(int), 14)
    np.testing.assert_array_equal(s.total_weight, w.sum(axis=1))
    for name, v in values.items():
        np.testing.assert_allclose(s.sums[name], w @ v, rtol=1e-12)
        np.testing.assert_allclose(s.means()[name], (w @ v) / w.sum(axis=1), rtol=1e-12)
    for b in range(15):
        in_bin = idx == b
        np.testing.assert_array_equal(s.bin_count[:, b], w[:, in_bin].sum(axis=1))
        np.testing.assert_array_equal(s.bin_sum_correct[:, b], w[:, in_bin & ok].sum(axis=1))
        np.testing.assert_allclose(s.bin_sum_confidence[:, b], w[:, in_bin] @ conf[in_bin], rtol=1e-12)
    # The ECE of replicate 0 is the ECE of the data set with row i repeated w[0, i] times.
    expanded = iv.equal_width_ece(np.repeat(conf, w[0]), np.repeat(ok, w[0]), n_bins=15)
    assert s.ece()[0] == pytest.approx(expanded, rel=1e-10)


def test_bootstrap_sums_of_shards_merge_to_the_whole(rows):
    conf, ok, values = rows
    kw = dict(replicates=50, seed=8, n_bins=15)
    whole = iv.bootstrap_sums(0, conf, ok, values, **kw)
    cuts = [0, 1000, 1777, 3000]
    shards = [
        iv.bootstrap_sums(a, conf[a:b], ok[a:b], {k: v[a:b] for k, v in values.items()}, **kw)
        for a, b in zip(cuts, cuts[1:])
    ]
    orders = (
        shards[0] + shards[1] + shards[2],
        shards[2] + (shards[0] + shards[1]),
        shards[1].merge(shards[2]).merge(shards[0]),
    )
    for merged in orders:
        assert merged.rows == ((0, 3000),)
        np.testing.assert_array_equal(merged.total_weight, whole.total_weight)
        np.testing.assert_array_equal(merged.bin_count, whole.bin_count)
        np.testing.assert_array_equal(merged.bin_sum_correct, whole.bin_sum_correct)
        np.testing.assert_allclose(merged.bin_sum_confidence, whole.bin_sum_confidence, rtol=1e-9)
        for name in values:
            np.testing.assert_allclose(merged.sums[name], whole.sums[name], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(merged.ece(), whole.ece(), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3000), st.booleans())
def test_bootstrap_sums_merge_at_any_cut_in_either_order(rows, cut, swap):
    conf, ok, values = rows
    kw = dict(replicates=5, seed=2, n_bins=7)
    whole = iv.bootstrap_sums(0, conf, ok, values, **kw)
    a = iv.bootstrap_sums(0, conf[:cut], ok[:cut], {k: v[:cut] for k, v in values.items()}, **kw)
    b = iv.bootstrap_sums(cut, conf[cut:], ok[cut:], {k: v[cut:] for k, v in values.items()}, **kw)
    merged = b + a if swap else a + b
    np.testing.assert_array_equal(merged.bin_count, whole.bin_count)
    np.testing.assert_array_equal(merged.bin_sum_correct, whole.bin_sum_correct)
    np.testing.assert_allclose(merged.ece(), whole.ece(), rtol=1e-9)
    for name in values:
        np.testing.assert_allclose(merged.means()[name], whole.means()[name], rtol=1e-9, atol=1e-12)


def test_bootstrap_sums_refuse_bad_merges(rows):
    conf, ok, values = rows
    a = iv.bootstrap_sums(0, conf[:100], ok[:100], {}, replicates=5, seed=1)
    with pytest.raises(DataError, match="overlap"):
        a + iv.bootstrap_sums(50, conf[50:150], ok[50:150], {}, replicates=5, seed=1)
    with pytest.raises(DataError, match="seed, replicates"):
        a + iv.bootstrap_sums(100, conf[100:200], ok[100:200], {}, replicates=5, seed=2)
    with pytest.raises(DataError, match="seed, replicates"):
        a + iv.bootstrap_sums(100, conf[100:200], ok[100:200], {}, replicates=6, seed=1)
    empty = iv.bootstrap_sums(100, conf[:0], ok[:0], {}, replicates=5, seed=1)
    assert (a + empty).rows == ((0, 100),) and np.isnan(empty.ece()).all()


def test_bootstrap_aurc_equals_risk_coverage_of_the_resampled_set():
    """Replicate b = the data set with row i repeated w[b, i] times, scored by uncertainty.py."""
    rng = np.random.default_rng(21)
    for decimals in (1, 2, 8):  # many ties, some ties, none
        n = 400
        conf = np.round(rng.uniform(0.2, 1.0, n), decimals)
        ok = rng.random(n) < conf
        aurc = iv.bootstrap_aurc(conf, ok, replicates=12, seed=6)
        w = iv.poisson_weights(0, n, replicates=12, seed=6)
        expected = [selective_prediction(np.repeat(conf, wb), np.repeat(ok, wb)).aurc for wb in w]
        np.testing.assert_allclose(aurc, expected, rtol=1e-12, atol=1e-15)


def test_bootstrap_aurc_of_unit_weights_is_uncertainty_aurc(monkeypatch):
    """The closed form, fed weights of 1, is the plain AURC (ties in expectation, as uncertainty.py)."""
    rng = np.random.default_rng(2)
    conf = np.round(rng.random(500), 2)
    ok = rng.random(500) < conf
    monkeypatch.setattr(iv, "_weights", lambda start, stop, b0, b1, seed: np.ones((b1 - b0, stop - start), np.uint8))
    got = iv.bootstrap_aurc(conf, ok, replicates=2, seed=0)
    assert got == pytest.approx([selective_prediction(conf, ok).aurc] * 2, rel=1e-12)


def test_percentile_interval_hand_values():
    np.testing.assert_allclose(iv.percentile_interval(np.arange(101.0), level=0.9), [5.0, 95.0])
    np.testing.assert_allclose(iv.percentile_interval(np.r_[np.arange(101.0), np.nan, np.nan], level=0.9), [5.0, 95.0])
    np.testing.assert_allclose(iv.percentile_interval(np.arange(41.0)), [1.0, 39.0])
    assert np.isnan(iv.percentile_interval(np.array([np.nan, np.nan]))).all()


def test_bootstrap_intervals_hold_the_point_estimates(rows):
    conf, ok, values = rows
    out = iv.bootstrap(conf, ok, values, replicates=300, seed=1)
    assert sorted(out) == sorted([*VALUE_NAMES, "ece", "aurc"])
    for name, v in values.items():
        low, high = out[name]
        assert low < v.mean() < high
        # Width ~ 2 x 1.96 x sd / sqrt(N).
        assert (high - low) == pytest.approx(2 * Z95 * v.std() / math.sqrt(len(v)), rel=0.2)
    low, high = out["aurc"]
    assert low < selective_prediction(conf, ok).aurc < high
    low, high = out["ece"]
    assert 0 <= low < high < 0.1


@pytest.mark.parametrize("share_weights", [True, False])
def test_bootstrap_equals_its_pieces(rows, share_weights, monkeypatch):
    """One call = percentile intervals of bootstrap_sums and bootstrap_aurc on the same replicates."""
    if not share_weights:
        monkeypatch.setattr(iv, "SHARED_WEIGHTS_BYTES", 0)
    conf, ok, values = rows
    out = iv.bootstrap(conf, ok, values, replicates=40, seed=7, n_bins=10, level=0.9)
    sums = iv.bootstrap_sums(0, conf, ok, values, replicates=40, seed=7, n_bins=10)
    for name, m in sums.means().items():
        np.testing.assert_allclose(out[name], iv.percentile_interval(m, level=0.9), rtol=1e-12)
    np.testing.assert_allclose(out["ece"], iv.percentile_interval(sums.ece(), level=0.9), rtol=1e-12)
    aurc = iv.bootstrap_aurc(conf, ok, replicates=40, seed=7)
    np.testing.assert_allclose(out["aurc"], iv.percentile_interval(aurc, level=0.9), rtol=1e-12)


def test_bootstrap_interval_of_a_mean_covers_the_population_value():
    """NLL of a calibrated K=10 model, N=1,000, 1,000 draws of B=500; truth = E[H(p)] from 2e6 draws.

    For a calibrated model E[-log p_y | p] = H(p), so the population NLL is the mean entropy.
    """
    rng = np.random.default_rng(123)
    truth = np.mean([
        -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=1).mean()
        for p in (softmax(LOGIT_SCALE * rng.standard_normal((200_000, K))) for _ in range(10))
    ])
    draws, hits = 1000, 0
    for d in range(draws):
        probs, labels, _ = simulated_model(rng, 1000)
        conf, ok = top_label(probs, labels)
        nll = -np.log(np.maximum(probs[np.arange(1000), labels], 1e-12))
        sums = iv.bootstrap_sums(0, conf, ok, {"nll": nll}, replicates=500, seed=d)
        low, high = iv.percentile_interval(sums.means()["nll"])
        hits += low <= truth <= high
    assert 0.93 <= hits / draws <= 0.97, hits / draws


# --------------------------------------------------------------------------- calibration


def test_equal_width_ece_matches_uncertainty_bins():
    rng = np.random.default_rng(5)
    probs, labels, _ = simulated_model(rng, 2000, sharpen=1.5)
    conf, ok = top_label(probs, labels)
    assert iv.equal_width_ece(conf, ok) == pytest.approx(calibration_bins(probs, labels).ece(), rel=1e-12)
    # conf 0.1, 0.2 in bins 0 and 1 of 5; 0.9 and 1.0 in the last: |1-.1|/4 + |0-.2|/4 + |1-.95|*2/4
    ece = iv.equal_width_ece([0.1, 0.2, 0.9, 1.0], [1, 0, 1, 1], n_bins=5)
    assert ece == pytest.approx(0.9 / 4 + 0.2 / 4 + 0.1 / 4)


def test_equal_mass_ece_hand_values():
    # Bins {0.1, 0.2} (acc 1, conf .15) and {0.8, 0.9} (acc .5, conf .85).
    assert iv.equal_mass_ece([0.9, 0.1, 0.8, 0.2], [1, 1, 0, 1], n_bins=2) == pytest.approx(0.5 * 0.85 + 0.5 * 0.35)
    # np.array_split sizes 3 and 2: {.1, .2, .3} acc 2/3 conf .2; {.6, .7} acc 0 conf .65.
    assert iv.equal_mass_ece([0.1, 0.2, 0.3, 0.6, 0.7], [1, 0, 1, 0, 0], n_bins=2) == pytest.approx(
        3 / 5 * abs(2 / 3 - 0.2) + 2 / 5 * 0.65
    )
    # Tied confidences across the edge: wrong ones go to the lower bin whatever the order.
    assert iv.equal_mass_ece([0.5] * 4, [1, 0, 1, 0], n_bins=2) == pytest.approx(0.5)


def test_debiased_ece_hand_values():
    # Bin 1: acc 1, conf .15: .85^2 - 0; bin 2: acc .5, conf .85: .35^2 - .25/1.
    assert iv.debiased_ece([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 1], n_bins=2) == pytest.approx(
        math.sqrt(0.5 * 0.85**2 + 0.5 * (0.35**2 - 0.25))
    )
    # .5 * (.3^2 - .25) + .5 * (.3^2 - 0) < 0: clipped to 0.
    assert iv.debiased_ece([0.2, 0.4, 0.6, 0.8], [0, 1, 1, 1], n_bins=2) == 0.0
    # Sizes 2 and 1; the single-sample bin adds nothing: sqrt(2/3 * (.8^2 - 0)).
    assert iv.debiased_ece([0.1, 0.3, 0.5], [1, 1, 0], n_bins=2) == pytest.approx(math.sqrt(2 / 3 * 0.8**2))


def test_debiased_ece_is_closer_to_zero_on_calibrated_data():
    rng = np.random.default_rng(17)
    debiased, plugin_l1, plugin_l2 = [], [], []
    for _ in range(100):
        probs, labels, _ = simulated_model(rng, 1000)
        conf, ok = top_label(probs, labels)
        debiased.append(iv.debiased_ece(conf, ok))
        plugin_l1.append(iv.equal_mass_ece(conf, ok))
        order = np.argsort(conf, kind="stable")
        plugin_l2.append(math.sqrt(sum(
            len(b) / 1000 * (ok[b].mean() - conf[b].mean()) ** 2 for b in np.array_split(order, 15)
        )))
    assert np.mean(debiased) < 0.6 * np.mean(plugin_l2)
    assert np.mean(debiased) < np.mean(plugin_l1)


def classwise_reference(probs, labels, n_bins):
    n, k = probs.shape
    out = []
    for c in range(k):
        total = 0.0
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            inside = (probs[:, c] >= lo) & ((probs[:, c] < hi) if b < n_bins - 1 else (probs[:, c] <= hi))
            if inside.any():
                total += inside.sum() / n * abs(np.mean(labels[inside] == c) - probs[inside, c].mean())
        out.append(total)
    return np.array(out)


def test_classwise_ece_hand_values():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    labels = np.array([0, 0, 1])
    # Class 0, 2 bins: {.4} (y=1) -> |1-.4|; {.7,.9} (y=1,0) -> |.5-.8| * 2.
    # Class 1: {.3, .1} (y=0, 1) -> |.5-.2| * 2; {.6} (y=0) -> .6.
    np.testing.assert_allclose(iv.classwise_ece(probs, labels, n_bins=2), [(0.6 + 0.6) / 3, (0.6 + 0.6) / 3])
    # One bin: |mean 1[y=k] - mean p_k| = |2/3 - 2/3| and |1/3 - 1/3|.
    np.testing.assert_allclose(iv.classwise_ece(probs, labels, n_bins=1), [0.0, 0.0], atol=1e-15)


def test_classwise_ece_matches_loop_reference():
    rng = np.random.default_rng(8)
    probs, labels, _ = simulated_model(rng, 700, sharpen=0.3)
    probs[:5] = np.eye(K)[:5]  # probabilities of exactly 0 and 1
    expected = classwise_reference(probs, labels, 15)
    np.testing.assert_allclose(iv.classwise_ece(probs, labels, n_bins=15), expected, rtol=1e-12, atol=1e-15)
    assert expected.min() > 0.01  # sharpen=0.3 is under-confident: a real gap to get right


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 8), st.randoms(), st.integers(0, 2**32 - 1))
def test_calibration_metrics_ignore_row_order(n, n_bins, rnd, seed):
    rng = np.random.default_rng(seed)
    conf = rng.choice([0.0, 0.25, 0.5, 0.51, 0.9, 1.0], n)  # ties across bin edges
    ok = rng.random(n) < 0.5
    probs = rng.dirichlet(np.ones(3), n)
    labels = rng.integers(0, 3, n)
    perm = list(range(n))
    rnd.shuffle(perm)
    for f in (iv.equal_width_ece, iv.equal_mass_ece, iv.debiased_ece):
        assert f(conf[perm], ok[perm], n_bins=n_bins) == pytest.approx(f(conf, ok, n_bins=n_bins), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(
        iv.classwise_ece(probs[perm], labels[perm], n_bins=n_bins),
        iv.classwise_ece(probs, labels, n_bins=n_bins),
        rtol=1e-12,
        atol=1e-15,
    )


def test_calibrated_null_mean_matches_binomial_mean_absolute_deviation():
    # All confidences 0.5 in one bin, N=100: ECE = |S - 50| / 100, S ~ Bin(100, 1/2);
    # E|S - 50| = 51 C(100, 51) / 2^100 (mean absolute deviation of the binomial).
    null = iv.calibrated_ece_null(np.full(100, 0.5), simulations=20_000, seed=3)
    assert null.mean() == pytest.approx(51 * math.comb(100, 51) / 2**100 / 100, abs=1e-3)
    assert np.all(iv.calibrated_ece_null(np.ones(50), simulations=10) == 0)


def test_calibration_test_hand_values():
    v = iv.calibration_test(0.25, np.array([0.1, 0.2, 0.3, 0.4]))
    assert (v.verdict, v.p_value, v.simulations) == ("consistent", 3 / 5, 4)
    assert v.floor_mean == pytest.approx(0.25) and v.floor_q95 == pytest.approx(0.385)
    assert iv.calibration_test(0.3, np.array([0.1, 0.2, 0.3, 0.4])).p_value == 3 / 5  # ties count as >=
    v = iv.calibration_test(0.5, np.linspace(0, 0.1, 39))
    assert (v.verdict, v.p_value) == ("miscalibrated", 1 / 40)
    assert iv.calibration_test(0.5, np.linspace(0, 0.1, 18)).verdict == "consistent"  # p = 1/19 > .05


def verdicts(rng, n, draws, sharpen, simulations=200):
    out = []
    for _ in range(draws):
        probs, labels, _ = simulated_model(rng, n, sharpen)
        conf, ok = top_label(probs, labels)
        null = iv.calibrated_ece_null(conf, simulations=simulations, seed=int(rng.integers(2**31)))
        out.append(iv.calibration_test(iv.equal_width_ece(conf, ok), null).verdict)
    return out


@pytest.mark.parametrize("n,draws", [(1000, 200), (10_000, 100)])
def test_calibrated_model_is_found_consistent(n, draws):
    found = verdicts(np.random.default_rng(n), n, draws, sharpen=1.0)
    assert found.count("consistent") >= 0.9 * draws, found.count("consistent")


def test_overconfident_model_is_found_miscalibrated():
    found = verdicts(np.random.default_rng(99), 10_000, 100, sharpen=2.0)
    assert found.count("miscalibrated") >= 90, found.count("miscalibrated")


def test_noise_floor_shrinks_with_n():
    rng = np.random.default_rng(4)
    small, _, _ = simulated_model(rng, 1000)
    large, _, _ = simulated_model(rng, 10_000)
    floor_small = iv.calibrated_ece_null(small.max(axis=1), simulations=500).mean()
    floor_large = iv.calibrated_ece_null(large.max(axis=1), simulations=500).mean()
    # Noise ~ 1/sqrt(N): ten times the samples, ~1/3.2 the floor.
    assert floor_large == pytest.approx(floor_small / math.sqrt(10), rel=0.25)


# --------------------------------------------------------------------------- bad input


CONF, OK = np.array([0.2, 0.9, 0.6]), np.array([True, False, True])
BAD_INPUT = [
    (lambda: iv.wilson([1, 2], [3, 4, 5]), "do not broadcast"),
    (lambda: iv.wilson(5, 4), "must not exceed n"),
    (lambda: iv.wilson(1.5, 4), "whole numbers"),
    (lambda: iv.wilson(np.nan, 4), "NaN"),
    (lambda: iv.wilson(1, 4, level=95), "level"),
    (lambda: iv.equal_width_ece(CONF, OK[:2]), r"correct must have shape \(3,\)"),
    (lambda: iv.equal_mass_ece([0.2, np.nan, 0.5], OK), "NaN"),
    (lambda: iv.debiased_ece([0.2, 1.5, 0.5], OK), r"\[0, 1\]"),
    (lambda: iv.equal_width_ece([0.2, -0.1, 0.5], OK), r"\[0, 1\]"),
    (lambda: iv.equal_width_ece(CONF, [1, 2, 0]), "bool or 0/1"),
    (lambda: iv.equal_width_ece(CONF.reshape(3, 1), OK), r"shape \(N,\)"),
    (lambda: iv.bootstrap(CONF, OK, {}, replicates=0), "replicates must be an integer >= 1"),
    (lambda: iv.bootstrap_aurc(CONF, OK, replicates=-3), "replicates must be an integer >= 1"),
    (lambda: iv.bootstrap_sums(0, CONF, OK, {}, replicates=0), "replicates"),
    (lambda: iv.poisson_weights(0, 10, replicates=0, seed=0), "replicates"),
    (lambda: iv.poisson_weights(10, 5, replicates=1, seed=0), "stop must be an integer >= 10"),
    (lambda: iv.bootstrap(CONF, OK, {"nll": [1.0, 2.0]}), r"values\['nll'\] must have shape \(3,\)"),
    (lambda: iv.bootstrap(CONF, OK, {"nll": [1.0, np.inf, 2.0]}), "NaN or infinite"),
    (lambda: iv.bootstrap(CONF, OK, {"ece": [1.0, 1.0, 2.0]}), "reserved"),
    (lambda: iv.bootstrap(CONF, OK, {}, seed=-1), "seed"),
    (lambda: iv.classwise_ece(np.array([[0.5, 0.6], [0.5, 0.5]]), [0, 1]), "sum to 1"),
    (lambda: iv.classwise_ece(np.array([[0.5, 0.5], [0.5, 0.5]]), [0, 2]), r"1 labels outside \[0, 2\) \(label 1 is 2\)"),
    (lambda: iv.classwise_ece(np.array([[0.5, 0.5]]), [0, 1]), r"wrong length: 2 labels for 1 samples"),
    (lambda: iv.calibrated_ece_null([0.5, np.nan]), "NaN"),
    (lambda: iv.calibrated_ece_null(CONF, simulations=0), "simulations"),
    (lambda: iv.calibration_test(float("nan"), [0.1]), "finite"),
    (lambda: iv.calibration_test(0.1, []), r"shape \(M,\)"),
    (lambda: iv.percentile_interval(np.ones((2, 2))), r"\(B,\)"),
]


@pytest.mark.parametrize("call,message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_raises_one_line_data_error(call, message):
    with pytest.raises(DataError, match=message) as excinfo:
        call()
    one_line_data_error(excinfo)


def test_bootstrap_of_a_model_without_errors():
    """Every prediction right: AURC is 0 in every replicate, the ECE interval is the gap's, nothing crashes."""
    conf = np.linspace(0.6, 1.0, 200)
    ok = np.ones(200, bool)
    out = iv.bootstrap(conf, ok, {"nll": -np.log(conf)}, replicates=50, seed=3)
    assert out["aurc"].tolist() == [0.0, 0.0]
    assert 0 < out["ece"][0] <= out["ece"][1]
    assert iv.bootstrap_aurc(conf, ok, replicates=7, seed=1).tolist() == [0.0] * 7
