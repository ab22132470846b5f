"""Micro-benchmark: reportgen's confident-learning flagging vs cleanlab at 1,000,000 x 10.

Numpy only (no TensorFlow). Generates seeded synthetic probabilities drawn around each
sample's TRUE class, flips 10 % of the labels to another class, and runs on the same arrays:

- reportgen's label check (engines.local.check_labels: the four passes of stats.labels)
- cleanlab.filter.find_label_issues (prune_by_noise_rate), n_jobs=1 and cleanlab's default

Each method runs in a fresh worker process so its peak RSS (resource.getrusage) is its own.
The data are generated in a worker too: Linux carries ru_maxrss over fork and exec, so the
parent must stay small for the workers' figures to mean anything. The parent prints wall time, peak RSS above the loaded input, and precision / recall / F1
against the known flips. A second part compares F1 on smaller, noisier cases over several
seeds (including cleanlab's 'both' variant, for reference).

    python bench/scale_flagging.py [--n 1000000] [--k 10] [--noise 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Worker methods, picked by name on the worker's command line.
METHODS = ("reportgen", "cleanlab_n_jobs_1", "cleanlab_default")
# Small-case settings: (N, K, noise, Dirichlet strength range on the true class).
SMALL_CASES = ((5000, 10, 0.1, (1.0, 12.0)), (5000, 10, 0.3, (0.5, 8.0)), (3000, 3, 0.2, (0.5, 6.0)))
# Seeds per small case.
SMALL_SEEDS = 10


def make_noisy(n, k, *, noise, seed, strength=(1.0, 12.0), dtype=np.float32):
    """Seeded probabilities around the true class with a fraction of labels flipped.

    Args:
        n, k: samples and classes.
        noise: fraction of labels moved to a uniformly chosen other class.
        strength: range of the extra Dirichlet concentration on the true class.
        dtype: dtype of the returned probabilities (float32, as a Keras model returns).
    Returns:
        (labels (n,) int64, probs (n, k) dtype, flipped (n,) bool).
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(k, size=n)
    alpha = np.ones((n, k))
    alpha[np.arange(n), true] += rng.uniform(*strength, size=n)
    probs = rng.gamma(alpha)
    probs /= probs.sum(axis=1, keepdims=True)
    flipped = rng.random(n) < noise
    labels = true.copy()
    labels[flipped] = (true[flipped] + rng.integers(1, k, size=int(flipped.sum()))) % k
    return labels, probs.astype(dtype), flipped


def scores(mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of a boolean flag mask against the known flips."""
    hits = float(np.sum(mask & truth))
    precision = hits / max(int(mask.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": int(mask.sum())}


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def run_method(method: str, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Flag label issues with one method; returns the (N,) bool mask."""
    if method == "reportgen":
        from _common import reportgen_flags

        return reportgen_flags(labels, probs)
    from cleanlab.filter import find_label_issues

    n_jobs = 1 if method == "cleanlab_n_jobs_1" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_label_issues(labels, probs, n_jobs=n_jobs)


def worker(method: str, data: Path) -> None:
    """Load the arrays, time one method, print one JSON line with its figures."""
    if method != "reportgen":
        import cleanlab.filter  # noqa: F401  (import cost is not part of the timing)
    else:
        import reportgen.engines.local  # noqa: F401
    labels = np.load(data / "labels.npy")
    probs = np.load(data / "probs.npy")
    flipped = np.load(data / "flipped.npy")
    baseline = _peak_mb(resource.RUSAGE_SELF)
    start = time.perf_counter()
    mask = run_method(method, labels, probs)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "method": method,
                "seconds": seconds,
                "baseline_mb": baseline,
                "peak_mb": _peak_mb(resource.RUSAGE_SELF),
                "child_peak_mb": _peak_mb(resource.RUSAGE_CHILDREN),
                "mask_sum": int(mask.sum()),
                **scores(mask, flipped),
            }
        )
    )
    np.save(data / f"mask_{method}.npy", mask)


def generate(args: argparse.Namespace, data: Path) -> None:
    """Write labels.npy, probs.npy and flipped.npy for the big case into `data`."""
    labels, probs, flipped = make_noisy(args.n, args.k, noise=args.noise, seed=args.seed)
    np.save(data / "labels.npy", labels)
    np.save(data / "probs.npy", probs)
    np.save(data / "flipped.npy", flipped)
    print(
        f"{args.n:,} x {args.k} float32 probabilities, {int(flipped.sum()):,} flipped labels"
        f" ({args.noise:.0%}), seed {args.seed}; input {(probs.nbytes + labels.nbytes) / 2**20:.0f} MB"
    )


def _spawn(args: argparse.Namespace, data: Path, role: str) -> str:
    command = [sys.executable, __file__, "--worker", role, "--data", str(data)]
    command += ["--n", str(args.n), "--k", str(args.k), "--noise", str(args.noise), "--seed", str(args.seed)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def small_cases() -> None:
    """F1 of reportgen vs cleanlab (prune_by_noise_rate and 'both') on smaller noisy sets."""
    from _common import reportgen_flags

    try:
        from cleanlab.filter import find_label_issues as cl_find
    except ImportError:
        print("cleanlab not installed: small-case comparison skipped")
        return
    print(f"\nsmall noisy cases, mean F1 over seeds 0-{SMALL_SEEDS - 1}:")
    print(f"  {'N':>6} {'K':>3} {'noise':>5}  reportgen  cleanlab  cl 'both'  rg-cl min/max")
    for n, k, noise, strength in SMALL_CASES:
        rows = []
        for seed in range(SMALL_SEEDS):
            labels, probs, flipped = make_noisy(n, k, noise=noise, seed=seed, strength=strength)
            ours = scores(reportgen_flags(labels, probs), flipped)["f1"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = scores(cl_find(labels, probs, n_jobs=1), flipped)["f1"]
                both = scores(cl_find(labels, probs, n_jobs=1, filter_by="both"), flipped)["f1"]
            rows.append((ours, ref, both))
        r = np.array(rows)
        diff = r[:, 0] - r[:, 1]
        print(
            f"  {n:>6} {k:>3} {noise:>5.2f}  {r[:, 0].mean():9.4f} {r[:, 1].mean():9.4f}"
            f" {r[:, 2].mean():10.4f}  {diff.min():+.4f}/{diff.max():+.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=METHODS + ("generate",), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip-small", action="store_true", help="skip the small-case F1 part")
    args = parser.parse_args()
    if args.worker == "generate":
        generate(args, args.data)
        return
    if args.worker:
        worker(args.worker, args.data)
        return

    # Ask for cleanlab without importing it: its imports (sklearn, pandas) would raise the
    # parent's RSS, which every worker then inherits as its ru_maxrss floor.
    if importlib.util.find_spec("cleanlab") is not None:
        methods = METHODS
        print(f"cleanlab {importlib.metadata.version('cleanlab')}, numpy {np.__version__}")
    else:
        methods = ("reportgen",)
        print("cleanlab not installed: timing reportgen only")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        print(_spawn(args, data, "generate").strip())
        print(f"  parent peak RSS before the workers: {_peak_mb(resource.RUSAGE_SELF):.0f} MB")
        print(
            f"  {'method':<19} {'wall s':>7} {'peak RSS MB':>11} {'above input':>11}"
            f" {'pool child':>10} {'flagged':>8} {'precision':>9} {'recall':>7} {'F1':>7}"
        )
        for method in methods:
            r = json.loads(_spawn(args, data, method).strip().splitlines()[-1])
            child = f"{r['child_peak_mb']:.0f}" if r["child_peak_mb"] > 0 else "-"
            print(
                f"  {method:<19} {r['seconds']:7.2f} {r['peak_mb']:11.0f}"
                f" {r['peak_mb'] - r['baseline_mb']:11.0f} {child:>10} {r['flagged']:8,d}"
                f" {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:7.4f}"
            )
        if "cleanlab_n_jobs_1" in methods:
            a = np.load(data / "mask_reportgen.npy")
            b = np.load(data / "mask_cleanlab_n_jobs_1.npy")
            print(f"  Jaccard(reportgen, cleanlab) = {np.sum(a & b) / np.sum(a | b):.4f}")
    if not args.skip_small:
        small_cases()


if __name__ == "__main__":
    main()
