"""Benchmark (issue 12): `reportgen audit --engine beam` on 10,000,000 x 10 saved probabilities in 100 shards.

Synthetic, seeded data in the distribution of bench/scale.py (a Dirichlet concentrated on the true class, about
95 % top-1 accuracy, float32; then 10 % of the labels flipped to another class, int64), written shard by shard so
the generator never holds more than one shard.

  1. the whole audit (report, PDF and per-sample shards) on Beam's DirectRunner in multi-processing mode with 1 and
     2 workers: wall time, rows per second, the driver's peak RSS and each worker's peak RSS (VmHWM of every
     process under the driver, sampled from /proc), their CPU seconds and when the workers lived, against the
     targets: <= 1 GB per worker, 2 workers >= 1.6 x the throughput of 1;
  2. parity on a subset (the first 10 shards, 1,000,000 rows): the local engine on the concatenated arrays against
     the beam engine on the shards: the flagged sets, the count metrics and the largest relative difference of every
     float metric (both engines finish the same merged sums of the same stats functions).

The machine's load average is printed with every run (the 2 cores may be shared).

    .venv/bin/python bench/beam_scale.py [--n 10000000] [--shards 100] [--workers 1 2] [--subset-shards 10]
                                         [--bootstrap 2000] [--workdir bench/out/beam-scale]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import OUT, ROOT, load_average, reportgen_cmd, status_mb, table

# Targets of issue 12.
TARGET_WORKER_MB, TARGET_SPEEDUP = 1024.0, 1.6
# Dirichlet concentration of bench/scale.py: this much on every class, plus log-uniform [lo, hi] on the true class.
BACKGROUND_ALPHA, TRUE_ALPHA = 0.1, (1.0, 100.0)
# Share of labels flipped to another class.
NOISE = 0.1
# Seconds between /proc samples of the driver's process tree.
SAMPLE_EVERY = 0.5


def generate(folder: Path, n: int, shards: int, k: int, seed: int) -> None:
    """probs-NNN.npy (rows, k) float32 and labels-NNN.npy (rows,) int64 per shard; a stamp records the parameters."""
    import numpy as np

    stamp = folder / "stamp.json"
    params = {"n": n, "shards": shards, "k": k, "seed": seed, "noise": NOISE}
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bounds = np.linspace(0, n, shards + 1).astype(np.int64)
    lo, hi = np.log(TRUE_ALPHA[0]), np.log(TRUE_ALPHA[1])
    for s in range(shards):
        rng = np.random.default_rng([seed, s])
        m = int(bounds[s + 1] - bounds[s])
        true = rng.integers(k, size=m)
        alpha = np.full((m, k), BACKGROUND_ALPHA)
        alpha[np.arange(m), true] += np.exp(rng.uniform(lo, hi, m))
        g = rng.standard_gamma(alpha)
        probs = (g / g.sum(axis=1, keepdims=True)).astype(np.float32)
        flip = rng.random(m) < NOISE
        labels = np.where(flip, (true + rng.integers(1, k, m)) % k, true).astype(np.int64)
        np.save(folder / f"probs-{s:03d}.npy", probs)
        np.save(folder / f"labels-{s:03d}.npy", labels)
    stamp.write_text(json.dumps(params))


def _children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in Path(f"/proc/{p}/task").iterdir() for c in (t / "children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process so far (/proc/PID/stat)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str]) -> dict:
    """Run `cmd`; wall time, and the peak RSS (VmHWM), CPU seconds and first and last sight of it and of every process
    under it, sampled while they live (so the CPU of a process is undercounted by at most one SAMPLE_EVERY)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}
    seen: dict[int, list[float]] = {}
    names: dict[int, str] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in [proc.pid, *_children(proc.pid)]:
                mb, c = status_mb(pid, "VmHWM"), _cpu_s(pid)
                if mb is not None and c is not None:
                    peaks[pid] = max(peaks.get(pid, 0.0), mb)
                    cpu[pid] = c
                    seen.setdefault(pid, [time.perf_counter() - start] * 2)[1] = time.perf_counter() - start
                    if pid not in names:
                        try:
                            names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
                        except OSError:
                            names[pid] = "?"
            done.wait(SAMPLE_EVERY)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    done.set()
    t.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n" + "\n".join(err.splitlines()[-15:]))
    workers = [pid for pid in peaks if "sdk_worker_main" in names.get(pid, "") and not names[pid].startswith("/bin/sh")]
    return {"wall_s": wall, "driver_mb": peaks.get(proc.pid), "worker_mb": sorted((peaks[p] for p in workers), reverse=True),
            "driver_cpu_s": cpu.get(proc.pid), "worker_cpu_s": sorted((cpu[p] for p in workers), reverse=True),
            "other_cpu_s": sum(c for p, c in cpu.items() if p != proc.pid and p not in workers),
            "workers_span_s": (min(seen[p][0] for p in workers), max(seen[p][1] for p in workers)) if workers else None,
            "folder": out.strip().splitlines()[-1] if out.strip() else ""}


def beam_audit(probs: str, labels: str, out: Path, workers: int, bootstrap: int, version: str) -> list[str]:
    return reportgen_cmd("audit", "--engine", "beam", "--predictions", probs, "--labels", labels, "--output", str(out),
                         "--name", "scale", "--version", version, "--bootstrap", str(bootstrap), "--force", "--quiet",
                         "--beam-option=--direct_running_mode=multi_processing", f"--beam-option=--direct_num_workers={workers}")


def compare(local: Path, beam: Path) -> dict:
    """Flagged sets, count metrics and the largest relative difference of the exact float metrics."""
    a = json.loads((local / "summary.json").read_text())["metrics"]
    b = json.loads((beam / "summary.json").read_text())["metrics"]
    counts_equal, worst, worst_key = True, 0.0, ""
    for key, x in a.items():
        y = b.get(key)
        if isinstance(x, bool) or x is None or y is None:
            counts_equal &= x == y
        elif isinstance(x, int):
            counts_equal &= x == y
        else:  # both engines finish the same merged sums: every float agrees to summation order
            rel = abs(x - y) / max(abs(x), abs(y), 1e-300)
            if rel > worst:
                worst, worst_key = rel, key
    rows = lambda f: {(r["split"], r["row"]) for r in csv.DictReader(open(f / "flagged.csv"))}  # noqa: E731
    fa, fb = rows(local), rows(beam)
    return {"n_flagged_local": len(fa), "n_flagged_beam": len(fb), "same_flags": fa == fb, "counts_equal": counts_equal,
            "max_rel_exact": worst, "max_rel_exact_key": worst_key}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--subset-shards", type=int, default=10, help="shards of the local-vs-beam parity run (0: skip it)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--workdir", type=Path, default=OUT / "beam-scale")
    args = ap.parse_args()

    data = args.workdir / f"shards-{args.n}x{args.k}-{args.shards}"
    t = time.perf_counter()
    generate(data, args.n, args.shards, args.k, args.seed)
    print(f"data: {args.n:,} x {args.k} float32 in {args.shards} shards under {data} ({time.perf_counter() - t:.0f} s)")
    out = args.workdir / "reports"
    runs = []
    for w in args.workers:
        before = load_average()
        r = run_measured(beam_audit(str(data / "probs-*.npy"), str(data / "labels-*.npy"), out, w, args.bootstrap, f"w{w}"))
        r.update(workers=w, load_before=before, load_after=load_average(), rows_per_s=args.n / r["wall_s"])
        runs.append(r)
        print(f"  {w} worker(s): {r['wall_s']:.0f} s, workers' peak RSS {[round(x) for x in r['worker_mb']]} MB, "
              f"driver {r['driver_mb']:.0f} MB; load {before} -> {r['load_after']}", flush=True)
        if r["workers_span_s"]:
            a, b = r["workers_span_s"]
            print(f"    CPU s: workers {[round(x) for x in r['worker_cpu_s']]}, driver {r['driver_cpu_s']:.0f}, its other children "
                  f"{r['other_cpu_s']:.0f}; the workers lived from {a:.0f} to {b:.0f} s (the driver alone before and after)",
                  flush=True)
    print(f"\nbeam engine, {args.n:,} x {args.k} in {args.shards} shards, DirectRunner multi_processing, --bootstrap {args.bootstrap}")
    print(table(["workers", "wall s", "rows/s", "max worker MB", "driver MB", "load before", "load after"],
                [[r["workers"], r["wall_s"], round(r["rows_per_s"]), max(r["worker_mb"] or [0]), r["driver_mb"],
                  r["load_before"].split(" (")[0], r["load_after"].split(" (")[0]] for r in runs]))
    by = {r["workers"]: r for r in runs}
    if 1 in by and 2 in by:
        speedup = by[2]["rows_per_s"] / by[1]["rows_per_s"]
        print(f"  2 workers / 1 worker throughput: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    worst = max(max(r["worker_mb"] or [0]) for r in runs)
    print(f"  largest worker peak RSS: {worst:.0f} MB (target <= {TARGET_WORKER_MB:.0f} MB)")

    if args.subset_shards:
        import numpy as np

        sub = args.workdir / f"subset-{args.subset_shards}"
        sub.mkdir(parents=True, exist_ok=True)
        keys = [f"{s:03d}" for s in range(args.subset_shards)]
        np.save(sub / "probs.npy", np.concatenate([np.load(data / f"probs-{k}.npy") for k in keys]))
        np.save(sub / "labels.npy", np.concatenate([np.load(data / f"labels-{k}.npy") for k in keys]))
        n_sub = len(np.load(sub / "labels.npy", mmap_mode="r"))
        for k in keys:
            for what in ("probs", "labels"):
                target = sub / f"{what}-{k}.npy"
                if not target.exists():
                    target.symlink_to(data / f"{what}-{k}.npy")
        local = run_measured(reportgen_cmd("audit", "--predictions", str(sub / "probs.npy"), "--labels", str(sub / "labels.npy"),
                                           "--output", str(out), "--name", "subset", "--version", "local", "--bootstrap",
                                           str(args.bootstrap), "--force", "--quiet"))
        beam = run_measured(beam_audit(str(sub / "probs-*.npy"), str(sub / "labels-*.npy"), out, max(args.workers),
                                       args.bootstrap, "beam"))
        c = compare(Path(local["folder"]), Path(beam["folder"]))
        print(f"\nparity on the first {args.subset_shards} shards ({n_sub:,} rows): local {local['wall_s']:.0f} s "
              f"({local['driver_mb']:.0f} MB), beam {beam['wall_s']:.0f} s")
        print(f"  flagged: local {c['n_flagged_local']:,}, beam {c['n_flagged_beam']:,}, same set: {c['same_flags']}")
        print(f"  count metrics equal: {c['counts_equal']}; largest relative difference of the exact float metrics: "
              f"{c['max_rel_exact']:.1e} ({c['max_rel_exact_key']})")
    print(f"\n{sys.executable}; load now {load_average()}")


if __name__ == "__main__":
    main()
