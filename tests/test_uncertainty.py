"""Tests of reportgen.uncertainty: identities, a numpy reference, hand-computed cases."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reportgen.stats import intervals as iv
from reportgen.stats import uncertainty as u
from reportgen.errors import DataError, ReportgenError

FAST = settings(max_examples=30, deadline=None)


# --------------------------------------------------------------------------- helpers


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_entropy(p):
    """Plain numpy entropy in nats with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)


def ref_stats(samples, labels):
    """Plain numpy reference of every per-sample statistic from all (S, N, K) samples."""
    s, n, k = samples.shape
    mean = samples.mean(axis=0)
    votes = np.stack([(samples.argmax(axis=2) == j).sum(axis=0) for j in range(k)], axis=1)
    ordered = np.sort(mean, axis=1)
    total = ref_entropy(mean)
    aleatoric = ref_entropy(samples).mean(axis=0)
    return dict(
        mean_probs=mean,
        std_probs=samples.std(axis=0),
        expected_entropy=aleatoric,
        votes=votes,
        predicted=mean.argmax(axis=1),
        correct=mean.argmax(axis=1) == labels,
        confidence=ordered[:, -1],
        margin=ordered[:, -1] - ordered[:, -2],
        total=total,
        aleatoric=aleatoric,
        epistemic=total - aleatoric if s > 1 else np.zeros(n),
        variation_ratio=1 - votes.max(axis=1) / s,
    )


def accumulate(samples, cuts=()):
    s, n, k = samples.shape
    acc = u.SampleAccumulator(n, k)
    edges = [0, *cuts, n]
    for a, b in reversed(list(zip(edges[:-1], edges[1:]))):  # out of order on purpose
        acc.add(a, samples[:, a:b])
    return acc.result()


def sample_labels(rng, probs):
    """One label per row drawn from that row's probabilities (a calibrated model by construction)."""
    cdf = np.cumsum(probs, axis=1)
    return np.minimum((cdf < rng.random((len(probs), 1))).sum(axis=1), probs.shape[1] - 1)


# Logits on a 0.25 grid in [-8, 8], sometimes -1000 so that some probabilities are exactly 0.
# A grid makes argmax ties exact instead of 1-ulp apart, where any two correct codes may differ.
logit = st.one_of(st.integers(-32, 32).map(lambda i: i / 4), st.just(-1000.0))


@st.composite
def sample_sets(draw):
    s = draw(st.integers(1, 4))
    n = draw(st.integers(1, 12))
    k = draw(st.integers(2, 6))
    samples = softmax(draw(hnp.arrays(np.float64, (s, n, k), elements=logit)))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=4)) - {n})
    return samples, labels, cuts


# --------------------------------------------------------------------------- import


def test_import_does_not_load_tensorflow():
    code = "import sys, reportgen.stats.uncertainty; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- per-sample


@FAST
@given(sample_sets())
def test_per_sample_matches_numpy_reference_and_identities(case):
    samples, labels, cuts = case
    pred = accumulate(samples, cuts)
    stats = u.per_sample(pred, labels)
    ref = ref_stats(samples, labels)
    for name in ("mean_probs", "std_probs", "expected_entropy"):
        np.testing.assert_allclose(getattr(pred, name), ref[name], atol=1e-7, err_msg=name)
    np.testing.assert_array_equal(pred.votes, ref["votes"])
    assert pred.votes.dtype == np.int32 and pred.n_samples == samples.shape[0]
    # Means of tied classes can differ in the last bit by summation order: there, any argmax will do.
    clear = ref["margin"] > 1e-9
    np.testing.assert_array_equal(stats.predicted[clear], ref["predicted"][clear])
    np.testing.assert_allclose(ref["mean_probs"][np.arange(len(labels)), stats.predicted],
                               ref["confidence"], atol=1e-12)
    np.testing.assert_array_equal(stats.correct, stats.predicted == labels)
    for name in ("confidence", "margin", "total", "aleatoric", "epistemic", "variation_ratio"):
        np.testing.assert_allclose(getattr(stats, name), ref[name], atol=1e-7, err_msg=name)
    np.testing.assert_allclose(pred.mean_probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(stats.total, stats.aleatoric + stats.epistemic, atol=1e-5)
    for name in ("total", "aleatoric", "epistemic", "margin", "variation_ratio"):
        assert getattr(stats, name).min() >= -1e-7, name
    assert stats.epistemic_measured == (samples.shape[0] > 1)


@FAST
@given(sample_sets())
def test_accumulator_batches_equal_one_batch(case):
    samples, _, cuts = case
    whole, split = accumulate(samples), accumulate(samples, cuts)
    for name in ("mean_probs", "std_probs", "expected_entropy"):
        np.testing.assert_allclose(getattr(split, name), getattr(whole, name), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(split.votes, whole.votes)


def test_identical_samples_have_zero_epistemic_and_zero_spread():
    p = softmax(np.random.default_rng(1).normal(size=(6, 4)) * 3)
    pred = accumulate(np.repeat(p[None], 5, axis=0))
    stats = u.per_sample(pred, np.zeros(6, dtype=np.int64))
    assert stats.epistemic_measured
    np.testing.assert_allclose(stats.epistemic, 0.0, atol=1e-12)
    np.testing.assert_allclose(pred.std_probs, 0.0, atol=1e-12)
    np.testing.assert_array_equal(stats.variation_ratio, 0.0)


def test_uniform_probabilities_have_entropy_log_k():
    pred = accumulate(softmax(np.zeros((3, 2, 7))))
    stats = u.per_sample(pred, np.array([0, 6]))
    np.testing.assert_allclose(stats.total, math.log(7), rtol=1e-12)
    np.testing.assert_allclose(stats.aleatoric, math.log(7), rtol=1e-12)
    np.testing.assert_allclose(stats.margin, 0.0, atol=1e-15)


def test_disagreeing_one_hot_samples_are_purely_epistemic():
    # Two confident passes that disagree: H(mean) = log 2, every pass has H = 0.
    pred = accumulate(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))
    stats = u.per_sample(pred, np.array([0]))
    assert stats.aleatoric[0] == 0.0
    assert stats.epistemic[0] == pytest.approx(math.log(2), rel=1e-12)
    assert stats.variation_ratio[0] == 0.5
    np.testing.assert_allclose(pred.std_probs, [[0.5, 0.5]])


def test_one_pass_marks_epistemic_as_not_measured():
    p = softmax(np.random.default_rng(2).normal(size=(1, 5, 3)))
    pred = accumulate(p)
    stats = u.per_sample(pred, np.zeros(5, dtype=np.int64))
    assert not stats.epistemic_measured and stats.n_samples == 1
    np.testing.assert_array_equal(stats.epistemic, 0.0)
    np.testing.assert_array_equal(pred.std_probs, 0.0)
    np.testing.assert_allclose(stats.total, ref_entropy(p[0]), atol=1e-12)


def test_accumulator_rejects_bad_use():
    acc = u.SampleAccumulator(4, 2)
    good = np.full((3, 2, 2), 0.5)
    acc.add(0, good)
    with pytest.raises(DataError, match="already added"):
        acc.add(1, good)
    with pytest.raises(DataError, match="S=3"):
        acc.add(2, np.full((2, 2, 2), 0.5))
    with pytest.raises(DataError, match="sum to 1"):
        acc.add(2, np.full((3, 2, 2), 0.9))
    with pytest.raises(DataError, match="outside"):
        acc.add(3, good)
    with pytest.raises(DataError, match="2 of 4 rows were never added"):
        acc.result()
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        u.per_sample(accumulate(good), np.array([0, 2]))


# --------------------------------------------------------------------------- calibration


def test_perfectly_calibrated_set_has_ece_near_zero():
    # Binary, confidence c ~ U(0.5, 1), correct with probability c. With N = 100 000 the
    # sampling noise of ECE is about sum_b w_b * sqrt(2 c(1-c) / (pi n_b)) ~ 0.002; we allow 0.01.
    rng = np.random.default_rng(0)
    n = 100_000
    c = rng.uniform(0.5, 1.0, n)
    probs = np.stack([c, 1 - c], axis=1)
    labels = np.where(rng.random(n) < c, 0, 1)
    assert u.calibration(probs, labels).ece < 0.01
    # Control: the same confidences with accuracy 0.1 lower give ECE ~ 0.1.
    shifted = np.where(rng.random(n) < c - 0.1, 0, 1)
    assert u.calibration(probs, shifted).ece == pytest.approx(0.1, abs=0.01)


def test_hand_computed_overconfident_case():
    # 10 bins. Bin 9: conf 0.95, 0.95 -> 1 of 2 right, gap 0.45. Bin 8: 0.85, 0.85 -> 1 of 2, gap 0.35.
    # Bin 6: 0.65 -> wrong, gap 0.65. ECE = (2*0.45 + 2*0.35 + 0.65) / 5 = 0.45, MCE = 0.65.
    conf = np.array([0.95, 0.95, 0.85, 0.85, 0.65])
    probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)
    labels = np.array([0, 1, 0, 2, 1])
    cal = u.calibration(probs, labels, n_bins=10)
    assert cal.ece == pytest.approx(0.45, abs=1e-6)  # TFP works in float32
    assert cal.mce is None  # no bin holds 30 samples: a gap from 1 or 2 samples is not evidence
    assert u._compute_bins(probs, labels, 10).mce(min_count=1) == pytest.approx(0.65, abs=1e-12)
    np.testing.assert_array_equal(cal.bin_count, [0, 0, 0, 0, 0, 0, 1, 0, 2, 2])
    np.testing.assert_allclose(cal.bin_accuracy[[6, 8, 9]], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(cal.bin_confidence[[6, 8, 9]], [0.65, 0.85, 0.95])
    assert np.isnan(cal.bin_accuracy[0]) and np.isnan(cal.bin_confidence[7])
    np.testing.assert_allclose(cal.bin_edges, np.linspace(0, 1, 11))


def test_bin_convention_matches_tensorflow_histogram():
    import tensorflow as tf

    values = np.array([0.0, 0.2, 0.25, 0.5, 0.6, 0.7999999, 0.8, 0.93, 1.0])
    expected = tf.histogram_fixed_width_bins(values, np.array([0.0, 1.0]), nbins=5).numpy()
    bins = u._bins_from_confidence(values, np.ones(len(values), bool), 5)
    np.testing.assert_array_equal(bins.count, np.bincount(expected, minlength=5))
    np.testing.assert_array_equal(bins.count, [1, 2, 1, 2, 3])  # [0.2, 0.4) is left-closed; 1.0 in the last


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_float64_ece_equals_tfp_ece_within_its_float32_rounding(n_bins):
    """The reported ECE is the float64 sum over TFP's bins (a sharded run can add it up exactly); TFP's own float32
    tfp.stats.expected_calibration_error over the same bins agrees within 1e-6."""
    rng = np.random.default_rng(n_bins)
    probs = softmax(rng.normal(size=(3000, 10)) * 2.5)
    labels = sample_labels(rng, softmax(rng.normal(size=(3000, 10)) * 1.0 + np.log(probs)))
    cal = u.calibration(probs, labels, n_bins=n_bins)
    numpy_ece = u.calibration_bins(probs, labels, n_bins=n_bins).ece()
    assert cal.ece > 0.01  # not a trivially calibrated case
    assert cal.ece == numpy_ece
    assert u._tfp_ece(probs, labels, n_bins) == pytest.approx(cal.ece, abs=1e-6)
    assert u._tfp_ece(probs, labels, n_bins) != cal.ece  # float32 and float64 do differ, in the last digits


def test_calibration_bins_merge_across_batches():
    rng = np.random.default_rng(3)
    probs = softmax(rng.normal(size=(500, 4)) * 2)
    labels = rng.integers(0, 4, 500)
    whole = u.calibration_bins(probs, labels)
    parts = u.calibration_bins(probs[:123], labels[:123]) + u.calibration_bins(probs[123:], labels[123:])
    np.testing.assert_array_equal(parts.count, whole.count)
    np.testing.assert_array_equal(parts.sum_correct, whole.sum_correct)
    np.testing.assert_allclose(parts.sum_confidence, whole.sum_confidence, rtol=1e-12)
    assert parts.ece() == pytest.approx(u.calibration(probs, labels).ece, abs=1e-6)
    with pytest.raises(ReportgenError):
        whole.merge(u.calibration_bins(probs, labels, n_bins=5))


def test_brier_and_nll_on_tiny_example():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    cal = u.calibration(probs, np.array([0, 2]))
    # Row 0: 0.3^2 + 0.2^2 + 0.1^2 = 0.14; row 1: 0.1^2 + 0.6^2 + 0.7^2 = 0.86.
    assert cal.brier == pytest.approx(0.5, abs=1e-12)
    assert cal.nll == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2, abs=1e-12)


def test_nll_floors_zero_probability():
    cal = u.calibration(np.array([[1.0, 0.0]]), np.array([1]))
    assert cal.nll == pytest.approx(-math.log(1e-12))


def test_calibration_rejects_logits():
    with pytest.raises(DataError, match="rows do not sum to 1.*are these logits"):
        u.calibration(np.array([[0.9, 0.9]]), np.array([0]))


# --------------------------------------------------------------------------- temperature


def calibrated_model(seed, n=6000, k=10):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    return logits, sample_labels(rng, softmax(logits))


def test_temperature_scaling_fixes_overconfident_model():
    logits, labels = calibrated_model(0)
    over = softmax(3 * logits)
    ts = u.temperature_scaling(over, labels)
    assert ts.temperature == pytest.approx(3.0, rel=0.1)
    assert ts.nll_after < ts.nll_before - 0.3
    assert ts.ece_after < ts.ece_before / 3
    assert ts.nll_before == pytest.approx(u.calibration(over, labels).nll)


def test_temperature_is_near_one_for_calibrated_model():
    logits, labels = calibrated_model(1)
    t = u.fit_temperature(logits, labels)
    assert t == pytest.approx(1.0, abs=0.06)  # SE of T at N = 6000 is ~0.02
    nll = lambda tt: u._nll_at_temperature(logits, labels, tt)  # noqa: E731
    assert nll(t) <= min(nll(t * 1.01), nll(t / 1.01))


def test_temperature_scaling_scores_out_of_fold():
    logits, labels = calibrated_model(2, n=801, k=4)
    probs = softmax(2 * logits)
    ts = u.temperature_scaling(probs, labels, seed=7)
    # Recompute the scheme independently from the public fit_temperature: halves by a per-row hash.
    z = np.log(probs)
    in_a = iv.row_uniform(np.arange(801), seed=7, stream=iv.HALF_STREAM) < 0.5
    a, b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    assert 300 < len(a) < 500
    scaled = np.empty_like(probs)
    scaled[b] = softmax(z[b] / u.fit_temperature(z[a], labels[a]))
    scaled[a] = softmax(z[a] / u.fit_temperature(z[b], labels[b]))
    expected = -np.mean(np.log(scaled[np.arange(801), labels]))
    assert ts.nll_after == pytest.approx(expected, rel=1e-9)
    in_sample = -np.mean(np.log(softmax(z / ts.temperature)[np.arange(801), labels]))
    assert ts.nll_after > in_sample  # held out is (slightly) worse than fitted in-sample
    assert "2-fold" in ts.method and "seed 7" in ts.method


# --------------------------------------------------------------------------- selective


def test_selective_prediction_hand_case():
    conf = np.array([0.6, 0.9, 0.5, 0.7, 0.8])
    correct = np.array([True, True, False, False, True])
    # Sorted by confidence: right, right, wrong, right, wrong -> risks 0, 0, 1/3, 1/4, 2/5.
    sel = u.selective_prediction(conf, correct)
    assert sel.aurc == pytest.approx((1 / 3 + 1 / 4 + 2 / 5) / 5, abs=1e-12)
    np.testing.assert_allclose(sel.risk, [0, 0, 1 / 3, 1 / 4, 2 / 5])
    np.testing.assert_allclose(sel.coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
    # 80 % of 5 = 4 samples -> 3/4; 90, 95 and 99 % round up to all 5 -> 3/5.
    assert sel.accuracy_at == pytest.approx({"80": 0.75, "90": 0.6, "95": 0.6, "99": 0.6})
    assert sel.threshold_1pct == 0.8
    assert sel.kept_at == {"80": 4, "90": 5, "95": 5, "99": 5}


def test_selective_prediction_ties_do_not_depend_on_order():
    # Two samples tied at 0.9, one wrong: expected risk 1/2 at coverage 1/2, 1/2 at 1.
    for correct in ([True, False], [False, True]):
        sel = u.selective_prediction(np.array([0.9, 0.9]), np.array(correct))
        assert sel.aurc == pytest.approx(0.5)
        assert sel.threshold_1pct is None


@FAST
@given(
    hnp.arrays(np.float64, st.integers(1, 40), elements=st.sampled_from([0.3, 0.5, 0.7, 0.9, 1.0])),
    st.randoms(use_true_random=False),
)
def test_selective_prediction_is_order_invariant(conf, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2**31))
    correct = rng.random(len(conf)) < 0.8
    perm = rng.permutation(len(conf))
    a, b = u.selective_prediction(conf, correct), u.selective_prediction(conf[perm], correct[perm])
    assert a.aurc == pytest.approx(b.aurc, abs=1e-12)
    assert a.accuracy_at == pytest.approx(b.accuracy_at, abs=1e-12)
    assert a.threshold_1pct == b.threshold_1pct
    if a.threshold_1pct is not None:
        kept = conf >= a.threshold_1pct
        assert (~correct[kept]).mean() <= 0.01


def test_threshold_is_none_when_everything_is_wrong():
    sel = u.selective_prediction(np.array([0.95, 0.6, 0.4]), np.zeros(3, bool))
    assert sel.threshold_1pct is None and sel.crossfit is None
    assert sel.aurc == 1.0 and sel.accuracy_at["80"] == 0.0


def test_threshold_takes_the_largest_coverage_under_one_percent():
    # Top sample wrong, then 150 right: 1/151 < 1 % once all 151 are kept; then one more wrong.
    conf = np.linspace(1.0, 0.0, 152)
    correct = np.r_[False, np.ones(150, bool), False]
    sel = u.selective_prediction(conf, correct)
    assert sel.threshold_1pct == pytest.approx(conf[150])


def test_crossfitted_risk_is_measured_on_the_other_half():
    """In-sample, the threshold looks perfect; each half's threshold, counted on the other half, shows the real error."""
    rng = np.random.default_rng(3)
    n = 4000
    conf = rng.random(n)
    correct = rng.random(n) < 0.97 + 0.03 * conf  # ~1.5 % errors everywhere, a little fewer at high confidence
    sel = u.selective_prediction(conf, correct, seed=1)
    cf = sel.crossfit
    in_a = iv.row_uniform(np.arange(n), seed=1, stream=iv.HALF_STREAM) < 0.5
    a, b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    kept = errors = 0
    for fit, score in ((a, b), (b, a)):
        t = u._threshold(conf[fit], correct[fit])
        keep = conf[score] >= t
        kept += keep.sum()
        errors += (~correct[score][keep]).sum()
    assert (cf["kept"], cf["errors"]) == (kept, errors)
    assert cf["risk"] == pytest.approx(errors / kept) and cf["coverage"] == pytest.approx(kept / n)
    in_sample = (~correct[conf >= sel.threshold_1pct]).mean()
    assert in_sample <= 0.01 < cf["risk"]  # the honest estimate is worse than the optimistic one here


def test_curve_is_thinned_but_aurc_uses_full_curve():
    rng = np.random.default_rng(5)
    conf = rng.random(2000)
    correct = rng.random(2000) < conf
    sel = u.selective_prediction(conf, correct)
    order = np.argsort(-conf)
    full_risk = np.cumsum(~correct[order]) / np.arange(1, 2001)
    assert len(sel.coverage) <= 500 and sel.coverage[-1] == 1.0
    assert sel.aurc == pytest.approx(full_risk.mean(), abs=1e-12)


# --------------------------------------------------------------------------- per class, summary


def small_case():
    probs = np.array([[0.9, 0.05, 0.05], [0.62, 0.28, 0.1], [0.2, 0.73, 0.07], [0.25, 0.33, 0.42]])
    labels = np.array([0, 1, 1, 1])
    pred = accumulate(np.stack([probs, probs]))
    return u.per_sample(pred, labels), labels, probs


def test_per_class_hand_case():
    stats, labels, probs = small_case()
    rows = u.per_class(stats, labels, probs, n_classes=3, class_names=["a", "b", "c"], n_bins=10)
    a, b, c = rows
    # Predictions: 0, 0, 1, 2. Class a: 1 of 1 right; predicted twice, right once.
    assert (a["count"], a["correct"], a["accuracy"], a["predicted"], a["precision"]) == (1, 1, 1.0, 2, 0.5)
    assert a["mean_confidence"] == pytest.approx(0.9) and a["mean_aleatoric"] == pytest.approx(ref_entropy(probs[0]))
    # Wilson 95 % for 1 of 1: [1/(1 + z^2), 1].
    z2 = 1.959963984540054 ** 2
    assert a["accuracy_ci"] == pytest.approx([1 / (1 + z2), 1.0])
    assert b["count"] == 3 and b["accuracy"] == pytest.approx(1 / 3) and b["precision"] == 1.0
    assert b["mean_confidence"] == pytest.approx((0.62 + 0.73 + 0.42) / 3)
    # Classwise ECE of class b: p_b = .05 .28 .73 .33 against 1[y = b] = 0 1 1 1, 10 bins:
    # bins 0 {.05: 0}, 2 {.28: 1}, 3 {.33: 1}, 7 {.73: 1} -> (0.05 + 0.72 + 0.67 + 0.27) / 4.
    assert b["classwise_ece"] == pytest.approx((0.05 + 0.72 + 0.67 + 0.27) / 4)
    assert c["count"] == 0 and c["accuracy"] is None and c["accuracy_ci"] is None and c["predicted"] == 1
    assert c["precision"] == 0.0 and c["mean_confidence"] is None


def test_per_class_epistemic_none_for_one_pass():
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    stats = u.per_sample(accumulate(probs[None]), np.array([0, 1]))
    rows = u.per_class(stats, np.array([0, 1]), probs, n_classes=2, class_names=["x", "y"])
    assert [r["mean_epistemic"] for r in rows] == [None, None]
    with pytest.raises(DataError, match="class_names"):
        u.per_class(stats, np.array([0, 1]), probs, n_classes=2, class_names=["x"])


def test_summarize_keys_and_values():
    stats, labels, probs = small_case()
    out = u.summarize(stats, u.calibration(probs, labels), u.temperature_scaling(probs, labels),
                      u.selective_prediction(stats.confidence, stats.correct))
    from reportgen import metrics

    expected_keys = {"accuracy", "n_samples", "mean_confidence", "mean_entropy", "mean_aleatoric",
                     "mean_epistemic", "ece", "mce", "brier", "nll", "ece_temperature_scaled",
                     "nll_temperature_scaled", "temperature", "aurc", "acc_at_80", "acc_at_90",
                     "acc_at_95", "acc_at_99", "threshold_1pct", "coverage_1pct", "risk_1pct", "ece_debiased",
                     "ece_equal_mass", "ece_noise_floor", "ece_p_value", "classwise_ece"}
    assert expected_keys <= set(out) and set(out) <= set(metrics.names())
    assert out["accuracy"] == 0.5 and out["n_samples"] == 4 and out["n_passes"] == 2
    assert out["mean_epistemic"] == pytest.approx(0.0, abs=1e-12)
    # Sorted: 0.9 right, 0.73 right, 0.62 wrong, 0.42 wrong -> keep the top two.
    assert out["threshold_1pct"] == pytest.approx(0.73)
    assert all(v is None or type(v) in (int, float) for v in out.values())
    json.dumps(out)


# --------------------------------------------------------------------------- intervals and facts


def test_interval_metrics_wilson_for_accuracy_and_bootstrap_around_the_point():
    rng = np.random.default_rng(2)
    n, k = 2000, 5
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    stats = u.per_sample(accumulate(probs[None]), y)
    sel = u.selective_prediction(stats.confidence, stats.correct)
    ci = u.interval_metrics(stats, probs, y, sel, replicates=400, seed=0)
    from reportgen.stats.intervals import wilson

    assert [ci["accuracy_ci_low"], ci["accuracy_ci_high"]] == pytest.approx(list(wilson(int(stats.correct.sum()), n)))
    nll = float(-np.mean(np.log(probs[np.arange(n), y])))
    assert ci["nll_ci_low"] < nll < ci["nll_ci_high"] and ci["nll_ci_high"] - ci["nll_ci_low"] < 0.1
    assert ci["mean_epistemic_ci_low"] is None  # one pass: not measured, no interval
    for key in ("ece", "brier", "aurc", "mean_confidence", "acc_at_90", "risk_1pct"):
        assert ci[f"{key}_ci_low"] <= ci[f"{key}_ci_high"], key


def test_error_facts_count_confusions_and_errors_among_the_most_uncertain():
    labels = np.array([4, 9, 4, 1, 2, 3, 5, 6, 7, 8] * 4)
    predicted = labels.copy()
    predicted[:3] = [9, 4, 9]
    predicted[3] = 7
    aleatoric = np.r_[[2.0, 1.9], np.zeros(38)]  # the 5 % (2 of 40) most aleatoric are errors
    stats = make_stats(labels, predicted, np.full(40, 0.97), aleatoric)
    facts = u.error_facts(stats, labels, 10)
    cm = np.array(facts["confusion"])
    assert cm[4, 9] == 2 and cm[9, 4] == 1 and cm[1, 7] == 1 and cm.sum() == 40
    assert (facts["n_errors"], facts["top_count"], facts["errors_in_top"], facts["top_statistic"]) == (4, 2, 2, "total")


def make_stats(labels, predicted, confidence, aleatoric, s=1):
    n = len(labels)
    total = np.asarray(aleatoric, float)
    return u.UncertaintyStats(
        predicted=np.asarray(predicted), correct=np.asarray(predicted) == labels,
        confidence=np.asarray(confidence, float), margin=np.zeros(n), total=total,
        aleatoric=total, epistemic=np.zeros(n), variation_ratio=np.zeros(n),
        n_samples=s, epistemic_measured=s > 1)


def _histogram_and_detail(conf: np.ndarray, ok: np.ndarray, detail_bins) -> tuple:
    """A sharded run's view of (conf, ok): the fine confidence histogram and the distinct samples of some bins."""
    b = iv.confidence_bins(conf)
    h = iv.n_confidence_bins()
    count, errors = np.bincount(b, minlength=h), np.bincount(b[~ok], minlength=h)
    low = np.full(h, np.inf)
    np.minimum.at(low, b, conf)
    detail = {}
    for j in detail_bins:
        m = b == j
        d = np.zeros(int(m.sum()), dtype=[("conf", "f8"), ("ok", "?"), ("count", "i8")])
        d["conf"], d["ok"], d["count"] = conf[m], ok[m], 1
        detail[int(j)] = d
    return count, errors, low, np.bincount(b, weights=conf, minlength=h), detail


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(30, 2000), st.sampled_from([0.002, 0.02, 0.1]), st.integers(2, 6))
def test_histogram_selective_with_detail_equals_the_sorted_computation(seed, n, scale, digits):
    """With the threshold candidates and the coverage cuts' bins detailed, a sharded run's selective stats are exact."""
    rng = np.random.default_rng(seed)
    conf = np.clip(1 - np.round(rng.exponential(scale, n), digits), 0.1, 1.0)  # many exact ties
    ok = rng.random(n) < conf
    exact = u._compute_selective(conf, ok, 0)
    b = iv.confidence_bins(conf)
    count = np.bincount(b, minlength=iv.n_confidence_bins())
    end = np.cumsum(count)
    need = {*u.threshold_candidates(count, np.bincount(b[~ok], minlength=len(count))).tolist(),
            *(int(np.searchsorted(end, -(-p * n // 100) - 1, side="right")) for p in u.COVERAGE_PERCENTS)}
    count, errors, low, _, detail = _histogram_and_detail(conf, ok, need)
    sel = u.selective_from_histogram(count, errors, low, None, detail=detail)
    assert sel.threshold_1pct == exact.threshold_1pct
    assert sel.accuracy_at == pytest.approx(exact.accuracy_at, abs=1e-12)
    assert abs(sel.aurc - exact.aurc) <= iv.aurc_histogram_bound(count, errors) + 1e-12


def test_equal_mass_ece_from_a_histogram_is_exact_where_detailed_and_pro_rata_elsewhere():
    rng = np.random.default_rng(5)
    conf = np.round(rng.uniform(0.3, 1.0, 5000), 3)
    ok = rng.random(5000) < conf
    exact = iv._equal_mass_sums(conf, ok, 15)
    count, errors, _, sum_conf, detail = _histogram_and_detail(conf, ok, np.unique(iv.confidence_bins(conf)))
    sharded = iv.equal_mass_from_histogram(count, count - errors, sum_conf, detail=detail)
    for a, b in zip(sharded, exact):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-9)
    assert iv.debiased_from_sums(*sharded) == pytest.approx(iv.debiased_ece(conf, ok), rel=1e-9)
    rough = iv.equal_mass_from_histogram(count, count - errors, sum_conf)  # no detail: a cut bin is split pro rata
    assert np.abs(rough[2] - exact[2]).max() > 0.5 and np.abs(rough[2] - exact[2]).max() <= count.max()
