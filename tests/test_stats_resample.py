"""reportgen.stats.resample: row hashes and Poisson(1) bootstrap weights keyed by global row.

References are independent: the Poisson CDF from 60-digit decimals, the weight of a 32-bit word by a plain
searchsorted over every word (no lookup table), moments against Poisson(1)'s.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.stats import resample as R

FAST = settings(max_examples=40, deadline=None)


def test_poisson_thresholds_are_the_rounded_cdf():
    getcontext().prec = 60
    e, term, cdf, expected = Decimal(-1).exp(), Decimal(1), Decimal(0), []
    for k in range(12):
        if k:
            term /= k
        cdf += e * term
        expected.append(int((cdf * 2**32).to_integral_value()))
    assert list(R.POISSON_THRESHOLDS) == expected
    assert max(expected) < 2**32  # the 13th would round to 2^32: weights stop at 12
    assert R.POISSON_THRESHOLDS[0] == round(math.exp(-1) * 2**32)


def test_block_weights_are_the_cdf_rank_of_each_32_bit_word():
    """The 16-bit lookup table plus the straddle fix-up equals a plain searchsorted of all 32 bits of every word."""
    t = np.array(R.POISSON_THRESHOLDS, dtype=np.uint64)
    for seed, block, reps in ((0, 0, 7), (3, 5, 64), (2**40 + 1, 12345, 3)):
        raw = np.random.PCG64([seed, R.BOOTSTRAP_STREAM, block]).random_raw(reps * R.BLOCK_ROWS // 2)
        # Each 64-bit draw holds two 32-bit words, the low half first.
        words = np.stack([raw & np.uint64(0xFFFFFFFF), raw >> np.uint64(32)], axis=1).ravel()
        expected = np.searchsorted(t, words, side="right").reshape(reps, R.BLOCK_ROWS)
        got = R.block_weights(seed, block, reps)
        assert got.dtype == np.uint8 and got.shape == (reps, R.BLOCK_ROWS)
        np.testing.assert_array_equal(got, expected)


def test_words_straddling_a_threshold_get_the_exact_weight(monkeypatch):
    """Words just below, at and just above every threshold (the table's 255 slices) map to the right weight."""
    t = np.array(R.POISSON_THRESHOLDS, dtype=np.int64)
    words = np.unique(np.clip(np.concatenate([t - 1, t, t + 1, [0, 2**32 - 1]]), 0, 2**32 - 1)).astype(np.uint32)
    expected = np.searchsorted(t, words.astype(np.int64), side="right")
    n = R.BLOCK_ROWS
    padded = np.resize(words, n)

    class FakeGenerator:
        def __init__(self, seed):
            pass

        def random_raw(self, size):
            assert size == n // 2
            pairs = padded.astype(np.uint64).reshape(-1, 2)
            return pairs[:, 0] | (pairs[:, 1] << np.uint64(32))

    monkeypatch.setattr(np.random, "PCG64", FakeGenerator)
    got = R.block_weights(0, 0, 1)[0]
    np.testing.assert_array_equal(got[:len(words)], expected)
    assert set(expected.tolist()) == set(range(13))  # every weight 0..12 occurs, 12 from the top words


def test_poisson_weights_have_poisson1_moments():
    w = R.poisson_weights(0, 20_000, replicates=50, seed=0)
    assert w.dtype == np.uint8 and w.shape == (50, 20_000)
    assert abs(w.mean() - 1) < 0.004  # sd of the mean 1/sqrt(1e6) = 0.001
    assert abs(w.var() - 1) < 0.01  # sd ~ sqrt(3/1e6) = 0.0017 (4th central moment of Poisson(1) is 4)
    for k in range(4):
        assert abs(np.mean(w == k) - math.exp(-1) / math.factorial(k)) < 0.003, k
    assert w.max() <= 12


@FAST
@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 4), st.integers(0, 2**32))
def test_poisson_weights_do_not_depend_on_the_split(a, b, offset_blocks, seed):
    lo, hi = sorted((a, b))
    start = max(0, offset_blocks * R.BLOCK_ROWS - 7)  # not block-aligned
    whole = R.poisson_weights(start, start + 5000, replicates=3, seed=seed)
    parts = [R.poisson_weights(start + s, start + e, replicates=3, seed=seed) for s, e in ((0, lo), (lo, hi), (hi, 5000))]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))


def test_a_replicate_does_not_depend_on_how_many_are_drawn_and_seeds_differ():
    few = R.poisson_weights(100, 3000, replicates=3, seed=9)
    many = R.poisson_weights(100, 3000, replicates=10, seed=9)
    np.testing.assert_array_equal(few, many[:3])
    assert not np.array_equal(many[3], many[4])
    assert not np.array_equal(R.poisson_weights(100, 3000, replicates=3, seed=10), few)
    # Replicates are independent: the correlation of two rows of weights is ~0.
    assert abs(np.corrcoef(many[0].astype(float), many[1].astype(float))[0, 1]) < 0.06


def test_blocks_cover_the_rows_exactly_once():
    for start, stop in ((0, 0), (0, 1), (5, 1024), (1023, 1025), (1024, 2048), (7, 5000)):
        spans = list(R.blocks(start, stop))
        covered = np.concatenate([np.arange(lo, hi) for _, lo, hi in spans]) if spans else np.array([], int)
        np.testing.assert_array_equal(covered, np.arange(start, stop))
        for j, lo, hi in spans:
            assert j * R.BLOCK_ROWS <= lo <= hi <= (j + 1) * R.BLOCK_ROWS


def test_row_uniform_is_a_function_of_seed_stream_and_row_only():
    rows = np.arange(10_000, 30_000)
    u = R.row_uniform(rows, seed=4, stream=R.HALF_STREAM)
    assert u.dtype == np.float64 and (u >= 0).all() and (u < 1).all()
    # Any subset or order of the rows gets the same values.
    pick = np.random.default_rng(0).permutation(len(rows))[:500]
    np.testing.assert_array_equal(R.row_uniform(rows[pick], seed=4, stream=R.HALF_STREAM), u[pick])
    # Uniform: mean 1/2, variance 1/12, deciles about equal (20,000 values).
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    assert np.abs(np.bincount((u * 10).astype(int), minlength=10) / len(u) - 0.1).max() < 0.01
    # Another seed or another stream is another, uncorrelated, sequence.
    for other in (R.row_uniform(rows, seed=5, stream=R.HALF_STREAM), R.row_uniform(rows, seed=4, stream=R.DISPLAY_STREAM)):
        assert abs(np.corrcoef(u, other)[0, 1]) < 0.03
    # 53 random bits: the values are multiples of 2^-53 and almost never collide.
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53)) and len(np.unique(u)) == len(u)


@FAST
@given(st.integers(0, 100_000), st.integers(0, 3000), st.integers(0, 2**31))
def test_random_halves_are_the_same_however_rows_are_split(start, n, seed):
    cut = n // 3
    whole = R.random_halves(start, n, seed=seed)
    np.testing.assert_array_equal(whole, np.concatenate([R.random_halves(start, cut, seed=seed),
                                                         R.random_halves(start + cut, n - cut, seed=seed)]))
    np.testing.assert_array_equal(whole, R.row_uniform(np.arange(start, start + n), seed=seed, stream=R.HALF_STREAM) < 0.5)


def test_random_halves_split_about_evenly():
    a = R.random_halves(0, 40_000, seed=1)
    assert abs(a.mean() - 0.5) < 0.01  # sd 0.0025
