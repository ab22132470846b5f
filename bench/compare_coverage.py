"""Coverage of `reportgen compare`'s paired interval for the change in calibration error (stats.paired, a paired
Poisson bootstrap of the unbiased binned L2 estimate), by simulation.

Two versions audited on the same N samples: CIFAR-like confidences c_old = 1 - 0.7 Beta(0.6, 3.6), c_new = c_old plus
N(0, 0.03) noise (clipped to [0.3, 1]); answers drawn with one shared uniform per sample (paired), right with
probability c - m, so each version's true calibration error is its m and the true change m_new - m_old. Prints, per
cell, how often the 95 % interval holds the true change and how often a change is called (the interval excludes 0).
Beside it, the alternative that needs no pairing argument: the two versions' own test-inversion intervals
(calibration_interval.interval) at 97.5 % each, combined as [lower_new - upper_old, upper_new - lower_old], which covers
at least 95 % by the union bound.

    .venv/bin/python bench/compare_coverage.py [--sets 100] [--replicates 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reportgen.stats import calibration as C  # noqa: E402
from reportgen.stats import calibration_interval as CI  # noqa: E402
from reportgen.stats import paired as P  # noqa: E402

CELLS = [(2000, 0.0, 0.0), (2000, 0.02, 0.02), (2000, 0.0, 0.03), (10000, 0.0, 0.0), (10000, 0.01, 0.03)]


def union_bound_interval(c_old, right_old, c_new, right_new, seed: int) -> tuple[float, float]:
    """The change's interval from each version's own 97.5 % interval."""
    old = CI.interval(C.BinSums.of(c_old, right_old), alpha=CI.ALPHA / 2, seed=seed)
    new = CI.interval(C.BinSums.of(c_new, right_new), alpha=CI.ALPHA / 2, seed=seed + 1)
    return new["lower"] - old["upper"], new["upper"] - old["lower"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=500)
    args = ap.parse_args()
    print(f"# paired calibration-error change, {args.sets} pairs of audits per cell, {args.replicates} bootstrap replicates")
    for n, m_old, m_new in CELLS:
        rng = np.random.default_rng([n, int(1000 * m_old), int(1000 * m_new)])
        covered, called = np.zeros(2), np.zeros(2)
        for d in range(args.sets):
            c_old = 1 - 0.7 * rng.beta(0.6, 3.6, n)
            c_new = np.clip(c_old + rng.normal(0, 0.03, n), 0.3, 1.0)
            u = rng.random(n)
            pair = (c_old, u < c_old - m_old, c_new, u < c_new - m_new)
            for i, (lo, hi) in enumerate((P.paired_calibration_error(*pair, replicates=args.replicates, seed=d)["ci"],
                                          union_bound_interval(*pair, seed=2 * d))):
                covered[i] += lo <= m_new - m_old <= hi
                called[i] += lo > 0 or hi < 0
        cov, call = covered / args.sets, called / args.sets
        print(f"N={n:6,d} old {m_old:.2f} new {m_new:.2f}: paired bootstrap coverage {cov[0]:6.1%}, change called {call[0]:6.1%}"
              f" | union bound coverage {cov[1]:6.1%}, change called {call[1]:6.1%}", flush=True)


if __name__ == "__main__":
    main()
