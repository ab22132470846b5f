"""Paired comparisons of two audits of the same samples: each sample is scored by both, so their differences are compared.

Treating two audits of the same samples as independent adds both sampling noises, which mostly cancel in the
difference, so real changes go undetected. Here every test is on per-sample pairs (matched by source split and row):
- accuracy: McNemar's exact test on the discordant pairs, with a Wald interval of the paired difference;
- NLL and Brier score: a skewness-corrected interval (Hall 1992) of the mean per-sample difference;
- calibration error: a Poisson bootstrap over samples, both audits reweighted alike (resample.py), percentile interval;
- AURC: the delta method on the per-sample difference of the two AURCs' influence functions (histogram.aurc_influence).
A change is "called" when its 95 % interval excludes 0 (McNemar: p < 0.05).
"""

from __future__ import annotations

import math

import numpy as np

from . import calibration as C
from . import calibration_interval as CI
from . import histogram as H
from . import intervals, resample

# Significance of a called change.
ALPHA = 0.05


def _result(delta: float, ci, p: float | None = None) -> dict:
    lo, hi = (None, None) if ci is None else (float(ci[0]), float(ci[1]))
    called = (p is not None and p < ALPHA) if p is not None else (lo is not None and (lo > 0 or hi < 0))
    return {"delta": float(delta), "ci": None if lo is None else [lo, hi], "p": p, "called": bool(called)}


def mcnemar(right_old: np.ndarray, right_new: np.ndarray) -> dict:
    """Accuracy new - old on paired samples: McNemar's exact two-sided p-value and a Wald interval of the difference."""
    from scipy.stats import binomtest

    b = int(np.sum(right_old & ~right_new))  # right before, wrong now
    c = int(np.sum(~right_old & right_new))
    n = len(right_old)
    delta = (c - b) / n
    half = intervals.normal_quantile() * math.sqrt(max((b + c) - (c - b) ** 2 / n, 0.0)) / n
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {**_result(delta, [delta - half, delta + half], p), "discordant": [b, c]}


def paired_mean(old: np.ndarray, new: np.ndarray) -> dict:
    """Mean of new - old per sample with its skewness-corrected interval (intervals.mean_interval)."""
    d = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    ci = intervals.mean_interval(len(d), d.sum(), (d * d).sum(), (d ** 3).sum())
    return _result(float(d.mean()), ci)


def paired_calibration_error(conf_old, right_old, conf_new, right_new, *, replicates: int, seed: int) -> dict:
    """Calibration error (calibration_interval.estimate) new - old, with a paired Poisson-bootstrap percentile interval."""
    n = len(conf_old)

    def replicate_sums(conf, right):
        b = C.equal_width_bin(conf)
        ok = right.astype(np.float64)
        columns = (np.ones(n), conf, conf * conf, ok, conf * ok)  # the five BinSums fields
        out = np.zeros((replicates, len(columns), C.N_BINS))
        for block, lo, hi in resample.blocks(0, n):
            w = resample.block_weights(seed, block, replicates)[:, lo - block * resample.BLOCK_ROWS:hi - block * resample.BLOCK_ROWS]
            onehot = np.zeros((hi - lo, C.N_BINS))
            onehot[np.arange(hi - lo), b[lo:hi]] = 1.0
            wf = w.astype(np.float64)
            for i, col in enumerate(columns):
                out[:, i] += wf @ (onehot * col[lo:hi, None])
        return out

    old, new = replicate_sums(conf_old, right_old), replicate_sums(conf_new, right_new)
    full = lambda conf, right: float(CI.estimate(C.BinSums.of(conf, right)))  # noqa: E731
    delta = full(conf_new, right_new) - full(conf_old, right_old)
    per_replicate = lambda sums: CI.estimate(C.BinSums(*np.moveaxis(sums, 1, 0)))  # noqa: E731  (replicates, 5, bins) -> (replicates,)
    return _result(delta, intervals.percentile(per_replicate(new) - per_replicate(old)))


def paired_aurc(conf_old, right_old, conf_new, right_new) -> dict:
    """AURC new - old with a delta-method interval from the per-sample difference of the influence functions."""
    values, influence = [], []
    for conf, right in ((conf_old, right_old), (conf_new, right_new)):
        b = H.bin_of(1.0 - conf)
        a, table = H.aurc_influence(H.counts(b), H.counts(b, ~right))
        values.append(a)
        influence.append(table[b, (~right).astype(np.int64)])
    d = influence[1] - influence[0]
    half = intervals.normal_quantile() * math.sqrt(float(np.mean(d * d)) / len(d))
    delta = values[1] - values[0]
    return _result(delta, [delta - half, delta + half])


def _placements(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placements: for each positive, the share of negatives it outranks (ties count half), and for each
    negative, the share of positives that outrank it."""
    pos, neg = np.sort(score[positive]), np.sort(score[~positive])

    def below(sorted_values, x):
        return np.searchsorted(sorted_values, x, side="left") + 0.5 * (np.searchsorted(sorted_values, x, side="right")
                                                                     - np.searchsorted(sorted_values, x, side="left"))

    return below(neg, score[positive]) / len(neg), (len(pos) - below(pos, score[~positive])) / len(pos)


def paired_auroc(score_a: np.ndarray, score_b: np.ndarray, positive: np.ndarray) -> dict:
    """AUROC of score b minus that of score a on the same samples (higher scores should mark positives), with DeLong,
    DeLong & Clarke-Pearson's (1988) covariance of two correlated AUROCs: {"delta", "ci", "p", "called", "auroc": [a, b]}."""
    from statistics import NormalDist

    positive = np.asarray(positive, dtype=bool)
    v10, v01 = zip(*(_placements(np.asarray(s, dtype=np.float64), positive) for s in (score_a, score_b)))
    auc = [float(v.mean()) for v in v10]
    d10, d01 = v10[1] - v10[0], v01[1] - v01[0]
    var = float(np.var(d10, ddof=1) / len(d10) + np.var(d01, ddof=1) / len(d01))
    delta = auc[1] - auc[0]
    half = intervals.normal_quantile() * math.sqrt(var)
    p = 2 * (1 - NormalDist().cdf(abs(delta) / math.sqrt(var))) if var > 0 else (1.0 if delta == 0 else 0.0)
    return {**_result(delta, [delta - half, delta + half], p), "auroc": auc}
