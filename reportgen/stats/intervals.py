"""95 % intervals for every reported number, and calibration measures beyond plain ECE.

Pure numpy; nothing here imports TensorFlow or another reportgen stage.

- `wilson`: score intervals for proportions (accuracy, per-class accuracy, coverage).
- A Poisson bootstrap whose weights are a deterministic function of (seed, replicate,
  global row index), so per-shard sums (`bootstrap_sums`, merged with `+`) equal one pass
  over all rows, as STYLE.md's "dataset-level summaries built from mergeable pieces" asks.
  `bootstrap` is the one-call version for data held in memory; `bootstrap_aurc` needs all
  rows at once (the risk-coverage curve sorts them), so it is not mergeable.
- Calibration: equal-mass, debiased (Kumar et al. 2019) and classwise (Kull et al. 2019)
  ECE, and a simulated noise floor: the ECE a perfectly calibrated model with the same
  confidences would show at this sample size, with a test against it (`calibration_test`).

Equal-width bins follow uncertainty.py (tf.histogram_fixed_width_bins on [0, 1]):
bin b holds confidences in [b/n_bins, (b+1)/n_bins), confidence 1.0 goes to the last bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .. import validate
from ..errors import DataError

# Confidence level of every interval unless told otherwise.
LEVEL = 0.95
# Largest round B with `bootstrap` (N=10,000, six values) under 0.5 s on 2 cores: ~0.25-0.4 s; 5000 takes ~0.8 s.
DEFAULT_REPLICATES = 2000
# Simulated calibrated ECEs in the noise floor: ~0.06 s at N=10,000; p-values resolve to 1/2001.
DEFAULT_SIMULATIONS = 2000
# Equal-width (and equal-mass) bins of the ECEs, as in uncertainty.py.
DEFAULT_BINS = 15
# A p-value below this calls the model miscalibrated.
MISCALIBRATION_ALPHA = 0.05
# Global rows per weight block (one random stream each, and the row chunk); part of what a seed means.
BLOCK_ROWS = 1024
# Stream tags after the seed, so bootstrap and null never share a stream (SeedSequence: [s] == [s, 0]).
BOOTSTRAP_STREAM, NULL_STREAM = 1, 2
# Tags of the per-row hashes (`row_uniform`): the 2-fold halves, the temperature-fit subsample, the figures' sample.
HALF_STREAM, FIT_STREAM, DISPLAY_STREAM = 3, 4, 5
# Confidence histograms bin u = 1 - confidence by its float64 exponent and this many leading mantissa bits:
# two confidences whose distances to 1 differ by more than 2^-10 (0.1 %) relative always fall in different bins.
FINE_MANTISSA_BITS = 10
# The per-replicate histograms of the bootstrap AURC (B of them) use 2^-4 (6 %) relative bins: 865 bins, B x 865 counts.
COARSE_MANTISSA_BITS = 4
# Smallest positive u kept apart (float64 confidences below 1 are at most 1 - 2^-53); smaller u share bin 1.
_U_MIN_EXPONENT = -53
# round(2^32 P(Poisson(1) <= k)), k = 0..11, from 60-digit decimals: fixed integers, same on every machine.
POISSON_THRESHOLDS = (
    1580030169, 3160060337, 3950075422, 4213413783, 4279248374, 4292415292,
    4294609778, 4294923276, 4294962463, 4294966817, 4294967253, 4294967292,
)
# Elements per chunk of the AURC bootstrap, null simulation and classwise ECE: bounds temporaries.
CHUNK_ELEMENTS = 1 << 22
# `bootstrap` draws the (B, N) uint8 weights once for sums and AURC up to this many bytes (else twice).
SHARED_WEIGHTS_BYTES = 1 << 25
# Confidences may exceed 1 by this much through float32 rounding (validate.ABOVE_ONE_SLACK).
PROB_RANGE_SLACK = validate.ABOVE_ONE_SLACK
# Relative distance within which a simulated ECE counts as tied with the observed one (rounding, not a difference).
TIE_TOLERANCE = 1e-9
# Keys `bootstrap` adds to the value names; a value may not use them.
RESERVED_KEYS = ("ece", "aurc")


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class BootstrapSums:
    """Per-replicate weighted sums over some rows; `merge` (or +) them across disjoint rows.

    Row i of replicate b has the Poisson(1) weight w[b, i] of `poisson_weights`.
    seed: seed of the weights.
    rows: sorted, disjoint, non-adjacent (start, stop) ranges of the global rows summed.
    total_weight: (B,) int64 sum_i w[b, i] (the replicate's sample size N*).
    sums: name -> (B,) float64 sum_i w[b, i] * value[i].
    bin_count: (B, n_bins) int64 weighted samples per equal-width confidence bin.
    bin_sum_confidence: (B, n_bins) float64 weighted sum of confidences per bin.
    bin_sum_correct: (B, n_bins) int64 weighted correct predictions per bin.
    """

    seed: int
    rows: tuple[tuple[int, int], ...]
    total_weight: np.ndarray
    sums: dict[str, np.ndarray]
    bin_count: np.ndarray
    bin_sum_confidence: np.ndarray
    bin_sum_correct: np.ndarray

    @property
    def replicates(self) -> int:
        """Number of replicates B."""
        return int(self.total_weight.shape[0])

    @property
    def n_bins(self) -> int:
        """Number of equal-width confidence bins."""
        return int(self.bin_count.shape[1])

    def merge(self, other: BootstrapSums) -> BootstrapSums:
        """Sums over the union of two disjoint row sets.

        Raises:
            DataError: different seed, replicates, bins or value names, or overlapping rows.
        """
        if not isinstance(other, BootstrapSums):
            raise DataError(f"cannot merge BootstrapSums with {type(other).__name__}")
        mine = (self.seed, self.replicates, self.n_bins, sorted(self.sums))
        theirs = (other.seed, other.replicates, other.n_bins, sorted(other.sums))
        if mine != theirs:
            raise DataError(
                "cannot merge bootstrap sums with different (seed, replicates, n_bins, values): "
                f"{mine} vs {theirs}"
            )
        return BootstrapSums(
            seed=self.seed,
            rows=_union_rows(self.rows, other.rows),
            total_weight=self.total_weight + other.total_weight,
            sums={name: self.sums[name] + other.sums[name] for name in self.sums},
            bin_count=self.bin_count + other.bin_count,
            bin_sum_confidence=self.bin_sum_confidence + other.bin_sum_confidence,
            bin_sum_correct=self.bin_sum_correct + other.bin_sum_correct,
        )

    __add__ = merge

    def means(self) -> dict[str, np.ndarray]:
        """name -> (B,) float64 weighted mean of each value; NaN where N* is 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                name: np.where(self.total_weight > 0, s / self.total_weight, np.nan)
                for name, s in self.sums.items()
            }

    def ece(self) -> np.ndarray:
        """(B,) float64 equal-width ECE of each replicate; NaN where N* is 0.

        sum_b (n_b / N*) |acc_b - conf_b| = sum_b |correct_b - confidence_b| / N*.
        """
        gap = np.abs(self.bin_sum_correct - self.bin_sum_confidence).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total_weight > 0, gap / self.total_weight, np.nan)


@dataclass(frozen=True)
class CalibrationVerdict:
    """Observed ECE against the ECEs a perfectly calibrated model shows at this N.

    verdict: "miscalibrated" (p_value < MISCALIBRATION_ALPHA) or "consistent" (with
        calibration at this sample size: the ECE is within the noise floor).
    p_value: (1 + #{null >= observed}) / (1 + M), in (0, 1].
    ece_observed: the ECE tested.
    floor_mean: mean of the M simulated calibrated ECEs.
    floor_q95: their 95th percentile (linear interpolation).
    simulations: M.
    """

    verdict: str
    p_value: float
    ece_observed: float
    floor_mean: float
    floor_q95: float
    simulations: int


@dataclass(frozen=True)
class NullSums:
    """Sums of the calibrated-model simulations over some rows; `merge` (or +) them across disjoint rows.

    seed: seed of the draws; n: rows summed; rows: their (start, stop) global ranges.
    sum_confidence: (n_bins,) float64 sum of the confidences per equal-width bin.
    hits: (M, n_bins) int64 simulated correct predictions per simulation and bin.
    """

    seed: int
    n: int
    rows: tuple[tuple[int, int], ...]
    sum_confidence: np.ndarray
    hits: np.ndarray

    def merge(self, other: NullSums) -> NullSums:
        """Sums over the union of two disjoint row sets.

        Raises:
            DataError: different seed, simulations or bins, or overlapping rows.
        """
        if not isinstance(other, NullSums) or other.seed != self.seed or other.hits.shape != self.hits.shape:
            raise DataError("cannot merge null sums with a different seed, number of simulations or bins")
        return NullSums(self.seed, self.n + other.n, _union_rows(self.rows, other.rows),
                        self.sum_confidence + other.sum_confidence, self.hits + other.hits)

    __add__ = merge

    def eces(self) -> np.ndarray:
        """(M,) float64 equal-width ECE of each simulation: sum_b |hits_b - sum_confidence_b| / n."""
        return np.abs(self.hits - self.sum_confidence).sum(axis=1) / max(self.n, 1)


# --------------------------------------------------------------------------- validation


def _as_int(x, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}; got {x!r}")
    return int(x)


def _as_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise DataError(f"level must be a number strictly between 0 and 1; got {level!r}")
    return float(level)


def _real_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise DataError(f"{name} must be real numbers; got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return a


def _as_confidence(x, name: str = "confidence", allow_empty: bool = False) -> np.ndarray:
    c = _real_array(x, name)
    if c.ndim != 1 or (c.shape[0] < 1 and not allow_empty):
        raise DataError(f"{name} must have shape (N,) with N >= 1; got {c.shape}")
    if c.size and (c.min() < -PROB_RANGE_SLACK or c.max() > 1 + PROB_RANGE_SLACK):
        raise DataError(f"{name} must lie in [0, 1]; got values in [{c.min():.4g}, {c.max():.4g}]")
    return np.clip(c, 0.0, 1.0)


def _as_correct(x, n: int) -> np.ndarray:
    ok = np.asarray(x)
    if ok.shape != (n,):
        raise DataError(f"correct must have shape ({n},) like confidence; got {ok.shape}")
    if ok.dtype != bool:
        if ok.dtype.kind not in "iuf" or not np.isin(ok, (0, 1)).all():
            raise DataError(f"correct must be bool or 0/1; got dtype {ok.dtype} with other values")
        ok = ok.astype(bool)
    return ok


def _as_values(values, n: int) -> dict[str, np.ndarray]:
    if not isinstance(values, Mapping):
        raise DataError(f"values must be a mapping of name -> (N,) array; got {type(values).__name__}")
    out = {}
    for name, v in values.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"value names must be non-empty strings; got {name!r}")
        a = _real_array(v, f"values[{name!r}]")
        if a.shape != (n,):
            raise DataError(f"values[{name!r}] must have shape ({n},) like confidence; got {a.shape}")
        out[name] = a
    return out


def _as_probs(probs) -> np.ndarray:
    return np.clip(validate.probabilities(probs, source="probs").astype(np.float64), 0.0, 1.0)


def _as_labels(labels, n: int, k: int) -> np.ndarray:
    return validate.labels(labels, source="labels", n=n, k=k)


def _union_rows(a, b) -> tuple[tuple[int, int], ...]:
    ranges = sorted([*a, *b])
    out: list[list[int]] = []
    for start, stop in ranges:
        if out and start < out[-1][1]:
            raise DataError(f"cannot merge bootstrap sums: rows {start}:{stop} overlap rows {out[-1][0]}:{out[-1][1]}")
        if out and start == out[-1][1]:
            out[-1][1] = stop
        else:
            out.append([start, stop])
    return tuple((s, e) for s, e in out)


# --------------------------------------------------------------------------- Wilson


def wilson(successes, n, *, level: float = LEVEL) -> np.ndarray:
    """Wilson score interval of a binomial proportion, vectorised over arrays of counts.

    Args:
        successes: integer counts, any shape broadcastable with n, 0 <= successes <= n.
        n: integer numbers of trials >= 0.
        level: confidence level in (0, 1).
    Returns:
        (..., 2) float64 [low, high] within [0, 1]; [nan, nan] where n == 0.
    Raises:
        DataError: non-integer, negative or non-finite counts, successes > n, shapes that
            do not broadcast, or level outside (0, 1).
    """
    level = _as_level(level)
    x = _real_array(successes, "successes")
    m = _real_array(n, "n")
    for a, name in ((x, "successes"), (m, "n")):
        if (a != np.floor(a)).any() or (a < 0).any():
            raise DataError(f"{name} must be whole numbers >= 0")
    try:
        x, m = np.broadcast_arrays(x, m)
    except ValueError:
        raise DataError(f"successes {x.shape} and n {m.shape} do not broadcast") from None
    if (x > m).any():
        raise DataError("successes must not exceed n")
    return _compute_wilson(x, m, level)


def _compute_wilson(x: np.ndarray, n: np.ndarray, level: float) -> np.ndarray:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    z2 = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        center = (x + z2 / 2) / (n + z2)
        half = z / (n + z2) * np.sqrt(x * (n - x) / n + z2 / 4)
        low = np.where(x == 0, 0.0, np.clip(center - half, 0.0, 1.0))
        high = np.where(x == n, 1.0, np.clip(center + half, 0.0, 1.0))
    out = np.stack([low, high], axis=-1)
    out[n == 0] = np.nan
    return out


# --------------------------------------------------------------------------- Poisson weights


def _poisson_table() -> np.ndarray:
    # Weight by the top 16 bits of the uniform word; 255 marks the few 2^16-slices that
    # straddle a threshold, whose weight needs all 32 bits.
    t = np.array(POISSON_THRESHOLDS, dtype=np.uint64)
    first = np.arange(1 << 16, dtype=np.uint64) << np.uint64(16)
    lo = np.searchsorted(t, first, side="right")
    hi = np.searchsorted(t, first + np.uint64(0xFFFF), side="right")
    return np.where(lo == hi, lo, 255).astype(np.uint8)


_POISSON_TABLE = _poisson_table()
_THRESHOLDS_U32 = np.array(POISSON_THRESHOLDS, dtype=np.uint32)


def _block_weights(seed: int, block: int, b0: int, b1: int) -> np.ndarray:
    """(b1 - b0, BLOCK_ROWS) uint8 weights of replicates b0:b1 for global rows of one block.

    The block's stream fills a (B, BLOCK_ROWS) array replicate by replicate, two 32-bit words
    per 64-bit draw, so replicate b starts b * BLOCK_ROWS / 2 draws in (`advance` skips there):
    a replicate's weights do not depend on how many replicates are drawn.
    """
    bits = np.random.PCG64([seed, BOOTSTRAP_STREAM, block])
    if b0:
        bits.advance(b0 * BLOCK_ROWS // 2)
    raw = bits.random_raw((b1 - b0) * BLOCK_ROWS // 2)
    words = raw.astype("<u8", copy=False).view("<u4")  # same words on any byte order
    w = _POISSON_TABLE[words.view("<u2")[1::2]]
    straddle = np.flatnonzero(w == 255)
    if straddle.size:
        w[straddle] = np.searchsorted(_THRESHOLDS_U32, words[straddle], side="right")
    return w.reshape(b1 - b0, BLOCK_ROWS)


def _weights(start: int, stop: int, b0: int, b1: int, seed: int) -> np.ndarray:
    """(b1 - b0, stop - start) uint8 weights of replicates b0:b1 for global rows start:stop."""
    out = np.empty((b1 - b0, stop - start), dtype=np.uint8)
    for j in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        lo, hi = max(start, j * BLOCK_ROWS), min(stop, (j + 1) * BLOCK_ROWS)
        block = _block_weights(seed, j, b0, b1)
        out[:, lo - start:hi - start] = block[:, lo - j * BLOCK_ROWS:hi - j * BLOCK_ROWS]
    return out


def poisson_weights(start: int, stop: int, *, replicates: int, seed: int) -> np.ndarray:
    """Poisson(1) bootstrap weights of global rows start:stop, identical however rows are split.

    Rows fall in fixed blocks of BLOCK_ROWS global rows; block j is drawn from its own
    PCG64 stream keyed by (seed, BOOTSTRAP_STREAM, j), so the weights of a row depend only on
    (seed, replicate, row): weights(0, N) == concat(weights(0, a), weights(a, N)). Each weight
    compares a uniform 32-bit word with the Poisson(1) CDF (POISSON_THRESHOLDS), capped at 12
    (P(Poisson(1) > 12) < 1e-10).

    Args:
        start, stop: global rows, 0 <= start <= stop.
        replicates: B >= 1.
        seed: integer >= 0.
    Returns:
        (B, stop - start) uint8 weights, mean 1 and variance 1.
    Raises:
        DataError: bad rows, replicates or seed.
    """
    start = _as_int(start, "start", 0)
    stop = _as_int(stop, "stop", start)
    replicates = _as_int(replicates, "replicates", 1)
    seed = _as_int(seed, "seed", 0)
    return _weights(start, stop, 0, replicates, seed)


# --------------------------------------------------------------------------- per-row hashes


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_uniform(rows, *, seed: int, stream: int) -> np.ndarray:
    """A uniform number in [0, 1) per global row: a hash of (seed, stream, row), the same however rows are sharded.

    It decides which random half a row falls in, whether it is in the temperature fit's subsample and in the
    figures' sample, so a sharded run (reportgen.beam) makes the same choices as one pass over all rows.

    Args:
        rows: (n,) integer global row indices >= 0.
        seed: integer >= 0; stream: one of the *_STREAM tags.
    Returns:
        (n,) float64 in [0, 1), 53 random bits each.
    """
    key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64)) ^ np.uint64(stream))
    h = _splitmix64(np.asarray(rows, dtype=np.int64).astype(np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def random_halves(start: int, n: int, *, seed: int) -> np.ndarray:
    """(n,) bool: True for global rows start:start+n in half A of the 2-fold cross-fits (a per-row hash, p = 1/2)."""
    return row_uniform(np.arange(start, start + n), seed=seed, stream=HALF_STREAM) < 0.5


# --------------------------------------------------------------------------- bootstrap sums


def _equal_width_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    # Same rule as tf.histogram_fixed_width_bins on [0, 1], as in uncertainty.py.
    return np.clip(np.floor(conf * n_bins), 0, n_bins - 1).astype(np.int64)


def bootstrap_sums(
    start: int,
    confidence: np.ndarray,
    correct: np.ndarray,
    values: Mapping[str, np.ndarray],
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    n_bins: int = DEFAULT_BINS,
) -> BootstrapSums:
    """Per-replicate weighted sums of global rows start:start+n; merge shards with +.

    Memory is O(B x BLOCK_ROWS): rows are taken one weight block at a time.

    Args:
        start: global index of the first row (>= 0).
        confidence: (n,) top-label confidence in [0, 1]; n may be 0.
        correct: (n,) bool (or 0/1), prediction == label.
        values: name -> (n,) finite per-sample values (nll, brier, entropies, ...).
        replicates: B >= 1.
        seed: integer >= 0; shards of one dataset must share it.
        n_bins: equal-width confidence bins of the ECE.
    Returns:
        BootstrapSums.
    Raises:
        DataError: bad shapes or values, replicates < 1, bad seed or n_bins.
    """
    start = _as_int(start, "start", 0)
    replicates = _as_int(replicates, "replicates", 1)
    seed = _as_int(seed, "seed", 0)
    n_bins = _as_int(n_bins, "n_bins", 1)
    conf = _as_confidence(confidence, allow_empty=True)
    ok = _as_correct(correct, len(conf))
    vals = _as_values(values, len(conf))
    return _compute_sums(start, conf, ok, vals, replicates, seed, n_bins)


def _compute_sums(start, conf, ok, vals, replicates, seed, n_bins, weights=None) -> BootstrapSums:
    """weights: (B, n) of rows start:start+n when already drawn; else drawn block by block."""
    n, nv = len(conf), len(vals)
    stop = start + n
    idx = _equal_width_bins(conf, n_bins)
    # Integer columns (bin counts, bin correct) go through float32, exact because a block sums
    # at most 12 * BLOCK_ROWS < 2^24; float columns through float64, so shards merge to ~1e-16.
    counts = np.zeros((replicates, 2 * n_bins), dtype=np.int64)
    floats = np.zeros((replicates, nv + n_bins))
    for j in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        lo, hi = max(start, j * BLOCK_ROWS), min(stop, (j + 1) * BLOCK_ROWS)
        if weights is None:
            w = _block_weights(seed, j, 0, replicates)[:, lo - j * BLOCK_ROWS:hi - j * BLOCK_ROWS]
        else:
            w = weights[:, lo - start:hi - start]
        rows = np.arange(lo - start, hi - start)
        at = np.arange(len(rows))
        int_cols = np.zeros((len(rows), 2 * n_bins), dtype=np.float32)
        int_cols[at, idx[rows]] = 1.0
        int_cols[at, n_bins + idx[rows]] = ok[rows]
        float_cols = np.zeros((len(rows), nv + n_bins))
        for c, v in enumerate(vals.values()):
            float_cols[:, c] = v[rows]
        float_cols[at, nv + idx[rows]] = conf[rows]
        counts += np.rint(w.astype(np.float32) @ int_cols).astype(np.int64)
        floats += w.astype(np.float64) @ float_cols
    return BootstrapSums(
        seed=seed,
        rows=((start, stop),) if n else (),
        total_weight=counts[:, :n_bins].sum(axis=1),
        sums={name: floats[:, c].copy() for c, name in enumerate(vals)},
        bin_count=counts[:, :n_bins].copy(),
        bin_sum_confidence=floats[:, nv:].copy(),
        bin_sum_correct=counts[:, n_bins:].copy(),
    )


# --------------------------------------------------------------------------- bootstrap AURC


def bootstrap_aurc(
    confidence: np.ndarray, correct: np.ndarray, *, replicates: int = DEFAULT_REPLICATES, seed: int = 0
) -> np.ndarray:
    """Exact area under the risk-coverage curve of each bootstrap replicate.

    Replicate b repeats row i w[b, i] times (the weights of `poisson_weights(0, N)`, so the
    replicates are those of `bootstrap_sums` with the same seed). Rows are sorted by
    confidence, descending; AURC is the mean over the N* positions t of (errors among the
    first t) / t, as in uncertainty.selective_prediction. Ties in confidence are taken in
    random order in expectation (errors spread evenly over the tie group's positions), as
    uncertainty.py does, so the result does not depend on the input order of tied rows.

    With H the harmonic numbers, a tie group after A copies, with T copies of which R are
    errors, adds R * [H(N*) - H(A+T) + 1 - (A/T)(H(A+T) - H(A))] to N* x AURC.

    Args:
        confidence: (N,) confidence in [0, 1].
        correct: (N,) bool (or 0/1).
        replicates: B >= 1.
        seed: integer >= 0.
    Returns:
        (B,) float64 AURC per replicate; NaN where N* is 0.
    Raises:
        DataError: bad shapes or values, replicates < 1, bad seed.
    """
    replicates = _as_int(replicates, "replicates", 1)
    seed = _as_int(seed, "seed", 0)
    conf = _as_confidence(confidence)
    ok = _as_correct(correct, len(conf))
    return _compute_bootstrap_aurc(conf, ok, replicates, seed)


def _harmonic(m: int) -> np.ndarray:
    """(m + 1,) float64 H(0..m)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, m + 1))])


def _compute_bootstrap_aurc(conf, ok, replicates, seed, weights=None) -> np.ndarray:
    """weights: (B, N) when already drawn; else drawn replicate chunk by replicate chunk."""
    n = len(conf)
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    ends = np.flatnonzero(np.r_[c[1:] != c[:-1], True])  # last sorted position of each tie group
    starts = np.r_[0, ends[:-1] + 1]
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    err_pos = np.flatnonzero(~ok[order])
    if not err_pos.size:  # no error anywhere: each replicate's risk curve is 0 (NaN for a replicate with no rows)
        out = np.empty(replicates)
        step = max(1, CHUNK_ELEMENTS // n)
        for b0 in range(0, replicates, step):
            b1 = min(replicates, b0 + step)
            w = _weights(0, n, b0, b1, seed) if weights is None else weights[b0:b1]
            out[b0:b1] = np.where(w.sum(axis=1, dtype=np.int64) > 0, 0.0, np.nan)
        return out
    err_group = group[err_pos]
    # Tie groups holding errors, where each starts in err_pos, and its sorted positions.
    seg = np.flatnonzero(np.r_[True, err_group[1:] != err_group[:-1]])
    g_start, g_stop = starts[err_group[seg]], ends[err_group[seg]] + 1
    # Copies before each cut = prefix sums of the weights; reduceat over the few cuts is
    # ~2x cheaper than a full cumsum of the (B, N) weights.
    cuts = np.unique(np.r_[0, g_start, g_stop])
    cuts = cuts[cuts < n]
    at_start, at_stop = np.searchsorted(cuts, g_start), np.searchsorted(cuts, g_stop)
    out = np.empty(replicates)
    step = max(1, CHUNK_ELEMENTS // n)
    for b0 in range(0, replicates, step):
        b1 = min(replicates, b0 + step)
        w = np.take(_weights(0, n, b0, b1, seed) if weights is None else weights[b0:b1], order, axis=1)
        prefix = np.zeros((b1 - b0, len(cuts) + 1), dtype=np.int64)
        np.cumsum(np.add.reduceat(w, cuts, axis=1, dtype=np.int64), axis=1, out=prefix[:, 1:])
        n_star = prefix[:, -1]
        h = _harmonic(int(n_star.max()))
        a = prefix[:, at_start]  # copies before the group
        end = prefix[:, at_stop]  # copies up to the group's end, a + t
        t = end - a
        r = np.add.reduceat(w[:, err_pos], seg, axis=1, dtype=np.int64)  # error copies in it
        inside = a / np.maximum(t, 1) * (h[end] - h[a])  # 0 when t == 0 (then r == 0 too)
        total = (r * (h[n_star][:, None] - h[end] + 1.0 - inside)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b1] = np.where(n_star > 0, total / n_star, np.nan)
    return out


# --------------------------------------------------------------------------- confidence histograms


def n_confidence_bins(mantissa_bits: int = FINE_MANTISSA_BITS) -> int:
    """Number of bins of `confidence_bins` with this many mantissa bits."""
    return 1 + (1 - _U_MIN_EXPONENT) * (1 << mantissa_bits)


def confidence_bins(confidence, *, mantissa_bits: int = FINE_MANTISSA_BITS) -> np.ndarray:
    """Bin of each confidence on a scale that keeps near-certain predictions apart: most confident first.

    u = 1 - confidence is binned by its float64 exponent and leading `mantissa_bits` mantissa bits, so a
    bin spans u in [2^e (1 + m 2^-bits), 2^e (1 + (m + 1) 2^-bits)): 0.1 % of u with the fine setting,
    whether u is 0.3 or 3e-9. Bin 0 holds confidence >= 1 (u <= 0); u < 2^-53 shares bin 1. Ascending bins
    are descending confidence, the order of the risk-coverage curve.

    Args:
        confidence: (n,) confidences in [0, 1].
        mantissa_bits: FINE_MANTISSA_BITS or COARSE_MANTISSA_BITS (any integer 0..52).
    Returns:
        (n,) int64 in [0, n_confidence_bins(mantissa_bits)).
    """
    u = 1.0 - np.asarray(confidence, dtype=np.float64)
    bits = np.ascontiguousarray(np.maximum(u, 0.0)).view(np.uint64)
    exponent = (bits >> np.uint64(52)).astype(np.int64) - 1023
    mantissa = ((bits >> np.uint64(52 - mantissa_bits)) & np.uint64((1 << mantissa_bits) - 1)).astype(np.int64)
    low = exponent < _U_MIN_EXPONENT
    idx = 1 + (exponent - _U_MIN_EXPONENT) * (1 << mantissa_bits) + mantissa
    idx[low] = 1
    idx[u <= 0] = 0
    return idx


def confidence_bin_edges(mantissa_bits: int = FINE_MANTISSA_BITS) -> np.ndarray:
    """(n_bins,) float64 largest confidence a bin can hold (1 for bin 0): 1 - the smallest u of the bin."""
    m = 1 << mantissa_bits
    b = np.arange(1, n_confidence_bins(mantissa_bits))
    u = np.ldexp(1.0 + ((b - 1) % m) / m, _U_MIN_EXPONENT + (b - 1) // m)
    u[0] = 0.0  # bin 1 also holds u below 2^-53
    return np.r_[1.0, 1.0 - u]


def _harmonic_of(x) -> np.ndarray:
    """H(x) = 1 + 1/2 + ... + 1/x for integer arrays x >= 0 (a table below 2^16, the asymptotic series above)."""
    x = np.asarray(x, dtype=np.int64)
    out = np.empty(x.shape)
    small = x < _HARMONIC_TABLE.size
    out[small] = _HARMONIC_TABLE[x[small]]
    big = x[~small].astype(np.float64)
    out[~small] = np.log(big) + 0.5772156649015329 + 1 / (2 * big) - 1 / (12 * big ** 2) + 1 / (120 * big ** 4)
    return out


_HARMONIC_TABLE = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 1 << 16))])


def aurc_from_histogram(count: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """AURC when each confidence bin is one tie group (its errors spread evenly over its positions).

    The formula of `bootstrap_aurc`: a group after A samples, with T of which R are errors, adds
    R [H(N) - H(A+T) + 1 - (A/T)(H(A+T) - H(A))] to N x AURC.

    Args:
        count, errors: (..., H) samples and errors per bin, most confident bin first (`confidence_bins`).
    Returns:
        (...) float64 AURC; NaN where there are no samples.
    """
    count = np.asarray(count, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.int64)
    n = count.sum(axis=-1)
    before = np.cumsum(count, axis=-1) - count
    end = before + count
    h_end, h_before = _harmonic_of(end), _harmonic_of(before)
    inside = before / np.maximum(count, 1) * (h_end - h_before)
    total = (errors * (_harmonic_of(n)[..., None] - h_end + 1.0 - inside)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def aurc_histogram_bound(count: np.ndarray, errors: np.ndarray) -> float:
    """Largest |AURC - aurc_from_histogram| over every order of the samples inside each bin.

    Inside a bin of T samples with R errors, the errors among its first k differ from the even spread
    R k / T by at most R (T - R) / T, so the bin moves N x AURC by at most R (T - R) / T (H(A+T) - H(A)).
    """
    count = np.asarray(count, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.int64)
    n = int(count.sum())
    if n == 0:
        return 0.0
    before = np.cumsum(count) - count
    spread = errors * (count - errors) / np.maximum(count, 1)
    return float(np.sum(spread * (_harmonic_of(before + count) - _harmonic_of(before))) / n)


@dataclass(frozen=True)
class BootstrapHistogram:
    """Per-replicate confidence histograms of some rows (Poisson weights of `poisson_weights`); merge with +.

    seed: seed of the weights; rows: the global (start, stop) ranges summed.
    count: (B, H) weighted samples per replicate and `confidence_bins` bin (COARSE_MANTISSA_BITS), int32 while
        every count fits (half the size of a sharded run's pieces), else int64.
    errors: (B, H) weighted wrong predictions, int32 or int64 by the same rule (each array on its own).
    """

    seed: int
    rows: tuple[tuple[int, int], ...]
    count: np.ndarray
    errors: np.ndarray

    def merge(self, other: BootstrapHistogram) -> BootstrapHistogram:
        """Histograms of the union of two disjoint row sets.

        Raises:
            DataError: different seed or shapes, or overlapping rows.
        """
        if not isinstance(other, BootstrapHistogram) or other.seed != self.seed or other.count.shape != self.count.shape:
            raise DataError("cannot merge bootstrap histograms with a different seed, replicates or bins")
        return BootstrapHistogram(self.seed, _union_rows(self.rows, other.rows), _narrow(self.count.astype(np.int64) + other.count),
                                  _narrow(self.errors.astype(np.int64) + other.errors))

    __add__ = merge

    def aurc(self) -> np.ndarray:
        """(B,) AURC of each replicate, each bin taken as one tie group (`aurc_from_histogram`)."""
        return aurc_from_histogram(self.count, self.errors)


def _segment_sums(x: np.ndarray, keys: np.ndarray, n_keys: int) -> np.ndarray:
    """(n_keys, m) int64 sums of the uint8 rows of x (r, m) by key, added a few rows at a time in uint16."""
    order = np.argsort(keys, kind="stable")
    x = x[order]
    counts = np.bincount(keys, minlength=n_keys)
    ends = np.cumsum(counts)
    out = np.zeros((n_keys, x.shape[1]), dtype=np.int64)
    for k in np.flatnonzero(counts):
        for r in range(ends[k] - counts[k], ends[k], _U16_ROWS):
            out[k] += np.add.reduce(x[r:min(ends[k], r + _U16_ROWS)], axis=0, dtype=np.uint16)
    return out


# Rows of Poisson weights (each <= 12) added at once in uint16 without overflow.
_U16_ROWS = 5000


def bootstrap_histogram(start: int, confidence: np.ndarray, correct: np.ndarray, *, replicates: int = DEFAULT_REPLICATES,
                        seed: int = 0, mantissa_bits: int = COARSE_MANTISSA_BITS) -> BootstrapHistogram:
    """Per-replicate confidence histograms of global rows start:start+n (the weights of `bootstrap_sums`).

    What a sharded run keeps instead of the rows for the bootstrap AURC: each replicate's AURC is then
    that of its histogram (`BootstrapHistogram.aurc`), within the histogram's resolution of `bootstrap_aurc`.

    Args:
        start: global index of the first row; confidence: (n,) in [0, 1]; correct: (n,) bool.
        replicates, seed: as `bootstrap_sums` (shards must share them).
        mantissa_bits: resolution of the bins (`confidence_bins`).
    Returns:
        BootstrapHistogram.
    Raises:
        DataError: bad arguments.
    """
    start = _as_int(start, "start", 0)
    replicates = _as_int(replicates, "replicates", 1)
    seed = _as_int(seed, "seed", 0)
    conf = _as_confidence(confidence, allow_empty=True)
    ok = _as_correct(correct, len(conf))
    n, stop = len(conf), start + len(conf)
    h = n_confidence_bins(mantissa_bits)
    idx = confidence_bins(conf, mantissa_bits=mantissa_bits)
    count = np.zeros((h, replicates), dtype=np.int64)
    errors = np.zeros((h, replicates), dtype=np.int64)
    for j in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        lo, hi = max(start, j * BLOCK_ROWS), min(stop, (j + 1) * BLOCK_ROWS)
        w = np.ascontiguousarray(_block_weights(seed, j, 0, replicates)[:, lo - j * BLOCK_ROWS:hi - j * BLOCK_ROWS].T)
        b = idx[lo - start:hi - start]
        used = np.unique(b)
        dense = np.searchsorted(used, b)
        count[used] += _segment_sums(w, dense, len(used))
        wrong = ~ok[lo - start:hi - start]
        if wrong.any():
            used_e = np.unique(b[wrong])
            errors[used_e] += _segment_sums(w[wrong], np.searchsorted(used_e, b[wrong]), len(used_e))
    return BootstrapHistogram(seed, ((start, stop),) if n else (), _narrow(np.ascontiguousarray(count.T)),
                              _narrow(np.ascontiguousarray(errors.T)))


def _narrow(counts: np.ndarray) -> np.ndarray:
    """int64 counts as int32 when every one fits (they do below about 2e9 rows), else unchanged."""
    return counts.astype(np.int32) if counts.size == 0 or counts.max() <= np.iinfo(np.int32).max else counts


# --------------------------------------------------------------------------- intervals


def percentile_interval(replicate_values: np.ndarray, *, level: float = LEVEL) -> np.ndarray:
    """Percentile bootstrap interval, ignoring NaN replicates.

    Args:
        replicate_values: (B,) statistic of each replicate; NaN for undefined ones.
        level: confidence level in (0, 1).
    Returns:
        (2,) float64 [low, high], the (1-level)/2 and (1+level)/2 quantiles (linear
        interpolation); [nan, nan] when every replicate is NaN.
    Raises:
        DataError: not 1-D, empty, infinite values, or level outside (0, 1).
    """
    level = _as_level(level)
    v = np.asarray(replicate_values)
    if v.ndim != 1 or v.shape[0] < 1 or v.dtype.kind not in "fiu":
        raise DataError(f"replicate_values must be a non-empty (B,) real array; got shape {v.shape}, dtype {v.dtype}")
    v = v.astype(np.float64)
    if np.isinf(v).any():
        raise DataError("replicate_values contains infinite values")
    return _compute_percentile(v, level)


def _compute_percentile(v: np.ndarray, level: float) -> np.ndarray:
    v = v[~np.isnan(v)]
    if not v.size:
        return np.array([np.nan, np.nan])
    return np.percentile(v, [50 * (1 - level), 50 * (1 + level)])


def bootstrap(
    confidence: np.ndarray,
    correct: np.ndarray,
    values: Mapping[str, np.ndarray],
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    n_bins: int = DEFAULT_BINS,
    level: float = LEVEL,
) -> dict[str, np.ndarray]:
    """Percentile intervals of every value's mean, the equal-width ECE and the AURC.

    All intervals come from the same B Poisson-bootstrap replicates (rows 0..N-1).

    Args:
        confidence: (N,) top-label confidence in [0, 1].
        correct: (N,) bool (or 0/1).
        values: name -> (N,) finite per-sample values; names "ece" and "aurc" are taken.
        replicates: B >= 1.
        seed: integer >= 0.
        n_bins: equal-width bins of the ECE.
        level: confidence level in (0, 1).
    Returns:
        {name: (2,) [low, high]} for each value name, "ece" and "aurc".
    Raises:
        DataError: bad shapes or values, a reserved name, replicates < 1.
    """
    replicates = _as_int(replicates, "replicates", 1)
    seed = _as_int(seed, "seed", 0)
    n_bins = _as_int(n_bins, "n_bins", 1)
    level = _as_level(level)
    conf = _as_confidence(confidence)
    ok = _as_correct(correct, len(conf))
    vals = _as_values(values, len(conf))
    taken = sorted(set(vals) & set(RESERVED_KEYS))
    if taken:
        raise DataError(f"value names {taken} are reserved for the bootstrap's own metrics {list(RESERVED_KEYS)}")
    n = len(conf)
    weights = _weights(0, n, 0, replicates, seed) if replicates * n <= SHARED_WEIGHTS_BYTES else None
    sums = _compute_sums(0, conf, ok, vals, replicates, seed, n_bins, weights)
    out = {name: _compute_percentile(m, level) for name, m in sums.means().items()}
    out["ece"] = _compute_percentile(sums.ece(), level)
    out["aurc"] = _compute_percentile(_compute_bootstrap_aurc(conf, ok, replicates, seed, weights), level)
    return out


# --------------------------------------------------------------------------- calibration


def equal_width_ece(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = DEFAULT_BINS) -> float:
    """Plain top-label L1 ECE over equal-width bins (uncertainty.py's, without TFP's float32).

    The statistic `calibrated_ece_null` simulates, so the one to pass to `calibration_test`.

    Args:
        confidence: (N,) confidence in [0, 1].
        correct: (N,) bool (or 0/1).
        n_bins: equal-width bins on [0, 1].
    Returns:
        sum_b (n_b / N) |acc_b - conf_b|.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_int(n_bins, "n_bins", 1)
    conf = _as_confidence(confidence)
    ok = _as_correct(correct, len(conf))
    idx = _equal_width_bins(conf, n_bins)
    gap = np.bincount(idx, weights=ok - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / len(conf))


def _equal_mass_sums(conf: np.ndarray, ok: np.ndarray, n_bins: int):
    """Per non-empty bin: count, sum of confidence, sum of correct, for equal-mass bins.

    Rows are sorted by (confidence, correct) and cut with np.array_split's sizes; sorting on
    both makes the bins a function of the multiset of rows, whatever their order.
    """
    order = np.lexsort((ok, conf))
    sizes = equal_mass_sizes(len(conf), n_bins)
    bounds = np.r_[0, np.cumsum(sizes)[:-1]]
    return (
        sizes.astype(np.float64),
        np.add.reduceat(conf[order], bounds),
        np.add.reduceat(ok[order].astype(np.float64), bounds),
    )


def equal_mass_ece(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label L1 ECE over bins holding equal numbers of samples (sizes of np.array_split).

    Ties in confidence across a bin edge are split by correctness (wrong first), so the
    value does not depend on the order of the rows.

    Args:
        confidence: (N,) confidence in [0, 1].
        correct: (N,) bool (or 0/1).
        n_bins: number of bins; bins left empty when N < n_bins are skipped.
    Returns:
        sum_b (n_b / N) |acc_b - conf_b|.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_int(n_bins, "n_bins", 1)
    conf = _as_confidence(confidence)
    ok = _as_correct(correct, len(conf))
    return equal_mass_from_sums(*_equal_mass_sums(conf, ok, n_bins))


def equal_mass_sizes(n: int, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """(b,) int64 sizes of the non-empty equal-mass bins of N samples (np.array_split's), lowest confidences first."""
    sizes = np.full(n_bins, n // n_bins, dtype=np.int64)
    sizes[: n % n_bins] += 1
    return sizes[sizes > 0]


def equal_mass_from_sums(size: np.ndarray, sum_conf: np.ndarray, sum_ok: np.ndarray) -> float:
    """Equal-mass ECE from each bin's size, sum of confidences and of correct predictions (a sharded run merges these)."""
    return float(np.abs(sum_ok - sum_conf).sum() / size.sum())


def equal_mass_cut_positions(n: int, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """(b - 1,) int64 inner cuts of the equal-mass bins as counts of samples from the MOST confident end (histogram order)."""
    return n - np.cumsum(equal_mass_sizes(n, n_bins))[:-1]


def equal_mass_from_histogram(count: np.ndarray, correct: np.ndarray, sum_confidence: np.ndarray, *,
                              n_bins: int = DEFAULT_BINS, detail: Mapping[int, np.ndarray] | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-mass bins' (size, sum of confidences, sum of correct) from a confidence histogram (a sharded run's).

    The histogram's bins (`confidence_bins`, most confident first) are cut at the ranks of `equal_mass_sizes`.
    A histogram bin that a cut splits is cut exactly when `detail` holds its samples, as `_equal_mass_sums` cuts
    rows sorted by (confidence, correct); else each side gets its share of the bin's sums pro rata.

    Args:
        count, correct: (H,) int64 samples and correct predictions per bin; sum_confidence: (H,) float64.
        detail: bin -> structured array (conf f8, ok bool, count i8) of the bin's distinct samples.
    Returns:
        ((b,) float64 sizes, (b,) sums of confidence, (b,) sums of correct), lowest confidences first.
    """
    count = np.asarray(count, dtype=np.int64)
    n = int(count.sum())
    sums = (np.asarray(sum_confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64))
    # Sums over the samples at or below each bin, ascending confidence: the rows a cut leaves below it.
    below = [np.cumsum(v[::-1])[::-1] for v in sums]
    end = np.cumsum(count)
    out = []
    for pos in equal_mass_cut_positions(n, n_bins):  # pos samples above the cut, n - pos below it
        j = int(np.searchsorted(end, pos, side="right"))  # the bin the cut falls in (or the first below it)
        take = int(end[j] - pos)  # samples of bin j below the cut
        rest = [b[j + 1] if j + 1 < len(b) else 0.0 for b in below]
        if take == count[j]:  # the cut falls between two bins
            out.append([b[j] for b in below])
        elif detail is not None and j in detail:
            d = np.sort(detail[j], order=["conf", "ok"])
            cum = np.cumsum(d["count"])
            k = int(np.searchsorted(cum, take))  # the distinct sample the cut falls on
            part = np.r_[d["count"][:k], take - (cum[k - 1] if k else 0)]
            out.append([rest[0] + float(np.sum(d["conf"][:k + 1] * part)), rest[1] + float(np.sum(d["ok"][:k + 1] * part))])
        else:
            share = take / count[j]
            out.append([r + share * v[j] for r, v in zip(rest, sums)])
    cuts = np.array([[0.0, 0.0], *out, [b[0] for b in below]])
    return equal_mass_sizes(n, n_bins).astype(np.float64), np.diff(cuts[:, 0]), np.diff(cuts[:, 1])


def debiased_from_sums(size: np.ndarray, sum_conf: np.ndarray, sum_ok: np.ndarray) -> float:
    """Debiased L2 calibration error (`debiased_ece`) from the equal-mass bins' sizes and sums."""
    size = np.asarray(size, dtype=np.float64)
    acc, mean_conf = sum_ok / size, sum_conf / size
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(size >= 2, (acc - mean_conf) ** 2 - acc * (1 - acc) / (size - 1), 0.0)
    return float(math.sqrt(max(0.0, float(np.sum(size / size.sum() * term)))))


def debiased_ece(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = DEFAULT_BINS) -> float:
    """Debiased top-label L2 calibration error over equal-mass bins (Kumar, Liang & Ma 2019).

    The definition of `unbiased_square_ce` / `unbiased_l2_ce` in their reference code
    (p-lambda/verified_calibration, calibration/utils.py):
    sqrt(max(0, sum_b (n_b/N) [(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)])),
    where bins with n_b < 2 add 0. The binning differs slightly: theirs cuts the sorted
    confidences into ceil(N / n_bins)-sized parts with edges at midpoints (tied confidences
    stay together); ours uses np.array_split's sizes, as `equal_mass_ece` does. Both agree
    when N is a multiple of n_bins and no ties straddle an edge.

    Args:
        confidence: (N,) confidence in [0, 1].
        correct: (N,) bool (or 0/1).
        n_bins: number of equal-mass bins.
    Returns:
        The debiased L2 calibration error, >= 0 (an estimate, not a plug-in value: 0 means
        the squared error is within its sampling noise).
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_int(n_bins, "n_bins", 1)
    conf = _as_confidence(confidence)
    ok = _as_correct(correct, len(conf))
    return debiased_from_sums(*_equal_mass_sums(conf, ok, n_bins))


def classwise_ece(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Classwise ECE (Kull et al. 2019): for each class, the ECE of p_k against 1[y == k].

    Equal-width bins of p_k on [0, 1] (the rule of uncertainty.py). The report shows the K
    values and their mean.

    Args:
        probs: (N, K) probabilities, rows sum to 1.
        labels: (N,) int true labels in [0, K).
        n_bins: equal-width bins on [0, 1].
    Returns:
        (K,) float64 ECE_k = sum_b (n_b / N) |mean 1[y=k] - mean p_k| over bins of p_k.
    Raises:
        DataError: bad shapes or values.
    """
    n_bins = _as_int(n_bins, "n_bins", 1)
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    return _compute_classwise(p, y, n_bins)


def _compute_classwise(p: np.ndarray, y: np.ndarray, n_bins: int) -> np.ndarray:
    return np.abs(classwise_gaps(p, y, n_bins)).sum(axis=1) / len(y)


def classwise_gaps(p: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """(K, n_bins) float64 sums of (1[y = k] - p_k) per class and equal-width bin of p_k: classwise ECE's mergeable piece.

    Classwise ECE is |gaps|.sum(axis=1) / N over the merged gaps of every shard.
    """
    n, k = p.shape
    # (label indicator - p) summed per (class, bin); |.| summed over bins, / N.
    gap = np.zeros(k * n_bins)
    offset = np.arange(k) * n_bins
    step = max(1, CHUNK_ELEMENTS // k)
    for i in range(0, n, step):
        pc = p[i:i + step]
        idx = (_equal_width_bins(pc, n_bins) + offset).ravel()
        gap += np.bincount(idx, weights=-pc.ravel(), minlength=k * n_bins)
        hit = y[i:i + step] * n_bins + _equal_width_bins(pc[np.arange(len(pc)), y[i:i + step]], n_bins)
        gap += np.bincount(hit, minlength=k * n_bins)
    return gap.reshape(k, n_bins)


def calibrated_ece_null(
    confidence: np.ndarray, *, n_bins: int = DEFAULT_BINS, simulations: int = DEFAULT_SIMULATIONS, seed: int = 0
) -> np.ndarray:
    """Equal-width ECEs of a perfectly calibrated model with these confidences: the noise floor.

    Each simulation draws correct_i ~ Bernoulli(confidence_i) and computes `equal_width_ece`. The draw of
    simulation s for global row i depends only on (seed, s, i) (`null_sums`), so shards of a data set
    summed with `null_sums` and merged give these same ECEs.

    Args:
        confidence: (N,) confidence in [0, 1] of global rows 0..N-1.
        n_bins: equal-width bins on [0, 1].
        simulations: M >= 1.
        seed: integer >= 0 (stream (seed, NULL_STREAM), apart from the bootstrap's).
    Returns:
        (M,) float64 simulated ECEs.
    Raises:
        DataError: bad confidence, n_bins, simulations or seed.
    """
    n_bins = _as_int(n_bins, "n_bins", 1)
    simulations = _as_int(simulations, "simulations", 1)
    seed = _as_int(seed, "seed", 0)
    conf = _as_confidence(confidence)
    return _compute_null_sums(0, conf, n_bins, simulations, seed).eces()


def null_sums(start: int, confidence: np.ndarray, *, n_bins: int = DEFAULT_BINS, simulations: int = DEFAULT_SIMULATIONS,
              seed: int = 0) -> NullSums:
    """Per-simulation, per-bin sums of the calibrated-model draws of global rows start:start+n; merge shards with +.

    Args:
        start: global index of the first row (>= 0).
        confidence: (n,) confidence in [0, 1]; n may be 0.
        n_bins, simulations, seed: as `calibrated_ece_null`; shards of one data set must share them.
    Returns:
        NullSums.
    Raises:
        DataError: bad arguments.
    """
    start = _as_int(start, "start", 0)
    n_bins = _as_int(n_bins, "n_bins", 1)
    simulations = _as_int(simulations, "simulations", 1)
    seed = _as_int(seed, "seed", 0)
    conf = _as_confidence(confidence, allow_empty=True)
    return _compute_null_sums(start, conf, n_bins, simulations, seed)


def _null_block(seed: int, block: int, simulations: int) -> np.ndarray:
    """(BLOCK_ROWS, simulations) uint32 uniform words of one block of global rows (stream (seed, NULL_STREAM, block)).

    Row r of the block takes the r-th run of `simulations` consecutive words, so a row's draws do not
    depend on which other rows of its block a shard holds.
    """
    bits = np.random.PCG64([seed, NULL_STREAM, block])
    raw = bits.random_raw(simulations * BLOCK_ROWS // 2 + simulations % 2)
    return raw.astype("<u8", copy=False).view("<u4")[: simulations * BLOCK_ROWS].reshape(BLOCK_ROWS, simulations)


# Rows added at once in uint8 when counting simulated hits (no overflow below 256, no casting in the loop).
_U8_ROWS = 255


def _compute_null_sums(start: int, conf: np.ndarray, n_bins: int, simulations: int, seed: int) -> NullSums:
    n = len(conf)
    stop = start + n
    idx = _equal_width_bins(conf, n_bins)
    # Row i is correct in simulation s when its 32-bit word is below confidence * 2^32 (exact to 2^-32);
    # a confidence of 1 is always correct.
    thr = np.minimum(np.floor(conf * 2.0 ** 32), 2.0 ** 32 - 1).astype(np.uint32)
    sure = conf >= 1.0
    hits = np.zeros((n_bins, simulations), dtype=np.int64)
    for j in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        lo, hi = max(start, j * BLOCK_ROWS), min(stop, (j + 1) * BLOCK_ROWS)
        words = _null_block(seed, j, simulations)[lo - j * BLOCK_ROWS:hi - j * BLOCK_ROWS]
        b = idx[lo - start:hi - start]
        order = np.argsort(b, kind="stable")  # rows of one bin become one run of rows
        hit = (words[order] < thr[lo - start:hi - start][order][:, None]) | sure[lo - start:hi - start][order][:, None]
        hit = hit.view(np.uint8)
        counts = np.bincount(b, minlength=n_bins)
        ends = np.cumsum(counts)
        for k in np.flatnonzero(counts):
            for r in range(ends[k] - counts[k], ends[k], _U8_ROWS):
                hits[k] += np.add.reduce(hit[r:min(ends[k], r + _U8_ROWS)], axis=0, dtype=np.uint8)
    return NullSums(seed=seed, n=n, rows=((start, stop),) if n else (),
                    sum_confidence=np.bincount(idx, weights=conf, minlength=n_bins), hits=np.ascontiguousarray(hits.T))


def calibration_test(ece_observed: float, null: np.ndarray) -> CalibrationVerdict:
    """Is the observed ECE beyond what a calibrated model shows at this sample size?

    Monte Carlo test: under calibration the observed ECE is exchangeable with the M
    simulated ones, so p = (1 + #{null >= observed}) / (1 + M) is a valid p-value (a simulated
    ECE within TIE_TOLERANCE, relative, below the observed one counts as a tie, so as >=).

    Args:
        ece_observed: equal-width ECE of the model (`equal_width_ece`, same n_bins as null).
        null: (M,) ECEs from `calibrated_ece_null` on the same confidences.
    Returns:
        CalibrationVerdict; "miscalibrated" iff p_value < MISCALIBRATION_ALPHA.
    Raises:
        DataError: observed not a finite number >= 0, or null not a non-empty finite (M,).
    """
    if isinstance(ece_observed, bool) or not isinstance(ece_observed, (int, float, np.floating, np.integer)):
        raise DataError(f"ece_observed must be a number; got {type(ece_observed).__name__}")
    if not math.isfinite(ece_observed) or ece_observed < 0:
        raise DataError(f"ece_observed must be finite and >= 0; got {ece_observed!r}")
    sims = _real_array(null, "null")
    if sims.ndim != 1 or sims.shape[0] < 1:
        raise DataError(f"null must have shape (M,) with M >= 1; got {sims.shape}")
    return _compute_verdict(float(ece_observed), sims)


def _compute_verdict(observed: float, sims: np.ndarray) -> CalibrationVerdict:
    m = len(sims)
    # A simulated ECE equal to the observed one in exact arithmetic counts as >= even when rounding puts it an ulp
    # below (moving a hit between two bins short of hits gives the same ECE), so sums added in any order agree.
    p = (1 + int(np.count_nonzero(sims >= observed - TIE_TOLERANCE * observed))) / (1 + m)
    return CalibrationVerdict(
        verdict="miscalibrated" if p < MISCALIBRATION_ALPHA else "consistent",
        p_value=p,
        ece_observed=observed,
        floor_mean=float(sims.mean()),
        floor_q95=float(np.percentile(sims, 95)),
        simulations=m,
    )
