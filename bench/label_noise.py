"""Benchmark (issue 4): reportgen's label-issue flags vs cleanlab's, on real MNIST with injected noise.

On the 10,000 real MNIST test images (/work/shared/data/mnist), for each setting

  clean       the labels as published (MNIST has a few dozen real errors; no injected flips)
  sym 5/10/20 %  exactly that share of the samples, chosen uniformly, moved to a uniformly
              chosen OTHER class
  asym 10 %   10 % of each source class moved: 7->1, 2->7, 5->6, 3->8 (chosen among the
              samples whose published label is the source)

out-of-sample probabilities come from reportgen.pipeline.cross_val_predictions: 5-fold CV of
the default CNN trained on the NOISY labels, each fold predicted with MC dropout (S = 30, the
mean probabilities, as `reportgen audit --cv 5` does). Both flaggers then run on the SAME
probabilities: reportgen.label_issues.find_label_issues and cleanlab.filter.find_label_issues
with default arguments; precision / recall / F1 are against the injected flips (the published
labels' own errors count as false positives for both), and each call is timed (median of 5).

CV probabilities are cached per setting in bench/out/label_noise/ (fold models too), so a
rerun only re-flags. The top-20 reportgen flags on the clean set are drawn to
bench/out/top20_clean.png (index, given -> suggested label) for a person to judge.

    .venv/bin/python bench/label_noise.py [--quick] [--epochs 3] [--folds 5] [--mc-samples 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _common import OUT, ROOT, load_average, median, quiet_tensorflow, self_peak_mb, table
from reportgen.model import DEFAULT_EPOCHS

sys.path.insert(0, str(ROOT))

MNIST = Path("/work/shared/data/mnist")
CACHE = OUT / "label_noise"
# Settings: (key, display name, kind, rate).
SETTINGS = (
    ("clean", "clean", None, 0.0),
    ("sym05", "symmetric 5 %", "symmetric", 0.05),
    ("sym10", "symmetric 10 %", "symmetric", 0.10),
    ("sym20", "symmetric 20 %", "symmetric", 0.20),
    ("asym10", "asymmetric 10 %", "asymmetric", 0.10),
)
# Asymmetric flips, source class -> target class.
ASYMMETRIC = {7: 1, 2: 7, 5: 6, 3: 8}
# Timed calls per flagger; the median is printed.
TIMING_REPEATS = 5
# Flags drawn for human review.
TOP = 20


def inject(labels: np.ndarray, kind: str | None, rate: float, *, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped mask): seeded label noise of the given kind and rate."""
    rng = np.random.default_rng(seed)
    noisy, flipped = labels.copy(), np.zeros(len(labels), bool)
    if kind == "symmetric":
        idx = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
        noisy[idx] = (labels[idx] + rng.integers(1, k, size=len(idx))) % k
        flipped[idx] = True
    elif kind == "asymmetric":
        for source, target in ASYMMETRIC.items():
            members = np.flatnonzero(labels == source)
            idx = rng.choice(members, size=int(round(rate * len(members))), replace=False)
            noisy[idx] = target
            flipped[idx] = True
    return noisy, flipped


def cv_probs(ds, key: str, args, progress) -> tuple[np.ndarray, float]:
    """Out-of-sample mean probabilities for `ds` by K-fold CV, cached on the labels' hash."""
    from reportgen.model import ARCHITECTURE_VERSION
    from reportgen.pipeline import cross_val_predictions

    h = hashlib.sha256(ds.labels.tobytes() + ds.images.tobytes()).hexdigest()[:12]
    # The architecture version is in the name so a changed default CNN never reuses old probabilities.
    path = CACHE / (f"cv-{key}-arch{ARCHITECTURE_VERSION}-n{len(ds.labels)}-f{args.folds}-e{args.epochs}"
                    f"-S{args.mc_samples}-seed{args.seed}-{h}.npy")
    if path.exists():
        return np.load(path), 0.0
    start = time.perf_counter()
    sampled, _, _ = cross_val_predictions(ds, folds=args.folds, epochs=args.epochs, batch_size=128, seed=args.seed,
                                          mc_samples=args.mc_samples, cache_dir=CACHE / "models", name=f"ln-{key}",
                                          progress=progress)
    probs = sampled.mean_probs
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, probs)
    return probs, time.perf_counter() - start


def scores(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of a flag mask against the injected flips (NaN without flips)."""
    if not truth.any():
        return float("nan"), float("nan"), float("nan")
    hits = float(np.sum(mask & truth))
    p, r = hits / max(int(mask.sum()), 1), hits / int(truth.sum())
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def timed(fn, repeats: int):
    """(result of the last call, median seconds over `repeats` calls)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, median(times)


def draw_top(ds, issues, path: Path, index: np.ndarray) -> None:
    """The top flagged images in a grid, titled '#index given g -> s / self-conf' (index[i] = MNIST test index of row i)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    m = min(TOP, len(issues.flagged))
    cols = 5
    rows = max(1, -(-m // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.0, rows * 2.3), squeeze=False)
    try:
        for a in axes.ravel():
            a.axis("off")
        for r, (i, s, sc) in enumerate(zip(issues.flagged[:m], issues.suggested[:m], issues.self_confidence[:m])):
            a = axes.ravel()[r]
            a.imshow(ds.images[i, :, :, 0], cmap="gray_r", vmin=0, vmax=255)
            a.set_title(f"{r + 1}. #{index[i]}: given {ds.class_names[ds.labels[i]]} → {ds.class_names[s]}\nself-conf. {sc:.4f}", fontsize=8)
        fig.suptitle(f"Top {m} reportgen flags on the clean MNIST test set (out-of-sample CV probabilities)", fontsize=10)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, 3 folds, 1 epoch, S = 10")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per fold (default: reportgen's default CNN epochs; 1 with --quick)")
    parser.add_argument("--folds", type=int, default=None, help="CV folds (default 5; 3 with --quick)")
    parser.add_argument("--mc-samples", type=int, default=None, help="MC dropout samples per fold prediction (default 30; 10 with --quick)")
    parser.add_argument("--n", type=int, default=None, help="images (default all 10,000; a seeded 2,000 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise, the folds and training")
    args = parser.parse_args()
    args.epochs = args.epochs or (1 if args.quick else DEFAULT_EPOCHS)
    args.folds = args.folds or (3 if args.quick else 5)
    args.mc_samples = args.mc_samples or (10 if args.quick else 30)
    n = args.n or (2000 if args.quick else None)

    quiet_tensorflow()
    from cleanlab.filter import find_label_issues as cl_find

    from reportgen.data import Dataset, load
    from reportgen.label_issues import find_label_issues


    t0 = time.perf_counter()
    full = load(MNIST).test
    # Row i of `ds` is image index[i] of the MNIST test set (all of them unless --n/--quick).
    index = np.arange(len(full.labels)) if n is None or n >= len(full.labels) else \
        np.sort(np.random.default_rng(args.seed).choice(len(full.labels), size=n, replace=False))
    ds = full.subset(index)
    k = ds.n_classes
    print(f"label_noise: {len(ds.labels):,} MNIST test images, {args.folds}-fold CV of the default CNN, "
          f"{args.epochs} epoch(s), S = {args.mc_samples}; cleanlab {md.version('cleanlab')}")
    print(f"  load average at start: {load_average()}")

    rows, f1_pairs, clean = [], [], None
    for si, (key, name, kind, rate) in enumerate(SETTINGS):
        noisy, flipped = inject(ds.labels, kind, rate, k=k, seed=args.seed * 1000 + si)
        nds = Dataset(ds.images, noisy, ds.class_names, ds.provenance, ds.name)
        print(f"{name}: {int(flipped.sum()):,} injected flips")
        probs, cv_s = cv_probs(nds, key, args, progress=lambda m: print(f"    {m}") if m.startswith("fold") and "reusing" not in m else None)
        print(f"  CV probabilities {'computed in %.0f s' % cv_s if cv_s else 'from cache'}; "
              f"top-1 accuracy vs published labels {np.mean(probs.argmax(1) == ds.labels):.4f}, vs given {np.mean(probs.argmax(1) == noisy):.4f}")
        issues, rg_s = timed(lambda: find_label_issues(noisy, probs), TIMING_REPEATS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cl_mask, cl_s = timed(lambda: cl_find(noisy, probs), TIMING_REPEATS)
        rg = scores(issues.issue_mask, flipped)
        cl = scores(cl_mask, flipped)
        both = int(np.sum(issues.issue_mask & cl_mask))
        rows.append([name, int(flipped.sum()),
                     int(issues.issue_mask.sum()), *[f"{v:.4f}" for v in rg], f"{rg_s * 1000:.1f}",
                     int(cl_mask.sum()), *[f"{v:.4f}" for v in cl], f"{cl_s * 1000:.1f}", both])
        if kind is not None:
            f1_pairs.append((name, rg[2], cl[2]))
        else:
            clean = (nds, issues, cl_mask)

    print(f"\nflags vs injected flips ({len(ds.labels):,} images; times = median of {TIMING_REPEATS} calls on the same probabilities):")
    print(table(["setting", "flips", "rg flagged", "rg P", "rg R", "rg F1", "rg ms",
                 "cl flagged", "cl P", "cl R", "cl F1", "cl ms", "both flagged"], rows))
    print("  rg = reportgen.label_issues.find_label_issues, cl = cleanlab.filter.find_label_issues (default args)")
    worse = [f"{nm} ({a:.4f} < {b:.4f})" for nm, a, b in f1_pairs if a < b]
    print(f"  target, reportgen F1 >= cleanlab F1 in every noisy setting: {'met' if not worse else 'MISSED in ' + ', '.join(worse)}")

    if clean is not None:
        nds, issues, cl_mask = clean
        png = OUT / ("top20_clean_quick.png" if args.quick else "top20_clean.png")
        draw_top(nds, issues, png, index)
        print(f"\nclean set: reportgen flags {len(issues.flagged)}, cleanlab flags {int(cl_mask.sum())}, "
              f"both {int(np.sum(issues.issue_mask & cl_mask))}; estimated issues {issues.n_issues_estimated}")
        print(f"top {min(TOP, len(issues.flagged))} reportgen flags (drawn in {png.relative_to(ROOT)}):")
        print(table(["rank", "MNIST test index", "given", "suggested", "self-conf.", "also cleanlab"],
                    [[str(r + 1), str(int(index[i])), nds.class_names[nds.labels[i]], nds.class_names[s], f"{sc:.4f}",
                      "yes" if cl_mask[i] else "no"]
                     for r, (i, s, sc) in enumerate(zip(issues.flagged[:TOP], issues.suggested[:TOP], issues.self_confidence[:TOP]))]))
    print(f"\n  peak RSS of this process (TensorFlow, CV training in-process): {self_peak_mb():.0f} MB")
    print(f"  total wall time {time.perf_counter() - t0:.0f} s; load average at end: {load_average()}")


if __name__ == "__main__":
    main()
