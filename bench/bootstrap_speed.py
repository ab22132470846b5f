"""Cost of the 95 % intervals at N = 10,000, K = 10: `bootstrap` and the calibration noise floor.

Run with the venv python, no arguments. Prints the median wall time of 5 runs of
`intervals.bootstrap` (DEFAULT_REPLICATES, six per-sample values) and of
`intervals.calibrated_ece_null` (DEFAULT_SIMULATIONS), their process CPU time, the 1-minute
load average (other processes skew the wall time), and the peak RSS of this process.
Both defaults are chosen to keep their call under 0.5 s on the project's 2-core machine.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reportgen.stats import intervals as intervals  # noqa: E402

# Synthetic audit size: the 10,000 test images, 10 classes.
N, K = 10_000, 10
# Timed runs per call; the median is printed.
RUNS = 5
# Logit scale giving ~90 % accuracy for a calibrated softmax(scale * z), z ~ N(0, 1).
LOGIT_SCALE = 10.5
# Budget per call (seconds) that the defaults are chosen against.
BUDGET_S = 0.5


def synthetic(seed: int = 0):
    """Top-label confidence, correctness and six per-sample values of a calibrated model."""
    rng = np.random.default_rng(seed)
    z = LOGIT_SCALE * rng.standard_normal((N, K))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.minimum((rng.random(N)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), K - 1)
    entropy = -np.sum(p * np.log(np.maximum(p, 1e-12)), axis=1)
    onehot = np.eye(K)[y]
    values = {
        "nll": -np.log(np.maximum(p[np.arange(N), y], 1e-12)),
        "brier": np.sum((p - onehot) ** 2, axis=1),
        "confidence": p.max(axis=1),
        "total": entropy,
        "aleatoric": 0.9 * entropy,
        "epistemic": 0.1 * entropy,
    }
    return p.max(axis=1), p.argmax(axis=1) == y, values


def median_seconds(call) -> tuple[float, float]:
    """Median wall and process-CPU seconds of RUNS calls (CPU > wall: BLAS used both cores)."""
    call()  # warm-up: imports, first-touch of buffers
    wall, cpu = [], []
    for _ in range(RUNS):
        t, c = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    conf, correct, values = synthetic()
    b, m = intervals.DEFAULT_REPLICATES, intervals.DEFAULT_SIMULATIONS
    t_boot = median_seconds(lambda: intervals.bootstrap(conf, correct, values, replicates=b))
    t_null = median_seconds(lambda: intervals.calibrated_ece_null(conf, simulations=m))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"N={N}, K={K}, median of {RUNS} runs, budget {BUDGET_S} s wall per call; load {os.getloadavg()[0]:.1f}")
    for name, size, (wall, cpu) in (("bootstrap", f"B={b}", t_boot), ("calibrated_ece_null", f"M={m}", t_null)):
        verdict = "ok" if wall <= BUDGET_S else "OVER BUDGET (is the machine busy? see load)"
        print(f"{name:<20s} {size:<7s} wall {wall:6.3f} s  cpu {cpu:6.3f} s  {verdict}")
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
