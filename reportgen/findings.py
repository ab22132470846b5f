"""Generated findings and verdicts: the sentences of the executive summary and the cover's badges.

Each generator reads only plain data (a report context or a summary.json), so the same sentences can
be rebuilt from an archived audit, and each is unit-tested on constructed cases.
"""

from __future__ import annotations

import math
from typing import Mapping

from .metrics import fmt

# Findings shown in the executive summary (the most important first).
N_FINDINGS = 3
# Estimated label-error rate below which the label-noise badge is good / a warning; bad above.
LABEL_RATE_LEVELS = ((0.01, "good"), (0.05, "warn"), (math.inf, "bad"))
# Accuracy at or above which the performance finding reads as good; below the second, bad.
ACCURACY_LEVELS = (0.98, 0.90)
# Coverage at 1 % error at or above which selective prediction reads as good; below the second, bad.
COVERAGE_LEVELS = (0.90, 0.50)


def _num(d: Mapping, key: str) -> float | None:
    v = d.get(key)
    if v is None or isinstance(v, bool):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _ece_word(ece: float) -> str:
    from .uncertainty import ECE_WORDS

    return next(w for limit, w in ECE_WORDS if ece < limit)


def _calibration_side(ece: float, conf: float, acc: float) -> str:
    """'over-confident', 'under-confident' or 'mixed' (the same rule as uncertainty.reading)."""
    if abs(conf - acc) < ece / 2:
        return "mixed"
    return "over-confident" if conf > acc else "under-confident"


def _finding_performance(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    acc, n = _num(m, "accuracy"), m.get("n_samples")
    if acc is None:
        return None
    rows = [r for r in ctx.get("per_class", []) if r.get("count") and r.get("accuracy") is not None]
    text = f"Accuracy is {fmt(acc, 'accuracy')} on {fmt(n)} audited samples"
    gap = 0.0
    if len(rows) > 1:
        worst = min(rows, key=lambda r: (r["accuracy"], str(r["name"])))
        best = max(rows, key=lambda r: (r["accuracy"], str(r["name"])))
        gap = max(0.0, acc - worst["accuracy"])
        wrong = round((1 - worst["accuracy"]) * worst["count"])
        text += (f"; the weakest class is ‘{worst['name']}’ at {_pct(worst['accuracy'])} ({wrong} of {worst['count']} wrong), "
                 f"the strongest ‘{best['name']}’ at {_pct(best['accuracy'])}")
    good, bad = ACCURACY_LEVELS
    level = "good" if acc >= good and gap < 0.05 else "bad" if acc < bad else "warn"
    return {"topic": "performance", "level": level, "score": min(1.0, 4 * (1 - acc) + 2 * gap), "text": text + "."}


def _finding_calibration(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    ece, conf, acc = _num(m, "ece"), _num(m, "mean_confidence"), _num(m, "accuracy")
    if ece is None or conf is None or acc is None:
        return None
    word = _ece_word(ece)
    if word == "well calibrated":
        text = f"The model is well calibrated (ECE {ece:.3f}): its confidence can be read as the chance of being right"
        level = "good"
    else:
        side = _calibration_side(ece, conf, acc)
        what = "miscalibrated, over-confident in some bins and under-confident in others" if side == "mixed" else side
        text = f"The model is {word} {what} (ECE {ece:.3f}; mean confidence {conf:.3f} vs accuracy {acc:.3f})"
        level = "warn" if word == "slightly" else "bad"
        t, after = _num(m, "temperature"), _num(m, "ece_temperature_scaled")
        if t is not None and after is not None:
            text += f"; temperature scaling with T = {t:.2f} brings the held-out ECE to {after:.3f}"
    return {"topic": "calibration", "level": level, "score": min(1.0, 10 * ece), "text": text + "."}


def _finding_label_issues(ctx: Mapping) -> dict | None:
    li = ctx.get("label_issues")
    if not li:
        return None
    n_flagged, n_est, rate = int(li.get("n_flagged", 0)), int(li.get("n_estimated", 0)), float(li.get("rate", 0.0))
    level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
    if n_flagged == 0:
        return {"topic": "label_issues", "level": "good", "score": 0.05,
                "text": "Confident learning finds no likely label error among the audited samples."}
    text = (f"Confident learning estimates {n_est:,} label errors ({fmt(rate, 'label_error_rate')} of the audited samples) "
            f"and flags {n_flagged:,} samples for review")
    likely = (li.get("triage_counts") or {}).get("likely_mislabelled", 0)
    if likely:
        text += f", {likely} of them likely mislabelled"
    rows = li.get("rows") or []
    if rows:
        r = rows[0]
        text += f"; the top one, sample #{r['index']}, is labelled ‘{r['given']}’ but looks like ‘{r['suggested']}’"
    return {"topic": "label_issues", "level": level, "score": min(1.0, 20 * rate), "text": text + "."}


def _finding_selective(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    if "coverage_1pct" not in m:
        return None
    cov, thr = _num(m, "coverage_1pct"), _num(m, "threshold_1pct")
    if cov is None or thr is None:
        return {"topic": "selective", "level": "bad", "score": 0.5,
                "text": "No confidence threshold brings the error rate down to 1 %: even the most confident predictions need review."}
    good, bad = COVERAGE_LEVELS
    level = "good" if cov >= good else "bad" if cov < bad else "warn"
    text = (f"Answering only when confidence is at least {thr:.3f} keeps the error rate at or below 1 % "
            f"and covers {_pct(cov)} of the samples; the rest would need a human decision.")
    return {"topic": "selective", "level": level, "score": 0.6 * (1 - cov), "text": text}


def _finding_epistemic(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    if not ctx.get("epistemic_measured"):
        return {"topic": "epistemic", "level": "warn", "score": 0.35,
                "text": ("Epistemic (model) uncertainty was not measured: one deterministic pass per sample. "
                         "Rerun with --mc-samples 30 (MC dropout) or an ensemble to separate model from data uncertainty.")}
    epi, total = _num(m, "mean_epistemic"), _num(m, "mean_entropy")
    if epi is None or not total:
        return None
    share = epi / total
    s = (ctx.get("method") or {}).get("n_samples", "?")
    tail = ("most of the uncertainty lies in the data itself, which more training will not remove" if share < 0.2
            else "more (or more varied) training data should reduce it")
    return {"topic": "epistemic", "level": "info" if share < 0.2 else "warn", "score": 0.2 + 0.5 * share,
            "text": f"Epistemic uncertainty (S = {s}) is {share:.0%} of the predictive entropy ({epi:.3f} nats): {tail}."}


def _finding_confusion(ctx: Mapping) -> dict | None:
    for sentence in ctx.get("reading", []):
        if sentence.startswith("Errors concentrate"):
            return {"topic": "confusion", "level": "warn", "score": 0.45, "text": sentence}
    return None


_FINDERS = (_finding_performance, _finding_calibration, _finding_label_issues, _finding_selective,
            _finding_epistemic, _finding_confusion)


def findings(ctx: Mapping, *, limit: int | None = N_FINDINGS) -> list[dict]:
    """The most important findings as generated sentences, most important first.

    Each candidate (performance, calibration, label issues, selective prediction, epistemic
    uncertainty, concentrated confusion) gets a score in [0, 1] from its own numbers (see the
    methods appendix); ties keep that order.

    Args:
        ctx: a report context or a summary.json (plain data).
        limit: how many to return (None: all candidates).
    Returns:
        [{"topic", "level" (good|warn|bad|info), "score", "text"}].
    """
    found = [f for fn in _FINDERS if (f := fn(ctx)) is not None]
    found.sort(key=lambda f: -f["score"])  # stable: equal scores keep the candidate order
    return found if limit is None else found[:limit]


def verdicts(ctx: Mapping) -> list[dict]:
    """Cover badges: [{"label", "text", "level"}]; each text carries the verdict in words."""
    m = ctx.get("metrics", {})
    out = []
    acc = _num(m, "accuracy")
    if acc is not None:
        out.append({"label": "Accuracy", "text": fmt(acc, "accuracy"), "level": "info"})
    ece = _num(m, "ece")
    if ece is not None:
        word = _ece_word(ece)
        level = "good" if word == "well calibrated" else "warn" if word == "slightly" else "bad"
        out.append({"label": "Calibration", "text": f"{word if level == 'good' else word + ' miscalibrated'} (ECE {ece:.3f})", "level": level})
    if ctx.get("epistemic_measured"):
        s = (ctx.get("method") or {}).get("n_samples", "?")
        out.append({"label": "Epistemic uncertainty", "text": f"measured (S = {s})", "level": "good"})
    else:
        out.append({"label": "Epistemic uncertainty", "text": "not measured", "level": "warn"})
    li = ctx.get("label_issues")
    if li:
        rate = float(li.get("rate", 0.0))
        level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
        out.append({"label": "Label issues", "text": f"{li.get('n_estimated', 0):,} estimated ({fmt(rate, 'label_error_rate')})", "level": level})
    g = ctx.get("gates") or []
    if g:
        failed = sum(1 for x in g if x["failed"])
        out.append({"label": "CI gates", "text": f"{failed} of {len(g)} failed" if failed else f"all {len(g)} passed",
                    "level": "bad" if failed else "good"})
    return out
