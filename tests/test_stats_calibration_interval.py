"""reportgen.stats.calibration_interval: the calibration error's estimate and the coverage of its 95 % interval.

The coverage is measured by simulation on data whose true binned L2 calibration error is known exactly: confidences
c = 1 - 0.7 X with X from a Beta mixture (so c in [0.3, 1]), correctness ~ Bernoulli(c - g(c)) with |g| = m in every
bin, so the truth is m. Many data sets are simulated at once (the interval is vectorised over leading axes); each cell
asks for 90-99 % coverage. Seeded: the same data sets and the same simulation draws on every run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reportgen.stats import calibration as C
from reportgen.stats import calibration_interval as CI

# Confidence profiles: mixture components (weight, a, b) of X ~ Beta(a, b), c = 1 - 0.7 X.
PROFILES = {
    "cifar": [(1.0, 0.6, 3.6)],  # ~90 % accurate, confidences spread over 0.3-1
    "mnist": [(0.985, 0.3, 25.0), (0.015, 1.5, 1.5)],  # ~99 % accurate, most confidences above 0.95, sparse bins below
}


def simulated(profile: str, n: int, d: int, m: float, shape: str, seed: int) -> C.BinSums:
    """Bin sums of d data sets of n rows whose true calibration error is m.

    shape "over": accuracy c - m everywhere (over-confident); "two-sided": c + m below 0.6 (a bin edge), c - m above.
    """
    rng = np.random.default_rng(seed)
    mix = PROFILES[profile]
    part = rng.choice(len(mix), p=[w for w, _, _ in mix], size=(d, n))
    x = np.empty((d, n))
    for j, (_, a, b) in enumerate(mix):
        x[part == j] = rng.beta(a, b, size=int((part == j).sum()))
    c = 1 - 0.7 * x
    gap = np.full_like(c, m) if shape == "over" else np.where(c < 0.6, -m, m)
    right = rng.random((d, n)) < c - gap
    cell = C.equal_width_bin(c) + C.N_BINS * np.arange(d)[:, None]
    add = lambda v: np.bincount(cell.ravel(), weights=v.ravel().astype(np.float64), minlength=d * C.N_BINS).reshape(d, C.N_BINS)  # noqa: E731
    return C.BinSums(add(np.ones_like(c)), add(c), add(c * c), add(right), add(c * right))


CELLS = [  # (profile, N, true error, shape, data sets)
    ("cifar", 1_000, 0.0, "over", 250), ("cifar", 1_000, 0.01, "over", 250), ("cifar", 1_000, 0.03, "two-sided", 250),
    ("cifar", 10_000, 0.0, "over", 250), ("cifar", 10_000, 0.01, "two-sided", 250), ("cifar", 10_000, 0.03, "over", 250),
    ("mnist", 1_000, 0.01, "over", 150), ("mnist", 10_000, 0.0, "over", 150), ("mnist", 10_000, 0.03, "over", 150),
]


@pytest.mark.parametrize("profile, n, m, shape, d", CELLS)
def test_the_interval_covers_the_true_calibration_error_90_to_99_percent_of_the_time(profile, n, m, shape, d):
    seed = 1000 * CELLS.index((profile, n, m, shape, d)) + 17
    r = CI.interval(simulated(profile, n, d, m, shape, seed), seed=seed)
    covered = (r["lower"] <= m) & (m <= r["upper"])
    assert 0.90 <= covered.mean() <= 0.99, covered.mean()
    assert np.all(r["lower"] <= r["upper"])
    if m == 0:  # "miscalibrated" (lower end above 0) is a test of size 2.5 %: rarely said of a calibrated model
        assert (r["lower"] > 0).mean() <= 0.05


def test_a_clearly_miscalibrated_model_is_called_so():
    """Over-confident by 0.05 at N = 10,000: the lower end is above 0 in (almost) every data set, and the interval's
    width shrinks with N, so the estimate is informative."""
    big = CI.interval(simulated("cifar", 10_000, 100, 0.05, "over", 5), seed=5)
    assert (big["lower"] > 0).mean() >= 0.98 and (big["p_calibrated"] <= 0.025).mean() >= 0.98
    small = CI.interval(simulated("cifar", 1_000, 100, 0.05, "over", 6), seed=6)
    assert np.median(big["upper"] - big["lower"]) < 0.6 * np.median(small["upper"] - small["lower"])


def test_estimate_is_the_within_bin_u_statistic():
    """Per bin, the mean over ordered pairs i != j of d_i d_j (d = conf - correct), an unbiased estimate of the squared
    bin gap; weighted by n_b / N; bins of one row add 0. Hand case: bin 0.3-0.33 holds d = 0.3, -0.7 (one right), bin
    0.9-0.93 holds d = 0.9, 0.9, -0.1 (two wrong), bin 0.5 holds one row."""
    conf = np.array([0.3, 0.3, 0.9, 0.9, 0.9, 0.5])
    right = np.array([False, True, False, False, True, True])
    pairs_a = 2 * 0.3 * -0.7 / 2  # (sum of d_i d_j over i != j) / (n (n - 1))
    pairs_b = 2 * (0.9 * 0.9 + 0.9 * -0.1 + 0.9 * -0.1) / 6
    want = (2 * pairs_a + 3 * pairs_b) / 6
    bins = C.BinSums.of(conf, right)
    assert CI.squared_error(bins) == pytest.approx(want, rel=1e-12)
    assert CI.estimate(bins) == pytest.approx(math.sqrt(max(want, 0.0)), rel=1e-12)


def test_tied_confidences_give_zero_and_an_interval_from_zero():
    """1,500 samples all at confidence 0.9, 90.13 % right: calibrated within noise."""
    conf = np.full(1500, 0.9)
    right = np.arange(1500) < 1352
    out = CI.assess(C.BinSums.of(conf, right))
    assert out["estimate"] == 0.0 and out["ci"][0] == 0.0 and 0.0 < out["ci"][1] < 0.03 and out["verdict"] == "consistent"


def test_merged_chunks_give_the_interval_of_the_whole():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.3, 1.0, 3000)
    right = rng.random(3000) < conf - 0.02
    parts = [C.BinSums.of(conf[a:b], right[a:b]) for a, b in ((0, 700), (700, 2100), (2100, 3000))]
    merged = C.BinSums(*(sum(getattr(p, f) for p in parts) for f in ("n", "conf", "conf_sq", "correct", "conf_correct")))
    whole, again = CI.assess(C.BinSums.of(conf, right)), CI.assess(merged)
    assert again["verdict"] == whole["verdict"]
    assert again["estimate"] == pytest.approx(whole["estimate"], rel=1e-12)
    assert again["ci"] == pytest.approx(whole["ci"], rel=1e-6, abs=1e-9)


def test_fewer_than_two_samples_have_no_interval():
    assert CI.assess(C.BinSums.of(np.array([0.9]), np.array([True]))) == {
        "estimate": None, "ci": None, "verdict": None, "p_calibrated": None, "method": CI.METHOD}
