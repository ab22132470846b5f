"""Benchmark (issue 3): epistemic vs aleatoric uncertainty as an out-of-distribution detector.

In-distribution is MNIST, out-of-distribution is Fashion-MNIST (same 28x28 grey format):

- the default CNN is trained with `reportgen train` on the FIRST 5,000 images of the MNIST
  test set (saved as the train split of a .npz; reportgen holds 10 % of them out for its
  validation accuracy) and never sees the evaluation images;
- in-distribution: the OTHER 5,000 MNIST test images; OOD: the first 5,000 Fashion-MNIST
  test images (/usr/share/datasets/fashion-mnist, Debian package dataset-fashion-mnist);
- predictions through reportgen.predict: MC dropout with S = 30 on one model, the same model
  deterministic (S = 1), and a deep ensemble of 5 (`reportgen train --ensemble 5`, seeds
  0..4; member 0 is the single model, trained with the same seed and data);
- for each per-sample uncertainty score (confidence, aleatoric, epistemic, total entropy of the sampled mode), the AUROC
  of separating OOD (positive) from in-distribution by that score (higher score = more OOD).

AUROC 0.5 is chance, 1.0 perfect. Issue 3 expects epistemic to separate OOD at least as
well as 1 - confidence.

    .venv/bin/python bench/ood.py [--quick] [--epochs 3] [--members 5] [--mc-samples 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _common import OUT, ROOT, add_data_argument, load_average, load_labelled, quiet_tensorflow, reportgen_cmd, run_child, self_peak_mb, table
from reportgen.model.network import DEFAULT_EPOCHS

sys.path.insert(0, str(ROOT))

FASHION = Path("/usr/share/datasets/fashion-mnist")
# MNIST test images used for training; the rest is the in-distribution evaluation set.
N_TRAIN = 5000  # half of the 10,000-image test set; with a smaller --data, half of it
# AUROC difference below which two scores are called tied (5,000 + 5,000 images: standard error ~0.005).
TIE = 0.005
# Scores compared, as (key, display name, function of UncertaintyStats -> (N,) higher = more OOD).
SCORES = (
    ("epistemic", "epistemic (mutual information)", lambda st: st.epistemic),
    ("aleatoric", "aleatoric (expected entropy)", lambda st: st.aleatoric),
    ("total", "total predictive entropy", lambda st: st.total),
    ("one_minus_conf", "1 - confidence", lambda st: 1.0 - st.confidence),
)


def per_sample(preds, labels):
    """Per-sample scores of a model.predict.Predictions (its sampled mode, else the deterministic one)."""
    from types import SimpleNamespace

    from reportgen.stats.summary import entropy

    p = preds.modes[preds.sampled or "deterministic"]
    total = entropy(p)
    measured = preds.sampled is not None
    aleatoric = preds.aleatoric if measured else total
    return SimpleNamespace(confidence=p.max(axis=1), correct=p.argmax(axis=1) == labels, total=total, aleatoric=aleatoric,
                           epistemic=total - aleatoric if measured else np.zeros(len(labels)), epistemic_measured=measured)


def write_split(path: Path, data: Path | None) -> None:
    """The benchmark's MNIST images as a .npz: first N_TRAIN images = train split, the rest = test split."""

    ds = load_labelled(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=ds.images[:N_TRAIN, :, :, 0], y_train=ds.labels[:N_TRAIN],
                        x_test=ds.images[N_TRAIN:, :, :, 0], y_test=ds.labels[N_TRAIN:])


def train_members(data: Path, *, epochs: int, members: int, seed: int, retrain: bool) -> tuple[list[Path], float | None]:
    """Train (or reuse) `members` default CNNs on the train split of `data`; (paths, training peak RSS MB)."""
    folder = OUT / "ood" / "models"
    from reportgen.model.network import ARCHITECTURE_VERSION

    name = f"ood-{data.stem}-arch{ARCHITECTURE_VERSION}-e{epochs}-s{seed}"
    paths = [folder / f"{name}-{i}.keras" for i in range(members)]
    if all(p.exists() for p in paths) and not retrain:
        print(f"reusing {members} trained model(s) {folder.relative_to(ROOT)}/{name}-*.keras (--retrain to train again)")
        return paths, None
    print(f"training {members} default CNN(s): reportgen train --data {data.name} --ensemble {members} --epochs {epochs}")
    run = run_child(reportgen_cmd("train", "--data", str(data), "--ensemble", str(members), "--epochs", str(epochs),
                                  "--seed", str(seed), "--output", str(folder), "--name", name, "--force")).check()
    acc = [ln for _, ln in run.lines if ln.startswith(f"epoch {epochs}/")]
    print(f"  trained in {run.wall_s:.1f} s (peak RSS {run.peak_mb:.0f} MB); last epochs: {'; '.join(a.split(': ', 1)[1] for a in acc)}")
    return paths, run.peak_mb


def auroc(is_ood: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_ood, score))


def fpr_at_95_tpr(is_ood: np.ndarray, score: np.ndarray) -> float:
    """Share of in-distribution images above the score that catches 95 % of the OOD ones."""
    cut = np.quantile(score[is_ood], 0.05)
    return float(np.mean(score[~is_ood] >= cut))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch, 2 members, 1,000 + 1,000 images, S = 10")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: reportgen's default CNN epochs; 1 with --quick)")
    parser.add_argument("--members", type=int, default=None, help="ensemble size (default 5; 2 with --quick; 1 = no ensemble)")
    parser.add_argument("--mc-samples", type=int, default=None, help="MC dropout samples (default 30; 10 with --quick)")
    parser.add_argument("--n", type=int, default=None, help="images per side (default 5,000; 1,000 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="train the models even if cached ones exist")
    add_data_argument(parser)
    args = parser.parse_args()
    global N_TRAIN
    total = len(load_labelled(args.data).labels)
    N_TRAIN = min(N_TRAIN, total // 2)
    epochs = args.epochs or (1 if args.quick else DEFAULT_EPOCHS)
    members = args.members or (2 if args.quick else 5)
    s = args.mc_samples or (10 if args.quick else 30)
    n = min(args.n or (1000 if args.quick else 5000), total - N_TRAIN)
    t0 = time.perf_counter()
    print(f"ood: in-distribution MNIST test[{N_TRAIN}:{N_TRAIN + n}] vs OOD Fashion-MNIST test[:{n}]; "
          f"model trained on MNIST test[:{N_TRAIN}]")
    print(f"  load average at start: {load_average()}")

    split = OUT / "ood" / f"mnist_{total}_split{N_TRAIN}.npz"
    if not split.exists():
        write_split(split, args.data)
    paths, train_peak = train_members(split, epochs=epochs, members=members, seed=args.seed, retrain=args.retrain)

    quiet_tensorflow()
    from reportgen.model import network as M
    from reportgen.data.datasets import load
    from reportgen.model.predict import predict

    ind = load(split).test
    ood = load(FASHION).test
    n = min(n, len(ind.labels), len(ood.labels))
    images = np.concatenate([ind.images[:n], ood.images[:n]])
    # Fashion labels stand in for OOD labels: per_sample needs some label; correctness there means nothing.
    labels = np.concatenate([ind.labels[:n], ood.labels[:n]])
    is_ood = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    models = [M.load(p) for p in paths]

    runs = {}
    setups = [(f"MC dropout S={s}", [models[0]], s), ("deterministic S=1", [models[0]], 1)]
    if members > 1:
        setups.append((f"ensemble of {members}", models, 1))
    for label, ms, samples in setups:
        start = time.perf_counter()
        preds = predict(ms, images, mc_samples=samples, seed=args.seed)
        info = preds.info
        secs = time.perf_counter() - start
        st = per_sample(preds, labels)
        runs[label] = (st, secs, info)
        print(f"  {label}: {info.method}, {secs:.1f} s for {len(images):,} images; {info.description}")

    print(f"\nAUROC, OOD (Fashion-MNIST, positive) vs in-distribution (MNIST), {n:,} + {n:,} images:")
    rows = []
    for key, name, fn in SCORES:
        row = [name]
        for label, (st, _, _) in runs.items():
            measured = st.epistemic_measured or key != "epistemic"
            row.append(f"{auroc(is_ood, fn(st)):.4f}" if measured else "-")
        rows.append(row)
    print(table(["score"] + list(runs), rows))

    print("\nFPR at 95 % TPR (share of MNIST images flagged when 95 % of Fashion images are; lower is better):")
    rows = []
    for key, name, fn in SCORES:
        row = [name]
        for label, (st, _, _) in runs.items():
            measured = st.epistemic_measured or key != "epistemic"
            row.append(f"{fpr_at_95_tpr(is_ood, fn(st)):.4f}" if measured else "-")
        rows.append(row)
    print(table(["score"] + list(runs), rows))

    print("\nmeans, in-distribution / OOD:")
    rows = []
    for label, (st, _, _) in runs.items():
        acc = float(np.mean(st.correct[~is_ood]))
        rows.append([label, f"{acc:.4f}"] + [f"{float(np.mean(v[~is_ood])):.4f} / {float(np.mean(v[is_ood])):.4f}"
                                             for v in (st.confidence, st.aleatoric, st.epistemic)])
    print(table(["setup", "MNIST accuracy", "confidence", "aleatoric (nats)", "epistemic (nats)"], rows))

    for label, (st, _, _) in runs.items():
        if not st.epistemic_measured:
            continue
        ep, conf = auroc(is_ood, st.epistemic), auroc(is_ood, 1 - st.confidence)
        d = ep - conf
        verdict = "at least as good" if d >= 0 else ("a tie (within 0.005)" if d > -TIE else "WORSE")
        print(f"\n  {label}: epistemic AUROC {ep:.4f} vs 1 - confidence {conf:.4f} (difference {d:+.4f}): epistemic {verdict}", end="")
    print()
    trained = f"{train_peak:.0f} MB (all members, one process)" if train_peak else "- (models reused)"
    print(f"\n  peak RSS: this process {self_peak_mb():.0f} MB (TensorFlow + predictions), training child {trained}")
    print(f"  total wall time {time.perf_counter() - t0:.0f} s; load average at end: {load_average()}")


if __name__ == "__main__":
    main()
