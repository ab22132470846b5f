"""Tests for reportgen.label_issues: confident learning, validation, and telling label errors from model errors."""

from __future__ import annotations

import functools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen import validate
from reportgen.errors import DataError
from reportgen.stats.labels import (
    CASES,
    RANKERS,
    LabelIssues,
    _calibrate,
    _compute_prune_counts,
    _confident_counts,
    _group_by_label,
    _prune_by_noise_rate,
    _round_rows,
    drop_flags,
    separate_cases,
)
from reportgen.stats.labels import find_label_issues as _find_label_issues

# Most tests below check the reference algorithm convention by convention, so they call it by that name;
# the default rule's own difference (thresholds capped at CONFIDENT_PROBABILITY) is tested on its own.
find_label_issues = functools.partial(_find_label_issues, rule="cleanlab")


def make_noisy(n, k, *, noise, seed, strength=(5.0, 40.0), base=1.0):
    """Seeded probabilities drawn around the TRUE class, with a fraction of labels flipped.

    Args:
        n, k: samples and classes.
        noise: fraction of labels moved to a uniformly chosen other class.
        strength: range of the extra Dirichlet concentration on the true class (harder = lower).
    Returns:
        (labels (n,) int64, probs (n, k) float64, flipped (n,) bool, true (n,) int64).
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(k, size=n)
    alpha = np.full((n, k), base)
    alpha[np.arange(n), true] += rng.uniform(*strength, size=n)
    draws = rng.gamma(alpha)
    probs = draws / draws.sum(axis=1, keepdims=True)
    flipped = rng.random(n) < noise
    labels = true.copy()
    labels[flipped] = (true[flipped] + rng.integers(1, k, size=flipped.sum())) % k
    return labels, probs, flipped, true


def precision_recall(mask, truth):
    hits = np.sum(mask & truth)
    return hits / max(mask.sum(), 1), hits / truth.sum()


# ----------------------------------------------------------------- known flips


def test_known_flips_found_at_clear_noise():
    labels, probs, flipped, true = make_noisy(3000, 5, noise=0.1, seed=0)
    issues = find_label_issues(labels, probs)
    precision, recall = precision_recall(issues.issue_mask, flipped)
    # Measured over seeds 0-19 at this setting: precision >= 0.993, recall >= 0.906.
    assert precision >= 0.97
    assert recall >= 0.9
    # The estimate from the calibrated joint is close to the true number of flips.
    assert abs(issues.n_issues_estimated - flipped.sum()) <= 0.1 * flipped.sum()
    # Flagged true flips get their true class back as the suggestion (probs peak there).
    is_flip = flipped[issues.flagged]
    assert np.mean(issues.suggested[is_flip] == true[issues.flagged][is_flip]) >= 0.98
    # Internally consistent views of the same flags.
    assert np.array_equal(np.sort(issues.flagged), np.flatnonzero(issues.issue_mask))
    assert issues.per_class_issues.sum() == len(issues.flagged)
    assert np.array_equal(issues.per_class_issues, np.bincount(labels[issues.flagged], minlength=5))
    assert np.all(np.diff(issues.score) >= 0), "most likely issue first"
    assert np.all(issues.suggested != labels[issues.flagged])


@pytest.mark.parametrize("noise", [0.05, 0.3])
def test_flagged_count_tracks_noise_level(noise):
    labels, probs, flipped, _ = make_noisy(3000, 5, noise=noise, seed=1)
    issues = find_label_issues(labels, probs)
    # Measured: 131 of 137 flips at 5 %, 876 of 887 at 30 %.
    assert 0.9 * flipped.sum() <= len(issues.flagged) <= 1.02 * flipped.sum()
    assert abs(issues.n_issues_estimated - flipped.sum()) <= 0.05 * flipped.sum()


def test_rank_by_normalized_margin_orders_by_that_score():
    labels, probs, _, _ = make_noisy(2000, 4, noise=0.1, seed=2)
    by_conf = find_label_issues(labels, probs)
    by_margin = find_label_issues(labels, probs, rank_by="normalized_margin")
    assert set(by_conf.flagged) == set(by_margin.flagged)
    expected = RANKERS["normalized_margin"](labels[by_margin.flagged], probs[by_margin.flagged])
    np.testing.assert_allclose(by_margin.score, expected)
    assert np.all(np.diff(by_margin.score) >= 0)
    assert by_margin.rank_by == "normalized_margin"
    np.testing.assert_allclose(by_conf.score, by_conf.self_confidence)


def test_unknown_rank_by_lists_valid_names():
    with pytest.raises(ValueError, match="normalized_margin, self_confidence"):
        find_label_issues([0, 1], [[0.9, 0.1], [0.1, 0.9]], rank_by="entropy")


# ----------------------------------------------------------------- exact cases


def test_one_hot_on_given_labels_flags_nothing():
    labels = np.array([0, 1, 2, 0, 1, 2, 2])  # class 3 is never given
    probs = np.eye(4)[labels]
    issues = find_label_issues(labels, probs)
    assert len(issues.flagged) == 0
    assert not issues.issue_mask.any()
    assert issues.n_issues_estimated == 0
    np.testing.assert_array_equal(issues.noise_matrix, np.eye(4))
    np.testing.assert_array_equal(issues.confident_joint, np.diag([2, 2, 3, 0]))
    np.testing.assert_array_equal(issues.thresholds[:3], [1.0, 1.0, 1.0])
    assert np.isnan(issues.thresholds[3])
    np.testing.assert_array_equal(issues.per_class_issues, [0, 0, 0, 0])


def test_tiny_hand_computed_case():
    # Recomputed by hand for the reference conventions (cleanlab's default path); every step
    # is the same as under the paper's rules here, nothing needs rounding.
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [
            [0.90, 0.05, 0.05],
            [0.10, 0.80, 0.10],  # given 0, passes only t_1: C[0][1]
            [0.10, 0.70, 0.20],
            [0.20, 0.60, 0.20],  # below t_1 = 0.65 and every other threshold: not counted
            [0.10, 0.10, 0.80],
            [0.30, 0.10, 0.60],  # below t_2 = 0.70: not counted
        ]
    )
    issues = find_label_issues(labels, probs)
    # t_j = mean of p_j over the samples given j.
    np.testing.assert_allclose(issues.thresholds, [0.5, 0.65, 0.7])
    np.testing.assert_array_equal(issues.confident_joint, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert issues.confident_joint.dtype == np.int64
    # Every diagonal is >= 1 already; rows scaled to the class counts [2, 2, 2]:
    # [1, 1, 0], [0, 2, 0], [0, 0, 2] (integers, so rounding changes nothing); / N = 6.
    np.testing.assert_allclose(
        issues.calibrated_joint, [[1 / 6, 1 / 6, 0], [0, 1 / 3, 0], [0, 0, 1 / 3]]
    )
    np.testing.assert_allclose(
        issues.noise_matrix, [[1, 1 / 3, 0], [0, 2 / 3, 0], [0, 0, 1]]
    )
    assert issues.n_issues_estimated == 1
    # Prune 1 of the given-0 samples into class 1: margins p_1 - p_0 are -0.85 and 0.7, so
    # sample 1; its given label is not the argmax even after + 1e-6, so it stays flagged.
    np.testing.assert_array_equal(issues.flagged, [1])
    np.testing.assert_array_equal(issues.suggested, [1])
    np.testing.assert_allclose(issues.self_confidence, [0.1])
    np.testing.assert_array_equal(issues.per_class_issues, [1, 0, 0])


def test_hand_computed_case_with_two_passing_classes():
    # Computed by hand. Thresholds: t_0 = (0.9 + 0.8) / 2 = 0.85, t_1 = (0.6 + 0.1) / 2 = 0.35,
    # t_2 = (0.25 + 0.0 + 0.5) / 3 = 0.25.
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # passes t_0 only: C[0][0]
            [0.80, 0.10, 0.10],  # passes nothing: not counted
            [0.10, 0.60, 0.30],  # passes t_1 and t_2; argmax 1: C[1][1]
            [0.85, 0.10, 0.05],  # passes t_0 only: C[1][0]
            [0.40, 0.35, 0.25],  # passes t_1 and t_2 but not t_0; the ROW argmax is 0: C[2][0]
            [0.10, 0.90, 0.00],  # passes t_1 only: C[2][1]
            [0.30, 0.20, 0.50],  # passes t_2 only: C[2][2]
        ]
    )
    issues = find_label_issues(labels, probs)
    np.testing.assert_allclose(issues.thresholds, [0.85, 0.35, 0.25])
    # Under the paper's eq. 1 (argmax among passing classes) sample 4 would count in C[2][1].
    np.testing.assert_array_equal(issues.confident_joint, [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # Rows scaled to the class counts [2, 2, 3]: [2, 0, 0], [1, 1, 0], [1, 1, 1]; / N = 7.
    np.testing.assert_allclose(issues.calibrated_joint, np.array([[2, 0, 0], [1, 1, 0], [1, 1, 1]]) / 7)
    # Prune counts: given 1 -> 1 into class 0; given 2 -> 1 into class 0 and 1 into class 1.
    # Given 1, p_0 - p_1: sample 2 -0.5, sample 3 0.75 -> sample 3.
    # Given 2, p_0 - p_2: 0.15, 0.1, -0.2 -> sample 4; p_1 - p_2: 0.1, 0.9, -0.3 -> sample 5.
    np.testing.assert_array_equal(np.sort(issues.flagged), [3, 4, 5])
    np.testing.assert_array_equal(issues.per_class_issues, [0, 1, 2])


def test_rows_are_rounded_keeping_their_totals():
    # Computed by hand. Half to even first, then the total is restored through the largest
    # (adding) or smallest (taking away) remainder cell - rounded.
    counts = np.array(
        [
            [2.5, 1.25, 1.25],  # -> [2, 1, 1] = 4 < 5: +1 to the remainder 0.5 -> [3, 1, 1]
            [0.7, 0.6, 2.7],  # -> [1, 1, 3] = 5 > 4: -1 from the remainder -0.4 -> [1, 0, 3]
            [0.5, 1.5, 2.0],  # -> [0, 2, 2] = 4: total already right
        ]
    )
    np.testing.assert_array_equal(_round_rows(counts), [[3, 1, 1], [1, 0, 3], [0, 2, 2]])


def test_prune_counts_lift_an_emptied_diagonal():
    # Computed by hand. Given class 0's rounded diagonal is 0: one unit is lifted back onto it,
    # taken as 1 / max(nonzero cells - 1, 1) from every cell and truncated (the reference's
    # convention). Row [0, 2, 1]: share 1 -> [_, 1, 0]. Row [0, 3, 2, 1]: share 1/2 ->
    # 2.5, 1.5, 0.5 truncated to [_, 2, 1, 0]. A row with a nonzero diagonal is unchanged.
    three = _compute_prune_counts(np.array([[0, 2, 1], [0, 4, 1], [1, 0, 2]]))
    np.testing.assert_array_equal(three, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    four = _compute_prune_counts(np.array([[0, 3, 2, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    np.testing.assert_array_equal(four[0], [0, 2, 1, 0])


def test_sample_the_model_splits_evenly_is_not_flagged():
    # C = [[2, 1], [0, 3]] prescribes pruning one given-0 sample into class 1, and sample 2
    # has the largest margin p_1 - p_0 = 0; but with + 1e-6 on its given label that label is
    # the argmax again (the model does not prefer class 1), so no flag.
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]] + [[0.5, 0.5]] * 3)
    issues = find_label_issues(labels, probs)
    np.testing.assert_array_equal(issues.confident_joint, [[2, 1], [0, 3]])
    assert issues.n_issues_estimated == 1
    assert len(issues.flagged) == 0


def test_several_passing_classes_count_in_the_row_argmax():
    # Classes 1 and 2 pass their thresholds, class 0 does not but has the largest probability.
    # The reference implementation counts the sample in class 0 (the row's argmax); the
    # paper's eq. 1 would pick class 1, the largest of the passing ones.
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    counts = _confident_counts(np.array([2, 2]), probs, np.array([0.9, 0.25, 0.15]))
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[2, 0] = 1  # row 0: passes 1 and 2, argmax 0
    expected[2, 2] = 1  # row 1: passes 1 and 2, argmax 2
    np.testing.assert_array_equal(counts, expected)
    # With a single passing class the sample counts there, whatever the argmax.
    single = _confident_counts(np.array([0]), np.array([[0.5, 0.3, 0.2]]), np.array([0.9, 0.25, 0.9]))
    assert single[0, 1] == 1 and single.sum() == 1


def test_final_check_adds_the_slack_in_the_input_precision():
    # Sample 0 is given label 1 and selected for pruning into class 0, where
    # p_0 = float32(p_1 + 1e-6) exactly. In float32, p_1 + 1e-6 then ties p_0 and argmax takes
    # the first index, class 0: the flag stays. The same values in float64 give
    # p_1 + 1e-6 > p_0: the given label wins and the flag goes (the reference does the same).
    p1 = np.float32(0.24)
    p0 = p1 + 1e-6  # float32 arithmetic: 0.240001
    rest = (1 - float(p0) - float(p1)) / 3
    labels = np.array([1, 1])
    prune_counts = np.zeros((5, 5), dtype=np.int64)
    prune_counts[1, 0] = 1
    order, starts = _group_by_label(labels, 5)
    for dtype, expected in ((np.float32, [True, False]), (np.float64, [False, False])):
        probs = np.array([[p0, p1, rest, rest, rest], [0.01, 0.96, 0.01, 0.01, 0.01]], dtype=np.float32)
        mask = _prune_by_noise_rate(labels, probs.astype(dtype), prune_counts, order, starts)
        np.testing.assert_array_equal(mask, expected, err_msg=dtype.__name__)


def test_a_class_that_looks_wholly_wrong_keeps_one_sample():
    # K = 2. Both given-1 samples look like class 0 (t_0 = 0.55, t_1 = 0.425), so
    # C[1] = [2, 0]. Calibration floors the diagonal at 1: [2, 1], scaled to the 2 samples
    # [4/3, 2/3], rounded [1, 1]: one sample pruned (the clearer, margin 0.2 over 0.1).
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    probs = np.array([[0.55, 0.45]] * 5 + [[0.6, 0.4], [0.55, 0.45]])
    issues = find_label_issues(labels, probs)
    np.testing.assert_allclose(issues.thresholds, [0.55, 0.425])
    np.testing.assert_array_equal(issues.confident_joint, [[5, 0], [2, 0]])
    np.testing.assert_array_equal(issues.flagged, [5])
    np.testing.assert_array_equal(issues.per_class_issues, [0, 1])
    # True class 1 gets only the floored diagonal's mass, all from given label 1.
    np.testing.assert_allclose(issues.noise_matrix[:, 1], [0.0, 1.0])


# ----------------------------------------------------------------- properties


@st.composite
def labelled_probs(draw):
    """Small data sets with coarse probabilities (so ties and zero entries are common)."""
    k = draw(st.integers(2, 4))
    n = draw(st.integers(3, 30))
    weights = np.array(
        draw(st.lists(st.lists(st.integers(0, 6), min_size=k, max_size=k), min_size=n, max_size=n)),
        dtype=np.float64,
    )
    labels = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    weights[weights.sum(axis=1) == 0, 0] = 1.0
    return labels, weights / weights.sum(axis=1, keepdims=True)


@settings(max_examples=150, deadline=None)
@given(data=labelled_probs(), perm_seed=st.integers(0, 2**32 - 1))
def test_order_invariance(data, perm_seed):
    # Samples tied at a prune cut-off are all flagged (the reference keeps an arbitrary subset
    # of them, which depends on sample order), so the flags are a function of the set.
    labels, probs = data
    perm = np.random.default_rng(perm_seed).permutation(len(labels))
    base = find_label_issues(labels, probs)
    moved = find_label_issues(labels[perm], probs[perm])
    # Sample a of the permuted set is sample perm[a] of the original.
    assert set(perm[moved.flagged].tolist()) == set(base.flagged.tolist())
    np.testing.assert_array_equal(moved.confident_joint, base.confident_joint)
    np.testing.assert_allclose(moved.thresholds, base.thresholds)
    np.testing.assert_allclose(moved.score, base.score)
    assert moved.n_issues_estimated == base.n_issues_estimated


@settings(max_examples=150, deadline=None)
@given(data=labelled_probs())
def test_joint_and_noise_matrix_are_distributions(data):
    labels, probs = data
    issues = find_label_issues(labels, probs)
    k = probs.shape[1]
    np.testing.assert_allclose(issues.noise_matrix.sum(axis=0), np.ones(k))
    assert np.all(issues.noise_matrix >= 0)
    assert issues.calibrated_joint.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        issues.calibrated_joint.sum(axis=1), np.bincount(labels, minlength=k) / len(labels)
    )
    # Never flag a sample whose given label is (one of) the model's top classes.
    flagged_probs = probs[issues.flagged]
    given = flagged_probs[np.arange(len(issues.flagged)), labels[issues.flagged]]
    assert np.all(flagged_probs.max(axis=1) > given)


def test_noise_matrix_matches_the_flip_process():
    # Uniform flips at rate 0.2 over K=4: P(given=i | true=j) = 0.8 on the diagonal,
    # 0.2/3 off it. The estimate should land near that.
    labels, probs, _, _ = make_noisy(8000, 4, noise=0.2, seed=3)
    issues = find_label_issues(labels, probs)
    expected = np.full((4, 4), 0.2 / 3) + np.eye(4) * (0.8 - 0.2 / 3)
    np.testing.assert_allclose(issues.noise_matrix, expected, atol=0.02)


# ----------------------------------------------------------------- cleanlab reference


def _reference_sets():
    """Seeded synthetic sets covering the reference's edge paths; (name, labels, probs)."""
    sets = []
    for seed, (n, k, noise, strength) in enumerate(
        [(5000, 10, 0.1, (1.0, 12.0)), (3000, 3, 0.3, (0.5, 6.0)), (4000, 2, 0.2, (0.5, 6.0)),
         (2000, 20, 0.05, (2.0, 30.0)), (300, 4, 0.4, (0.0, 2.0))]
    ):
        labels, probs, _, _ = make_noisy(n, k, noise=noise, seed=seed, strength=strength)
        sets.append((f"N={n} K={k} noise={noise}", labels, probs))
    labels, probs, _, _ = make_noisy(5000, 10, noise=0.2, seed=10, strength=(1.0, 12.0))
    sets.append(("float32", labels, probs.astype(np.float32)))
    labels, probs, _, _ = make_noisy(2000, 5, noise=0.1, seed=11, strength=(1.0, 12.0))
    labels[labels == 4] = 3  # class 4 never given: float64 thresholds with a gap
    sets.append(("class never given", labels, probs.astype(np.float32)))
    labels, probs, _, true = make_noisy(3000, 6, noise=0.0, seed=12, strength=(1.0, 12.0))
    flip = np.random.default_rng(12).random(3000) < 0.15
    labels[flip] = (true[flip] + 1) % 6  # asymmetric: always to the next class
    sets.append(("asymmetric", labels, probs))
    labels, probs, _, _ = make_noisy(1500, 4, noise=0.1, seed=13, strength=(1.0, 12.0))
    labels[labels == 0] = 1
    labels[[5, 9, 700]] = 0  # a class of three samples
    sets.append(("tiny class", labels, probs))
    # Tiny, very unsure sets: classes of 1-2 samples, rows whose rounded diagonal is 0
    # (seeds 20, 32 and 38 take the lift in _compute_prune_counts), many unconfident rows.
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        k, n = 3 + seed % 3, 12 + seed % 20
        probs = rng.dirichlet(np.full(k, 0.5), size=n)
        sets.append((f"tiny random {seed}", rng.integers(0, k, size=n), probs))
    return sets


def test_flags_identical_to_cleanlab_default():
    cleanlab_filter = pytest.importorskip("cleanlab.filter", reason="cleanlab not installed")
    from cleanlab.count import compute_confident_joint

    for name, labels, probs in _reference_sets():
        issues = find_label_issues(labels, probs)
        floored = issues.confident_joint.copy()
        np.fill_diagonal(floored, np.maximum(np.diagonal(floored), 1))
        np.testing.assert_array_equal(
            floored, compute_confident_joint(labels, probs, calibrate=False), err_msg=name
        )
        counts = np.bincount(labels, minlength=probs.shape[1])
        np.testing.assert_array_equal(
            _round_rows(_calibrate(issues.confident_joint, counts)),
            compute_confident_joint(labels, probs),
            err_msg=name,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = cleanlab_filter.find_label_issues(labels, probs, n_jobs=1)
        np.testing.assert_array_equal(issues.issue_mask, reference, err_msg=name)


def test_exact_ties_flag_a_superset_of_cleanlab():
    # Coarse probabilities make many margins exactly equal. At a tied cut-off we flag every
    # tied sample; the reference keeps an arbitrary subset, so ours contain its flags.
    cleanlab_filter = pytest.importorskip("cleanlab.filter", reason="cleanlab not installed")
    labels, probs, _, _ = make_noisy(400, 3, noise=0.2, seed=5, strength=(1.0, 12.0))
    probs = np.round(probs * 20)
    probs[probs.sum(axis=1) == 0, 0] = 1
    probs /= probs.sum(axis=1, keepdims=True)
    issues = find_label_issues(labels, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = cleanlab_filter.find_label_issues(labels, probs, n_jobs=1)
    assert np.all(issues.issue_mask[reference])
    assert issues.issue_mask.sum() - reference.sum() <= 0.05 * reference.sum()


def test_probabilities_are_used_as_given():
    # Not renormalised, and float32 stays float32: the same flags as the caller's exact values.
    labels, probs, _, _ = make_noisy(3000, 5, noise=0.2, seed=14, strength=(1.0, 12.0))
    as_float32 = probs.astype(np.float32)
    issues = find_label_issues(labels, as_float32)
    np.testing.assert_array_equal(
        issues.thresholds,
        [np.mean(as_float32[labels == j, j]) for j in range(5)],
    )


# ----------------------------------------------------------------- validation


GOOD = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])


@pytest.mark.parametrize(
    ("labels", "probs", "fragment"),
    [
        ([0, 1, 0], [[0.7, 0.3], [0.2, 1.0], [0.5, 0.5]], "1 rows do not sum to 1 (row 1 sums to 1.2; are these logits?)"),
        ([0, 1, 0], [[0.7, 0.3], [np.nan, 0.8], [0.5, np.inf]], "2 rows contain NaN or inf (first: row 1)"),
        ([0, 1], GOOD, "wrong length: 2 labels for 3 probability rows"),
        ([0, 1, 0], [[0.7, 0.3], [-0.2, 1.2], [0.5, 0.5]], "1 negative values (row 1 column 0"),
        ([0, 1, 0], np.array([[0.7, 0.3], [0.2, 0.8], ["a", 0.5]], dtype=object), "dtype object"),
        (np.array(["0", "1", "0"], dtype=object), GOOD, "labels must be numeric"),
        ([0, 2, 5], GOOD, "2 labels outside [0, 2) (label 1 is 2)"),
        ([0, -1, 0], GOOD, "1 labels outside [0, 2) (label 1 is -1)"),
        ([0.0, 1.5, 0.0], GOOD, "1 labels are not integers (label 1 is 1.5)"),
        ([0.0, np.nan, 0.0], GOOD, "1 labels are not integers"),
        ([0, 1, 0], [0.7, 0.3, 0.5], "must be 2-D"),
        ([0, 0, 0], [[1.0], [1.0], [1.0]], "need at least 2 classes"),
        ([], np.zeros((0, 2)), "no samples"),
    ],
)
def test_validate_probs_errors(labels, probs, fragment):
    with pytest.raises(DataError) as caught:
        validate.probabilities_and_labels(labels, probs, source="preds.npz")
    message = str(caught.value)
    assert message.startswith("preds.npz: ")
    assert fragment in message
    assert "\n" not in message


def test_validate_probs_accepts_as_given_and_normalised_renormalises():
    given = np.array([[0.7, 0.3005], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    labels, probs = validate.probabilities_and_labels(np.array([0.0, 1.0, 1.0]), given)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 1]
    assert probs is given  # float32 kept as given: confident learning sees the caller's exact values
    p = validate.normalised(probs)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p[0], [0.7 / 1.0005, 0.3005 / 1.0005], rtol=1e-6)


def test_find_label_issues_validates_with_default_source():
    with pytest.raises(DataError, match=r"^probabilities: 1 labels outside \[0, 2\)"):
        find_label_issues([0, 3, 1], GOOD)


# ----------------------------------------------------------------- label errors vs model errors


@pytest.fixture
def twenty():
    """N=20, K=2: samples 5 and 9 carry label 0 but look like class 1; 9 less clearly."""
    labels = np.array([0] * 10 + [1] * 10)
    probs = np.array([[0.95, 0.05]] * 10 + [[0.2, 0.8]] * 10)
    probs[5] = [0.05, 0.95]
    probs[9] = [0.2, 0.8]
    issues = find_label_issues(labels, probs, rule="cleanlab")
    np.testing.assert_array_equal(issues.flagged, [5, 9])  # margins 0.9 and 0.6
    return labels, probs, issues


def test_model_errors_and_label_errors_are_separated(twenty):
    """A constructed case: the audited model gets 1, 5, 9, 12 and 15 wrong; the checker flags 5 and 9,
    agrees confidently with the labels of 1 and 12, and is unsure about 15."""
    labels, probs, issues = twenty
    probs = probs.copy()
    probs[15] = [0.45, 0.55]  # class 1 given; checker below t_1 (the mean p_1 of class 1): not confident
    issues = find_label_issues(labels, probs, rule="cleanlab")
    predicted = labels.copy()
    predicted[[1, 5, 9, 12, 15]] = 1 - labels[[1, 5, 9, 12, 15]]
    cases = separate_cases(labels, predicted, probs, issues.issue_mask, issues.thresholds)
    assert cases[5] == cases[9] == "label_candidate"
    assert cases[1] == cases[12] == "model_error"
    assert cases[15] == "ambiguous"
    assert set(cases[[0, 2, 3, 13]]) == {""}  # right and unflagged: no case
    assert set(CASES) == {"label_candidate", "model_error", "ambiguous"}


def test_a_flag_wins_even_when_the_audited_model_is_right(twenty):
    labels, probs, issues = twenty
    cases = separate_cases(labels, labels, probs, issues.issue_mask, issues.thresholds)
    assert cases[5] == "label_candidate" and (cases == "model_error").sum() == 0


def test_reviewed_label_ok_samples_are_not_flagged_again(twenty):
    labels, probs, issues = twenty
    ok = np.zeros(20, bool)
    ok[5] = True
    kept = drop_flags(issues, ok)
    assert kept.flagged.tolist() == [9] and kept.given.tolist() == [0]
    assert not kept.issue_mask[5] and kept.issue_mask[9]
    assert kept.per_class_issues.tolist() == [1, 0]
    assert kept.n_issues_estimated == issues.n_issues_estimated  # the estimate is about the data, not the review
    assert drop_flags(issues, np.zeros(20, bool)) is issues


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown rule 'x'; valid: reportgen, cleanlab"):
        find_label_issues([0, 1], [[0.9, 0.1], [0.1, 0.9]], rule="x")


def test_result_types_are_frozen():
    issues = find_label_issues([0, 1], [[0.9, 0.1], [0.1, 0.9]])
    assert isinstance(issues, LabelIssues)
    with pytest.raises(AttributeError):
        issues.rank_by = "x"


def test_module_does_not_import_tensorflow():
    code = "import sys, reportgen.stats.labels; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reportgen_rule_counts_a_confident_probability_below_a_high_class_mean():
    """An accurate checker: class 1's mean self-confidence is 0.99, so five labels '0' whose image the checker
    calls '1' at 0.85 are never confidently '1' for the reference rule; the default rule counts them at 0.8."""
    labels = np.r_[np.zeros(100, int), np.ones(100, int), np.zeros(5, int)]
    probs = np.r_[np.tile([0.99, 0.01], (100, 1)), np.tile([0.01, 0.99], (100, 1)), np.tile([0.15, 0.85], (5, 1))]
    ref = find_label_issues(labels, probs, rule="cleanlab")
    new = find_label_issues(labels, probs, rule="reportgen")
    assert ref.flagged.size == 0 and ref.n_issues_estimated == 0
    assert sorted(new.flagged.tolist()) == [200, 201, 202, 203, 204] and new.n_issues_estimated == 5
    assert new.thresholds.tolist() == pytest.approx([0.8, 0.8]) and ref.thresholds[1] == pytest.approx(0.99)
    # Where every class mean is below the cap, the two rules are the same rule.
    low = np.clip(probs * 0.8 + 0.1, 0, 1)
    low /= low.sum(1, keepdims=True)
    np.testing.assert_array_equal(find_label_issues(labels, low, rule="reportgen").issue_mask,
                                  find_label_issues(labels, low, rule="cleanlab").issue_mask)
