"""The one check of probabilities and the one check of labels: CLI, Python API and library functions all use these.

Every failure is a `DataError` whose message is one line: "<source>: <problem>", naming an
offending count and index so the user can find the row.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

# Rows may sum to 1 within this before we call them broken (float32 softmax drifts ~1e-6; a
# framework that saves float16 probabilities drifts ~1e-3).
ROW_SUM_TOLERANCE = 1e-3
# A single probability may exceed 1 by this much (float32 rounding of a saturated softmax).
# Negative values are never accepted: no softmax produces them.
ABOVE_ONE_SLACK = 1e-6


def _fail(source: str, problem: str) -> DataError:
    """The one-line DataError "<source>: <problem>"."""
    return DataError(f"{source}: {problem}")


def probabilities(probs, *, source: str = "probabilities", n: int | None = None) -> np.ndarray:
    """Check (N, K) predicted probabilities; return them in their own precision.

    Rules: numeric (not bool/object), 2-D with N >= 1 rows and K >= 2 classes, finite, no
    negative value, none above 1 + ABOVE_ONE_SLACK, rows summing to 1 within ROW_SUM_TOLERANCE.

    Args:
        probs: array-like (N, K).
        source: the file or argument name that starts every error message.
        n: the expected number of rows, if known.
    Returns:
        (N, K) float32 or float64: float32/float64 input is returned as is (not copied, not
        renormalised, so confident learning sees the caller's exact values); other numeric
        dtypes are converted to float64.
    Raises:
        DataError: one line naming `source`, the problem and the first offending row.
    """
    probs = np.asarray(probs)
    if probs.dtype.kind not in "iuf":
        raise _fail(source, f"probabilities must be numeric, got dtype {probs.dtype}")
    if probs.ndim != 2:
        raise _fail(source, f"probabilities must be 2-D (N, K), got shape {probs.shape}")
    rows, k = probs.shape
    if rows == 0:
        raise _fail(source, "no samples (N = 0)")
    if k < 2:
        raise _fail(source, f"need at least 2 classes, got K = {k}")
    if n is not None and rows != n:
        raise _fail(source, f"wrong length: {n} labels for {rows} probability rows")
    if probs.dtype not in (np.float32, np.float64):
        probs = probs.astype(np.float64)
    bad_rows = ~np.isfinite(probs).all(axis=1)
    if bad_rows.any():
        first = int(np.flatnonzero(bad_rows)[0])
        raise _fail(source, f"{int(bad_rows.sum())} rows contain NaN or inf (first: row {first})")
    negative = probs < 0
    if negative.any():
        row, col = (int(v) for v in np.argwhere(negative)[0])
        raise _fail(source, f"{int(negative.sum())} negative values (row {row} column {col} is {probs[row, col]:.4g})")
    above = probs > 1 + ABOVE_ONE_SLACK
    if above.any():
        row, col = (int(v) for v in np.argwhere(above)[0])
        raise _fail(source, f"{int(above.sum())} values above 1 (row {row} column {col} is {probs[row, col]:.6g}; are these logits?)")
    sums = probs.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise _fail(source, f"{int(off.sum())} rows do not sum to 1 (row {first} sums to {sums[first]:.6g}; are these logits?)")
    return probs


def normalised(probs: np.ndarray) -> np.ndarray:
    """A float64 copy of already-checked probabilities with every row summing to exactly 1."""
    p = np.array(probs, dtype=np.float64, copy=True)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def labels(y, *, source: str = "labels", n: int | None = None, k: int | None = None, min_classes: int = 1) -> np.ndarray:
    """Check given labels; return them as (N,) int64.

    Rules: numeric (not bool/object), shape (N,) or (N, 1), integer-valued (floats such as
    3.0 are accepted, 3.5 and NaN are not), in [0, k) when k is given, at least `min_classes`
    distinct values.

    Args:
        y: array-like labels.
        source: the file or argument name that starts every error message.
        n: the expected number of labels (e.g. the number of images or probability rows).
        k: the number of classes, if known.
        min_classes: fewest distinct classes required (2 for a data set to train or audit on).
    Returns:
        (N,) int64.
    Raises:
        DataError: one line naming `source`, the problem and the first offending index.
    """
    y = np.asarray(y)
    if y.dtype.kind == "b":
        raise _fail(source, "labels must be integers, got dtype bool")
    if y.dtype.kind not in "iuf":
        raise _fail(source, f"labels must be numeric, got dtype {y.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise _fail(source, f"labels must be 1-D (N,), got shape {y.shape}")
    if n is not None and len(y) != n:
        raise _fail(source, f"wrong length: {len(y)} labels for {n} samples")
    if len(y) == 0:
        raise _fail(source, "no labels (N = 0)")
    if y.dtype.kind == "f":
        not_int = ~np.isfinite(y) | (y != np.round(y))
        if not_int.any():
            first = int(np.flatnonzero(not_int)[0])
            raise _fail(source, f"{int(not_int.sum())} labels are not integers (label {first} is {y[first]:g})")
    outside = (y < 0) if k is None else (y < 0) | (y >= k)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        where = "negative" if k is None else f"outside [0, {k})"
        raise _fail(source, f"{int(outside.sum())} labels {where} (label {first} is {y[first]:g})")
    y = y.astype(np.int64)
    if min_classes > 1 and len(np.unique(y)) < min_classes:
        raise _fail(source, f"fewer than {min_classes} classes present in the labels")
    return y


def probabilities_and_labels(y, probs, *, source: str = "probabilities") -> tuple[np.ndarray, np.ndarray]:
    """Both checks for a (labels, probabilities) pair: same N, labels in [0, K).

    Returns:
        ((N,) int64 labels, (N, K) probabilities as `probabilities` returns them).
    Raises:
        DataError: as `probabilities` and `labels`, naming `source`.
    """
    p = probabilities(probs, source=source)
    y_arr = np.asarray(y)
    if y_arr.ndim >= 1 and y_arr.dtype.kind in "iuf" and len(y_arr) != p.shape[0]:
        raise _fail(source, f"wrong length: {len(y_arr)} labels for {p.shape[0]} probability rows")
    return labels(y_arr, source=source, n=p.shape[0], k=p.shape[1]), p
