"""Per-class recall and precision with Wilson intervals, and Holm-corrected pairwise comparisons of recall.

A claim about one class against another ("class 5 is recognised less often than class 6") is a test among the
K (K - 1) / 2 pairs, so it is made only when Fisher's exact test of the two recalls rejects after Holm's
correction for every pair tested: the family-wise error of all such claims together stays at FAMILY_ALPHA.
"""

from __future__ import annotations

import numpy as np

from . import intervals


def per_class_rows(names: list[str], count, correct, predicted, means: dict[str, list], classwise) -> list[dict]:
    """One dict per class: name, count (true class), correct, accuracy (recall) and accuracy_ci, predicted, precision
    and precision_ci, the `means` given per class (None where undefined), classwise_ece.

    Args:
        names: K class names; count, correct, predicted: (K,) counts by true class (correct: right predictions of
            it) and by predicted class; means: name -> K values or None; classwise: (K,) classwise ECE.
    """
    count, correct, predicted = (np.asarray(a, dtype=np.int64) for a in (count, correct, predicted))
    recall_ci, precision_ci = intervals.wilson(correct, count), intervals.wilson(correct, predicted)
    rows = []
    for c, name in enumerate(names):
        has, hit = count[c] > 0, predicted[c] > 0
        rows.append({
            "name": name, "count": int(count[c]), "correct": int(correct[c]),
            "accuracy": float(correct[c] / count[c]) if has else None,
            "accuracy_ci": [float(v) for v in recall_ci[c]] if has else None,
            "predicted": int(predicted[c]),
            "precision": float(correct[c] / predicted[c]) if hit else None,
            "precision_ci": [float(v) for v in precision_ci[c]] if hit else None,
            **{f"mean_{key}": values[c] for key, values in means.items()},
            "classwise_ece": float(classwise[c]),
        })
    return rows


def recall_comparisons(names: list[str], count, correct, *, alpha: float = intervals.FAMILY_ALPHA) -> list[dict]:
    """Every pair of classes with samples: Fisher's exact p-value of equal recall and its Holm-adjusted value.

    Returns:
        [{"lower", "higher" (names; lower has the smaller recall), "p", "p_holm", "differ" (p_holm < alpha)}],
        most significant first.
    """
    count, correct = np.asarray(count, dtype=np.int64), np.asarray(correct, dtype=np.int64)
    present = [c for c in range(len(names)) if count[c] > 0]
    pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1:]]
    if not pairs:
        return []
    p = np.array([intervals.fisher_two_sided(int(correct[a]), int(count[a]), int(correct[b]), int(count[b])) for a, b in pairs])
    adjusted = intervals.holm(p)
    out = []
    for (a, b), raw, adj in zip(pairs, p, adjusted):
        low, high = (a, b) if correct[a] * count[b] <= correct[b] * count[a] else (b, a)
        out.append({"lower": names[low], "higher": names[high], "p": float(raw), "p_holm": float(adj), "differ": bool(adj < alpha)})
    return sorted(out, key=lambda r: (r["p_holm"], r["p"]))
