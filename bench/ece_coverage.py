"""Coverage of the calibration error's 95 % interval (reportgen/stats/calibration_interval.py) by simulation, beside
the bootstrap intervals it replaced.

Data sets with a known true binned L2 calibration error m: confidences c = 1 - 0.7 X, X from a Beta mixture (three
profiles: an MNIST-like ~99 % accurate model with sparse low-confidence bins, a CIFAR-like ~90 % one, a ~70 % one);
correct ~ Bernoulli(c - g(c)) with the gap g shaped
- over:      g = m everywhere (over-confident);
- two-sided: g = -m below c = 0.6 (a bin edge), +m above (under- then over-confident);
- tail:      g = m / sqrt(P(c < c1)) below a bin edge c1, 0 above (all the error in the sparse low-confidence bins),
so the truth is m exactly. For each cell, D data sets are simulated and the share of intervals holding m is printed
with its binomial standard error, with the mean width and how often the lower end is above 0 ("miscalibrated").

Intervals compared:
- test inversion: the report's interval;
- percentile bootstrap of the plug-in ECE: the first round's "95 % interval", scored against its own truth, the binned
  L1 ECE (m for the over and two-sided shapes, m sqrt(P(c < c1)) for the tail);
- percentile bootstrap of the debiased estimate: the obvious repair.
Bootstraps are Poisson(1) reweightings of each bin's right and wrong rows (B = 500).

    .venv/bin/python bench/ece_coverage.py [--sets 400] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.special import betainc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reportgen.stats import calibration as C  # noqa: E402
from reportgen.stats import calibration_interval as CI  # noqa: E402

PROFILES = {"mnist": [(0.985, 0.3, 25.0), (0.015, 1.5, 1.5)], "cifar": [(1.0, 0.6, 3.6)], "low": [(1.0, 1.3, 1.7)]}
TAIL_EDGE = {"mnist": 14 / 15, "cifar": 12 / 15, "low": 9 / 15}  # c1: a bin edge
BOOT = 500


def below(profile: str, c1: float) -> float:
    """P(c < c1) = P(X > (1 - c1) / 0.7)."""
    return float(sum(w * (1 - betainc(a, b, (1 - c1) / 0.7)) for w, a, b in PROFILES[profile]))


def simulate(profile: str, n: int, d: int, m: float, shape: str, rng) -> tuple[np.ndarray, np.ndarray]:
    mix = PROFILES[profile]
    part = rng.choice(len(mix), p=[w for w, _, _ in mix], size=(d, n))
    x = np.empty((d, n))
    for j, (_, a, b) in enumerate(mix):
        x[part == j] = rng.beta(a, b, size=int((part == j).sum()))
    c = 1 - 0.7 * x
    if shape == "over":
        gap = np.full_like(c, m)
    elif shape == "two-sided":
        gap = np.where(c < 0.6, -m, m)
    else:
        c1 = TAIL_EDGE[profile]
        gap = np.where(c < c1, m / np.sqrt(below(profile, c1)), 0.0)
    return c, rng.random((d, n)) < c - gap


def bin_sums(c: np.ndarray, right: np.ndarray) -> C.BinSums:
    d = c.shape[0]
    cell = C.equal_width_bin(c) + C.N_BINS * np.arange(d)[:, None]
    add = lambda v: np.bincount(cell.ravel(), weights=v.ravel().astype(np.float64), minlength=d * C.N_BINS).reshape(d, C.N_BINS)  # noqa: E731
    return C.BinSums(add(np.ones_like(c)), add(c), add(c * c), add(right), add(c * right))


def bootstraps(bins: C.BinSums, rng) -> dict[str, np.ndarray]:
    """(D, 2) percentile intervals of the plug-in ECE and of the debiased estimate, from Poisson-reweighted bins."""
    right, wrong = bins.correct, bins.n - bins.correct
    conf_right = np.where(right > 0, bins.conf_correct / np.maximum(right, 1), 0)
    conf_wrong = np.where(wrong > 0, (bins.conf - bins.conf_correct) / np.maximum(wrong, 1), 0)
    # Within a bin, rows of one kind are replaced by their mean confidence (the within-bin spread barely matters here).
    sq_right = np.where(right > 0, bins.conf_correct ** 2 / np.maximum(right, 1) ** 2, 0)
    sq_wrong = np.where(wrong > 0, conf_wrong ** 2, 0)
    kr = rng.poisson(right[:, None, :], size=(right.shape[0], BOOT, right.shape[1])).astype(np.float64)
    kw = rng.poisson(wrong[:, None, :], size=kr.shape).astype(np.float64)
    rb = C.BinSums(kr + kw, kr * conf_right[:, None] + kw * conf_wrong[:, None], kr * sq_right[:, None] + kw * sq_wrong[:, None],
                   kr, kr * conf_right[:, None])
    pct = lambda v: np.quantile(v, [0.025, 0.975], axis=-1).T  # noqa: E731
    return {"plug-in ECE, percentile bootstrap": pct(rb.ece()), "debiased, percentile bootstrap": pct(CI.estimate(rb))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=400, help="data sets per cell")
    ap.add_argument("--quick", action="store_true", help="the over-confident shape only")
    args = ap.parse_args()
    shapes = ("over",) if args.quick else ("over", "two-sided", "tail")
    print(f"# coverage of 95 % intervals for the binned L2 calibration error; {args.sets} data sets per cell")
    print(f"{'profile':7} {'shape':9} {'N':>6} {'truth':>5} | {'test inversion':>26} | {'plug-in ECE pct boot':>20} | "
          f"{'debiased pct boot':>17} | secs")
    worst = [1.0, 0.0]
    for profile in PROFILES:
        for shape in shapes:
            for n in (1_000, 10_000):
                for m in (0.0, 0.01, 0.03):
                    if shape != "over" and m == 0:
                        continue  # every shape is the same calibrated model at m = 0
                    rng = np.random.default_rng(zlib.crc32(repr((profile, shape, n, m)).encode()))
                    c, right = simulate(profile, n, args.sets, m, shape, rng)
                    bins = bin_sums(c, right)
                    t0 = time.perf_counter()
                    r = CI.interval(bins, seed=int(rng.integers(2**31)))
                    secs = time.perf_counter() - t0
                    cov = np.mean((r["lower"] <= m) & (m <= r["upper"]))
                    worst = [min(worst[0], cov), max(worst[1], cov)]
                    se = np.sqrt(cov * (1 - cov) / args.sets)
                    l1 = m * np.sqrt(below(profile, TAIL_EDGE[profile])) if shape == "tail" else m
                    boot = bootstraps(bins, rng)
                    others = [np.mean((v[:, 0] <= truth) & (truth <= v[:, 1])) for v, truth in zip(boot.values(), (l1, m))]
                    print(f"{profile:7} {shape:9} {n:6d} {m:5.2f} | {cov:6.1%} ±{se:4.1%} w {np.mean(r['upper'] - r['lower']):.4f} "
                          f"L>0 {np.mean(r['lower'] > 0):4.0%} | {others[0]:20.1%} | {others[1]:17.1%} | {secs:5.1f}", flush=True)
    print(f"# test inversion: coverage from {worst[0]:.1%} to {worst[1]:.1%} over every cell")


if __name__ == "__main__":
    main()
