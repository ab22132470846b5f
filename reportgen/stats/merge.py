"""How mergeable pieces combine: one `merge` for every summary of disjoint rows, and bounded selections.

A summary is a frozen dataclass whose fields are sums (numpy arrays or numbers, added), minima (fields named
`min_*`, element-wise minimum), nested summaries or selections (merged recursively), or constants (fields named
`const_*`, which must agree). The same `merge` serves the local engine (chunks of one array) and Beam's CombineFns
(shards), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from functools import reduce

import numpy as np

from ..errors import ReportgenError


def merge(a, b):
    """The summary of the union of two disjoint sets of rows.

    Raises:
        ReportgenError: the two summaries are of different types or disagree on a constant.
    """
    if a is None:
        return b
    if b is None:
        return a
    if type(a) is not type(b):
        raise ReportgenError(f"cannot merge a {type(a).__name__} with a {type(b).__name__}")
    if hasattr(a, "merge"):
        return a.merge(b)
    if not is_dataclass(a):
        return a + b
    out = {}
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name.startswith("const_"):
            if not _same(x, y):
                raise ReportgenError(f"cannot merge summaries with different {f.name[6:]}: {x!r} vs {y!r}")
            out[f.name] = x
        elif f.name.startswith("min_"):
            out[f.name] = np.minimum(x, y)
        elif isinstance(x, dict):
            out[f.name] = {k: merge(x.get(k), y.get(k)) for k in {**x, **y}}
        else:
            out[f.name] = merge(x, y)
    return type(a)(**out)


def merge_all(pieces):
    """`merge` of an iterable of summaries (None when it is empty)."""
    return reduce(merge, pieces, None)


def _same(x, y) -> bool:
    return bool(np.array_equal(x, y)) if isinstance(x, np.ndarray) else x == y


@dataclass(frozen=True)
class Smallest:
    """At most `limit` records (a structured array) with the smallest `order` fields, compared lexicographically.

    Merging keeps the smallest of both, so the result is the selection over all rows whatever the sharding: the
    figures' display sample (smallest row hash), the galleries (largest values, as smallest negated values).
    """

    limit: int
    order: tuple[str, ...]
    records: np.ndarray

    @classmethod
    def of(cls, records: np.ndarray, limit: int, order: tuple[str, ...]) -> "Smallest":
        keep = np.lexsort([records[f] for f in reversed(order)])[:limit]
        return cls(limit, tuple(order), records[keep])

    def merge(self, other: "Smallest") -> "Smallest":
        return Smallest.of(np.concatenate([self.records, other.records]), self.limit, self.order)

    def sorted(self) -> np.ndarray:
        """The records in `order`."""
        return self.records[np.lexsort([self.records[f] for f in reversed(self.order)])]


@dataclass(frozen=True)
class Largest:
    """Per key, the at most limits[key] largest values (a keyed top-N): what pruning by noise rate ranks."""

    limits: dict
    values: dict

    @classmethod
    def of(cls, limits: dict, values: dict) -> "Largest":
        return cls(dict(limits), {k: top(v, limits[k]) for k, v in values.items()})

    def merge(self, other: "Largest") -> "Largest":
        keys = {**self.values, **other.values}
        return Largest(self.limits, {k: top(np.concatenate([self.values.get(k, keys[k][:0]), other.values.get(k, keys[k][:0])]),
                                           self.limits[k]) for k in keys})

    def nth(self, key) -> float:
        """The limits[key]-th largest value of `key` (-inf when fewer values exist)."""
        v, n = self.values.get(key), self.limits[key]
        if v is None or len(v) < n or n < 1:
            return -np.inf
        return float(np.partition(v, len(v) - n)[len(v) - n])


def top(values: np.ndarray, n: int) -> np.ndarray:
    """The n largest of `values` (all of them when there are fewer; none when n <= 0), in no particular order."""
    if n <= 0:
        return values[:0]
    return values if len(values) <= n else np.partition(values, len(values) - n)[len(values) - n:]
