"""Benchmark (issue 11): auditing a folder of PNG files against the same images as an .npz, at 10,000 and 60,000 images.

A MEMORY and SPEED benchmark. The default CNN is trained once on Fashion-MNIST
(`reportgen train --data fashion.npz`, the .npz written from --data), then for each size the same
Fashion-MNIST images are audited twice with `reportgen audit --model M --mc-samples 30`:

  (folder) a class-folder tree of PNG files, bench/out/folder_audit/png-<N>/<label>/<row>.png,
           decoded in streamed tf.data batches;
  (npz)    the same images, in the same order, as one .npz (x, y) held in memory.

The 10,000-image set is Fashion-MNIST's test split, the 60,000-image set its training split (the
model trained on 10,000 of those: a speed benchmark, not an accuracy one).

Targets (issue 11): the 60k folder audit's peak RSS <= 1.3x the 10k folder audit's (decoded images
are never all in memory), and each folder audit <= 2x the wall time of the same images as .npz.
Every run is preceded by an untimed warm-up of the same command (page cache, .pyc, font cache).
Peak RSS is each child's own (GNU time). Exports and the model are cached under bench/out/.

    .venv/bin/python bench/folder_audit.py [--data /usr/share/datasets/fashion-mnist] [--quick] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import OUT, load_average, median, reportgen_cmd, rss_source, run_child, self_peak_mb, stage_peak_mb, stages, table

# Debian's dataset-fashion-mnist (IDX files).
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Where the exports, the .npz files and the model live between runs.
HERE = OUT / "folder_audit"
# Targets of issue 11.
RSS_TARGET, WALL_TARGET = 1.3, 2.0
# Seconds between RSS samples of a timed child.
RSS_EVERY = 0.1
# Images the benchmark model trains on (from the training split).
TRAIN_SIZE = 10_000
# Written last into an export folder, so an interrupted export is redone.
COMPLETE = ".complete"


def load_fashion(data: Path):
    """(x_train, y_train, x_test, y_test) uint8/int64 arrays from an IDX folder (or a Keras-layout .npz)."""
    from reportgen.data.datasets import load

    s = load(data)
    if s.train is None:
        raise SystemExit(f"{data}: needs a train and a test split (Fashion-MNIST's train-* and t10k-* IDX files)")
    return s.train.images[..., 0], s.train.labels, s.test.images[..., 0], s.test.labels


def export(x, y, n: int) -> tuple[Path, Path]:
    """The first n images as a PNG class-folder tree and as an .npz (x, y) in the tree's file order; cached."""
    from PIL import Image
    import numpy as np

    tree, npz = HERE / f"png-{n}", HERE / f"npz-{n}.npz"
    if (tree / COMPLETE).exists() and npz.exists():
        return tree, npz
    shutil.rmtree(tree, ignore_errors=True)
    print(f"  exporting {n:,} images as PNG files under {tree.relative_to(OUT.parents[1])}/ ...")
    for c in np.unique(y[:n]):
        (tree / str(int(c))).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(x[i]).save(tree / str(int(y[i])) / f"{i:05d}.png")
    # The folder lists class by class, file by file: the .npz holds the same images in that order.
    order = np.lexsort((np.arange(n), y[:n]))
    np.savez(npz, x=x[:n][order], y=y[:n][order])
    (tree / COMPLETE).write_text(f"{n}\n")
    return tree, npz


def train_model(x_tr, y_tr, x_te, y_te, epochs: int | None, retrain: bool) -> Path:
    """The default CNN trained once on TRAIN_SIZE Fashion-MNIST training images (`reportgen train`)."""
    import numpy as np
    from reportgen.model.network import ARCHITECTURE_VERSION

    name = f"fashion-arch{ARCHITECTURE_VERSION}-n{TRAIN_SIZE}-e{epochs or 'default'}"
    path = HERE / "models" / f"{name}.keras"
    if path.exists() and not retrain:
        print(f"  reusing {path.relative_to(OUT.parents[1])} (pass --retrain to train it again)")
        return path
    data = HERE / "fashion.npz"
    np.savez(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    args = ["train", "--data", str(data), "--train-size", str(TRAIN_SIZE), "--output", str(path.parent), "--name", name, "--force"]
    if epochs:
        args += ["--epochs", str(epochs)]
    print(f"  training the default CNN: reportgen {' '.join(args[:5])} ...")
    run = run_child(reportgen_cmd(*args)).check()
    print(f"  trained in {run.wall_s:.1f} s, peak RSS {run.peak_mb:.0f} MB")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FASHION,
                        help="Fashion-MNIST as an IDX folder (train-* and t10k-* files) or a Keras-layout .npz "
                             f"(default: {FASHION}, Debian's dataset-fashion-mnist)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 and 6,000 images, S = 3, 1 epoch, no warm-up")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"),
                        help="image counts (default 10000 60000)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each audit (default 1)")
    parser.add_argument("--mc-samples", type=int, default=None, help="MC dropout samples (default 30; 3 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: reportgen's; 1 with --quick)")
    parser.add_argument("--retrain", action="store_true", help="train the model even if a cached one exists")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: no such folder or file (apt-get install dataset-fashion-mnist)")
    small, large = args.sizes or ((1000, 6000) if args.quick else (10_000, 60_000))
    mc = args.mc_samples or (3 if args.quick else 30)
    epochs = args.epochs or (1 if args.quick else None)

    print(f"folder_audit: Fashion-MNIST from {args.data}; {small:,} and {large:,} images as PNG folders vs .npz, S = {mc}")
    print(f"  load average at start: {load_average()}")
    print(f"  {rss_source()}; this parent's peak so far {self_peak_mb():.0f} MB")
    HERE.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_te, y_te = load_fashion(args.data)
    model = train_model(x_tr, y_tr, x_te, y_te, epochs, args.retrain)
    # The small set is the test split, the large one the training split.
    sources = {small: (x_te, y_te) if small <= len(y_te) else (x_tr, y_tr), large: (x_tr, y_tr)}
    if large > len(sources[large][1]):
        raise SystemExit(f"--sizes: the training split has only {len(y_tr):,} images")
    sets = {n: export(*sources[n], n) for n in (small, large)}
    del x_tr, y_tr, x_te, y_te, sources

    scratch = Path(tempfile.mkdtemp(prefix="folder-audit-"))
    runs: dict[tuple[int, str], list] = {}
    summaries = {}
    try:
        for n in (small, large):
            for kind, data in (("npz", sets[n][1]), ("folder", sets[n][0])):
                cmd = reportgen_cmd("audit", "--model", str(model), "--data", str(data), "--mc-samples", str(mc),
                                    "--output", str(scratch), "--name", f"{kind}-{n}", "--force")
                if not args.quick:
                    run_child(cmd + ["--version", "warm"]).check()
                for i in range(args.repeats):
                    r = run_child(cmd + ["--version", f"run{i}"], rss_every=RSS_EVERY).check()
                    runs.setdefault((n, kind), []).append(r)
                    print(f"  {kind:6s} {n:>6,}: {r.wall_s:6.1f} s wall, {r.cpu_s:6.1f} s CPU, peak RSS {r.peak_mb:6.0f} MB")
                summaries[(n, kind)] = json.loads((scratch / f"{kind}-{n}" / "run0" / "summary.json").read_text())

        rows = []
        for (n, kind), rs in runs.items():
            s = summaries[(n, kind)]
            rows.append([f"{kind} {n:,}", s["data"]["count"], f"{median([r.wall_s for r in rs]):.1f}",
                         f"{median([r.cpu_s for r in rs]):.1f}", f"{max(r.peak_mb for r in rs):.0f}",
                         f"{s['metrics']['accuracy']:.4f}"])
        print(f"\nresults (median over {args.repeats} run(s); accuracy from each report's summary.json):")
        print(table(["audit", "images", "wall s", "CPU s", "peak RSS MB", "accuracy"], rows))

        def peak(n, kind):
            return max(r.peak_mb for r in runs[(n, kind)])

        def wall(n, kind):
            return median([r.wall_s for r in runs[(n, kind)]])

        rss_ratio = peak(large, "folder") / peak(small, "folder")
        print(f"\n  peak RSS, folder {large:,} / folder {small:,}     {rss_ratio:.2f}   target <= {RSS_TARGET}: "
              f"{'meets' if rss_ratio <= RSS_TARGET else 'MISSES'}")
        print(f"  (the same ratio for the .npz audits:       {peak(large, 'npz') / peak(small, 'npz'):.2f})")
        for n in (small, large):
            ratio = wall(n, "folder") / wall(n, "npz")
            cpu = median([r.cpu_s for r in runs[(n, "folder")]]) / median([r.cpu_s for r in runs[(n, "npz")]])
            print(f"  wall time, folder / npz at {n:>6,}        {ratio:.2f}   target <= {WALL_TARGET}: "
                  f"{'meets' if ratio <= WALL_TARGET else 'MISSES'}   (CPU time {cpu:.2f})")

        for kind, first in (("folder", "start-up (imports, scan + hash of the files, load model)"),
                            ("npz", "start-up (imports, read + hash the .npz, load model)")):
            last = runs[(large, kind)][-1]
            parts = stages(last, first, result="exit (after printing the report folder)")
            print(f"\nstage breakdown of the {kind} {large:,} audit (from stderr line timestamps; RSS sampled every {RSS_EVERY} s):")
            print(table(["stage", "s", "max sampled RSS MB"],
                        [[nm, f"{b - a:.2f}", f"{stage_peak_mb(last, a, b) or 0:.0f}"] for nm, a, b in parts]))
        print(f"  load average at end: {load_average()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
