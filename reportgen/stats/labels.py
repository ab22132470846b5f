"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021) as four passes over mergeable pieces.

The reference rule is cleanlab.filter.find_label_issues with its defaults (prune by noise rate, frac_noise = 1,
min_examples_per_class = 1), convention for convention, so the two flag the same samples (tests compare them):

1. thresholds: t_j = mean probability of class j over the samples given j (sums and counts; floored at
   MIN_THRESHOLD; a never-given class has none);
2. confident joint: a sample counts when some class passes p_j >= t_j - CONFIDENCE_SLACK; with one passing class
   it counts there, with several in its row's argmax (first index on ties); then calibration (diagonal floored at
   1, rows scaled to the given-label counts, the matrix to N, rows rounded keeping their totals) and prune counts;
3. per given class i and other class j, the prune_counts[i, j]-th largest margin p_j - p_i (a keyed top-N);
4. flags: margins at or above their cut-off, unless the given label is still the argmax after MARGIN_SLACK is added.

Exact ties at a cut-off are all flagged (the result does not depend on row order; the reference keeps an
arbitrary subset of them). A threshold is a float64 sum / count, which may differ from the reference's mean in the
probabilities' own precision in its last bit. The probabilities are used as given (not renormalised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import intervals, resample
from .merge import Largest

# A probability this close below a class threshold still counts as confident (the reference's p >= t - 1e-6).
CONFIDENCE_SLACK = 1e-6
# Floor for thresholds (the reference's 2e-6): a class whose mean self-confidence is 0 would otherwise take every sample.
MIN_THRESHOLD = 2 * CONFIDENCE_SLACK
# Added to the given label's probability before the final "is the given label the argmax" check (the reference's).
MARGIN_SLACK = 1e-6
# Samples of one given label always left unflagged (min_examples_per_class = 1); a calibrated diagonal of 0 is lifted to it.
MIN_KEPT_PER_CLASS = 1
# Clip for divisions by row or matrix totals (the reference's TINY_VALUE).
_TINY = 1e-100
# Rounding a row of the calibrated joint stops when the rounded total is this close to its target.
_ROUND_TOLERANCE = 1e-6
# The capped rule counts a class as confident at this probability even when its mean self-confidence is higher.
CAP = 0.8
# Flag rules by name (--flag-rule); "reference" is the default.
RULES = {
    "reference": "confident learning, pruning by noise rate: the reference rule (cleanlab.filter.find_label_issues defaults)",
    "capped": f"the reference rule with each class's confident threshold capped at probability {CAP} (min(t_j, {CAP})); "
              "flags more look-alike errors at the cost of more flags on clean labels (bench/README.md, label_noise)",
}
# Bootstrap replicates of the estimated label-error count's interval.
RATE_REPLICATES = 1000


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n,) float64 probability of each sample's given label (lower: more likely a label issue)."""
    return probs[np.arange(len(labels)), labels].astype(np.float64)


def normalized_margin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n,) float64 margin of the given label over the best other class, mapped from [-1, 1] to [0, 1]."""
    others = np.array(probs, dtype=np.float64, copy=True)
    others[np.arange(len(labels)), labels] = -np.inf
    return (self_confidence(labels, probs) - others.max(axis=1) + 1.0) / 2.0


# Ranking scores of flagged samples by name (the CLI offers the same names); lower: more likely an issue.
RANKERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "self_confidence": self_confidence,
    "normalized_margin": normalized_margin,
}


# --------------------------------------------------------------------------- pass 1: thresholds


@dataclass(frozen=True)
class ClassSums:
    """Pass 1 of some rows, per given label ((K,) each): samples, the sum of the given label's probability, and the
    rows whose argmax is the given label (the checker's agreement with the labels)."""

    count: np.ndarray
    self_confidence: np.ndarray
    agree: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, probs: np.ndarray) -> "ClassSums":
        k = probs.shape[1]
        return cls(np.bincount(labels, minlength=k).astype(np.int64),
                   np.bincount(labels, weights=self_confidence(labels, probs), minlength=k),
                   np.bincount(labels[probs.argmax(axis=1) == labels], minlength=k).astype(np.int64))


def thresholds(s: ClassSums, *, rule: str) -> np.ndarray:
    """(K,) float64 confident thresholds t_j (NaN for a class never given), capped at CAP by the "capped" rule.

    Raises:
        ValueError: `rule` is not a RULES name (a stale name such as the capped rule's former "reportgen" would
            otherwise run the reference rule silently).
    """
    if rule not in RULES:
        raise ValueError(f"unknown flag rule {rule!r}; valid: {', '.join(RULES)}")
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(s.count > 0, np.maximum(s.self_confidence / s.count, MIN_THRESHOLD), np.nan)
    return np.minimum(t, CAP) if rule == "capped" else t


# --------------------------------------------------------------------------- pass 2: the confident joint


def confident_cells(labels: np.ndarray, probs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(n,) int64 cell given * K + confidently-true label of each row, -1 for rows no class passes."""
    k = probs.shape[1]
    passing = probs >= t - CONFIDENCE_SLACK  # NaN thresholds never pass
    n_passing = passing.sum(axis=1)
    true_guess = np.where(n_passing > 1, probs.argmax(axis=1), passing.argmax(axis=1))
    return np.where(n_passing > 0, labels * k + true_guess, -1)


@dataclass(frozen=True)
class JointSums:
    """Pass 2 of some rows: the confident joint (K, K), and per bootstrap replicate the joint (B, K, K) and the
    given-label counts (B, K) under the rows' Poisson weights (resample.py), for the estimate's interval."""

    joint: np.ndarray
    boot_joint: np.ndarray
    boot_count: np.ndarray

    @classmethod
    def of(cls, start: int, labels: np.ndarray, probs: np.ndarray, t: np.ndarray, *, seed: int,
           replicates: int = RATE_REPLICATES) -> "JointSums":
        k = probs.shape[1]
        cells = confident_cells(labels, probs, t)
        counted = cells >= 0
        joint = np.bincount(cells[counted], minlength=k * k).reshape(k, k).astype(np.int64)
        boot_joint = np.zeros((replicates, k * k), dtype=np.int64)
        boot_count = np.zeros((replicates, k), dtype=np.int64)
        for block, lo, hi in resample.blocks(start, start + len(labels)):
            w = resample.block_weights(seed, block, replicates)[:, lo - block * resample.BLOCK_ROWS:hi - block * resample.BLOCK_ROWS]
            part = slice(lo - start, hi - start)
            _add_by_key(boot_joint, w, cells[part])
            _add_by_key(boot_count, w, labels[part])
        return cls(joint, boot_joint.reshape(replicates, k, k), boot_count)


def _add_by_key(out: np.ndarray, w: np.ndarray, keys: np.ndarray) -> None:
    """out[:, key] += the weights (B, rows) of the rows with that key (keys < 0 skipped)."""
    keep = keys >= 0
    keys, w = keys[keep], w[:, keep]
    if not len(keys):
        return
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    out[:, keys[starts]] += np.add.reduceat(w[:, order], starts, axis=1, dtype=np.int64)


def _calibrate(joint: np.ndarray, class_count: np.ndarray) -> np.ndarray:
    """Calibrated joint in counts (row i sums to the samples given i), the reference's operations in its order."""
    floored = joint.astype(np.int64, copy=True)
    d = np.diag_indices(len(floored))
    floored[d] = np.maximum(floored[d], 1)
    counts = floored / np.maximum(floored.sum(axis=1), _TINY)[:, None] * class_count[:, None]
    total = np.ascontiguousarray(counts.T).sum()  # the reference adds column by column; the order moves the last bit
    return counts / max(total, _TINY) * int(class_count.sum())


def _round_rows(counts: np.ndarray) -> np.ndarray:
    """Round each row to integers keeping its rounded total: half to even, then the units go to the cells with the
    largest (to add) or smallest (to take away) remainder, in numpy's default argsort order as the reference does."""
    k = counts.shape[1]
    rounded = np.round(counts)
    for row, out in zip(counts, rounded):
        target = np.round(np.sum(row))
        while abs(gap := target - np.round(np.sum(out))) > _ROUND_TOLERANCE:
            units = min(int(abs(np.round(gap))), k)
            by_remainder = np.argsort(row - out)
            if gap > 0:
                out[by_remainder[::-1][:units]] += 1
            else:
                out[by_remainder[:units]] -= 1
    return rounded.astype(np.int64)


def _prune_counts(rounded: np.ndarray) -> np.ndarray:
    """Samples to prune per (given i, true j != i): the rounded calibrated counts; a given class whose rounded
    diagonal is below MIN_KEPT_PER_CLASS gets it back, taken evenly from the row's nonzero cells (the reference's)."""
    diagonal = np.diagonal(rounded)
    lift = np.maximum(diagonal, MIN_KEPT_PER_CLASS) - diagonal
    share = lift / np.maximum(np.count_nonzero(rounded, axis=1) - 1.0, 1.0)
    counts = rounded - share[:, None]
    counts[counts < 0] = 0
    counts = counts.astype(np.int64)  # truncation, as the reference's astype(int)
    np.fill_diagonal(counts, 0)
    return counts


@dataclass(frozen=True)
class Estimates:
    """The confident-learning estimates of the merged joint.

    calibrated: (K, K) Q, estimate of P(given = i, true = j) (sums to 1); noise_matrix: (K, K) P(given = i | true = j),
    column-stochastic (identity column for a class with no mass); prune_counts: (K, K) int64; n_estimated: round((1 -
    trace Q) N), the estimated number of label errors; n_estimated_ci: its bootstrap percentile interval given the
    thresholds (sampling noise of the estimate only, not the checker's own bias).
    """

    calibrated: np.ndarray
    noise_matrix: np.ndarray
    prune_counts: np.ndarray
    n_estimated: int
    n_estimated_ci: list[float]


def estimates(j: JointSums, class_count: np.ndarray) -> Estimates:
    """The estimates from the merged pass-2 sums and the per-class counts of pass 1."""
    class_count = np.asarray(class_count, dtype=np.int64)
    n = int(class_count.sum())
    counts = _calibrate(j.joint, class_count)
    q = counts / n
    col = q.sum(axis=0)
    noise = q / np.where(col > 0, col, 1.0)
    noise[:, col <= 0] = np.eye(len(col))[:, col <= 0]
    boot = [(1.0 - np.trace(_calibrate(bj, bc)) / max(int(bc.sum()), 1)) * n for bj, bc in zip(j.boot_joint, j.boot_count)]
    return Estimates(q, noise, _prune_counts(_round_rows(counts)), int(np.rint((1.0 - np.trace(q)) * n)),
                     [float(v) for v in intervals.percentile(boot)])


# --------------------------------------------------------------------------- pass 3: cut-offs


def prunable(prune_counts: np.ndarray, class_count: np.ndarray) -> dict[tuple[int, int], int]:
    """(i, j) -> how many of the samples given i to prune towards j, for the pairs that need a cut-off (classes
    above MIN_KEPT_PER_CLASS samples, 0 < count < class size; a count reaching the class size prunes it all)."""
    k = len(class_count)
    return {(i, int(j)): int(prune_counts[i, j]) for i in range(k) if class_count[i] > MIN_KEPT_PER_CLASS
            for j in np.flatnonzero(prune_counts[i]) if j != i}


def margins(labels: np.ndarray, probs: np.ndarray, limits: dict) -> Largest:
    """Pass 3 of some rows: per (i, j) the limits[(i, j)] largest margins p_j - p_i (input precision) among rows given i."""
    return Largest.of(limits, {(i, j): (probs[labels == i, j] - probs[labels == i, i]) for (i, j) in limits})


def cutoffs(m: Largest, k: int) -> np.ndarray:
    """(K, K) cut-offs: the prune_counts[i, j]-th largest margin; -inf where the count reaches the class (all go), +inf
    where nothing is pruned."""
    out = np.full((k, k), np.inf)
    for key in m.limits:
        out[key] = m.nth(key)
    return out


# --------------------------------------------------------------------------- pass 4: flags


def flags(labels: np.ndarray, probs: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """(n,) bool: rows whose margin towards some class reaches its cut-off (cutoffs), minus rows whose given label is
    still the argmax after MARGIN_SLACK is added to it (in the probabilities' own precision)."""
    hit = np.zeros(len(labels), dtype=bool)
    for i in np.flatnonzero((cut < np.inf).any(axis=1)):
        rows = np.flatnonzero(labels == i)
        for j in np.flatnonzero(cut[i] < np.inf):
            if j != i:
                hit[rows[probs[rows, j] - probs[rows, i] >= cut[i, j]]] = True
    candidates = np.flatnonzero(hit)
    raised = probs[candidates]
    at = np.arange(len(candidates))
    raised[at, labels[candidates]] = raised[at, labels[candidates]] + MARGIN_SLACK
    hit[candidates[raised.argmax(axis=1) == labels[candidates]]] = False
    return hit


def flagged_records(start: int, labels: np.ndarray, probs: np.ndarray, mask: np.ndarray, *, rank_by: str) -> np.ndarray:
    """The flagged rows of one chunk as records (row, given, suggested, p_given, score), in row order."""
    f = np.flatnonzero(mask)
    rec = np.zeros(len(f), dtype=[("row", "i8"), ("given", "i8"), ("suggested", "i8"), ("p_given", "f8"), ("score", "f8")])
    rec["row"], rec["given"], rec["suggested"] = start + f, labels[f], probs[f].argmax(axis=1)
    rec["p_given"], rec["score"] = self_confidence(labels[f], probs[f]), RANKERS[rank_by](labels[f], probs[f])
    return rec


def ranked(records: np.ndarray) -> np.ndarray:
    """Flagged records, most likely issue first: score ascending, ties by row."""
    return records[np.lexsort((records["row"], records["score"]))]


@dataclass(frozen=True)
class LabelCheck:
    """The four passes' result: rule, rank_by, pass 1's class sums, the thresholds (K,), the estimates, and the
    flagged records (flagged_records, most likely issue first)."""

    rule: str
    rank_by: str
    classes: ClassSums
    thresholds: np.ndarray
    estimates: Estimates
    flagged: np.ndarray

    @property
    def n(self) -> int:
        return int(self.classes.count.sum())


# --------------------------------------------------------------------------- cases


# Cases of the audited samples when both the audited model and an independent checker are known.
CASES = {
    "label_candidate": "label-error candidate: the checker confidently disagrees with the given label",
    "model_error": "model error, not a label issue: the checker agrees with the given label, the audited model does not",
    "ambiguous": "ambiguous: the audited model is wrong and the checker is unsure too",
}


def separate_cases(labels, model_predicted, checker_probs, flagged, t) -> np.ndarray:
    """(n,) object array of CASES keys or "": flagged rows are label candidates; of the rest, rows the audited model gets
    wrong are model errors when the checker agrees confidently with the given label (argmax and p >= t_given), else
    ambiguous."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(checker_probs, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    t = np.nan_to_num(np.asarray(t, dtype=np.float64), nan=np.inf)
    agrees = (p.argmax(axis=1) == y) & (p[np.arange(len(y)), y] >= t[y] - CONFIDENCE_SLACK)
    wrong = np.asarray(model_predicted) != y
    out = np.full(len(y), "", dtype=object)
    out[wrong & ~flagged & agrees] = "model_error"
    out[wrong & ~flagged & ~agrees] = "ambiguous"
    out[flagged] = "label_candidate"
    return out
