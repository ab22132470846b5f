"""Find likely label errors with confident learning (Northcutt, Jiang & Chuang, JAIR 2021).

Pure numpy: no TensorFlow, no cleanlab. Two kinds of work are kept apart, as STYLE.md asks:

- dataset-level summaries built from mergeable pieces: per-class self-confidence sums
  (-> thresholds) and the confident-joint counts, accumulated over row batches;
- per-class selection (prune by noise rate), which needs only the samples of one given label.

Memory stays O(N*K): one float64 copy of the probabilities plus a batch-sized scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from reportgen.errors import DataError

# Rows may sum to 1 within this before we call them broken (float32 softmax drifts ~1e-6).
ROW_SUM_TOLERANCE = 1e-3
# A probability this close below a class threshold still counts as confident: a sample whose
# probability equals its class mean must not drop out through float rounding of that mean.
CONFIDENCE_SLACK = 1e-6
# Floor for thresholds: a class whose mean self-confidence is 0 would otherwise make
# every sample "confidently" that class.
MIN_THRESHOLD = 2 * CONFIDENCE_SLACK
# The top other class must beat the given label by more than this to flag a sample.
MARGIN_SLACK = 1e-6
# Rows per batch when accumulating the confident joint (bounds scratch memory to ~batch*K*9 B).
BATCH_ROWS = 1 << 16
# Samples of one given label always left unflagged (nobody believes a whole class is wrong).
MIN_KEPT_PER_CLASS = 1


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

# Triage category keys -> display names.
TRIAGE_NAMES = {
    "likely_mislabelled": "likely mislabelled",
    "ambiguous": "ambiguous",
    "model_unsure": "model unsure",
}
# Percentile of a statistic over all N samples above which a flag is put down to it.
TRIAGE_PERCENTILE = 90.0


@dataclass(frozen=True)
class LabelIssues:
    """Confident-learning estimates for one data set and the samples it flags.

    Attributes:
        thresholds: (K,) float64 per-class mean self-confidence t_j; NaN for a class that is
            never given (no sample can be confidently counted into it).
        confident_joint: (K, K) int64, C[i][j] = count with given label i, confidently-true label j.
        calibrated_joint: (K, K) float64, Q[i][j] estimate of P(given=i, true=j); sums to 1,
            row sums equal the given-label class frequencies.
        noise_matrix: (K, K) float64, P(given=i | true=j), column-stochastic (identity column
            for a class with no confident evidence).
        n_issues_estimated: int, round((1 - trace(Q)) * N), the estimated number of label errors.
        issue_mask: (N,) bool, True for flagged samples.
        flagged: (M,) int64 indices of flagged samples, most likely issue first.
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
    suggested: np.ndarray
    self_confidence: np.ndarray
    score: np.ndarray
    per_class_issues: np.ndarray
    rank_by: str


@dataclass(frozen=True)
class Triage:
    """Why each flagged sample is probably flagged: label error, ambiguous input, or unsure model.

    Attributes:
        category: (M,) object array of TRIAGE_NAMES keys, aligned with LabelIssues.flagged.
        aleatoric_threshold: 90th percentile of the aleatoric statistic over all N samples.
        epistemic_threshold: 90th percentile of epistemic over all N samples; None when not given.
        aleatoric_source: "aleatoric" when given, else "normalised entropy" (its fallback).
        rule: one sentence stating the rule, for the report.
    """

    category: np.ndarray
    aleatoric_threshold: float
    epistemic_threshold: float | None
    aleatoric_source: str
    rule: str


def _fail(source: str, problem: str) -> DataError:
    """The one-line DataError "<source>: <problem>"."""
    return DataError(f"{source}: {problem}")


def validate_probs(
    labels, probs, *, source: str = "probabilities"
) -> tuple[np.ndarray, np.ndarray]:
    """Check given labels and predicted probabilities; return clean copies.

    Args:
        labels: (N,) integer-valued given labels in [0, K).
        probs: (N, K) non-negative finite numbers, rows summing to 1 within 1e-3.
        source: name used at the start of every error message (e.g. the file name).
    Returns:
        (labels, probs): (N,) int64 and (N, K) float64, rows renormalised to sum to 1.
    Raises:
        DataError: one line naming `source`, the problem, and an offending count/index.
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    for name, arr in (("labels", labels), ("probabilities", probs)):
        if arr.dtype.kind not in "biuf":
            raise _fail(source, f"{name} must be numeric, got dtype {arr.dtype}")
    if probs.ndim != 2:
        raise _fail(source, f"probabilities must be 2-D (N, K), got shape {probs.shape}")
    if labels.ndim != 1:
        raise _fail(source, f"labels must be 1-D (N,), got shape {labels.shape}")
    n, k = probs.shape
    if n == 0:
        raise _fail(source, "no samples (N = 0)")
    if k < 2:
        raise _fail(source, f"need at least 2 classes, got K = {k}")
    if labels.shape[0] != n:
        raise _fail(
            source, f"wrong length: {labels.shape[0]} labels for {n} probability rows"
        )

    probs = probs.astype(np.float64)  # always a copy: we renormalise in place below
    bad_rows = ~np.isfinite(probs).all(axis=1)
    if bad_rows.any():
        first = int(np.flatnonzero(bad_rows)[0])
        raise _fail(
            source,
            f"{int(bad_rows.sum())} rows contain NaN or inf (first: row {first})",
        )
    negative = probs < 0
    if negative.any():
        row, col = (int(v) for v in np.argwhere(negative)[0])
        raise _fail(
            source,
            f"{int(negative.sum())} negative values (row {row} column {col} is {probs[row, col]:.4g})",
        )
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise _fail(
            source,
            f"{int(off.sum())} rows do not sum to 1 (row {first} sums to {sums[first]:.6g})",
        )
    probs /= sums[:, None]

    if labels.dtype.kind == "f":
        not_int = ~np.isfinite(labels) | (labels != np.round(labels))
        if not_int.any():
            first = int(np.flatnonzero(not_int)[0])
            raise _fail(
                source,
                f"{int(not_int.sum())} labels are not integers (label {first} is {labels[first]:g})",
            )
    elif labels.dtype.kind == "b":
        raise _fail(source, "labels must be integers, got dtype bool")
    outside = (labels < 0) | (labels >= k)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise _fail(
            source,
            f"{int(outside.sum())} labels outside [0, {k}) (label {first} is {labels[first]:g})",
        )
    return labels.astype(np.int64), probs


def find_label_issues(
    labels, probs, *, rank_by: str = "self_confidence"
) -> LabelIssues:
    """Flag likely label errors by confident learning, pruning by noise rate.

    Args:
        labels: (N,) integer given labels in [0, K).
        probs: (N, K) out-of-sample predicted probabilities, rows sum to 1.
        rank_by: a RANKERS name; orders the flagged samples, lower score first.
    Returns:
        LabelIssues with the estimates and the M flagged samples.
    Raises:
        ValueError: unknown `rank_by`.
        DataError: invalid labels or probabilities (see validate_probs).
    """
    if rank_by not in RANKERS:
        raise ValueError(
            f"unknown rank_by {rank_by!r}; valid: {', '.join(sorted(RANKERS))}"
        )
    labels, probs = validate_probs(labels, probs)
    return _compute_label_issues(labels, probs, rank_by=rank_by)


def _compute_label_issues(
    labels: np.ndarray, probs: np.ndarray, *, rank_by: str
) -> LabelIssues:
    """find_label_issues on already-validated (N,) int64 labels and (N, K) float64 probs."""
    n, k = probs.shape
    class_counts = np.bincount(labels, minlength=k)
    thresholds = _compute_thresholds(*_threshold_sums(labels, probs))
    confident_joint = np.zeros((k, k), dtype=np.int64)
    for start in range(0, n, BATCH_ROWS):
        stop = start + BATCH_ROWS
        confident_joint += _confident_counts(labels[start:stop], probs[start:stop], thresholds)

    calibrated = _compute_calibrated_joint(confident_joint, class_counts)
    noise_matrix = _compute_noise_matrix(calibrated)
    prune_counts = _compute_prune_counts(calibrated * n, class_counts)
    issue_mask = _prune_by_noise_rate(labels, probs, prune_counts)

    candidates = np.flatnonzero(issue_mask)
    score = RANKERS[rank_by](labels[candidates], probs[candidates])
    # Stable sort: equal scores keep index order, so reruns give the same list.
    order = np.argsort(score, kind="stable")
    flagged = candidates[order].astype(np.int64)
    return LabelIssues(
        thresholds=thresholds,
        confident_joint=confident_joint,
        calibrated_joint=calibrated,
        noise_matrix=noise_matrix,
        n_issues_estimated=int(np.rint((1.0 - np.trace(calibrated)) * n)),
        issue_mask=issue_mask,
        flagged=flagged,
        suggested=probs[flagged].argmax(axis=1).astype(np.int64),
        self_confidence=self_confidence(labels[flagged], probs[flagged]),
        score=score[order].astype(np.float64),
        per_class_issues=np.bincount(labels[flagged], minlength=k).astype(np.int64),
        rank_by=rank_by,
    )


def _threshold_sums(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mergeable piece of the thresholds: per-class self-confidence sums and counts.

    Args:
        labels: (n,) int64; probs: (n, K) float64 — any batch of rows.
    Returns:
        ((K,) float64 sums of probs[i, labels_i] per given label, (K,) int64 counts).
    """
    k = probs.shape[1]
    sums = np.bincount(labels, weights=self_confidence(labels, probs), minlength=k)
    return sums, np.bincount(labels, minlength=k)


def _compute_thresholds(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class mean self-confidence t_j; NaN where class j is never given.

    Args:
        sums: (K,) float64; counts: (K,) int64, summed over all batches.
    Returns:
        (K,) float64.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    # NaN (not a big sentinel) keeps "undefined" honest in the report; `p >= NaN` is False.
    return np.where(counts > 0, np.maximum(means, MIN_THRESHOLD), np.nan)


def _confident_counts(
    labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Mergeable piece of the confident joint for one batch of rows.

    A sample counts in C[given][j] when p_j >= t_j and j has the largest probability among
    the classes that pass their threshold (paper eq. 1); samples passing none are not counted.

    Args:
        labels: (n,) int64; probs: (n, K) float64; thresholds: (K,) float64 (NaN = never).
    Returns:
        (K, K) int64 counts.
    """
    k = probs.shape[1]
    confident = probs >= thresholds - CONFIDENCE_SLACK
    # Only confident classes may win the argmax; -1 is below any probability.
    true_guess = np.where(confident, probs, -1.0).argmax(axis=1)
    counted = confident.any(axis=1)
    cells = labels[counted] * k + true_guess[counted]
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.int64)


def _compute_calibrated_joint(confident_joint: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """Calibrate the confident joint so row i sums to the frequency of given label i.

    Args:
        confident_joint: (K, K) int64 C.
        class_counts: (K,) int64 number of samples per given label.
    Returns:
        (K, K) float64 Q summing to 1.
    """
    rows = confident_joint.astype(np.float64)
    row_sums = rows.sum(axis=1)
    # An empty row means no sample of that given label passed any threshold (only possible
    # when all its probabilities are ~0): no evidence of noise, so keep its mass on the diagonal.
    empty = row_sums == 0
    rows[empty, empty] = 1.0
    row_sums[empty] = 1.0
    joint = rows / row_sums[:, None] * class_counts[:, None]
    return joint / class_counts.sum()


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


def _compute_prune_counts(joint_counts: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """Number of samples to prune per (given i, true j != i), about Q[i][j] * N.

    Rounding each cell on its own would bias the total: calibration scales counts up a
    little, and 5.3 -> 5 in every cell loses the estimated noise. So each row's noise total
    is rounded once and shared out by largest remainder (ties to the lower class index).
    A row whose noise would leave fewer than MIN_KEPT_PER_CLASS samples is scaled down.

    Args:
        joint_counts: (K, K) float64 Q * N (row i sums to class_counts[i]).
        class_counts: (K,) int64.
    Returns:
        (K, K) int64 with a zero diagonal; row i sums to at most class_counts[i] - 1
        (0 for an empty class).
    """
    k = len(class_counts)
    noise = np.where(np.eye(k, dtype=bool), 0.0, joint_counts)
    budget = np.maximum(class_counts - MIN_KEPT_PER_CLASS, 0)
    counts = np.zeros((k, k), dtype=np.int64)
    for i in range(k):
        total = noise[i].sum()
        target = min(int(np.rint(total)), int(budget[i]))
        if target <= 0:
            continue
        cells = noise[i] * (target / total)
        floors = np.floor(cells).astype(np.int64)
        short = target - int(floors.sum())
        by_remainder = np.argsort(-(cells - floors), kind="stable")
        floors[by_remainder[:short]] += 1
        counts[i] = floors
    return counts


def _prune_by_noise_rate(
    labels: np.ndarray, probs: np.ndarray, prune_counts: np.ndarray
) -> np.ndarray:
    """Flag, per (given i, true j != i), the prune_counts[i, j] samples with largest p_j - p_i.

    Samples tied with the last one selected are flagged too, so the result does not depend
    on sample order (identical samples get identical verdicts; with exact ties this can
    exceed the prune count, even flag a whole class of identical rows). A sample is then
    unflagged unless some other class beats its given label by more than MARGIN_SLACK
    (the model must actually disagree with the label).

    Args:
        labels: (N,) int64; probs: (N, K) float64; prune_counts: (K, K) int64.
    Returns:
        (N,) bool issue mask.
    """
    n, k = probs.shape
    mask = np.zeros(n, dtype=bool)
    by_label = np.argsort(labels, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=k))))
    for i in range(k):
        to_prune = prune_counts[i].copy()
        to_prune[i] = 0
        if not to_prune.any():
            continue
        members = by_label[starts[i] : starts[i + 1]]
        class_probs = probs[members]
        given = class_probs[:, i].copy()  # a view would turn -inf below
        hit = np.zeros(len(members), dtype=bool)
        for j in np.flatnonzero(to_prune):
            margin = class_probs[:, j] - given
            take = int(to_prune[j])
            if take >= len(members):
                hit[:] = True
                break
            # The take-th largest margin, found in O(n) rather than a full sort.
            cutoff = np.partition(margin, len(members) - take)[len(members) - take]
            hit |= margin >= cutoff
        class_probs[:, i] = -np.inf
        hit &= class_probs.max(axis=1) > given + MARGIN_SLACK
        mask[members[hit]] = True
    return mask


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each probability row divided by log K.

    Args:
        probs: (N, K) float, rows sum to 1.
    Returns:
        (N,) float64 in [0, 1]; 1 = uniform.
    """
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(p.shape[1])


def _per_sample(values, n: int, name: str) -> np.ndarray:
    """A finite (n,) float64 copy of a per-sample statistic, or DataError naming it."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: {int((~np.isfinite(arr)).sum())} values are NaN or inf")
    return arr


def _in_top(values: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: at or above the threshold and above the minimum.

    Without the second condition a statistic that is mostly constant (e.g. all-zero
    epistemic from a deterministic model) would put every sample in the "top 10 %".
    """
    return (values >= threshold) & (values > values.min())


def triage(
    issues: LabelIssues,
    probs,
    *,
    aleatoric: np.ndarray | None,
    epistemic: np.ndarray | None,
) -> Triage:
    """Sort each flagged sample into model unsure / ambiguous / likely mislabelled.

    Rule: model_unsure if epistemic >= its 90th percentile over all N samples; else
    ambiguous if aleatoric >= its 90th percentile; else likely_mislabelled. A value equal
    to the statistic's minimum never counts (a constant statistic selects nobody). Without
    epistemic (a deterministic model) the first branch is skipped; without aleatoric the
    normalised entropy of `probs` stands in for it.

    Args:
        issues: result of find_label_issues on the same N samples.
        probs: (N, K) predicted probabilities (used for the entropy fallback).
        aleatoric: (N,) per-sample aleatoric uncertainty, or None.
        epistemic: (N,) per-sample epistemic uncertainty, or None.
    Returns:
        Triage with one category per flagged sample.
    Raises:
        DataError: a statistic with the wrong shape or non-finite values.
    """
    n = len(issues.issue_mask)
    if aleatoric is None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape[0] != n:
            raise DataError(f"probabilities: expected {n} rows, got {probs.shape[0]}")
        aleatoric_values, aleatoric_source = normalised_entropy(probs), "normalised entropy"
    else:
        aleatoric_values, aleatoric_source = _per_sample(aleatoric, n, "aleatoric"), "aleatoric"
    aleatoric_threshold = float(np.percentile(aleatoric_values, TRIAGE_PERCENTILE))
    flagged = issues.flagged
    category = np.full(len(flagged), "likely_mislabelled", dtype=object)
    category[_in_top(aleatoric_values, aleatoric_threshold)[flagged]] = "ambiguous"

    pct = f"{TRIAGE_PERCENTILE:g}th percentile"
    if epistemic is None:
        epistemic_threshold = None
        rule = (
            f"A flagged sample is ambiguous if its {aleatoric_source} is at or above the "
            f"{pct} over all samples, otherwise likely mislabelled (no epistemic estimate)."
        )
    else:
        epistemic_values = _per_sample(epistemic, n, "epistemic")
        epistemic_threshold = float(np.percentile(epistemic_values, TRIAGE_PERCENTILE))
        category[_in_top(epistemic_values, epistemic_threshold)[flagged]] = "model_unsure"
        rule = (
            f"A flagged sample is model unsure if its epistemic uncertainty is at or above the "
            f"{pct} over all samples, else ambiguous if its {aleatoric_source} is at or "
            f"above its {pct}, else likely mislabelled."
        )
    return Triage(
        category=category,
        aleatoric_threshold=aleatoric_threshold,
        epistemic_threshold=epistemic_threshold,
        aleatoric_source=aleatoric_source,
        rule=rule,
    )
