"""Randomness keyed on global rows: per-row hashes and Poisson(1) bootstrap weights.

Every random choice of an audit (which half a row falls in, which rows the figures draw, a row's bootstrap
weights) is a function of (seed, stream, global row) only, so a sharded run makes exactly the choices of one
pass over all rows, whatever the sharding. Pure numpy.
"""

from __future__ import annotations

import numpy as np

# Global rows per weight block: one random stream each (part of what a seed means).
BLOCK_ROWS = 1024
# Stream tags after the seed (SeedSequence: [s] == [s, 0], so no tag is 0).
BOOTSTRAP_STREAM, HALF_STREAM, DISPLAY_STREAM = 1, 3, 5
# round(2^32 P(Poisson(1) <= k)), k = 0..11, from 60-digit decimals: fixed integers, the same on every machine.
POISSON_THRESHOLDS = (
    1580030169, 3160060337, 3950075422, 4213413783, 4279248374, 4292415292,
    4294609778, 4294923276, 4294962463, 4294966817, 4294967253, 4294967292,
)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_uniform(rows, *, seed: int, stream: int) -> np.ndarray:
    """(n,) float64 in [0, 1): a hash of (seed, stream, global row), 53 random bits each.

    Args:
        rows: (n,) integer global rows >= 0; seed: integer >= 0; stream: a *_STREAM tag.
    """
    key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64)) ^ np.uint64(stream))
    h = _splitmix64(np.asarray(rows, dtype=np.int64).astype(np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def random_halves(start: int, n: int, *, seed: int) -> np.ndarray:
    """(n,) bool: True for the global rows start:start+n that fall in half A of the 2-fold cross-fits (p = 1/2)."""
    return row_uniform(np.arange(start, start + n), seed=seed, stream=HALF_STREAM) < 0.5


def _poisson_table() -> np.ndarray:
    # Weight by the top 16 bits of a uniform 32-bit word; 255 marks the few 2^16-slices that straddle a
    # threshold, whose weight needs all 32 bits.
    t = np.array(POISSON_THRESHOLDS, dtype=np.uint64)
    first = np.arange(1 << 16, dtype=np.uint64) << np.uint64(16)
    lo = np.searchsorted(t, first, side="right")
    hi = np.searchsorted(t, first + np.uint64(0xFFFF), side="right")
    return np.where(lo == hi, lo, 255).astype(np.uint8)


_POISSON_TABLE = _poisson_table()
_THRESHOLDS_U32 = np.array(POISSON_THRESHOLDS, dtype=np.uint32)


def block_weights(seed: int, block: int, replicates: int) -> np.ndarray:
    """(replicates, BLOCK_ROWS) uint8 Poisson(1) weights of the global rows of one block.

    The block's PCG64 stream (seed, BOOTSTRAP_STREAM, block) fills the array replicate by replicate, so a
    row's weight in replicate b depends only on (seed, b, row). Each weight compares a uniform 32-bit word
    with the Poisson(1) CDF (POISSON_THRESHOLDS), capped at 12 (P(Poisson(1) > 12) < 1e-10).
    """
    raw = np.random.PCG64([seed, BOOTSTRAP_STREAM, block]).random_raw(replicates * BLOCK_ROWS // 2)
    words = raw.astype("<u8", copy=False).view("<u4")  # the same words on any byte order
    w = _POISSON_TABLE[words.view("<u2")[1::2]]
    straddle = np.flatnonzero(w == 255)
    if straddle.size:
        w[straddle] = np.searchsorted(_THRESHOLDS_U32, words[straddle], side="right")
    return w.reshape(replicates, BLOCK_ROWS)


def poisson_weights(start: int, stop: int, *, replicates: int, seed: int) -> np.ndarray:
    """(replicates, stop - start) uint8 Poisson(1) weights of global rows start:stop, the same however rows are split."""
    out = np.empty((replicates, stop - start), dtype=np.uint8)
    for block, lo, hi in blocks(start, stop):
        out[:, lo - start:hi - start] = block_weights(seed, block, replicates)[:, lo - block * BLOCK_ROWS:hi - block * BLOCK_ROWS]
    return out


def blocks(start: int, stop: int):
    """(block, lo, hi) for each weight block that global rows start:stop touch, with the rows lo:hi inside it."""
    for j in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        yield j, max(start, j * BLOCK_ROWS), min(stop, (j + 1) * BLOCK_ROWS)
