"""Predictive uncertainty, calibration, temperature scaling and selective prediction.

Two kinds of work are kept apart, as STYLE.md asks:

- per-sample work that is a pure function of one batch: `SampleAccumulator.add` turns the
  S stochastic passes (MC dropout samples or ensemble members) of B rows into per-row sums,
  so no more than one batch of S samples is ever held; `per_sample` derives the
  uncertainty decomposition from those sums;
- dataset-level summaries built from mergeable pieces: `CalibrationBins` (per-bin counts and
  sums that add across batches) under the reliability diagram, MCE and per-class ECE.

TensorFlow Probability is imported inside the functions that need it, so importing this
module (and `reportgen --help`) does not pay for TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import intervals

from .. import validate
from ..errors import DataError, ReportgenError

# Floor before taking log of a probability (NLL, logits for TFP and temperature scaling).
LOG_FLOOR = 1e-12
# Search interval for the temperature T; beyond it the NLL curve is flat for real models.
TEMPERATURE_BOUNDS = (1e-2, 1e2)
# Golden-section search stops when the log T interval is this narrow.
LOG_TEMPERATURE_TOL = 1e-7
# Rows per TFP entropy call: bounds TFP's temporaries whatever N is.
ENTROPY_CHUNK_ROWS = 1 << 16
# Temperature T is one scalar: a seeded subsample of this many rows fixes it to ~1e-3, and
# keeps the 2-fold fit fast and small at N = 10^6 (the NLL/ECE are still computed on all rows).
TEMPERATURE_FIT_ROWS = 50_000
# Risk-coverage curves are thinned to at most this many points for plotting.
CURVE_POINTS = 500
# Coverages (percent of most confident samples) at which selective accuracy is reported.
COVERAGE_PERCENTS = (80, 90, 95, 99)
# Error rate that the selective-prediction threshold must achieve (as a percentage).
TARGET_ERROR_PERCENT = 1
# Share of samples called "most aleatoric" when counting how many errors they hold.
TOP_ALEATORIC_FRACTION = 0.05
# Bins with fewer samples are left out of the MCE: a handful of 0/1 outcomes is not a calibration gap.
MCE_MIN_COUNT = 30


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class SampledPredictions:
    """Aggregates of S stochastic forward passes (MC dropout samples or ensemble members).

    mean_probs: (N, K) float64, E_s[p_s], rows sum to 1.
    std_probs: (N, K) float64, population std (ddof=0) over s of p_s; zeros when S == 1.
    expected_entropy: (N,) float64, E_s[H(p_s)] in nats (aleatoric).
    votes: (N, K) int32, how many of the S samples had argmax k.
    n_samples: S.
    """

    mean_probs: np.ndarray
    std_probs: np.ndarray
    expected_entropy: np.ndarray
    votes: np.ndarray
    n_samples: int


@dataclass(frozen=True)
class UncertaintyStats:
    """Per-sample prediction and uncertainty decomposition; every array is (N,).

    predicted: int64 argmax of the mean probabilities.
    correct: bool, predicted == label.
    confidence: float64, max_k of the mean probabilities.
    margin: float64, top-1 minus top-2 mean probability.
    total: float64, H[E_s p_s] in nats (predictive entropy).
    aleatoric: float64, E_s H[p_s] in nats.
    epistemic: float64, total - aleatoric (mutual information); zeros when not measured.
    variation_ratio: float64, 1 - max_k votes_k / S.
    n_samples: S.
    epistemic_measured: False when S == 1 (one deterministic pass).
    """

    predicted: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    margin: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    variation_ratio: np.ndarray
    n_samples: int
    epistemic_measured: bool


@dataclass(frozen=True)
class CalibrationBins:
    """Mergeable sums over equal-width confidence bins on [0, 1] (TFP's convention).

    Bin b holds confidences in [b/n_bins, (b+1)/n_bins); confidence 1.0 goes to the last bin.
    count: (n_bins,) int64 samples per bin.
    sum_confidence: (n_bins,) float64 sum of confidences per bin.
    sum_correct: (n_bins,) int64 correct predictions per bin.
    """

    count: np.ndarray
    sum_confidence: np.ndarray
    sum_correct: np.ndarray

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.count.shape[0])

    def merge(self, other: CalibrationBins) -> CalibrationBins:
        """Bins of the union of two disjoint sets of samples.

        Raises:
            ReportgenError: the two have different numbers of bins.
        """
        if other.n_bins != self.n_bins:
            raise ReportgenError(f"cannot merge calibration bins: {self.n_bins} vs {other.n_bins} bins")
        return CalibrationBins(
            self.count + other.count,
            self.sum_confidence + other.sum_confidence,
            self.sum_correct + other.sum_correct,
        )

    __add__ = merge

    def accuracy(self) -> np.ndarray:
        """(n_bins,) float64 accuracy per bin, NaN where empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum_correct / self.count, np.nan)

    def confidence(self) -> np.ndarray:
        """(n_bins,) float64 mean confidence per bin, NaN where empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum_confidence / self.count, np.nan)

    def gaps(self) -> np.ndarray:
        """(n_bins,) float64 |accuracy - confidence| per bin, NaN where empty."""
        return np.abs(self.accuracy() - self.confidence())

    def ece(self) -> float:
        """Count-weighted mean gap; NaN when no samples."""
        n = int(self.count.sum())
        if n == 0:
            return math.nan
        full = self.count > 0
        return float(np.sum(self.count[full] * self.gaps()[full]) / n)

    def mce(self, min_count: int = MCE_MIN_COUNT) -> float | None:
        """Largest gap over bins holding at least `min_count` samples; None when no bin does."""
        full = self.count >= max(1, min_count)
        return float(self.gaps()[full].max()) if full.any() else None


@dataclass(frozen=True)
class CalibrationStats:
    """Calibration of (N, K) probabilities against labels.

    ece: expected calibration error, 15 equal-width bins: the float64 sum of CalibrationBins.ece (TFP's
        tfp.stats.expected_calibration_error over the same bins agrees within its float32 rounding, ~1e-7).
    ece_debiased: Kumar et al.'s debiased L2 calibration error, equal-mass bins (intervals.debiased_ece).
    ece_equal_mass: L1 ECE with equal-mass bins.
    mce: largest bin gap over bins with >= MCE_MIN_COUNT samples; None when no bin has that many.
    brier: mean over samples of sum_k (p_k - onehot_k)^2, in [0, 2].
    nll: mean -log p_label (p floored at 1e-12), nats.
    n_bins: number of equal-width confidence bins.
    bin_edges: (n_bins + 1,) float64 from 0 to 1.
    bin_count: (n_bins,) int64 (the confidence histogram under the reliability diagram).
    bin_accuracy: (n_bins,) float64, NaN where empty.
    bin_confidence: (n_bins,) float64, NaN where empty.
    classwise: (K,) float64 classwise ECE: for class k, equal-width bins of p_k against 1[y = k].
    floor: the equal-width ECE tested against the ECEs of a perfectly calibrated model with the
        same confidences and N (intervals.CalibrationVerdict: verdict, p_value, floor_mean, floor_q95).
    """

    ece: float
    ece_debiased: float
    ece_equal_mass: float
    mce: float | None
    brier: float
    nll: float
    n_bins: int
    bin_edges: np.ndarray
    bin_count: np.ndarray
    bin_accuracy: np.ndarray
    bin_confidence: np.ndarray
    classwise: np.ndarray
    floor: intervals.CalibrationVerdict


@dataclass(frozen=True)
class TemperatureScaling:
    """Held-out effect of temperature scaling.

    temperature: T fitted on the at most TEMPERATURE_FIT_ROWS samples with the smallest fit hash (for display only).
    nll_before, nll_after: mean NLL over all N, before and after out-of-fold scaling.
    ece_before, ece_after: ECE over all N, before and after out-of-fold scaling.
    floor_after: the scaled ECE tested against its own noise floor (as CalibrationStats.floor).
    method: one sentence describing the held-out scheme.
    """

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    floor_after: intervals.CalibrationVerdict
    method: str


@dataclass(frozen=True)
class SelectiveStats:
    """Risk-coverage analysis of abstaining on the least confident samples.

    coverage: (M,) float64 share of samples kept, ascending; M <= CURVE_POINTS.
    risk: (M,) float64 error rate among the kept samples.
    aurc: mean risk over all N coverages i/N (full curve, not the thinned one).
    accuracy_at: {"80", "90", "95", "99"} -> accuracy on the most confident X % of samples.
    kept_at: {"80", ...} -> how many samples that is (for its Wilson interval).
    threshold_1pct: smallest confidence t whose kept set (confidence >= t) has error <= 1 % on all
        N samples (the operating point to deploy; its in-sample error is optimistic).
    crossfit: the honest estimate of that rule, or None when some half has no such threshold:
        {"thresholds": [t_a, t_b] chosen on each random half, "kept": samples of the OTHER half
        kept by them, "errors": errors among those, "coverage": kept / N, "risk": errors / kept,
        "seed": the split's seed}.
    """

    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    accuracy_at: dict[str, float | None]
    kept_at: dict[str, int]
    threshold_1pct: float | None
    crossfit: dict | None


# --------------------------------------------------------------------------- validation


def _real_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise DataError(f"{name} must be real numbers; got dtype {a.dtype}")
    return a.astype(np.float64)


def _as_probs(probs, name: str = "probs") -> np.ndarray:
    """Checked (validate.probabilities) float64 probabilities with rows renormalised to sum 1."""
    return validate.normalised(validate.probabilities(probs, source=name))


def _as_labels(labels, n: int, k: int, name: str = "labels") -> np.ndarray:
    return validate.labels(labels, source=name, n=n, k=k)


def _as_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ReportgenError(f"n_bins must be a positive integer; got {n_bins!r}")
    return int(n_bins)


def _as_stats(stats) -> UncertaintyStats:
    if not isinstance(stats, UncertaintyStats):
        raise ReportgenError(f"expected UncertaintyStats; got {type(stats).__name__}")
    return stats


# --------------------------------------------------------------------------- per-sample


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, via tfp Categorical (0 log 0 = 0), in row chunks."""
    import tensorflow_probability as tfp

    p = np.asarray(p, dtype=np.float64)
    flat = p.reshape(-1, p.shape[-1])
    out = np.empty(len(flat))
    # TFP materialises several (rows, K) temporaries; chunks keep them small at N = 10^6.
    for i in range(0, len(flat), ENTROPY_CHUNK_ROWS):
        ent = tfp.distributions.Categorical(probs=flat[i:i + ENTROPY_CHUNK_ROWS]).entropy()
        out[i:i + ENTROPY_CHUNK_ROWS] = np.asarray(ent, dtype=np.float64)
    return out.reshape(p.shape[:-1]) + 0.0  # + 0.0 turns TFP's -0.0 into 0.0


class SampleAccumulator:
    """Collects per-row sums of S stochastic passes, batch by batch, in O(N*K) memory."""

    def __init__(self, n: int, k: int):
        """Prepare sums for n rows of k classes.

        Raises:
            ReportgenError: n < 1 or k < 2.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ReportgenError(f"n must be a positive integer; got {n!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ReportgenError(f"k must be an integer >= 2; got {k!r}")
        self._n, self._k = int(n), int(k)
        self._sum_p = np.zeros((self._n, self._k))
        self._std_p = np.zeros((self._n, self._k))
        self._sum_h = np.zeros(self._n)
        self._votes = np.zeros((self._n, self._k), dtype=np.int32)
        self._seen = np.zeros(self._n, dtype=bool)
        self._s: int | None = None

    def add(self, start: int, probs: np.ndarray) -> None:
        """Add the S samples of rows start:start+B; each row is added exactly once.

        Args:
            start: first row index.
            probs: (S, B, K) probabilities; S must be the same on every call.
        Raises:
            DataError: bad shape or values, S changed, rows out of range or already added.
        """
        p = _real_array(probs, "probs")
        if p.ndim != 3 or p.shape[2] != self._k:
            raise DataError(f"probs must have shape (S, B, {self._k}); got {p.shape}")
        s, b, _ = p.shape
        if s < 1 or b < 1:
            raise DataError(f"probs needs at least one sample and one row; got shape {p.shape}")
        if self._s is not None and s != self._s:
            raise DataError(f"every batch must have the same number of samples S={self._s}; got {s}")
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise DataError(f"start must be an integer; got {start!r}")
        start = int(start)
        if start < 0 or start + b > self._n:
            raise DataError(f"rows {start}:{start + b} are outside 0:{self._n}")
        rows = slice(start, start + b)
        if self._seen[rows].any():
            first = start + int(np.argmax(self._seen[rows]))
            raise DataError(f"row {first} was already added")
        p = _as_probs(p.reshape(s * b, -1)).reshape(s, b, -1)
        self._sum_p[rows] = p.sum(axis=0)
        # A row arrives with all its S samples, so the std is exact per batch; a running
        # sum of p^2 would lose ~1e-8 to cancellation (sqrt of float64 eps) when samples agree.
        self._std_p[rows] = p.std(axis=0) if s > 1 else 0.0
        self._sum_h[rows] = _entropy(p).sum(axis=0)
        winners = p.argmax(axis=2)  # (S, B)
        self._votes[rows] = (winners[:, :, None] == np.arange(self._k)).sum(axis=0)
        self._seen[rows] = True
        self._s = s

    def result(self) -> SampledPredictions:
        """Means, stds and votes over the S samples of every row.

        Raises:
            DataError: some rows were never added.
        """
        missing = np.flatnonzero(~self._seen)
        if missing.size:
            raise DataError(f"{missing.size} of {self._n} rows were never added (first: row {missing[0]})")
        s = self._s
        return SampledPredictions(
            self._sum_p / s, self._std_p.copy(), self._sum_h / s, self._votes.copy(), s
        )


def per_sample(pred: SampledPredictions, labels: np.ndarray) -> UncertaintyStats:
    """Prediction, confidence and the total/aleatoric/epistemic split of every sample.

    Args:
        pred: aggregates of S passes over N samples and K classes.
        labels: (N,) int true labels in [0, K).
    Returns:
        UncertaintyStats with (N,) arrays.
    Raises:
        DataError: labels do not fit pred.
    """
    if not isinstance(pred, SampledPredictions):
        raise ReportgenError(f"expected SampledPredictions; got {type(pred).__name__}")
    n, k = pred.mean_probs.shape
    return _compute_per_sample(pred, _as_labels(labels, n, k))


def _compute_per_sample(pred: SampledPredictions, y: np.ndarray) -> UncertaintyStats:
    mean = pred.mean_probs
    n, k = mean.shape
    s = pred.n_samples
    predicted = mean.argmax(axis=1).astype(np.int64)
    confidence = mean[np.arange(n), predicted]
    second = np.partition(mean, k - 2, axis=1)[:, k - 2]
    total = _entropy(mean)
    aleatoric = pred.expected_entropy.astype(np.float64)
    measured = s > 1
    epistemic = total - aleatoric if measured else np.zeros(n)
    return UncertaintyStats(
        predicted=predicted,
        correct=predicted == y,
        confidence=confidence,
        margin=confidence - second,
        total=total,
        aleatoric=aleatoric,
        epistemic=epistemic,
        variation_ratio=1.0 - pred.votes.max(axis=1) / s,
        n_samples=s,
        epistemic_measured=measured,
    )


# --------------------------------------------------------------------------- calibration


def _bins_from_confidence(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> CalibrationBins:
    # Same rule as tf.histogram_fixed_width_bins on [0, 1], which TFP's ECE uses.
    idx = np.clip(np.floor(confidence * n_bins), 0, n_bins - 1).astype(np.int64)
    return CalibrationBins(
        count=np.bincount(idx, minlength=n_bins).astype(np.int64),
        sum_confidence=np.bincount(idx, weights=confidence, minlength=n_bins),
        sum_correct=np.bincount(idx[correct], minlength=n_bins).astype(np.int64),
    )


def calibration_bins(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> CalibrationBins:
    """Per-bin counts and sums of one batch; `merge` (or +) them across batches.

    Args:
        probs: (N, K) probabilities, rows sum to 1.
        labels: (N,) int true labels in [0, K).
        n_bins: number of equal-width confidence bins on [0, 1].
    Returns:
        CalibrationBins with (n_bins,) arrays.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_n_bins(n_bins)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    return _compute_bins(p, y, n_bins)


def _compute_bins(p: np.ndarray, y: np.ndarray, n_bins: int) -> CalibrationBins:
    predicted = p.argmax(axis=1)
    return _bins_from_confidence(p[np.arange(len(y)), predicted], predicted == y, n_bins)


def top_label_bins(p: np.ndarray, y: np.ndarray, n_bins: int = 15) -> CalibrationBins:
    """CalibrationBins of already-checked (n, K) probabilities as given (not renormalised): a shard's piece of the ECE."""
    return _compute_bins(p, y, n_bins)


def _tfp_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    """TFP's ECE over the same bins, in float32: the reference the float64 CalibrationBins.ece is tested against."""
    import tensorflow_probability as tfp

    # float32: TFP 0.25 mixes a float32 count ratio with logits.dtype, so float64 logits fail.
    logits = np.log(np.clip(p, LOG_FLOOR, 1.0)).astype(np.float32)
    ece = tfp.stats.expected_calibration_error(
        n_bins, logits=logits, labels_true=y.astype(np.int64), labels_predicted=p.argmax(axis=1).astype(np.int64)
    )
    return float(ece)


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], LOG_FLOOR))))


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    diff = p.copy()
    diff[np.arange(len(y)), y] -= 1.0
    return float(np.mean(np.sum(np.square(diff), axis=1)))


def calibration(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15, simulations: int = intervals.DEFAULT_SIMULATIONS,
                seed: int = 0) -> CalibrationStats:
    """ECE (float64 sums over TFP's bins) judged against its noise floor, debiased and equal-mass ECE, MCE, classwise ECE, Brier, NLL.

    Args:
        probs: (N, K) probabilities, rows sum to 1.
        labels: (N,) int true labels in [0, K).
        n_bins: number of equal-width confidence bins on [0, 1].
        simulations: draws of a perfectly calibrated model for the noise floor.
        seed: seed of those draws.
    Returns:
        CalibrationStats.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_n_bins(n_bins)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    return _compute_calibration(p, y, n_bins, simulations, seed)


def _noise_floor(confidence: np.ndarray, correct: np.ndarray, n_bins: int, simulations: int, seed: int) -> intervals.CalibrationVerdict:
    """The equal-width ECE of these predictions against the ECEs of a calibrated model with the same confidences."""
    observed = intervals.equal_width_ece(confidence, correct, n_bins=n_bins)
    null = intervals.calibrated_ece_null(confidence, n_bins=n_bins, simulations=simulations, seed=seed)
    return intervals.calibration_test(observed, null)


def _compute_calibration(p: np.ndarray, y: np.ndarray, n_bins: int, simulations: int, seed: int) -> CalibrationStats:
    bins = _compute_bins(p, y, n_bins)
    predicted = p.argmax(axis=1)
    confidence, correct = p[np.arange(len(y)), predicted], predicted == y
    return CalibrationStats(
        ece=bins.ece(),
        ece_debiased=intervals.debiased_ece(confidence, correct, n_bins=n_bins),
        ece_equal_mass=intervals.equal_mass_ece(confidence, correct, n_bins=n_bins),
        mce=bins.mce(),
        brier=_brier(p, y),
        nll=_nll(p, y),
        n_bins=n_bins,
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1),
        bin_count=bins.count,
        bin_accuracy=bins.accuracy(),
        bin_confidence=bins.confidence(),
        classwise=intervals.classwise_ece(p, y, n_bins=n_bins),
        floor=_noise_floor(confidence, correct, n_bins, simulations, seed),
    )


# --------------------------------------------------------------------------- temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_at(logits: np.ndarray, t: float) -> np.ndarray:
    """softmax(logits / t) row by row: probabilities scaled by temperature t (what temperature_scaling applies)."""
    return _softmax(logits / t)


def _nll_at_temperature(z: np.ndarray, y: np.ndarray, t: float) -> float:
    zt = z / t
    m = zt.max(axis=1)
    lse = m + np.log(np.exp(zt - m[:, None]).sum(axis=1))
    return float(np.mean(lse - zt[np.arange(len(y)), y]))


def _fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    # NLL is convex in 1/T, hence unimodal in log T: golden-section search is exact enough.
    a, b = (math.log(t) for t in TEMPERATURE_BOUNDS)
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = _nll_at_temperature(z, y, math.exp(c)), _nll_at_temperature(z, y, math.exp(d))
    while b - a > LOG_TEMPERATURE_TOL:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = _nll_at_temperature(z, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = _nll_at_temperature(z, y, math.exp(d))
    return math.exp((a + b) / 2.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the mean NLL of softmax(logits / T).

    Args:
        logits: (N, K) finite logits.
        labels: (N,) int true labels in [0, K).
    Returns:
        T within TEMPERATURE_BOUNDS.
    Raises:
        DataError: bad shapes or values.
    """
    z = _real_array(logits, "logits")
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 2:
        raise DataError(f"logits must have shape (N >= 1, K >= 2); got {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("logits contain NaN or infinite values")
    return _fit_temperature(z, _as_labels(labels, *z.shape))


def temperature_scaling(
    probs: np.ndarray, labels: np.ndarray, *, seed: int = 0, n_bins: int = 15, simulations: int = intervals.DEFAULT_SIMULATIONS
) -> TemperatureScaling:
    """Held-out NLL and ECE before and after temperature scaling, by 2-fold cross-fitting.

    Args:
        probs: (N, K) probabilities, rows sum to 1; N >= 2. logits = log(probs).
        labels: (N,) int true labels in [0, K).
        seed: seed of the shuffle that splits the samples into two halves (and of the noise floor).
        n_bins: bins of the ECE.
        simulations: draws of a calibrated model for the scaled ECE's noise floor.
    Returns:
        TemperatureScaling.
    Raises:
        DataError: bad shapes or values, or fewer than 2 samples.
    """
    n_bins = _as_n_bins(n_bins)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    if len(y) < 2:
        raise DataError(f"temperature scaling needs at least 2 samples for 2 folds; got {len(y)}")
    return _compute_temperature_scaling(p, y, seed, n_bins, simulations)


def fit_rows(rows: np.ndarray, fit_key: np.ndarray, limit: int = TEMPERATURE_FIT_ROWS) -> np.ndarray:
    """The at most `limit` of `rows` with the smallest fit hash, in ascending row order (what T is fitted on).

    Args:
        rows: (m,) int64 global rows; fit_key: (m,) their intervals.row_uniform(..., stream=FIT_STREAM).
    Returns:
        (min(m, limit),) int64 rows, sorted.
    """
    if len(rows) > limit:
        rows = rows[np.argsort(fit_key, kind="stable")[:limit]]
    return np.sort(rows)


def temperature_method(n: int, seed: int, crossfit: bool) -> str:
    """The sentence that says how temperature scaling was held out."""
    if not crossfit:
        return (f"one of the two random halves (hash of seed {seed} and row) is empty at N = {n}, so T is fitted on all "
                "samples and the scaled numbers are in-sample.")
    return (f"2-fold cross-fitting: each sample falls in one of two random halves by a hash of (seed {seed}, row); T is "
            "fitted on one half and applied to the other, so no sample is scored with a T fitted on it; the T shown is "
            f"fitted on {min(n, TEMPERATURE_FIT_ROWS)} of the {n} samples"
            + (f" (T is fitted on at most {TEMPERATURE_FIT_ROWS} per half, those with the smallest second hash)."
               if n > 2 * TEMPERATURE_FIT_ROWS else "."))


def _compute_temperature_scaling(p: np.ndarray, y: np.ndarray, seed: int, n_bins: int, simulations: int) -> TemperatureScaling:
    n = len(y)
    z = np.log(np.clip(p, LOG_FLOOR, 1.0))
    rows = np.arange(n)
    in_a = intervals.random_halves(0, n, seed=seed)
    key = intervals.row_uniform(rows, seed=seed, stream=intervals.FIT_STREAM)
    shown = fit_rows(rows, key)
    t_shown = _fit_temperature(z[shown], y[shown])
    scaled = np.empty_like(p)
    half_a, half_b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    crossfit = bool(len(half_a) and len(half_b))
    for fit_on, apply_to in (((half_a, half_b), (half_b, half_a)) if crossfit else ((rows, rows),)):
        fit_on = fit_rows(fit_on, key[fit_on])
        t = _fit_temperature(z[fit_on], y[fit_on])
        for i in range(0, len(apply_to), ENTROPY_CHUNK_ROWS):
            chunk = apply_to[i:i + ENTROPY_CHUNK_ROWS]
            scaled[chunk] = _softmax(z[chunk] / t)
    predicted = scaled.argmax(axis=1)
    return TemperatureScaling(
        temperature=t_shown,
        nll_before=_nll(p, y),
        nll_after=_nll(scaled, y),
        ece_before=_compute_bins(p, y, n_bins).ece(),
        ece_after=_compute_bins(scaled, y, n_bins).ece(),
        floor_after=_noise_floor(scaled[np.arange(n), predicted], predicted == y, n_bins, simulations, seed + 1),
        method=temperature_method(n, seed, crossfit),
    )


# --------------------------------------------------------------------------- selective


def selective_prediction(confidence: np.ndarray, correct: np.ndarray, *, seed: int = 0) -> SelectiveStats:
    """Risk-coverage curve, AURC, selective accuracy and the 1 %-error threshold, cross-fitted.

    Ties in confidence are ordered at random in expectation (their errors are spread
    evenly), so the result does not depend on the input order. The threshold is also chosen
    on each random half (a hash of seed and row, intervals.random_halves) and its error measured
    on the other half, so the reported risk is not the optimistic in-sample one.

    Args:
        confidence: (N,) float confidence of each prediction.
        correct: (N,) bool (or 0/1) whether the prediction is right.
        seed: seed of the random halves.
    Returns:
        SelectiveStats.
    Raises:
        DataError: bad shapes or values.
    """
    c = _real_array(confidence, "confidence")
    ok = np.asarray(correct)
    if c.ndim != 1 or c.shape[0] < 1:
        raise DataError(f"confidence must have shape (N,) with N >= 1; got {c.shape}")
    if ok.shape != c.shape:
        raise DataError(f"correct must have shape {c.shape}; got {ok.shape}")
    if not np.isfinite(c).all():
        raise DataError("confidence contains NaN or infinite values")
    if ok.dtype != bool:
        if ok.dtype.kind not in "iu" or not np.isin(ok, (0, 1)).all():
            raise DataError(f"correct must be bool or 0/1; got dtype {ok.dtype}")
        ok = ok.astype(bool)
    return _compute_selective(c, ok, seed)


def _threshold(conf: np.ndarray, correct: np.ndarray) -> float | None:
    """Smallest confidence t whose kept set (confidence >= t) has error <= TARGET_ERROR_PERCENT %, or None.

    A threshold keeps whole tie groups; error <= 1 % <=> 100 * errors <= kept.
    """
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    errors = np.cumsum(~correct[order])
    ends = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
    good = np.flatnonzero(100 * errors[ends] <= TARGET_ERROR_PERCENT * (ends + 1))
    return float(c[ends[good[-1]]]) if good.size else None


def _crossfit(conf: np.ndarray, correct: np.ndarray, seed: int) -> dict | None:
    """Choose the threshold on one random half (intervals.random_halves), count kept samples and errors on the other, both ways."""
    n = len(conf)
    in_a = intervals.random_halves(0, n, seed=seed)
    halves = (np.flatnonzero(in_a), np.flatnonzero(~in_a))
    if not (len(halves[0]) and len(halves[1])):
        return None
    thresholds, kept, errors = [], 0, 0
    for fit, score in (halves, halves[::-1]):
        t = _threshold(conf[fit], correct[fit])
        if t is None:
            return None
        keep = conf[score] >= t
        thresholds.append(t)
        kept += int(keep.sum())
        errors += int((~correct[score][keep]).sum())
    return crossfit_result(thresholds, kept, errors, n, seed)


def crossfit_result(thresholds: list[float], kept: int, errors: int, n: int, seed: int) -> dict:
    """SelectiveStats.crossfit from the two thresholds and the other halves' kept and wrong samples."""
    return {"thresholds": [float(t) for t in thresholds], "kept": int(kept), "errors": int(errors), "coverage": kept / n,
            "risk": errors / kept if kept else None, "seed": seed}


def _compute_selective(conf: np.ndarray, correct: np.ndarray, seed: int) -> SelectiveStats:
    n = len(conf)
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    errors = np.cumsum(~correct[order])  # (N,) exact error counts among the first i+1
    # Tie groups of equal confidence: last index of each, and errors before and inside it.
    ends = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    sizes = ends - starts + 1
    before = np.r_[0, errors[ends[:-1]]]
    inside = errors[ends] - before
    group = np.repeat(np.arange(len(ends)), sizes)
    position = np.arange(n) - starts[group] + 1
    expected_errors = before[group] + inside[group] * position / sizes[group]
    kept = np.arange(1, n + 1)
    risk = expected_errors / kept
    coverage = kept / n

    accuracy_at: dict[str, float | None] = {}
    kept_at: dict[str, int] = {}
    for pct in COVERAGE_PERCENTS:
        m = -(-pct * n // 100)  # ceil in integers: float 0.95 * 20 may not be 19
        accuracy_at[str(pct)] = float(1.0 - expected_errors[m - 1] / m)
        kept_at[str(pct)] = int(m)

    idx = _curve_positions(n)
    return SelectiveStats(
        coverage=coverage[idx],
        risk=risk[idx],
        aurc=float(risk.mean()),
        accuracy_at=accuracy_at,
        kept_at=kept_at,
        threshold_1pct=_threshold(conf, correct),
        crossfit=_crossfit(conf, correct, seed),
    )


def _curve_positions(n: int) -> np.ndarray:
    """0-based positions of the at most CURVE_POINTS points the risk-coverage curve is thinned to."""
    if n > CURVE_POINTS:
        return np.unique(np.round(np.linspace(0, n - 1, CURVE_POINTS)).astype(np.int64))
    return np.arange(n)


def _tie_groups(detail: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, samples, errors) of each tie group of one bin's distinct samples (conf, ok, count), most confident first."""
    conf, inv = np.unique(detail["conf"], return_inverse=True)
    count = np.bincount(inv, weights=detail["count"]).astype(np.int64)
    wrong = np.bincount(inv, weights=detail["count"] * ~detail["ok"]).astype(np.int64)
    return conf[::-1], count[::-1], wrong[::-1]


def selective_from_histogram(count: np.ndarray, errors: np.ndarray, min_confidence: np.ndarray, crossfit: dict | None, *,
                             detail: dict | None = None, threshold: float | None = None) -> SelectiveStats:
    """SelectiveStats of a sharded run from a confidence histogram, exact where `detail` holds a bin's samples.

    Each bin (intervals.confidence_bins, FINE_MANTISSA_BITS: 0.1 % of 1 - confidence) is one tie group unless
    `detail` holds its distinct samples, which then give its exact tie groups. The accuracies at each coverage are
    exact when the bins their cuts fall in are detailed; AURC is the histogram's (within
    intervals.aurc_histogram_bound), the curve's points too.

    Args:
        count, errors: (H,) int64 samples and wrong predictions per bin, most confident bin first.
        min_confidence: (H,) float64 smallest confidence in each bin (inf where empty).
        crossfit: `crossfit_result` of the halves' thresholds, or None.
        detail: bin -> structured array (conf f8, ok bool, count i8) of the bin's distinct samples.
        threshold: threshold_1pct when known already (`threshold_from_histogram` with the same detail).
    """
    count = np.asarray(count, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.int64)
    detail = detail or {}
    n = int(count.sum())
    end = np.cumsum(count)
    err_end = np.cumsum(errors)

    def expected_errors(pos: np.ndarray) -> np.ndarray:
        """Expected errors among the first pos + 1 samples (pos 0-based), errors spread evenly inside a tie group."""
        out = np.empty(len(pos))
        for i, q in enumerate(pos):
            g = int(np.searchsorted(end, q, side="right"))
            before, err_before = end[g] - count[g], err_end[g] - errors[g]
            if g in detail:
                _, size, wrong = _tie_groups(detail[g])
                ends = np.cumsum(size)
                t = int(np.searchsorted(ends, q - before, side="right"))
                start = ends[t] - size[t]
                out[i] = err_before + wrong[:t].sum() + wrong[t] * (q - before - start + 1) / size[t]
            else:
                out[i] = err_before + errors[g] * (q - before + 1) / count[g]
        return out

    idx = _curve_positions(n)
    kept = idx + 1
    accuracy_at: dict[str, float | None] = {}
    kept_at: dict[str, int] = {}
    for pct in COVERAGE_PERCENTS:
        m = -(-pct * n // 100)
        accuracy_at[str(pct)] = float(1.0 - expected_errors(np.array([m - 1]))[0] / m)
        kept_at[str(pct)] = int(m)
    return SelectiveStats(
        coverage=kept / n,
        risk=expected_errors(idx) / kept,
        aurc=float(intervals.aurc_from_histogram(count, errors)),
        accuracy_at=accuracy_at,
        kept_at=kept_at,
        threshold_1pct=threshold if threshold is not None else threshold_from_histogram(count, errors, min_confidence, detail=detail),
        crossfit=crossfit,
    )


def threshold_candidates(count: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Bins of a confidence histogram that may hold the exact threshold_1pct: after the last bin whose end keeps error
    <= 1 %, those where some position inside could (all its right predictions first). Their samples make it exact."""
    count, errors = np.asarray(count, dtype=np.int64), np.asarray(errors, dtype=np.int64)
    full = np.flatnonzero(count > 0)
    kept, wrong = np.cumsum(count[full]), np.cumsum(errors[full])
    good = np.flatnonzero(100 * wrong <= TARGET_ERROR_PERCENT * kept)
    last = good[-1] if good.size else -1
    maybe = 100 * (wrong - errors[full]) <= TARGET_ERROR_PERCENT * (kept - errors[full])
    return full[(np.arange(len(full)) > last) & maybe]


def threshold_from_histogram(count: np.ndarray, errors: np.ndarray, min_confidence: np.ndarray, *,
                             detail: dict | None = None) -> float | None:
    """`_threshold` from a confidence histogram: the smallest confidence of the last tie group keeping error <= 1 %.

    Bin ends are tie-group ends (equal confidences share a bin); inside the `threshold_candidates` bins that `detail`
    holds, the exact tie groups are checked, so with all of them detailed the result is `_threshold`'s exactly; without
    detail it is the smallest confidence of the last bin whose end keeps error <= 1 %.
    """
    count, errors = np.asarray(count, dtype=np.int64), np.asarray(errors, dtype=np.int64)
    detail = detail or {}
    full = np.flatnonzero(count > 0)
    kept, wrong = np.cumsum(count[full]), np.cumsum(errors[full])
    good = np.flatnonzero(100 * wrong <= TARGET_ERROR_PERCENT * kept)
    best = float(min_confidence[full[good[-1]]]) if good.size else None
    for i in range((good[-1] if good.size else -1) + 1, len(full)):
        j = int(full[i])
        if j not in detail:
            continue
        conf, size, wr = _tie_groups(detail[j])
        ok = np.flatnonzero(100 * (wrong[i] - errors[j] + np.cumsum(wr)) <= TARGET_ERROR_PERCENT * (kept[i] - count[j] + np.cumsum(size)))
        if ok.size:
            best = float(conf[ok[-1]])
    return best


# --------------------------------------------------------------------------- per class


def per_class(
    stats: UncertaintyStats,
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    n_classes: int,
    class_names: list[str],
    classwise: np.ndarray | None = None,
    n_bins: int = 15,
) -> list[dict]:
    """Per-class recall and precision with 95 % Wilson intervals, mean confidence and uncertainty, classwise ECE.

    Args:
        stats: per-sample stats of N samples.
        labels: (N,) int true labels in [0, n_classes).
        probs: (N, n_classes) the probabilities stats was computed from (mean over passes).
        n_classes: K.
        class_names: K display names.
        classwise: (K,) classwise ECE if already computed (CalibrationStats.classwise), else computed here.
        n_bins: bins of the classwise ECE.
    Returns:
        K dicts: name, count (true class), correct, accuracy (= recall), accuracy_ci [low, high],
        predicted (count predicted as the class), precision, precision_ci, mean_confidence,
        mean_aleatoric, mean_epistemic (None when not measured), classwise_ece; values None
        where undefined (no sample of the class, or never predicted).
    Raises:
        DataError: shapes or names do not fit.
    """
    stats = _as_stats(stats)
    n_bins = _as_n_bins(n_bins)
    p = _as_probs(probs)
    n = stats.predicted.shape[0]
    if p.shape != (n, n_classes):
        raise DataError(f"probs must have shape ({n}, {n_classes}); got {p.shape}")
    if len(class_names) != n_classes:
        raise DataError(f"class_names has {len(class_names)} names for {n_classes} classes")
    y = _as_labels(labels, n, n_classes)
    cw = intervals.classwise_ece(p, y, n_bins=n_bins) if classwise is None else np.asarray(classwise, np.float64)
    return _compute_per_class(stats, y, list(class_names), cw)


def _compute_per_class(stats: UncertaintyStats, y, names: list[str], classwise: np.ndarray) -> list[dict]:
    k = len(names)
    count = np.bincount(y, minlength=k)
    correct = np.bincount(y[stats.correct], minlength=k)
    predicted = np.bincount(stats.predicted, minlength=k)
    means = {"confidence": [], "aleatoric": [], "epistemic": []}
    for c in range(k):
        mask = y == c
        has = count[c] > 0
        means["confidence"].append(float(stats.confidence[mask].mean()) if has else None)
        means["aleatoric"].append(float(stats.aleatoric[mask].mean()) if has else None)
        means["epistemic"].append(float(stats.epistemic[mask].mean()) if has and stats.epistemic_measured else None)
    return per_class_rows(names, count, correct, predicted, means, classwise)


def per_class_rows(names: list[str], count, correct, predicted, means: dict, classwise) -> list[dict]:
    """The per-class dicts of `per_class` from per-class counts and means (what a sharded run merges).

    Args:
        names: K names; count, correct, predicted: (K,) integer counts by true class (correct: right
            predictions of it) and by predicted class; means: {"confidence", "aleatoric", "epistemic"} ->
            K floats or None (no sample, or not measured); classwise: (K,) classwise ECE.
    """
    recall_ci = intervals.wilson(correct, count)
    precision_ci = intervals.wilson(correct, predicted)
    rows = []
    for c, name in enumerate(names):
        has = count[c] > 0
        rows.append(dict(
            name=name,
            count=int(count[c]),
            correct=int(correct[c]),
            accuracy=float(correct[c] / count[c]) if has else None,
            accuracy_ci=[float(v) for v in recall_ci[c]] if has else None,
            predicted=int(predicted[c]),
            precision=float(correct[c] / predicted[c]) if predicted[c] else None,
            precision_ci=[float(v) for v in precision_ci[c]] if predicted[c] else None,
            mean_confidence=means["confidence"][c],
            mean_aleatoric=means["aleatoric"][c],
            mean_epistemic=means["epistemic"][c],
            classwise_ece=float(classwise[c]),
        ))
    return rows


def error_facts(stats: UncertaintyStats, labels: np.ndarray, n_classes: int) -> dict:
    """Numbers the report's sentences about errors are built from (plain data).

    Returns:
        {"confusion": K x K counts (rows true, columns predicted), "n_errors",
         "top_fraction", "top_count": samples in the top TOP_ALEATORIC_FRACTION by aleatoric
         (or total when epistemic was not measured), "errors_in_top": wrong predictions among them,
         "top_statistic": "aleatoric" | "total"}.
    """
    stats = _as_stats(stats)
    y = _as_labels(labels, len(stats.predicted), n_classes)
    k = n_classes
    confusion = np.bincount(y * k + stats.predicted, minlength=k * k).reshape(k, k)
    top_count = top_count_of(len(y))
    values = stats.aleatoric if stats.epistemic_measured else stats.total
    top = np.argsort(-values, kind="stable")[:top_count]
    return error_facts_from(confusion, int((~stats.correct).sum()), int((~stats.correct[top]).sum()), stats.epistemic_measured)


def top_count_of(n: int) -> int:
    """Samples counted as "most uncertain" among N: the top TOP_ALEATORIC_FRACTION, at least one."""
    return max(1, math.ceil(TOP_ALEATORIC_FRACTION * n))


def error_facts_from(confusion, n_errors: int, errors_in_top: int, epistemic_measured: bool) -> dict:
    """`error_facts` from its counts (confusion (K, K), errors, errors among the top_count_of(N) most uncertain)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    return {"confusion": confusion.tolist(), "n_errors": int(n_errors), "top_fraction": TOP_ALEATORIC_FRACTION,
            "top_count": int(top_count_of(int(confusion.sum()))), "errors_in_top": int(errors_in_top),
            "top_statistic": "aleatoric" if epistemic_measured else "total"}


# --------------------------------------------------------------------------- summary


def summarize(
    stats: UncertaintyStats, cal: CalibrationStats, temp: TemperatureScaling, sel: SelectiveStats
) -> dict[str, float | int | None]:
    """Flat dict of headline metrics (the keys of metrics.METRICS), plain Python numbers (JSON-serialisable).

    Args:
        stats, cal, temp, sel: results of per_sample, calibration, temperature_scaling,
            selective_prediction on the same N samples.
    Returns:
        {key: value}; n_samples is N, n_passes is S; None where not measured.
    """
    stats = _as_stats(stats)
    means = {"accuracy": float(stats.correct.mean()), "mean_confidence": float(stats.confidence.mean()),
             "mean_entropy": float(stats.total.mean()), "mean_aleatoric": float(stats.aleatoric.mean()),
             "mean_epistemic": float(stats.epistemic.mean()) if stats.epistemic_measured else None}
    return summary_metrics(means, int(stats.predicted.shape[0]), int(stats.n_samples), cal, temp, sel)


def summary_metrics(means: dict, n: int, n_passes: int, cal: CalibrationStats, temp: TemperatureScaling,
                    sel: SelectiveStats) -> dict[str, float | int | None]:
    """`summarize` from the means over the samples (accuracy, mean_confidence, mean_entropy, mean_aleatoric,
    mean_epistemic or None), N and S: what a sharded run has instead of per-sample arrays."""
    out: dict[str, float | int | None] = {
        "accuracy": means["accuracy"],
        "n_samples": int(n),
        "n_passes": int(n_passes),
        "mean_confidence": means["mean_confidence"],
        "mean_entropy": means["mean_entropy"],
        "mean_aleatoric": means["mean_aleatoric"],
        "mean_epistemic": means["mean_epistemic"],
        "ece": float(cal.ece),
        "ece_debiased": float(cal.ece_debiased),
        "ece_equal_mass": float(cal.ece_equal_mass),
        "ece_noise_floor": float(cal.floor.floor_q95),
        "ece_p_value": float(cal.floor.p_value),
        "classwise_ece": float(np.mean(cal.classwise)),
        "mce": None if cal.mce is None else float(cal.mce),
        "brier": float(cal.brier),
        "nll": float(cal.nll),
        "ece_temperature_scaled": float(temp.ece_after),
        "nll_temperature_scaled": float(temp.nll_after),
        "temperature": float(temp.temperature),
        "aurc": float(sel.aurc),
    }
    for pct in COVERAGE_PERCENTS:
        value = sel.accuracy_at.get(str(pct))
        out[f"acc_at_{pct}"] = None if value is None else float(value)
    out["threshold_1pct"] = None if sel.threshold_1pct is None else float(sel.threshold_1pct)
    cf = sel.crossfit
    out["coverage_1pct"] = None if cf is None else float(cf["coverage"])
    out["risk_1pct"] = None if cf is None or cf["risk"] is None else float(cf["risk"])
    return out


def sample_scores(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample NLL (nats, p floored at LOG_FLOOR) and Brier score of (n, K) probabilities: ((n,), (n,)) float64."""
    n = len(y)
    nll_i = -np.log(np.maximum(p[np.arange(n), y], LOG_FLOOR))
    diff = p.copy()
    diff[np.arange(n), y] -= 1.0
    return nll_i, np.sum(diff * diff, axis=1)


def interval_metrics(stats: UncertaintyStats, probs: np.ndarray, labels: np.ndarray, sel: SelectiveStats, *,
                     replicates: int = intervals.DEFAULT_REPLICATES, seed: int = 0) -> dict[str, float | None]:
    """95 % intervals of the headline metrics, as `<key>_ci_low` / `<key>_ci_high` entries.

    Wilson intervals for the shares (accuracy, accuracy at each coverage, the cross-fitted risk at
    the 1 % threshold); a seeded Poisson bootstrap (intervals.bootstrap, `replicates` resamples)
    for ECE, NLL, Brier, AURC and the mean confidence and uncertainties.

    Args:
        stats: per-sample stats; probs: (N, K) the probabilities they came from; labels: (N,) true labels;
        sel: selective_prediction of the same samples.
    Returns:
        {"accuracy_ci_low": ..., "accuracy_ci_high": ..., ...}; None where the metric is not measured.
    """
    stats = _as_stats(stats)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    n = len(y)
    nll_i, brier_i = sample_scores(p, y)
    values = {"nll": nll_i, "brier": brier_i, "mean_confidence": stats.confidence,
              "mean_entropy": stats.total, "mean_aleatoric": stats.aleatoric}
    if stats.epistemic_measured:
        values["mean_epistemic"] = stats.epistemic
    boot = intervals.bootstrap(stats.confidence, stats.correct, values, replicates=replicates, seed=seed)
    return interval_metrics_from(int(stats.correct.sum()), n, sel, boot, stats.epistemic_measured)


def interval_metrics_from(n_correct: int, n: int, sel: SelectiveStats, boot: dict, epistemic_measured: bool) -> dict[str, float | None]:
    """`interval_metrics` from the correct count, the selective stats and the bootstrap intervals
    ({name: (2,) [low, high]} for the values, "ece" and "aurc"): what a sharded run merges."""
    out: dict[str, float | None] = {}

    def put(key: str, ci) -> None:
        lo, hi = (None, None) if ci is None else (float(ci[0]), float(ci[1]))
        out[key + "_ci_low"], out[key + "_ci_high"] = lo, hi

    put("accuracy", intervals.wilson(int(n_correct), n))
    for pct in COVERAGE_PERCENTS:
        kept = sel.kept_at[str(pct)]
        put(f"acc_at_{pct}", intervals.wilson(int(round(sel.accuracy_at[str(pct)] * kept)), kept))
    cf = sel.crossfit
    put("risk_1pct", intervals.wilson(cf["errors"], cf["kept"]) if cf and cf["kept"] else None)
    for key, ci in boot.items():
        put(key, ci)
    if not epistemic_measured:
        put("mean_epistemic", None)
    return out
