"""Benchmark (issue 4): the whole `reportgen audit --predictions` on 1,000,000 x 10 probabilities.

Synthetic, seeded data: each sample gets a true class, probabilities drawn from a Dirichlet
concentrated on it (0.1 on every class plus a log-uniform 1..100 on the true one: about 95 %
top-1 accuracy, median confidence 0.95, like a decent classifier), saved as float32; then
exactly 10 % of the labels are flipped to a uniformly chosen other class (saved int64).

In one run, each in its own child process (peak RSS is the child's own):

  1. `reportgen audit --predictions probs.npy --labels labels.npy --output TMP` (report, PDF and
     all): wall time and peak RSS against the targets (<= 30 s, <= 2 GB), plus a stage
     breakdown from the timestamps of its progress lines;
  2. the flagging step alone: reportgen's label check (engines.local.check_labels) vs
     cleanlab.filter.find_label_issues with default arguments (and with n_jobs=1), on the same
     arrays: whole-process wall/CPU/peak RSS, the call's own time, and precision / recall / F1
     against the known flips.

When the audit misses a target (or with --profile) it is run once more under cProfile and the
top 25 functions by cumulative time are printed.

    .venv/bin/python bench/scale.py [--quick] [--n 1000000] [--k 10] [--noise 0.1] [--seed 0] [--profile]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import OUT, ROOT, load_average, reportgen_cmd, rss_source, run_child, self_peak_mb, stage_peak_mb, stages, table

# Targets of issue 4 for the whole audit.
TARGET_S, TARGET_MB = 30.0, 2048.0
# Dirichlet concentration: this much on every class, plus log-uniform [lo, hi] on the true class.
BACKGROUND_ALPHA, TRUE_ALPHA = 0.1, (1.0, 100.0)
# Rows generated per chunk (bounds the generator's float64 scratch).
CHUNK = 250_000
# Flagging methods run by the worker, by name.
METHODS = ("reportgen", "cleanlab (default args)", "cleanlab n_jobs=1")
# Seconds between RSS samples of the audit child (cheap: one /proc read).
RSS_EVERY = 0.05
# Lines of the cProfile listing printed.
PROFILE_LINES = 25
# Frames left out of the listing: they only restate their callee's cumulative time.
PROFILE_SKIP = ("<frozen importlib", "{built-in method builtins.exec}", "{built-in method builtins.__import__}",
                "/click/", "importlib/__init__.py", "<string>:")


def generate(n: int, k: int, noise: float, seed: int, folder: Path) -> None:
    """Write probs.npy (n, k) float32, labels.npy (n,) int64 and flipped.npy (n,) bool into `folder`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    true = rng.integers(k, size=n)
    probs = np.empty((n, k), np.float32)
    lo, hi = np.log(TRUE_ALPHA[0]), np.log(TRUE_ALPHA[1])
    for start in range(0, n, CHUNK):
        t = true[start:start + CHUNK]
        alpha = np.full((len(t), k), BACKGROUND_ALPHA)
        alpha[np.arange(len(t)), t] += np.exp(rng.uniform(lo, hi, size=len(t)))
        g = rng.gamma(alpha)
        probs[start:start + CHUNK] = g / g.sum(axis=1, keepdims=True)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, size=int(round(noise * n)), replace=False)] = True
    labels = true.astype(np.int64)
    labels[flipped] = (true[flipped] + rng.integers(1, k, size=int(flipped.sum()))) % k
    np.save(folder / "probs.npy", probs)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "flipped.npy", flipped)
    acc = float(np.mean(probs.argmax(axis=1) == true))
    print(json.dumps({"accuracy_vs_true": acc, "accuracy_vs_given": float(np.mean(probs.argmax(axis=1) == labels)),
                      "median_confidence": float(np.median(probs.max(axis=1))), "flipped": int(flipped.sum()),
                      "mb": (probs.nbytes + labels.nbytes) / 2**20}))


def flag(method: str, folder: Path) -> None:
    """Time one flagging method on the saved arrays; print one JSON line."""
    import warnings

    import numpy as np

    if method == "reportgen":
        from _common import reportgen_flags
    else:
        from cleanlab.filter import find_label_issues
    labels = np.load(folder / "labels.npy")
    probs = np.load(folder / "probs.npy")
    flipped = np.load(folder / "flipped.npy")
    start = time.perf_counter()
    if method == "reportgen":
        mask = reportgen_flags(labels, probs)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"n_jobs": 1} if method == "cleanlab n_jobs=1" else {}
            mask = find_label_issues(labels, probs, **kwargs)
    seconds = time.perf_counter() - start
    hits = int(np.sum(mask & flipped))
    p, r = hits / max(int(mask.sum()), 1), hits / max(int(flipped.sum()), 1)
    print(json.dumps({"seconds": seconds, "flagged": int(mask.sum()), "precision": p, "recall": r,
                      "f1": 2 * p * r / (p + r) if p + r else 0.0}))


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    if args.worker == "generate":
        generate(args.n, args.k, args.noise, args.seed, args.data)
    else:
        flag(args.worker, args.data)


def spawn(args: argparse.Namespace, role: str, folder: Path):
    cmd = [sys.executable, __file__, "--worker", role, "--data", str(folder), "--n", str(args.n), "--k", str(args.k),
           "--noise", str(args.noise), "--seed", str(args.seed)]
    return run_child(cmd).check()


def audit_command(folder: Path, version: str) -> list[str]:
    return ["audit", "--predictions", str(folder / "probs.npy"), "--labels", str(folder / "labels.npy"),
            "--output", str(folder / "reports"), "--version", version, "--force", "--seed", "0"]


# Runs the audit under cProfile in one process. Click's standalone_mode=False returns instead of
# exiting, so the profile is written (reportgen's main() ends with os._exit, which `python -m
# cProfile -m reportgen` would not survive).
PROFILE_SNIPPET = """
import cProfile, sys
from reportgen.cli import cli
prof = cProfile.Profile()
try:
    prof.runcall(cli.main, args=sys.argv[2:], prog_name="reportgen", standalone_mode=False)
finally:
    prof.dump_stats(sys.argv[1])
"""


def print_profile(folder: Path) -> None:
    """Run the audit once under cProfile and print the top functions by cumulative time."""
    import io
    import pstats

    prof = folder / "audit.prof"
    run = run_child([sys.executable, "-c", PROFILE_SNIPPET, str(prof), *audit_command(folder, "profiled")])
    if run.returncode != 0 or not prof.exists():
        print(f"  profiling run failed (exit {run.returncode}): {run.lines[-1][1] if run.lines else ''}")
        return
    buf = io.StringIO()
    pstats.Stats(str(prof), stream=buf).sort_stats("cumulative").print_stats(PROFILE_LINES * 4)
    text = buf.getvalue()
    body = text[text.index("   ncalls"):] if "   ncalls" in text else text
    lines = body.rstrip().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and not any(s in ln for s in PROFILE_SKIP)][:PROFILE_LINES]
    print(f"\ncProfile of the audit ({run.wall_s:.1f} s under the profiler), top {PROFILE_LINES} by cumulative time"
          f" (import machinery and click frames left out):")
    print("\n".join("  " + ln.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "") for ln in kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,000 samples")
    parser.add_argument("--n", type=int, default=None, help="samples (default 1,000,000; 50,000 with --quick)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the cProfile listing even when the targets are met")
    parser.add_argument("--keep", action="store_true", help="keep arrays and reports under bench/out/scale/")
    parser.add_argument("--worker", choices=("generate",) + METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n is None:
        args.n = 50_000 if args.quick else 1_000_000
    if args.worker:
        worker(args)
        return

    print(f"scale: {args.n:,} x {args.k} synthetic probabilities, {args.noise:.0%} flipped labels, seed {args.seed}")
    print(f"  load average at start: {load_average()}")
    print(f"  {rss_source()}; this parent's peak {self_peak_mb():.0f} MB")
    if args.keep:
        folder = OUT / "scale"
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        gen = spawn(args, "generate", folder)
        g = json.loads(gen.stdout.strip().splitlines()[-1])
        print(f"  generated in {gen.wall_s:.1f} s: {g['mb']:.0f} MB on disk, top-1 accuracy {g['accuracy_vs_true']:.4f} vs true labels"
              f" ({g['accuracy_vs_given']:.4f} vs given), median confidence {g['median_confidence']:.3f}, {g['flipped']:,} flipped")

        print("\n1. whole audit: reportgen audit --predictions probs.npy --labels labels.npy --output TMP")
        audit = run_child(reportgen_cmd(*audit_command(folder, "bench")), rss_every=RSS_EVERY)
        if audit.returncode != 0:
            print(f"  FAILED (exit {audit.returncode}) after {audit.wall_s:.1f} s, peak RSS {audit.peak_mb:.0f} MB:")
            print("\n".join(f"    {t}" for _, t in audit.lines[-10:]))
        ok_t, ok_m = audit.wall_s <= TARGET_S, audit.peak_mb <= TARGET_MB
        print(table(["figure", "value", "target", "verdict"], [
            ["wall time s", f"{audit.wall_s:.1f}", f"<= {TARGET_S:.0f}", "meets" if ok_t else "MISSES"],
            ["CPU time s (user+sys)", f"{audit.cpu_s:.1f}", "", ""],
            ["peak RSS MB", f"{audit.peak_mb:.0f}", f"<= {TARGET_MB:.0f}", "meets" if ok_m else "MISSES"],
        ]))
        print(f"\n  stage breakdown (from stderr line timestamps, each stage named by the line that starts it;"
              f" RSS sampled from /proc every {RSS_EVERY} s):")
        parts = stages(audit, "start-up (imports, load + validate arrays)", result="exit (after printing the report folder)")
        rows = []
        for nm, a, b in parts:
            peak = stage_peak_mb(audit, a, b)
            rows.append([nm, f"{b - a:.2f}", f"{peak:.0f}" if peak is not None else "-"])
        print(table(["stage", "s", "max sampled RSS MB"], rows))
        if audit.returncode == 0:
            out = Path(audit.stdout.strip().splitlines()[-1])
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MB" for p in sorted(out.iterdir()) if p.is_file())
            print(f"\n  report files: {sizes}")
            html = (out / "report.html").read_text(encoding="utf-8", errors="replace")
            notes = sorted({ln.strip()[:160] for ln in html.splitlines()
                            if "subsample" in ln.lower() or "points drawn" in ln.lower() or "samples drawn" in ln.lower()})
            print(f"  subsampling notes in report.html: {len(notes)}")
            for ln in notes:
                print(f"    {ln}")

        print(f"\n2. flagging step alone, same arrays, one child process each ({args.n:,} samples):")
        rows = []
        results = {}
        for method in METHODS:
            run = spawn(args, method, folder)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            results[method] = r
            rows.append([method, f"{r['seconds']:.2f}", f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}", f"{run.peak_mb:.0f}",
                         f"{r['flagged']:,}", f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}"])
        print(table(["method", "call s", "process wall s", "CPU s", "peak RSS MB", "flagged", "precision", "recall", "F1"], rows))
        ours, ref = results["reportgen"]["seconds"], results["cleanlab (default args)"]["seconds"]
        print(f"\n  flagging time reportgen / cleanlab (default args) = {ours / ref:.2f} "
              f"({'no slower' if ours <= ref else 'SLOWER'}); vs cleanlab n_jobs=1: {ours / results['cleanlab n_jobs=1']['seconds']:.2f}")
        if args.profile or not (ok_t and ok_m) or audit.returncode != 0:
            print_profile(folder)
        print(f"\n  load average at end: {load_average()}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
