"""What the audited model is compared against in its own report: the previous version of the same model when the
archive holds one audited on the same samples, else the class-prior baseline.

A number alone does not say whether a model is worth shipping; the same number beside a reference does. Both
references are compared pair by pair on the audited samples, exactly as `reportgen compare` compares two versions
(compare.paired_arrays: McNemar for accuracy, Hall's skewness-corrected interval of the per-sample differences for
NLL and Brier, a paired bootstrap for the calibration error, the delta method for the AURC):
- the previous version: the newest other version folder of the model whose per-sample export covers the same
  (split, row) samples with the same labels;
- the class-prior baseline: every sample gets the class frequencies of the training labels (of the audited labels
  when the training labels are not known, which flatters the baseline slightly), so it always predicts the most
  frequent class. A model that does not beat it has learnt nothing usable from the inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import metrics
from ..errors import ReportgenError
from ..report.folder import SUMMARY_FILE, read_summary
from .compare import VERDICT_METRICS, change, fmt_delta, paired_arrays, read_per_sample


def class_prior(counts: np.ndarray) -> np.ndarray:
    """(K,) class frequencies from counts, each class given at least half a count so that no probability is 0."""
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.5)
    return c / c.sum()


def previous_version(root: Path, name: str, version: str) -> tuple[Path, dict] | None:
    """The newest (by created_at) other version folder of `name` under `root` with a readable summary, or None."""
    found = []
    for d in sorted((Path(root) / name).iterdir()) if (Path(root) / name).is_dir() else []:
        if d.name == version or d.name.startswith(".") or not (d / SUMMARY_FILE).is_file():
            continue
        try:
            summary = read_summary(d)
        except ReportgenError:
            continue
        found.append((str(summary.get("created_at") or ""), d.name, d, summary))
    return max(found, key=lambda t: (t[0], t[1]))[2:] if found else None


def _aligned(folder: Path, split: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """The previous version's probabilities in the order of (split, rows), or None unless it holds exactly those
    samples with the same labels."""
    try:
        old = read_per_sample(folder)
    except ReportgenError:
        return None
    keys = list(zip(split.tolist(), rows.tolist()))
    if not old or len(old) != len(keys) or any(k not in old for k in keys):
        return None
    if not np.array_equal(np.array([old[k][0] for k in keys]), labels):
        return None
    probs = np.stack([old[k][1] for k in keys])
    return probs if probs.ndim == 2 else None


def against(*, root: Path, name: str, version: str, split: np.ndarray, rows: np.ndarray, labels: np.ndarray,
            probs: np.ndarray, model_metrics: dict, prior_counts: np.ndarray | None, seed: int = 0) -> dict:
    """The comparison the report prints: {kind ("previous" | "prior"), against (its name), note, rows: [{key, name,
    short, model, reference, delta, delta_text, ci, ci_text, p, change}]}; delta = model - reference, paired."""
    n_classes = probs.shape[1]
    note = ""
    prev = previous_version(root, name, version)
    ref = None
    if prev is not None:
        ref = _aligned(prev[0], split, rows, labels)
        if ref is not None and ref.shape[1] != n_classes:
            ref = None
        if ref is None:
            note = (f"The previous version {prev[0].name} was audited on other samples (or left no per-sample export), "
                    "so it is not compared here; use reportgen compare on two audits of the same data.")
    if ref is not None:
        kind, what = "previous", f"the previous version {prev[0].name} ({str(prev[1].get('created_at') or '')[:10]})"
    else:
        known = prior_counts is not None and len(prior_counts) == n_classes and np.sum(prior_counts) > 0
        prior = class_prior(prior_counts if known else np.bincount(labels, minlength=n_classes))
        ref = np.broadcast_to(prior, probs.shape)
        kind = "prior"
        what = ("the class-prior baseline (always the training labels' class frequencies)" if known else
                "the class-prior baseline (always the audited labels' class frequencies; no training labels known)")
    # The class prior's confidence is one constant, so its calibration error says nothing about the model's.
    keys = VERDICT_METRICS if kind == "previous" else tuple(key for key in VERDICT_METRICS if key != "calibration_error")
    tests = paired_arrays(labels, ref, probs, seed=seed, keys=keys)
    names = metrics.names()
    out_rows = []
    for key in keys:
        t = tests.get(key)
        model = model_metrics.get(key)
        if t is None or model is None:
            continue
        ci = t["ci"]
        out_rows.append({"key": key, "name": names.get(key, key), "short": metrics.short_name(key), "model": float(model),
                         "reference": float(model) - t["delta"],
                         "delta": t["delta"], "delta_text": fmt_delta(key, t["delta"]), "ci": ci,
                         "ci_text": "" if ci is None else f"{fmt_delta(key, ci[0])} to {fmt_delta(key, ci[1])}",
                         "p": t.get("p"), "change": change(key, float(model) - t["delta"], float(model), None, t)})
    return {"kind": kind, "against": what, "note": note, "rows": out_rows}
