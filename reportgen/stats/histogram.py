"""Fine histograms with exact tie groups: what every rank-based statistic is computed from.

A value x >= 0 (1 - confidence, or an uncertainty in nats) is binned by its float64 exponent and its leading
MANTISSA_BITS mantissa bits, so a bin spans 0.1 % of x whether x is 0.3 or 3e-9. Equal values always share a
bin, so tied confidences are never split; values closer than 0.1 % relative may share one too, and every
statistic below treats a bin as one tie group. Ascending bins are ascending x (for x = 1 - confidence: most
confident first). The histograms add across shards, so the local engine and Beam compute the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from . import intervals

# Leading mantissa bits of a bin: two values whose ratio exceeds 1 + 2^-10 (0.1 %) never share a bin.
MANTISSA_BITS = 10
# Coarser bins for the per-replicate histograms of the bootstrap (2^-4, 6 %): B x about 1,000 counts.
COARSE_BITS = 4
# Smallest positive value kept apart (float64 confidences below 1 are at most 1 - 2^-53); smaller ones share bin 1.
MIN_EXPONENT = -53
# Largest binary exponent kept apart (uncertainties up to 2^12 nats); larger values share the last bin.
MAX_EXPONENT = 11
# Points the risk-coverage curve is thinned to for plotting.
CURVE_POINTS = 500


def n_bins(bits: int = MANTISSA_BITS) -> int:
    """Number of bins at this resolution (bin 0 holds x <= 0)."""
    return 1 + (MAX_EXPONENT - MIN_EXPONENT + 1) * (1 << bits)


def bin_of(x, *, bits: int = MANTISSA_BITS) -> np.ndarray:
    """(n,) int64 bin of each value x (x <= 0 in bin 0, ascending bins for ascending x)."""
    x = np.ascontiguousarray(np.maximum(np.asarray(x, dtype=np.float64), 0.0))
    raw = x.view(np.uint64)
    exponent = (raw >> np.uint64(52)).astype(np.int64) - 1023
    mantissa = ((raw >> np.uint64(52 - bits)) & np.uint64((1 << bits) - 1)).astype(np.int64)
    idx = 1 + (np.clip(exponent, MIN_EXPONENT, MAX_EXPONENT) - MIN_EXPONENT) * (1 << bits) + mantissa
    idx[exponent < MIN_EXPONENT] = 1
    idx[exponent > MAX_EXPONENT] = n_bins(bits) - 1
    idx[x <= 0] = 0
    return idx


def counts(bins: np.ndarray, mask: np.ndarray | None = None, *, bits: int = MANTISSA_BITS, weights=None) -> np.ndarray:
    """(H,) per-bin counts (or sums of `weights`) of the rows in `mask` (all rows when None)."""
    if mask is not None:
        bins = bins[mask]
        weights = None if weights is None else weights[mask]
    out = np.bincount(bins, weights=weights, minlength=n_bins(bits))
    return out if weights is not None else out.astype(np.int64)


# --------------------------------------------------------------------------- risk and coverage


def expected_errors(count: np.ndarray, errors: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Errors among the `kept` most confident samples, errors spread evenly inside each tie group.

    Args:
        count, errors: (H,) per-bin samples and wrong predictions, most confident bin first.
        kept: (m,) numbers of samples kept, 1..N.
    Returns:
        (m,) float64 expected errors (the mean over every order of the tied samples).
    """
    end = np.cumsum(count)
    err_end = np.cumsum(errors)
    g = np.searchsorted(end, kept, side="left")  # the tie group in which the kept-th sample falls
    before, err_before = end[g] - count[g], err_end[g] - errors[g]
    return err_before + errors[g] * (kept - before) / np.maximum(count[g], 1)


def _harmonic(x: np.ndarray) -> np.ndarray:
    """H(x) = 1 + 1/2 + ... + 1/x for integer arrays x >= 0 (a table below 2^16, the asymptotic series above)."""
    x = np.asarray(x, dtype=np.int64)
    out = np.empty(x.shape)
    small = x < _HARMONIC_TABLE.size
    out[small] = _HARMONIC_TABLE[x[small]]
    big = x[~small].astype(np.float64)
    out[~small] = np.log(big) + 0.5772156649015329 + 1 / (2 * big) - 1 / (12 * big ** 2) + 1 / (120 * big ** 4)
    return out


_HARMONIC_TABLE = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 1 << 16))])


def aurc(count: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Area under the risk-coverage curve: the mean over N coverages q/N of (expected errors among q) / q.

    A tie group after A samples, with T samples of which R are errors, adds R [H(N) - H(A+T) + 1 - (A/T)(H(A+T) - H(A))]
    to N x AURC (H: harmonic numbers), so the sum needs no loop over N.

    Args:
        count, errors: (..., H) per-bin samples and errors, most confident bin first (replicates on leading axes).
    Returns:
        (...) float64; NaN where there are no samples.
    """
    count = np.asarray(count, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.int64)
    n = count.sum(axis=-1)
    end = np.cumsum(count, axis=-1)
    before = end - count
    h_end, h_before = _harmonic(end), _harmonic(before)
    inside = before / np.maximum(count, 1) * (h_end - h_before)
    total = (errors * (_harmonic(n)[..., None] - h_end + 1.0 - inside)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def aurc_influence(count: np.ndarray, errors: np.ndarray) -> tuple[float, np.ndarray]:
    """(AURC, (H, 2) influence of one sample in each bin, right (column 0) or wrong (column 1)), each bin a tie group.

    With F(u) the share of samples at least as confident as u and G(u) the share that are also errors,
    AURC = integral of G / F dF, whose influence function at a sample (u0, e0) is
    IF = -AURC + G(u0) / F(u0) + integral over u >= u0 of (e0 F(u) - G(u)) / F(u)^2 dF(u).
    """
    count = np.asarray(count, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    n = count.sum()
    a = float(aurc(count.astype(np.int64), errors.astype(np.int64)))
    f, g, p = np.cumsum(count) / n, np.cumsum(errors) / n, count / n
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio, tail_f, tail_g = np.where(f > 0, g / f, 0.0), np.where(f > 0, p / f, 0.0), np.where(f > 0, p * g / f ** 2, 0.0)
    tail_f, tail_g = np.cumsum(tail_f[::-1])[::-1], np.cumsum(tail_g[::-1])[::-1]  # integrals over u >= u0
    return a, np.stack([-a + ratio + e0 * tail_f - tail_g for e0 in (0.0, 1.0)], axis=1)


def aurc_interval(count: np.ndarray, errors: np.ndarray, *, level: float = intervals.LEVEL) -> list[float] | None:
    """Delta-method 95 % interval of the AURC from the same histogram, on the log scale (the AURC is positive, skewed):
    Var(AURC) ~ Var(IF) / N with IF its influence function (aurc_influence). None when the AURC is 0 or N < 2."""
    count = np.asarray(count, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    n = count.sum()
    a, influence = aurc_influence(count, errors)
    if n < 2 or not a > 0:
        return None
    var = float(np.sum((count - errors) * influence[:, 0] ** 2 + errors * influence[:, 1] ** 2) / n) / n
    half = intervals.normal_quantile(level) * math.sqrt(var) / a
    return [a * math.exp(-half), a * math.exp(half)]


def risk_coverage_curve(count: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((m,) coverage, (m,) risk) at at most CURVE_POINTS coverages from 1/N to 1, for plotting."""
    n = int(count.sum())
    kept = np.unique(np.round(np.linspace(1, n, min(n, CURVE_POINTS))).astype(np.int64))
    return kept / n, expected_errors(count, errors, kept) / kept


def accuracy_at(count: np.ndarray, errors: np.ndarray, percent: int) -> tuple[float, int, float]:
    """(accuracy, kept, expected errors) among the ceil(percent % of N) most confident samples."""
    n = int(count.sum())
    kept = -(-percent * n // 100)  # integer ceil: float 0.95 * 20 may not be 19
    wrong = float(expected_errors(count, errors, np.array([kept]))[0])
    return 1.0 - wrong / kept, kept, wrong


# --------------------------------------------------------------------------- selection with guaranteed risk


def sgr(count: np.ndarray, errors: np.ndarray, min_value: np.ndarray, *, target: float, delta: float) -> dict:
    """Selection with guaranteed risk (Geifman & El-Yaniv 2017, Algorithm 1) on a confidence histogram.

    The candidate rules keep every sample whose confidence reaches a tie group's confidence (whole tie groups).
    As in the paper, the m candidates are sorted by threshold and searched by bisection: each of the
    k = ceil(log2 m) tested rules gets the exact binomial upper bound of its selective risk (clopper_pearson_upper)
    at level delta / k, and the search moves to lower thresholds (more coverage) when the bound is below `target`,
    else to higher ones. With probability at least 1 - delta every tested bound holds at once (their Theorem 3.2,
    a union bound over the k tests), so the rule reported, the largest-coverage tested rule whose bound is below
    `target`, has risk at most its bound; when none is, the lowest tested bound is the lowest risk certified.

    Args:
        count, errors: (H,) per-bin samples and errors, most confident bin first; min_value: (H,) the smallest
            confidence in each bin (inf where empty).
        target: the risk to certify (0.01); delta: 1 - the confidence (0.05).
    Returns:
        {"certified", "threshold", "kept", "errors", "coverage", "risk" (empirical), "bound", "tests", "target",
        "delta"}: the rule described above.
    """
    full = np.flatnonzero(count)
    kept = np.cumsum(count[full])  # candidate c keeps tie groups 0..c (most confident first)
    wrong = np.cumsum(errors[full])
    m = len(full)
    k = max(1, math.ceil(math.log2(m))) if m > 1 else 1
    bound = lambda c: float(intervals.clopper_pearson_upper(wrong[c], kept[c], delta=delta / k))  # noqa: E731
    z_min, z_max = 1, m  # the paper's indices: z = 1 is the lowest threshold (candidate c = m - 1), z = m the highest
    tested: dict[int, float] = {}
    for _ in range(k):
        z = -(-(z_min + z_max) // 2)
        c = m - z
        tested[c] = bound(c)
        if tested[c] < target:
            z_max = z
        else:
            z_min = z
    good = [c for c, b in tested.items() if b < target]
    c = max(good) if good else min(tested, key=lambda c: (tested[c], -c))
    n = int(kept[-1])
    return {"certified": bool(good), "threshold": float(min_value[full[c]]), "kept": int(kept[c]), "errors": int(wrong[c]),
            "coverage": float(kept[c] / n), "risk": float(wrong[c] / kept[c]), "bound": tested[c], "tests": k,
            "target": target, "delta": delta}


# --------------------------------------------------------------------------- AUROC


def auroc(positive: np.ndarray, negative: np.ndarray, *, level: float = intervals.LEVEL) -> dict:
    """AUROC of a score that should be higher for positives, with DeLong's 95 % interval, from two histograms.

    AUROC = P(score of a positive > score of a negative) + P(equal) / 2, equal meaning the same bin. DeLong's
    variance (DeLong, DeLong & Clarke-Pearson 1988) uses each sample's placement, a function of its bin only,
    so it comes from the histograms too.

    Args:
        positive, negative: (H,) per-bin counts of the two groups on the same bins (ascending score).
    Returns:
        {"auroc", "ci": [low, high], "n_positive", "n_negative"}; auroc None when a group is empty.
    """
    p, q = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    n_p, n_q = p.sum(), q.sum()
    if n_p == 0 or n_q == 0:
        return {"auroc": None, "ci": None, "n_positive": int(n_p), "n_negative": int(n_q)}
    q_below = np.cumsum(q) - q
    p_above = n_p - np.cumsum(p)
    v10 = (q_below + q / 2) / n_q  # per positive in the bin
    v01 = (p_above + p / 2) / n_p  # per negative in the bin
    a = float(np.sum(p * v10) / n_p)
    s10 = np.sum(p * (v10 - a) ** 2) / max(n_p - 1, 1)
    s01 = np.sum(q * (v01 - a) ** 2) / max(n_q - 1, 1)
    half = intervals.normal_quantile(level) * math.sqrt(s10 / n_p + s01 / n_q)
    return {"auroc": a, "ci": [max(0.0, a - half), min(1.0, a + half)], "n_positive": int(n_p), "n_negative": int(n_q)}
