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

from . import validate
from .errors import DataError, ReportgenError

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
# Share of samples called "most aleatoric" in the plain-language reading.
TOP_ALEATORIC_FRACTION = 0.05
# Share of errors above which one class pair is said to concentrate them.
CONCENTRATED_ERROR_SHARE = 0.25
# ECE cut-offs for the words used in the plain-language reading.
ECE_WORDS = ((0.01, "well calibrated"), (0.05, "slightly"), (0.15, "moderately"), (math.inf, "strongly"))


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

    def mce(self) -> float:
        """Largest gap over non-empty bins; NaN when no samples."""
        full = self.count > 0
        return float(self.gaps()[full].max()) if full.any() else math.nan


@dataclass(frozen=True)
class CalibrationStats:
    """Calibration of (N, K) probabilities against labels.

    ece: expected calibration error (tfp.stats.expected_calibration_error).
    mce: maximum calibration error over non-empty bins.
    brier: mean over samples of sum_k (p_k - onehot_k)^2, in [0, 2].
    nll: mean -log p_label (p floored at 1e-12), nats.
    n_bins: number of equal-width confidence bins.
    bin_edges: (n_bins + 1,) float64 from 0 to 1.
    bin_count: (n_bins,) int64.
    bin_accuracy: (n_bins,) float64, NaN where empty.
    bin_confidence: (n_bins,) float64, NaN where empty.
    """

    ece: float
    mce: float
    brier: float
    nll: float
    n_bins: int
    bin_edges: np.ndarray
    bin_count: np.ndarray
    bin_accuracy: np.ndarray
    bin_confidence: np.ndarray


@dataclass(frozen=True)
class TemperatureScaling:
    """Held-out effect of temperature scaling.

    temperature: T fitted on all N samples (for display only).
    nll_before, nll_after: mean NLL over all N, before and after out-of-fold scaling.
    ece_before, ece_after: ECE over all N, before and after out-of-fold scaling.
    method: one sentence describing the held-out scheme.
    """

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    method: str


@dataclass(frozen=True)
class SelectiveStats:
    """Risk-coverage analysis of abstaining on the least confident samples.

    coverage: (M,) float64 share of samples kept, ascending; M <= CURVE_POINTS.
    risk: (M,) float64 error rate among the kept samples.
    aurc: mean risk over all N coverages i/N (full curve, not the thinned one).
    accuracy_at: {"80", "90", "95", "99"} -> accuracy on the most confident X % of samples.
    threshold_1pct: smallest confidence t whose kept set (confidence >= t) has error <= 1 %.
    coverage_1pct: share of samples kept at threshold_1pct.
    """

    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    accuracy_at: dict[str, float | None]
    threshold_1pct: float | None
    coverage_1pct: float | None


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


def _tfp_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
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


def calibration(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> CalibrationStats:
    """ECE (via TFP), MCE, Brier, NLL and the reliability-diagram bins.

    Args:
        probs: (N, K) probabilities, rows sum to 1.
        labels: (N,) int true labels in [0, K).
        n_bins: number of equal-width confidence bins on [0, 1].
    Returns:
        CalibrationStats.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_n_bins(n_bins)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    bins = _compute_bins(p, y, n_bins)
    return CalibrationStats(
        ece=_tfp_ece(p, y, n_bins),
        mce=bins.mce(),
        brier=_brier(p, y),
        nll=_nll(p, y),
        n_bins=n_bins,
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1),
        bin_count=bins.count,
        bin_accuracy=bins.accuracy(),
        bin_confidence=bins.confidence(),
    )


# --------------------------------------------------------------------------- temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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
    probs: np.ndarray, labels: np.ndarray, *, seed: int = 0, n_bins: int = 15
) -> TemperatureScaling:
    """Held-out NLL and ECE before and after temperature scaling, by 2-fold cross-fitting.

    Args:
        probs: (N, K) probabilities, rows sum to 1; N >= 2. logits = log(probs).
        labels: (N,) int true labels in [0, K).
        seed: seed of the shuffle that splits the samples into two halves.
        n_bins: bins of the ECE.
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
    return _compute_temperature_scaling(p, y, seed, n_bins)


def _compute_temperature_scaling(p: np.ndarray, y: np.ndarray, seed: int, n_bins: int) -> TemperatureScaling:
    n = len(y)
    z = np.log(np.clip(p, LOG_FLOOR, 1.0))
    perm = np.random.default_rng(seed).permutation(n)
    half_a, half_b = perm[: n // 2], perm[n // 2 :]
    scaled = np.empty_like(p)
    for fit_on, apply_to in ((half_a, half_b), (half_b, half_a)):
        fit_on = fit_on[:TEMPERATURE_FIT_ROWS]  # already a random order
        t = _fit_temperature(z[fit_on], y[fit_on])
        for i in range(0, len(apply_to), ENTROPY_CHUNK_ROWS):
            rows = apply_to[i:i + ENTROPY_CHUNK_ROWS]
            scaled[rows] = _softmax(z[rows] / t)
    shown = perm[:TEMPERATURE_FIT_ROWS]
    return TemperatureScaling(
        temperature=_fit_temperature(z[shown], y[shown]),
        nll_before=_nll(p, y),
        nll_after=_nll(scaled, y),
        ece_before=_tfp_ece(p, y, n_bins),
        ece_after=_tfp_ece(scaled, y, n_bins),
        method=(
            f"2-fold cross-fitting (shuffle seed {seed}): T is fitted on one random half and "
            f"applied to the other, so no sample is scored with a T fitted on it; the T shown "
            f"is fitted on {min(n, TEMPERATURE_FIT_ROWS)} of the {n} samples"
            + (" (T is fitted on a seeded subsample of at most "
               f"{TEMPERATURE_FIT_ROWS} per half)." if n > 2 * TEMPERATURE_FIT_ROWS else ".")
        ),
    )


# --------------------------------------------------------------------------- selective


def selective_prediction(confidence: np.ndarray, correct: np.ndarray) -> SelectiveStats:
    """Risk-coverage curve, AURC, selective accuracy and the 1 %-error threshold.

    Ties in confidence are ordered at random in expectation (their errors are spread
    evenly), so the result does not depend on the input order.

    Args:
        confidence: (N,) float confidence of each prediction.
        correct: (N,) bool (or 0/1) whether the prediction is right.
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
    return _compute_selective(c, ok)


def _compute_selective(conf: np.ndarray, correct: np.ndarray) -> SelectiveStats:
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
    for pct in COVERAGE_PERCENTS:
        m = -(-pct * n // 100)  # ceil in integers: float 0.95 * 20 may not be 19
        accuracy_at[str(pct)] = float(1.0 - expected_errors[m - 1] / m)

    # A threshold keeps whole tie groups; error <= 1 % <=> 100 * errors <= kept.
    good = np.flatnonzero(100 * errors[ends] <= TARGET_ERROR_PERCENT * (ends + 1))
    if good.size:
        last = ends[good[-1]]
        threshold, kept_share = float(c[last]), float((last + 1) / n)
    else:
        threshold = kept_share = None

    if n > CURVE_POINTS:
        idx = np.unique(np.round(np.linspace(0, n - 1, CURVE_POINTS)).astype(np.int64))
    else:
        idx = np.arange(n)
    return SelectiveStats(
        coverage=coverage[idx],
        risk=risk[idx],
        aurc=float(risk.mean()),
        accuracy_at=accuracy_at,
        threshold_1pct=threshold,
        coverage_1pct=kept_share,
    )


# --------------------------------------------------------------------------- per class


def per_class(
    stats: UncertaintyStats,
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    n_classes: int,
    class_names: list[str],
    n_bins: int = 15,
) -> list[dict]:
    """Accuracy, confidence, uncertainty and ECE among the samples of each true class.

    Args:
        stats: per-sample stats of N samples.
        labels: (N,) int true labels in [0, n_classes).
        probs: (N, n_classes) the probabilities stats was computed from (mean over passes).
        n_classes: K.
        class_names: K display names.
        n_bins: bins of the per-class ECE (same binning as `calibration`).
    Returns:
        K dicts with keys name, count, accuracy, mean_confidence, mean_aleatoric,
        mean_epistemic (None when not measured), ece; values None when count is 0.
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
    return _compute_per_class(stats, y, p, list(class_names), n_bins)


def _compute_per_class(stats: UncertaintyStats, y, p, names: list[str], n_bins: int) -> list[dict]:
    rows = []
    for k, name in enumerate(names):
        mask = y == k
        count = int(mask.sum())
        if count == 0:
            rows.append(dict(name=name, count=0, accuracy=None, mean_confidence=None,
                             mean_aleatoric=None, mean_epistemic=None, ece=None))
            continue
        rows.append(dict(
            name=name,
            count=count,
            accuracy=float(stats.correct[mask].mean()),
            mean_confidence=float(stats.confidence[mask].mean()),
            mean_aleatoric=float(stats.aleatoric[mask].mean()),
            mean_epistemic=float(stats.epistemic[mask].mean()) if stats.epistemic_measured else None,
            ece=_compute_bins(p[mask], y[mask], n_bins).ece(),
        ))
    return rows


# --------------------------------------------------------------------------- summary


# Short snake_case metric keys -> display names, for everything summarize() returns.
METRIC_NAMES: dict[str, str] = {
    "accuracy": "Accuracy",
    "n_samples": "Evaluated samples",
    "n_passes": "Stochastic passes per sample (S)",
    "mean_confidence": "Mean confidence",
    "mean_entropy": "Mean predictive entropy (nats)",
    "mean_aleatoric": "Mean aleatoric uncertainty (nats)",
    "mean_epistemic": "Mean epistemic uncertainty, mutual information (nats)",
    "ece": "Expected calibration error (ECE)",
    "mce": "Maximum calibration error (MCE)",
    "brier": "Brier score",
    "nll": "Negative log-likelihood (nats)",
    "ece_temperature_scaled": "ECE after temperature scaling (held out)",
    "nll_temperature_scaled": "NLL after temperature scaling (held out, nats)",
    "temperature": "Fitted temperature T",
    "aurc": "Area under the risk-coverage curve (AURC)",
    "acc_at_80": "Accuracy on the 80 % most confident",
    "acc_at_90": "Accuracy on the 90 % most confident",
    "acc_at_95": "Accuracy on the 95 % most confident",
    "acc_at_99": "Accuracy on the 99 % most confident",
    "threshold_1pct": "Confidence threshold for at most 1 % error",
    "coverage_1pct": "Coverage at that threshold",
}


def summarize(
    stats: UncertaintyStats, cal: CalibrationStats, temp: TemperatureScaling, sel: SelectiveStats
) -> dict[str, float | int | None]:
    """Flat dict of headline metrics, plain Python numbers (JSON-serialisable).

    Args:
        stats, cal, temp, sel: results of per_sample, calibration, temperature_scaling,
            selective_prediction on the same N samples.
    Returns:
        {key: value} with the keys of METRIC_NAMES; n_samples is N, n_passes is S.
    """
    stats = _as_stats(stats)
    out: dict[str, float | int | None] = {
        "accuracy": float(stats.correct.mean()),
        "n_samples": int(stats.predicted.shape[0]),
        "n_passes": int(stats.n_samples),
        "mean_confidence": float(stats.confidence.mean()),
        "mean_entropy": float(stats.total.mean()),
        "mean_aleatoric": float(stats.aleatoric.mean()),
        "mean_epistemic": float(stats.epistemic.mean()) if stats.epistemic_measured else None,
        "ece": float(cal.ece),
        "mce": float(cal.mce),
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
    out["coverage_1pct"] = None if sel.coverage_1pct is None else float(sel.coverage_1pct)
    return out


def reading(
    stats: UncertaintyStats, labels: np.ndarray, class_names: list[str], cal: CalibrationStats | None = None
) -> list[str]:
    """Two to four plain-language sentences generated from the numbers.

    Args:
        stats: per-sample stats of N samples.
        labels: (N,) int true labels.
        class_names: K display names.
        cal: calibration of the same samples; without it the calibration sentence is left out.
    Returns:
        list of sentences.
    Raises:
        DataError: labels or names do not fit stats.
    """
    stats = _as_stats(stats)
    n = stats.predicted.shape[0]
    k = len(class_names)
    if k < 2 or int(stats.predicted.max()) >= k:
        raise DataError(f"class_names has {k} names but predictions reach class {int(stats.predicted.max())}")
    y = _as_labels(labels, n, k)
    return _compute_reading(stats, y, list(class_names), cal)


def _compute_reading(stats: UncertaintyStats, y, names: list[str], cal) -> list[str]:
    n, k = len(y), len(names)
    wrong = ~stats.correct
    n_err = int(wrong.sum())
    out = []
    if n_err == 0:
        out.append(f"All {n} predictions are correct, so there are no errors to analyse.")
    else:
        lo = np.minimum(y[wrong], stats.predicted[wrong])
        hi = np.maximum(y[wrong], stats.predicted[wrong])
        pair_counts = np.bincount(lo * k + hi, minlength=k * k)
        top = int(pair_counts.argmax())
        count = int(pair_counts[top])
        a, b = names[top // k], names[top % k]
        if count >= 2 and count / n_err >= CONCENTRATED_ERROR_SHARE:
            out.append(f"Errors concentrate in {a}↔{b} ({count} of {n_err} errors).")
        else:
            out.append(f"Errors are spread out: the most frequent confusion, {a}↔{b}, "
                       f"accounts for {count} of {n_err} errors.")
        n_top = max(1, math.ceil(TOP_ALEATORIC_FRACTION * n))
        most = np.argsort(-stats.aleatoric, kind="stable")[:n_top]
        caught = int(wrong[most].sum())
        kind = "aleatoric" if stats.epistemic_measured else "uncertain (highest-entropy)"
        out.append(f"{100 * caught / n_err:.0f} % of wrong predictions ({caught} of {n_err}) are among "
                   f"the {100 * TOP_ALEATORIC_FRACTION:.0f} % most {kind} samples "
                   f"({100 * TOP_ALEATORIC_FRACTION:.0f} % would mean no link).")
    if not stats.epistemic_measured:
        out.append("Epistemic uncertainty was not measured (one deterministic pass).")
    else:
        mean_epi, mean_total = float(stats.epistemic.mean()), float(stats.total.mean())
        share = f", {100 * mean_epi / mean_total:.0f} % of the predictive entropy" if mean_total > 0 else ""
        out.append(f"Epistemic uncertainty (mutual information over {stats.n_samples} passes) "
                   f"averages {mean_epi:.3f} nats{share}.")
    if cal is not None:
        acc, conf = float(stats.correct.mean()), float(stats.confidence.mean())
        word = next(w for limit, w in ECE_WORDS if cal.ece < limit)
        numbers = f"(mean confidence {conf:.3f} vs accuracy {acc:.3f})"
        if word == "well calibrated":
            out.append(f"ECE {cal.ece:.3f}: the model is well calibrated {numbers}.")
        elif abs(conf - acc) < cal.ece / 2:
            out.append(f"ECE {cal.ece:.3f}: the model is {word} miscalibrated, over-confident in some "
                       f"confidence bins and under-confident in others {numbers}.")
        else:
            side = "over-confident" if conf > acc else "under-confident"
            out.append(f"ECE {cal.ece:.3f}: the model is {word} {side} {numbers}.")
    return out
