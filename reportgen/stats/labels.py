"""Find likely label errors with confident learning (Northcutt, Jiang & Chuang, JAIR 2021).

Pure numpy: no TensorFlow, no cleanlab. The algorithm is the reference implementation's
default path, ``cleanlab.filter.find_label_issues(labels, pred_probs)`` (prune by noise rate,
frac_noise = 1, min_examples_per_class = 1), vectorised and re-written here; on the same
inputs it flags the same samples, except where the reference's choice is arbitrary (exact
ties at a prune cut-off, see _prune_by_noise_rate). Every convention below matches the
reference implementation's, so the two can be compared sample for sample:

1. The probabilities are used as given, in their own precision (float32 stays float32) and
   NOT renormalised: validation only checks that rows sum to 1 within validate.ROW_SUM_TOLERANCE.
   Renormalising moves values by a few ulps, enough to create or break an exact tie or move a
   probability across t_j - CONFIDENCE_SLACK. Other dtypes (float16, integers) are computed
   in float64; the reference would use their own arithmetic there, so rounding may differ.
2. Thresholds t_j = numpy's mean of probs[:, j] over the samples given label j, in the input
   precision and in sample order, floored at MIN_THRESHOLD; a never-given class has none.
3. Confident joint: a sample counts when some class passes p_j >= t_j - CONFIDENCE_SLACK. With
   exactly one passing class it counts there; with several it counts in the row's overall
   argmax (first index on ties), even if that class itself missed its threshold.
4. Calibration: the diagonal is floored at 1, each row is scaled to its given-label count,
   the matrix rescaled to N, and each row rounded to integers keeping its total (largest
   remainders take the rounding units; see _round_rows for equal remainders).
5. Prune counts: the rounded calibrated off-diagonal counts; a given class whose rounded
   diagonal is 0 gets MIN_KEPT_PER_CLASS sample back (see _compute_prune_counts).
6. Per given class i with more than MIN_KEPT_PER_CLASS samples and each true class j, flag the
   prune_counts[i, j] samples with the largest p_j - p_i (union over j).
7. A flagged sample is dropped when its given label is still the argmax after MARGIN_SLACK is
   added to the given label's probability.

Memory stays O(N*K): the caller's probabilities are read, not copied (apart from the float64
conversion of non-float inputs); scratch is one batch (confident joint) or one class's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .. import validate
from ..errors import DataError

# A probability this close below a class threshold still counts as confident (the reference
# implementation's convention: p >= t - 1e-6). A plain Python float on purpose: numpy then
# subtracts it in the thresholds' own precision (float32 for float32 input), as the reference does.
CONFIDENCE_SLACK = 1e-6
# Floor for thresholds (the reference's 2 * 1e-6): a class whose mean self-confidence is 0
# would otherwise make every sample "confidently" that class.
MIN_THRESHOLD = 2 * CONFIDENCE_SLACK
# Added to the given label's probability before the final "is the given label the argmax"
# check (the reference's convention); a sample stays flagged only if another class still wins.
MARGIN_SLACK = 1e-6
# Rows per batch when accumulating the confident joint (bounds scratch memory to ~batch*K*10 B).
BATCH_ROWS = 1 << 16
# Samples of one given label always left unflagged (the reference's min_examples_per_class=1):
# a class this small is never pruned, and a calibrated diagonal of 0 is lifted to this.
MIN_KEPT_PER_CLASS = 1
# Clip for divisions by row / matrix totals (the reference's TINY_VALUE).
_TINY = 1e-100
# Rounding a row of the calibrated joint stops when the rounded total is this close to the target.
_ROUND_TOLERANCE = 1e-6


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Probability the model gives to each sample's given label.

    Args:
        labels: (N,) int64 given labels in [0, K).
        probs: (N, K) float, rows sum to 1.
    Returns:
        (N,) float64 in [0, 1]; lower = more likely a label issue.
    """
    return probs[np.arange(len(labels)), labels].astype(np.float64)


def normalized_margin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Margin of the given label over the best other class, mapped from [-1, 1] to [0, 1].

    Args:
        labels: (N,) int64 given labels in [0, K).
        probs: (N, K) float, rows sum to 1.
    Returns:
        (N,) float64 in [0, 1]; 0.5 = tie with another class, lower = more likely an issue.
    """
    given = self_confidence(labels, probs)
    others = np.array(probs, dtype=np.float64, copy=True)
    others[np.arange(len(labels)), labels] = -np.inf
    return (given - others.max(axis=1) + 1.0) / 2.0


# Ranking scores for flagged samples, picked by name (the CLI offers the same names).
RANKERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "self_confidence": self_confidence,
    "normalized_margin": normalized_margin,
}

@dataclass(frozen=True)
class LabelIssues:
    """Confident-learning estimates for one data set and the samples it flags.

    Attributes:
        thresholds: (K,) float64 per-class threshold: the mean self-confidence t_j (computed in the
            probabilities' own precision, floored at MIN_THRESHOLD), capped at CONFIDENT_PROBABILITY
            by the "reportgen" rule; NaN for a class that is never given (no sample can be
            confidently counted into it).
        confident_joint: (K, K) int64, C[i][j] = count with given label i, confidently-true label j
            (raw counts; the diagonal floor of 1 is applied only inside the calibration).
        calibrated_joint: (K, K) float64, Q[i][j] estimate of P(given=i, true=j): C with its
            diagonal floored at 1, rows scaled to the given-label counts, divided by N, before
            the row rounding that gives the prune counts; sums to 1, row sums equal the
            given-label class frequencies.
        noise_matrix: (K, K) float64, P(given=i | true=j), column-stochastic (identity column
            for a class with no mass in Q).
        n_issues_estimated: int, round((1 - trace(Q)) * N), the estimated number of label errors
            (as the reference's 'off_diagonal_calibrated' estimate, but from the unrounded Q,
            so the two can differ by a few samples).
        issue_mask: (N,) bool, True for flagged samples.
        flagged: (M,) int64 indices of flagged samples, most likely issue first.
        given: (M,) int64 given label per flagged sample.
        suggested: (M,) int64 suggested label per flagged sample (argmax of probs; never the given one).
        self_confidence: (M,) float64 probs[i, given_i] per flagged sample.
        score: (M,) float64 ranking score per flagged sample (lower = more likely an issue).
        per_class_issues: (K,) int64 flagged count per given label.
        rank_by: name of the RANKERS score used to order `flagged`.
    """

    thresholds: np.ndarray
    confident_joint: np.ndarray
    calibrated_joint: np.ndarray
    noise_matrix: np.ndarray
    n_issues_estimated: int
    issue_mask: np.ndarray
    flagged: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    score: np.ndarray
    per_class_issues: np.ndarray
    rank_by: str


# The "reportgen" rule counts a class as confident at this probability even when the class's mean
# self-confidence t_j is higher. With an accurate checker t_j is ~0.97-0.99, so a label error whose
# true class gets 0.85 is not counted and the noise is under-estimated (most for look-alike errors).
# bench/label_noise.py, 10,000 MNIST test images, default checker: F1 +0.178 on instance-dependent
# 5 % noise, +0.050 on asymmetric 10 %, within +0.000..+0.002 on symmetric noise (caps 0.7-0.9 tried).
CONFIDENT_PROBABILITY = 0.8
# Flag rules, picked by name (--flag-rule): "cleanlab" is the reference rule exactly; "reportgen" is the default.
RULES = {
    "reportgen": "confident learning, pruning by noise rate, with a class counted as confident at probability "
                 f"min(t_j, {CONFIDENT_PROBABILITY}) instead of its mean self-confidence t_j",
    "cleanlab": "the reference implementation's default rule exactly (cleanlab.filter.find_label_issues, prune by noise rate)",
}


def find_label_issues(
    labels, probs, *, rule: str = "reportgen", rank_by: str = "self_confidence"
) -> LabelIssues:
    """Flag likely label errors by confident learning, pruning by noise rate.

    Follows the reference implementation's default path (cleanlab.filter.find_label_issues
    with default arguments) convention for convention; see the module docstring. The
    probabilities are used as given (validated, not renormalised).

    Args:
        labels: (N,) integer given labels in [0, K).
        probs: (N, K) out-of-sample predicted probabilities, rows sum to 1.
        rule: a RULES name.
        rank_by: a RANKERS name; orders the flagged samples, lower score first.
    Returns:
        LabelIssues with the estimates and the M flagged samples.
    Raises:
        ValueError: unknown `rule` or `rank_by`.
        DataError: invalid labels or probabilities (see validate.probabilities_and_labels).
    """
    if rank_by not in RANKERS:
        raise ValueError(
            f"unknown rank_by {rank_by!r}; valid: {', '.join(sorted(RANKERS))}"
        )
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(RULES)}")
    labels, probs = validate.probabilities_and_labels(labels, probs, source="probabilities")
    return _compute_label_issues(labels, probs, rank_by=rank_by, rule=rule)


def _compute_label_issues(
    labels: np.ndarray, probs: np.ndarray, *, rank_by: str, rule: str = "cleanlab"
) -> LabelIssues:
    """find_label_issues on already-validated (N,) int64 labels and (N, K) float32/64 probs."""
    n, k = probs.shape
    class_counts = np.bincount(labels, minlength=k)
    by_label, starts = _group_by_label(labels, k)
    thresholds = _compute_thresholds(labels, probs, by_label, starts)
    if rule == "reportgen":
        thresholds = np.minimum(thresholds, thresholds.dtype.type(CONFIDENT_PROBABILITY))  # NaN (never given) stays NaN
    confident_joint = np.zeros((k, k), dtype=np.int64)
    for start in range(0, n, BATCH_ROWS):
        stop = start + BATCH_ROWS
        confident_joint += _confident_counts(labels[start:stop], probs[start:stop], thresholds)

    calibrated, noise_matrix, prune_counts = estimates(confident_joint, class_counts)
    issue_mask = _prune_by_noise_rate(labels, probs, prune_counts, by_label, starts)

    candidates = np.flatnonzero(issue_mask)
    score = RANKERS[rank_by](labels[candidates], probs[candidates])
    # Stable sort: equal scores keep index order, so reruns give the same list.
    order = np.argsort(score, kind="stable")
    flagged = candidates[order].astype(np.int64)
    return LabelIssues(
        thresholds=thresholds.astype(np.float64),
        confident_joint=confident_joint,
        calibrated_joint=calibrated,
        noise_matrix=noise_matrix,
        n_issues_estimated=int(np.rint((1.0 - np.trace(calibrated)) * n)),
        issue_mask=issue_mask,
        flagged=flagged,
        given=labels[flagged].astype(np.int64),
        suggested=probs[flagged].argmax(axis=1).astype(np.int64),
        self_confidence=self_confidence(labels[flagged], probs[flagged]),
        score=score[order].astype(np.float64),
        per_class_issues=np.bincount(labels[flagged], minlength=k).astype(np.int64),
        rank_by=rank_by,
    )


def estimates(confident_joint: np.ndarray, class_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The calibrated joint Q (sums to 1), the noise matrix and the prune counts from the merged confident joint.

    Args:
        confident_joint: (K, K) int64 C (the sum of `confident_counts` over every batch or shard).
        class_counts: (K,) int64 samples per given label.
    Returns:
        (Q (K, K) float64, noise matrix (K, K) float64, prune counts (K, K) int64).
    """
    calibrated_counts = _calibrate(confident_joint, class_counts)
    calibrated = calibrated_counts / int(class_counts.sum())
    return calibrated, _compute_noise_matrix(calibrated), _compute_prune_counts(_round_rows(calibrated_counts))


def thresholds_from_sums(sums: np.ndarray, counts: np.ndarray, *, rule: str) -> np.ndarray:
    """(K,) float64 thresholds from per-class sums of self-confidence and counts (what a sharded run merges).

    The mean is sum / count instead of numpy's pairwise mean in sample order, so a threshold can differ from
    `find_label_issues`'s in its last bit (the module docstring's note on summation order); floored at
    MIN_THRESHOLD, capped at CONFIDENT_PROBABILITY by the "reportgen" rule, NaN for a class never given.
    """
    counts = np.asarray(counts, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(counts > 0, np.maximum(np.asarray(sums, dtype=np.float64) / counts, MIN_THRESHOLD), np.nan)
    if rule == "reportgen":
        t = np.minimum(t, CONFIDENT_PROBABILITY)
    return t


def confident_counts(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(K, K) int64 confident joint of one batch or shard of rows (`_confident_counts`); add them up."""
    return _confident_counts(labels, probs, thresholds)


def prune_margins(labels: np.ndarray, probs: np.ndarray, i: int, j: int) -> np.ndarray:
    """p_j - p_i, in the probabilities' own precision, of the rows given label i: what pruning (i, j) ranks."""
    rows = probs[labels == i]
    return rows[:, j] - rows[:, i]


def flag_by_cutoffs(labels: np.ndarray, probs: np.ndarray, prune_counts: np.ndarray, cutoffs: np.ndarray,
                    class_counts: np.ndarray) -> np.ndarray:
    """(n,) bool flags of some rows given the global cut-offs of pruning by noise rate.

    Args:
        labels: (n,) int64; probs: (n, K); prune_counts: (K, K) int64 (`estimates`); cutoffs: (K, K) the
            prune_counts[i, j]-th largest margin p_j - p_i over all rows given i (-inf: the whole class);
        class_counts: (K,) samples per given label over all rows.
    Returns:
        The rows pruning flags, the MARGIN_SLACK argmax check applied (as `_prune_by_noise_rate`).
    """
    k = probs.shape[1]
    mask = np.zeros(len(labels), dtype=bool)
    for i in range(k):
        if class_counts[i] <= MIN_KEPT_PER_CLASS or not prune_counts[i].any():
            continue
        members = np.flatnonzero(labels == i)
        class_probs = probs[members]
        hit = np.zeros(len(members), dtype=bool)
        for j in np.flatnonzero(prune_counts[i]):
            if j != i:
                hit |= class_probs[:, j] - class_probs[:, i] >= cutoffs[i, j]
        mask[members[hit]] = True
    return _drop_argmax_given(labels, probs, mask)


def _drop_argmax_given(labels: np.ndarray, probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`mask` without the rows whose given label is still the argmax after MARGIN_SLACK is added to it."""
    candidates = np.flatnonzero(mask)
    given = labels[candidates]
    rows = probs[candidates]  # a copy (fancy indexing): raised below
    at = np.arange(len(candidates))
    rows[at, given] = rows[at, given] + MARGIN_SLACK  # in the probabilities' own precision
    mask[candidates[rows.argmax(axis=1) == given]] = False
    return mask


def checker_info(count: np.ndarray, hit: np.ndarray, class_names: list[str], *, kind: str, checker=None) -> dict:
    """What the report says about the checker, from per-given-label counts and how many its argmax got right.

    Args:
        count, hit: (K,) int64 samples per given label and those whose checker argmax is the given label;
        kind: "cv", "audited_model" or "saved"; checker: checker.CheckerResult with kind "cv".
    """
    from .intervals import wilson

    count, hit = np.asarray(count, dtype=np.int64), np.asarray(hit, dtype=np.int64)
    n, right = int(count.sum()), int(hit.sum())
    ci = wilson(hit, count)
    per_class = [{"name": class_names[c], "count": int(count[c]), "accuracy": float(hit[c] / count[c]) if count[c] else None,
                  "accuracy_ci": [float(v) for v in ci[c]] if count[c] else None} for c in range(len(class_names))]
    info = {"kind": kind, "independent": kind == "cv", "accuracy": right / n,
            "accuracy_ci": [float(v) for v in wilson(right, n)], "per_class": per_class,
            "recipe": None, "folds": None, "fold_sha256": []}
    if kind == "cv":
        info.update(recipe=checker.recipe, folds=checker.folds, description=checker.description, fold_sha256=checker.fold_sha256,
                    short=f"{checker.folds}-fold cross-validation, {checker.recipe} checker")
    elif kind == "saved":
        info.update(description="the saved probabilities themselves (reportgen assumes they are out-of-sample); no separate "
                                "checker, so label errors and the model's own errors cannot be told apart",
                    short="the saved probabilities")
    else:
        info.update(description="no independent checker: the audited model's own held-out probabilities; its confident "
                                "disagreements mix label errors with its own mistakes (rerun with --cv K for a checker)",
                    short="the audited model itself")
    return info


def label_metrics_from(*, n_checked: int, n_flagged: int, n_estimated: int, checker: dict, cases: dict | None,
                       review_counts: dict, n_unreviewed_flags: int) -> dict:
    """The label check's numbers for summary.json, from counts (plain Python values).

    Args:
        checker: `checker_info`; cases: {"model_errors", "ambiguous", ...} counts, None without an independent
        checker; review_counts: reviews.Reviews.counts().
    """
    independent = checker["independent"]
    return {
        "n_checked": int(n_checked),
        "n_flagged": int(n_flagged),
        "n_issues_estimated": int(n_estimated),
        "label_error_rate": float(n_estimated / max(1, n_checked)),
        "checker_accuracy": checker["accuracy"] if independent else None,
        "checker_accuracy_ci_low": checker["accuracy_ci"][0] if independent else None,
        "checker_accuracy_ci_high": checker["accuracy_ci"][1] if independent else None,
        "n_model_errors": None if cases is None else int(cases["model_errors"]),
        "n_ambiguous_errors": None if cases is None else int(cases["ambiguous"]),
        "n_reviewed": review_counts["reviewed"],
        "n_confirmed_label_errors": review_counts["label_wrong"],
        "n_reviewed_label_ok": review_counts["label_ok"],
        "n_unreviewed_flags": int(n_unreviewed_flags),
    }


def _group_by_label(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices grouped by given label, in sample order within each label.

    Returns:
        (order (N,) int64, starts (K+1,) int64): the samples given label i are
        order[starts[i]:starts[i + 1]], in increasing index order.
    """
    # A stable sort keeps sample order inside a class (the thresholds' summation order);
    # 16-bit keys let numpy use its O(N) radix sort.
    keys = labels.astype(np.int16) if k <= np.iinfo(np.int16).max else labels
    order = np.argsort(keys, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=k))))
    return order, starts


def _compute_thresholds(
    labels: np.ndarray, probs: np.ndarray, by_label: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Per-class mean self-confidence t_j, as the reference implementation computes it.

    numpy's mean over the class's self-confidences in sample order, in the probabilities' own
    precision, floored at MIN_THRESHOLD. When every class is given the result keeps that
    precision (float32 for float32 input, so `t - CONFIDENCE_SLACK` is then a float32
    subtraction); when some class is never given it is float64 with NaN there (the reference
    promotes to float64 with a sentinel of 2 there; `p >= NaN` is False, as `p >= 2 - 1e-6` is
    for valid rows). The last bit of a mean depends on summation order, so, like the
    reference's, a threshold can move by an ulp when the samples are permuted.

    Args:
        labels: (N,) int64; probs: (N, K) float32/64; by_label, starts: from _group_by_label.
    Returns:
        (K,) thresholds (probs.dtype, or float64 with NaN for never-given classes).
    """
    k = probs.shape[1]
    grouped = probs[by_label, labels[by_label]]
    given = starts[1:] > starts[:-1]
    means = [np.mean(grouped[starts[j] : starts[j + 1]]) for j in range(k) if given[j]]
    if given.all():
        return np.maximum(np.array(means, dtype=probs.dtype), MIN_THRESHOLD)
    thresholds = np.full(k, np.nan)
    thresholds[given] = np.maximum(np.array(means, dtype=np.float64), MIN_THRESHOLD)
    return thresholds


def _confident_counts(
    labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Mergeable piece of the confident joint for one batch of rows.

    A class passes when p_j >= t_j - CONFIDENCE_SLACK. A sample passing exactly one class counts
    in C[given][that class]; one passing several counts in C[given][argmax of its whole row]
    (first index on ties), even when that class missed its own threshold: the reference
    implementation's convention (the paper's eq. 1 takes the argmax among passing classes
    only). Samples passing none are not counted.

    Args:
        labels: (n,) int64; probs: (n, K) float; thresholds: (K,) (NaN = never passes).
    Returns:
        (K, K) int64 counts.
    """
    k = probs.shape[1]
    passing = probs >= thresholds - CONFIDENCE_SLACK
    n_passing = passing.sum(axis=1)
    true_guess = np.where(n_passing > 1, probs.argmax(axis=1), passing.argmax(axis=1))
    counted = n_passing > 0
    cells = labels[counted] * k + true_guess[counted]
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.int64)


def _calibrate(confident_joint: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """Calibrated confident joint in counts: row i sums to the number of samples given label i.

    The reference implementation's convention, operation for operation (the rounding in
    _round_rows is sensitive to the last bit): the diagonal is floored at 1 (so a given class
    nobody was confidently counted in keeps its mass on the diagonal), each row is divided by
    its total and multiplied by its class count, and the matrix is rescaled to sum to N.

    Args:
        confident_joint: (K, K) int64 C.
        class_counts: (K,) int64 number of samples per given label.
    Returns:
        (K, K) float64 counts summing to N (all-zero rows for never-given classes).
    """
    floored = confident_joint.copy()
    diagonal = np.diag_indices(len(floored))
    floored[diagonal] = np.maximum(floored[diagonal], 1)
    row_totals = np.maximum(floored.sum(axis=1), _TINY)
    counts = floored / row_totals[:, None] * class_counts[:, None]
    # The reference adds the cells up column by column; the order changes the sum's last bit.
    total = np.ascontiguousarray(counts.T).sum()
    return counts / max(total, _TINY) * int(class_counts.sum())


def _round_rows(counts: np.ndarray) -> np.ndarray:
    """Round each row to integers keeping its rounded total (the reference's convention).

    Cells are first rounded half to even; while the row's total is off, the cells with the
    largest (to add) or smallest (to take away) remainder cell - rounded get the units.
    Equal remainders (common: two cells with the same raw count) are ordered by numpy's
    default argsort, as in the reference. That order is deterministic and independent of
    sample order (it sees only the K cells), but it is numpy's: its SIMD sorts (AVX2 /
    AVX-512) do not keep equal values in index order, so on a different CPU both this and
    the reference can give the unit to a different one of two equal cells.

    Args:
        counts: (K, K) float64 calibrated counts.
    Returns:
        (K, K) int64.
    """
    k = counts.shape[1]
    rounded = np.round(counts)
    for row, out in zip(counts, rounded):
        target = np.round(np.sum(row))
        while abs(gap := target - np.round(np.sum(out))) > _ROUND_TOLERANCE:
            units = min(int(abs(np.round(gap))), k)
            by_remainder = np.argsort(row - out)  # default kind on purpose, see above
            if gap > 0:
                out[by_remainder[::-1][:units]] += 1
            else:
                out[by_remainder[:units]] -= 1
    return rounded.astype(np.int64)


def _compute_noise_matrix(calibrated_joint: np.ndarray) -> np.ndarray:
    """P(given=i | true=j) from the calibrated joint; identity column where true j has no mass.

    Args:
        calibrated_joint: (K, K) float64 Q.
    Returns:
        (K, K) float64, every column sums to 1.
    """
    col_sums = calibrated_joint.sum(axis=0)
    empty = col_sums <= 0
    safe = np.where(empty, 1.0, col_sums)
    noise = calibrated_joint / safe
    noise[:, empty] = np.eye(len(col_sums))[:, empty]
    return noise


def _compute_prune_counts(rounded: np.ndarray) -> np.ndarray:
    """Samples to prune per (given i, true j != i): the rounded calibrated counts.

    A given class whose rounded diagonal is below MIN_KEPT_PER_CLASS would lose every sample.
    The reference implementation then lifts the diagonal to MIN_KEPT_PER_CLASS and takes the
    difference evenly from the row: every cell of the row drops by
    lift / max(number of nonzero cells - 1, 1), negatives become 0, and the result is
    truncated to an integer. With a lift of 1 that takes one unit from each nonzero cell
    (so more than one sample when the row has several). We follow it exactly.

    Args:
        rounded: (K, K) int64 rounded calibrated counts (row i sums to class_counts[i]).
    Returns:
        (K, K) int64 with a zero diagonal; row i sums to at most class_counts[i] - 1.
    """
    diagonal = np.diagonal(rounded)
    lift = np.maximum(diagonal, MIN_KEPT_PER_CLASS) - diagonal
    share = lift / np.maximum(np.count_nonzero(rounded, axis=1) - 1.0, 1.0)
    counts = rounded - share[:, None]
    counts[counts < 0] = 0
    counts = counts.astype(np.int64)  # truncation, as the reference's astype(int)
    np.fill_diagonal(counts, 0)
    return counts


def _prune_by_noise_rate(
    labels: np.ndarray,
    probs: np.ndarray,
    prune_counts: np.ndarray,
    by_label: np.ndarray,
    starts: np.ndarray,
) -> np.ndarray:
    """Flag, per (given i, true j != i), the prune_counts[i, j] samples with largest p_j - p_i.

    As the reference implementation: margins are computed in the probabilities' own precision,
    a class with at most MIN_KEPT_PER_CLASS samples is not pruned, the selections for the
    different j are united, and a selected sample is then dropped if its given label is the
    argmax of its row after adding MARGIN_SLACK to the given label's probability (argmax takes
    the first of equal maxima, so a class j < i that ties the raised value keeps the flag).

    Ties at the cut-off: samples whose margin equals the prune_counts[i, j]-th largest are all
    flagged, so identical samples get identical verdicts and the result does not depend on
    sample order (it can exceed the prune count when such ties occur). The reference keeps
    exactly that many, chosen by numpy's unstable argsort: which of the tied samples it keeps
    depends on sample order and CPU. Without an exact tie at the cut-off the two agree.

    Args:
        labels: (N,) int64; probs: (N, K) float; prune_counts: (K, K) int64;
        by_label, starts: from _group_by_label.
    Returns:
        (N,) bool issue mask.
    """
    n, k = probs.shape
    mask = np.zeros(n, dtype=bool)
    for i in range(k):
        members = by_label[starts[i] : starts[i + 1]]
        size = len(members)
        if size <= MIN_KEPT_PER_CLASS or not prune_counts[i].any():
            continue
        class_probs = probs[members]
        hit = np.zeros(size, dtype=bool)
        for j in np.flatnonzero(prune_counts[i]):
            if j == i:
                continue
            take = int(prune_counts[i, j])
            if take >= size:
                hit[:] = True
                break
            margin = class_probs[:, j] - class_probs[:, i]
            # The take-th largest margin, found in O(n) rather than a full sort.
            cutoff = np.partition(margin, size - take)[size - take]
            hit |= margin >= cutoff
        mask[members[hit]] = True
    return _drop_argmax_given(labels, probs, mask)


# Cases of the audited samples when both the audited model and an independent checker are known.
CASES = {
    "label_candidate": "label-error candidate: the checker confidently disagrees with the given label",
    "model_error": "model error, not a label issue: the checker agrees with the given label, the audited model does not",
    "ambiguous": "ambiguous: the audited model is wrong and the checker is unsure too",
}


def separate_cases(labels, model_predicted, checker_probs, flagged, thresholds) -> np.ndarray:
    """Tell label errors from the audited model's own errors, sample by sample.

    - label_candidate: flagged by confident learning on the checker's probabilities;
    - model_error: not flagged, the audited model is wrong, and the checker agrees confidently with
      the given label (its argmax is the given label and its probability reaches that class's
      confident-learning threshold t_given);
    - ambiguous: not flagged, the audited model is wrong, and the checker does not agree confidently;
    - "" otherwise (the audited model is right and nothing is flagged).

    Args:
        labels: (N,) int given labels.
        model_predicted: (N,) int the audited model's predictions.
        checker_probs: (N, K) the checker's out-of-sample probabilities.
        flagged: (N,) bool confident-learning flags on the checker's probabilities.
        thresholds: (K,) per-class thresholds t_j of that run (LabelIssues.thresholds).
    Returns:
        (N,) object array of CASES keys or "".
    """
    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(model_predicted, dtype=np.int64)
    p = np.asarray(checker_probs, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    t = np.nan_to_num(np.asarray(thresholds, dtype=np.float64), nan=np.inf)
    rows = np.arange(len(y))
    agrees = (p.argmax(axis=1) == y) & (p[rows, y] >= t[y] - CONFIDENCE_SLACK)
    wrong = pred != y
    out = np.full(len(y), "", dtype=object)
    out[wrong & ~flagged & agrees] = "model_error"
    out[wrong & ~flagged & ~agrees] = "ambiguous"
    out[flagged] = "label_candidate"
    return out


def drop_flags(issues: LabelIssues, unflag: np.ndarray) -> LabelIssues:
    """The same estimates with the samples in `unflag` ((N,) bool, e.g. reviewed as label_ok) no longer flagged."""
    unflag = np.asarray(unflag, dtype=bool)
    keep = ~unflag[issues.flagged]
    if keep.all():
        return issues
    return replace(issues, issue_mask=issues.issue_mask & ~unflag, flagged=issues.flagged[keep], given=issues.given[keep],
                   suggested=issues.suggested[keep], self_confidence=issues.self_confidence[keep], score=issues.score[keep],
                   per_class_issues=np.bincount(issues.given[keep], minlength=len(issues.per_class_issues)).astype(np.int64))
