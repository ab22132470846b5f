"""Coverage of `reportgen compare`'s paired interval for the change in calibration error (stats.paired, a paired
Poisson bootstrap of the unbiased binned L2 estimate), by simulation.

Two versions audited on the same N samples: CIFAR-like confidences c_old = 1 - 0.7 Beta(0.6, 3.6), c_new = c_old plus
N(0, 0.03) noise (clipped to [0.3, 1]); answers drawn with one shared uniform per sample (paired), right with
probability c - m, so each version's true calibration error is its m and the true change m_new - m_old. Prints, per
cell, how often the 95 % interval holds the true change and how often a change is called (the interval excludes 0).

    .venv/bin/python bench/compare_coverage.py [--sets 100] [--replicates 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reportgen.stats import paired as P  # noqa: E402

CELLS = [(2000, 0.0, 0.0), (2000, 0.02, 0.02), (2000, 0.0, 0.03), (10000, 0.0, 0.0), (10000, 0.01, 0.03)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=500)
    args = ap.parse_args()
    print(f"# paired calibration-error change, {args.sets} pairs of audits per cell, {args.replicates} bootstrap replicates")
    for n, m_old, m_new in CELLS:
        rng = np.random.default_rng([n, int(1000 * m_old), int(1000 * m_new)])
        covered = called = 0
        for d in range(args.sets):
            c_old = 1 - 0.7 * rng.beta(0.6, 3.6, n)
            c_new = np.clip(c_old + rng.normal(0, 0.03, n), 0.3, 1.0)
            u = rng.random(n)
            out = P.paired_calibration_error(c_old, u < c_old - m_old, c_new, u < c_new - m_new, replicates=args.replicates, seed=d)
            lo, hi = out["ci"]
            covered += lo <= m_new - m_old <= hi
            called += lo > 0 or hi < 0
        print(f"N={n:6,d} old {m_old:.2f} new {m_new:.2f}: coverage {covered / args.sets:6.1%}, change called {called / args.sets:6.1%}",
              flush=True)


if __name__ == "__main__":
    main()
