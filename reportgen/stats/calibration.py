"""Calibration from mergeable bin sums: ECE, debiased and equal-mass calibration error, MCE, classwise ECE, temperature.

Equal-width bins follow TFP's convention (tf.histogram_fixed_width_bins on [0, 1], as
tfp.stats.expected_calibration_error uses): bin b holds confidences in [b/B, (b+1)/B), confidence 1 goes to the
last bin. Equal-mass bins are unions of whole tie groups of the fine confidence histogram (histogram.py), so tied
confidences are never split between two bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Equal-width (and equal-mass) bins of every binned estimate.
N_BINS = 15
# Bins with fewer samples are left out of the MCE: a handful of 0/1 outcomes is not a calibration gap.
MCE_MIN_COUNT = 30
# Floor before taking the log of a probability (NLL, and the logits of temperature scaling).
LOG_FLOOR = 1e-12
# Temperatures of the grid that temperature scaling is fitted on: 121 log-spaced values from 1/16 to 16 (4.7 % apart);
# the NLL's minimum is refined between grid points by a parabola in log T.
TEMPERATURES = np.exp(np.linspace(math.log(1 / 16), math.log(16), 121))
# Rows whose (rows x grid x K) temporaries are built at once.
GRID_ROWS = 1024


def equal_width_bin(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """(n,) int64 equal-width bin of each confidence (TFP's rule)."""
    return np.clip(np.floor(confidence * n_bins), 0, n_bins - 1).astype(np.int64)


@dataclass(frozen=True)
class BinSums:
    """Sums over equal-width confidence bins, mergeable by addition; every field is (..., n_bins).

    n: samples; conf, conf_sq: sums of the confidence and of its square; correct: right predictions;
    conf_correct: the sum of the confidence over right predictions. Leading axes hold replicates or grid points.
    """

    n: np.ndarray
    conf: np.ndarray
    conf_sq: np.ndarray
    correct: np.ndarray
    conf_correct: np.ndarray

    @classmethod
    def of(cls, confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> "BinSums":
        b = equal_width_bin(confidence, n_bins)
        add = lambda w=None: np.bincount(b, weights=w, minlength=n_bins).astype(np.float64)  # noqa: E731
        ok = correct.astype(np.float64)
        return cls(add(), add(confidence), add(confidence * confidence), add(ok), add(confidence * ok))

    def total(self) -> np.ndarray:
        return self.n.sum(axis=-1)

    def accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.correct / self.n, np.nan)

    def mean_confidence(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.conf / self.n, np.nan)

    def ece(self) -> np.ndarray:
        """Plug-in L1 ECE, sum_b (n_b / N) |acc_b - conf_b| (tfp.stats.expected_calibration_error's)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(self.correct - self.conf).sum(axis=-1) / self.total()

    def mce(self, min_count: int = MCE_MIN_COUNT) -> float | None:
        """Largest |acc_b - conf_b| over bins holding at least `min_count` samples; None when no bin does."""
        full = self.n >= max(1, min_count)
        return float(np.abs(self.accuracy() - self.mean_confidence())[full].max()) if full.any() else None


def classwise_gaps(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """(K, n_bins) sums of (1[y = k] - p_k) per class k and equal-width bin of p_k: classwise ECE's mergeable piece."""
    n, k = probs.shape
    idx = (equal_width_bin(probs, n_bins) + np.arange(k) * n_bins).ravel()
    gap = -np.bincount(idx, weights=probs.ravel(), minlength=k * n_bins)
    hit = labels * n_bins + equal_width_bin(probs[np.arange(n), labels], n_bins)
    gap += np.bincount(hit, minlength=k * n_bins)
    return gap.reshape(k, n_bins)


def classwise_ece(gaps: np.ndarray, n: int) -> np.ndarray:
    """(K,) classwise ECE (Kull et al. 2019): for each class, the ECE of p_k against 1[y = k], from merged gaps."""
    return np.abs(gaps).sum(axis=1) / n


def equal_mass_bins(count: np.ndarray, correct: np.ndarray, sum_conf: np.ndarray, n_bins: int = N_BINS) -> BinSums:
    """Equal-mass bins made of whole tie groups of a fine confidence histogram.

    Tie group j (in ascending confidence) goes to bin floor(n_bins * (samples below it + its size / 2) / N): the
    bin of its middle sample, so bins hold about N / n_bins samples each and tied confidences stay together.

    Args:
        count, correct, sum_conf: (H,) per fine bin (histogram.py), most confident first.
    Returns:
        BinSums over the (at most n_bins) non-empty equal-mass bins, lowest confidences first (conf_sq and
        conf_correct are not known from the histogram and are NaN).
    """
    count, correct, sum_conf = (np.asarray(a)[::-1] for a in (count, correct, sum_conf))
    full = count > 0
    c = count[full].astype(np.float64)
    n = c.sum()
    middle = np.cumsum(c) - c / 2
    b = np.minimum((n_bins * middle / n).astype(np.int64), n_bins - 1)
    add = lambda w: np.bincount(b, weights=w, minlength=n_bins)  # noqa: E731
    sizes = add(c)
    keep = sizes > 0
    nan = np.full(int(keep.sum()), np.nan)
    return BinSums(sizes[keep], add(sum_conf[full])[keep], nan, add(correct[full].astype(np.float64))[keep], nan)


def debiased_l2(bins: BinSums) -> float:
    """Kumar, Liang & Ma's (2019) debiased L2 calibration error over the given bins.

    sqrt(max(0, sum_b (n_b / N) [(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)])), bins with n_b < 2 adding 0:
    the definition of their reference code (p-lambda/verified_calibration, unbiased_l2_ce). 0 means the squared
    error is within its sampling noise.
    """
    n, acc, conf = bins.n, bins.accuracy(), bins.mean_confidence()
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(n >= 2, (acc - conf) ** 2 - acc * (1 - acc) / (n - 1), 0.0)
    return float(math.sqrt(max(0.0, float(np.sum(n / n.sum() * term)))))


# --------------------------------------------------------------------------- temperature scaling on a grid


@dataclass(frozen=True)
class TemperatureSums:
    """Per random half (axis 0: half A, half B) and grid temperature (axis 1): the NLL sum and the scaled bins.

    Scaling logits by 1/T keeps the argmax, so correctness does not change; only the top confidence and the NLL do.
    nll: (2, G) float64 sums of -log softmax(z / T)_y; bins: BinSums of (2, G, n_bins) of the scaled confidences.
    """

    nll: np.ndarray
    bins: BinSums

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray, correct: np.ndarray, half_a: np.ndarray,
           n_bins: int = N_BINS) -> "TemperatureSums":
        g = len(TEMPERATURES)
        nll = np.zeros((2, g))
        parts = [np.zeros((2, g, n_bins)) for _ in range(5)]
        inv_t = 1.0 / TEMPERATURES
        for lo in range(0, len(labels), GRID_ROWS):
            z = np.log(np.maximum(probs[lo:lo + GRID_ROWS], LOG_FLOOR))
            y, ok, a = labels[lo:lo + GRID_ROWS], correct[lo:lo + GRID_ROWS].astype(np.float64), half_a[lo:lo + GRID_ROWS]
            top = z.max(axis=1)
            # s[i, t] = sum_k exp((z_k - z_max) / T): softmax(z / T)'s top confidence is 1 / s, its NLL (z_max - z_y) / T + log s.
            s = np.exp((z - top[:, None])[:, None, :] * inv_t[None, :, None]).sum(axis=2)
            row_nll = (top - z[np.arange(len(y)), y])[:, None] * inv_t[None, :] + np.log(s)
            conf = 1.0 / s
            b = equal_width_bin(conf, n_bins)  # (rows, G)
            for h, rows in ((0, a), (1, ~a)):
                nll[h] += row_nll[rows].sum(axis=0)
                cells = (np.arange(g)[None, :] * n_bins + b[rows]).ravel()
                c, ok_h = conf[rows], np.repeat(ok[rows], g)
                for part, w in zip(parts, (None, c.ravel(), (c * c).ravel(), ok_h, (c.ravel() * ok_h))):
                    part[h] += np.bincount(cells, weights=w, minlength=g * n_bins).reshape(g, n_bins)
        return cls(nll, BinSums(*parts))


def fit_temperature(nll: np.ndarray) -> tuple[int, float]:
    """(grid index of the smallest NLL, T refined by a parabola through it and its neighbours in log T)."""
    i = int(np.argmin(nll))
    logt = np.log(TEMPERATURES)
    if 0 < i < len(nll) - 1:
        y0, y1, y2 = nll[i - 1], nll[i], nll[i + 1]
        denom = y0 - 2 * y1 + y2
        if denom > 0:
            step = logt[1] - logt[0]
            return i, float(math.exp(logt[i] + step * 0.5 * (y0 - y2) / denom))
    return i, float(TEMPERATURES[i])


def softmax_at(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) row by row: probabilities rescaled by a temperature."""
    z = np.log(np.maximum(probs, LOG_FLOOR)) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
