"""reportgen.stats.merge: how summaries of disjoint rows combine (sums, minima, constants, nested), and the bounded
selections Smallest and Largest, whose merge of any chunking must equal the selection over all rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.errors import ReportgenError
from reportgen.stats.merge import Largest, Smallest, merge, merge_all, top

FAST = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Inner:
    total: np.ndarray
    min_value: np.ndarray


@dataclass(frozen=True)
class Outer:
    const_k: int
    const_names: np.ndarray
    n: int
    inner: Inner
    keyed: dict


def outer(n, total, low, keyed, k=3):
    return Outer(k, np.array([1, 2]), n, Inner(np.array(total, float), np.array(low, float)), keyed)


def test_merge_adds_sums_takes_minima_keeps_constants_and_recurses():
    a = outer(2, [1.0, 2.0], [0.5, np.inf], {"x": 1, "y": np.array([1, 1])})
    b = outer(3, [10.0, 20.0], [0.7, 0.1], {"y": np.array([2, 3]), "z": 5})
    m = merge(a, b)
    assert m.n == 5 and m.const_k == 3
    np.testing.assert_array_equal(m.inner.total, [11.0, 22.0])
    np.testing.assert_array_equal(m.inner.min_value, [0.5, 0.1])
    assert m.keyed["x"] == 1 and m.keyed["z"] == 5
    np.testing.assert_array_equal(m.keyed["y"], [3, 4])
    assert merge(None, a) is a and merge(a, None) is a and merge_all([]) is None
    assert merge_all([a]) is a


def test_merge_refuses_different_constants_and_types():
    a = outer(1, [0.0], [0.0], {})
    with pytest.raises(ReportgenError, match="different k"):
        merge(a, outer(1, [0.0], [0.0], {}, k=4))
    with pytest.raises(ReportgenError, match="different names"):
        merge(a, Outer(3, np.array([1, 3]), 1, a.inner, {}))
    with pytest.raises(ReportgenError, match="cannot merge a Outer with a Inner"):
        merge(a, a.inner)


@FAST
@given(st.lists(st.integers(0, 10), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_merge_all_is_order_free(sizes, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2**31))
    parts = [outer(s, rng.integers(0, 100, 2).astype(float), rng.random(2), {f"k{rng.integers(3)}": int(s)}) for s in sizes]
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    a, b = merge_all(parts), merge_all(shuffled)
    assert a.n == b.n == sum(sizes)
    np.testing.assert_array_equal(a.inner.total, b.inner.total)  # whole numbers: exact in any order
    np.testing.assert_array_equal(a.inner.min_value, b.inner.min_value)
    assert a.keyed == b.keyed


RECORD = [("key", "f8"), ("row", "i8")]


@FAST
@given(st.integers(0, 2**31), st.integers(0, 300), st.integers(1, 40), st.lists(st.integers(0, 300), max_size=5))
def test_smallest_of_any_chunking_is_the_selection_over_all_rows(seed, n, limit, cuts):
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=RECORD)
    rec["key"] = rng.choice([0.1, 0.2, 0.3], n) if seed % 2 else rng.random(n)  # ties broken by row
    rec["row"] = rng.permutation(n)
    edges = [0, *sorted(min(c, n) for c in cuts), n]
    pieces = [Smallest.of(rec[a:b], limit, ("key", "row")) for a, b in zip(edges, edges[1:])]
    rng.shuffle(pieces)
    got = merge_all(pieces).sorted()
    want = rec[np.lexsort([rec["row"], rec["key"]])][:limit]
    np.testing.assert_array_equal(got, want)


def test_smallest_orders_lexicographically():
    rec = np.array([(0.2, 5), (0.1, 9), (0.2, 1), (0.1, 3)], dtype=RECORD)
    s = Smallest.of(rec, 3, ("key", "row"))
    assert s.sorted().tolist() == [(0.1, 3), (0.1, 9), (0.2, 1)]


@FAST
@given(st.integers(0, 2**31), st.integers(0, 200), st.lists(st.integers(0, 200), max_size=5))
def test_largest_of_any_chunking_keeps_each_keys_top_n(seed, n, cuts):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 3, n)
    values = rng.integers(0, 20, n).astype(float)  # ties
    limits = {0: 5, 1: 1, 2: 0}
    edges = [0, *sorted(min(c, n) for c in cuts), n]
    pieces = [Largest.of(limits, {k: values[a:b][keys[a:b] == k] for k in np.unique(keys[a:b]).tolist()})
              for a, b in zip(edges, edges[1:])]
    merged = merge_all(pieces)
    for k, limit in limits.items():
        mine = np.sort(values[keys == k])[::-1]
        got = np.sort(merged.values.get(k, np.array([])))[::-1] if merged is not None else np.array([])
        np.testing.assert_array_equal(got, mine[:limit])
        want = mine[limit - 1] if 1 <= limit <= len(mine) else -np.inf
        assert (merged.nth(k) if merged is not None else -np.inf) == want


def test_top_and_nth_hand_values():
    assert sorted(top(np.array([3.0, 1.0, 4.0, 1.0, 5.0]), 2).tolist()) == [4.0, 5.0]
    assert sorted(top(np.array([3.0, 1.0]), 5).tolist()) == [1.0, 3.0]
    big = Largest.of({"a": 3, "b": 2}, {"a": np.array([9.0, 2.0, 7.0, 7.0, 1.0]), "b": np.array([4.0])})
    assert big.nth("a") == 7.0  # third largest of 9, 7, 7
    assert big.nth("b") == -np.inf  # only one value for a top-2
    assert Largest.of({"c": 1}, {}).nth("c") == -np.inf
