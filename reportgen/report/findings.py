"""Generated sentences: findings of the executive summary, the cover's badges, and the sections' readings.

Every generator reads only plain data (a report context or a summary.json), so an archived audit
rebuilds the same sentences. Each sentence states only what its numbers support: a class is called
weakest only when its interval separates it from the others, a tie is named as a tie, calibration is
judged against the noise floor of a perfectly calibrated model, the temperature's wording follows
T < 1 or T > 1, and aleatoric / epistemic are this method's estimates, never causes. Each generator
is unit-tested on the constructed cases that would make it wrong (tests/test_findings.py).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..metrics import fmt, fmt_interval

# Findings shown in the executive summary besides the label finding (the most important first).
N_FINDINGS = 3
# Estimated label-error rate below which the label badge is good / a warning; bad above.
LABEL_RATE_LEVELS = ((0.01, "good"), (0.05, "warn"), (math.inf, "bad"))
# Accuracy at or above which the performance finding reads as good; below the second, bad.
ACCURACY_LEVELS = (0.98, 0.90)
# Cross-fitted coverage at the 1 %-error threshold at or above which it reads as good; below the second, bad.
COVERAGE_LEVELS = (0.90, 0.50)
# |log T| below this reads as "T close to 1" (about 0.95 < T < 1.05).
TEMPERATURE_NEAR_ONE = 0.05
# Share of all errors above which one class pair is said to concentrate them.
CONCENTRATED_ERROR_SHARE = 0.25


def _num(d: Mapping, key: str) -> float | None:
    v = d.get(key)
    if v is None or isinstance(v, bool):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _with_ci(metrics: Mapping, key: str, digits: int = 3) -> str:
    """'0.037 (0.030–0.045)' or '93.1 % (91.4–94.5)': a value with its 95 % interval when known."""
    v = _num(metrics, key)
    if v is None:
        return "not measured"
    text = fmt(v, key) if key == "accuracy" or fmt(v, key).endswith("%") else f"{v:.{digits}f}"
    lo, hi = metrics.get(key + "_ci_low"), metrics.get(key + "_ci_high")
    if lo is None or hi is None:
        return text
    if text.endswith("%"):
        return f"{text} {fmt_interval(lo, hi, key)}"
    return f"{text} ({float(lo):.{digits}f}–{float(hi):.{digits}f})"


def _quote(name) -> str:
    return f"‘{name}’"


# --------------------------------------------------------------------------- sentences


def class_sentence(per_class: Sequence[Mapping]) -> str | None:
    """Weakest and strongest class, named only when the 95 % intervals separate them from every other class.

    Args:
        per_class: rows with name, accuracy and accuracy_ci [low, high] (uncertainty.per_class).
    Returns:
        One sentence, or None with fewer than two classes that have samples.
    """
    rows = [r for r in per_class if r.get("accuracy") is not None and r.get("accuracy_ci")]
    if len(rows) < 2:
        return None
    worst = min(rows, key=lambda r: (r["accuracy"], str(r["name"])))
    best = max(rows, key=lambda r: (r["accuracy"], str(r["name"])))
    others_w = [r for r in rows if r is not worst]
    others_b = [r for r in rows if r is not best]
    worst_apart = worst["accuracy_ci"][1] < min(r["accuracy_ci"][0] for r in others_w)
    best_apart = best["accuracy_ci"][0] > max(r["accuracy_ci"][1] for r in others_b)

    def show(r):
        return f"{_quote(r['name'])} at {_pct(r['accuracy'])} {fmt_interval(*r['accuracy_ci'], 'accuracy')}"

    parts = []
    if worst_apart:
        parts.append(f"the weakest class is {show(worst)}, below every other class's 95 % interval")
    if best_apart:
        parts.append(f"the strongest is {show(best)}, above every other class's interval")
    if parts:
        text = "; ".join(parts)
        if not (worst_apart and best_apart):
            text += "; the other classes cannot be told apart at this sample size"
        return text[0].upper() + text[1:] + "."
    return (f"Per-class accuracy ranges from {_pct(worst['accuracy'])} ({_quote(worst['name'])}) to "
            f"{_pct(best['accuracy'])} ({_quote(best['name'])}), but the 95 % intervals overlap: no class can be "
            "called weakest or strongest at this sample size.")


def confusion_sentence(confusion: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """The most frequent confusion between two classes (either direction), naming ties as ties.

    Args:
        confusion: K x K counts, rows true class, columns predicted class.
        names: K class names.
    """
    k = len(names)
    pairs = {}
    for i in range(k):
        for j in range(i + 1, k):
            pairs[(i, j)] = int(confusion[i][j]) + int(confusion[j][i])
    n_err = sum(pairs.values())
    if n_err == 0:
        return "There are no errors between classes to analyse."
    top = max(pairs.values())
    tied = [p for p, c in pairs.items() if c == top]
    label = " and ".join(f"{names[i]}↔{names[j]}" for i, j in tied[:4]) + (f" and {len(tied) - 4} more pairs" if len(tied) > 4 else "")
    if len(tied) > 1:
        return (f"The most frequent confusions are tied: {label}, {top} error{'s' if top != 1 else ''} each, "
                f"of {n_err} errors in all.")
    if top >= 2 and top / n_err >= CONCENTRATED_ERROR_SHARE:
        return f"Errors concentrate in {label}: {top} of {n_err} errors."
    return f"Errors are spread out: the most frequent confusion, {label}, accounts for {top} of {n_err} errors."


def aleatoric_link_sentence(facts: Mapping) -> str | None:
    """How many errors sit among the samples with the highest aleatoric (or total) uncertainty estimate."""
    n_err, caught, frac = facts.get("n_errors"), facts.get("errors_in_top"), facts.get("top_fraction")
    if not n_err:
        return None
    what = "aleatoric" if facts.get("top_statistic") == "aleatoric" else "total"
    return (f"{100 * caught / n_err:.0f} % of the wrong predictions ({caught} of {n_err}) are among the "
            f"{100 * frac:.0f} % of samples with the highest {what} uncertainty estimate "
            f"({100 * frac:.0f} % would mean no link).")


def epistemic_sentence(metrics: Mapping, *, measured: bool, n_samples, method: str = "") -> str:
    """The epistemic share of the predictive entropy, as this method's estimate (no causal claims)."""
    if not measured:
        return ("Epistemic uncertainty was not measured: one deterministic pass per sample. Rerun with --mc-samples 30 "
                "(MC dropout) or an ensemble to estimate it.")
    epi, total = _num(metrics, "mean_epistemic"), _num(metrics, "mean_entropy")
    if epi is None or not total:
        return "Epistemic uncertainty could not be estimated."
    how = "members of the ensemble" if "ensemble" in method else "MC-dropout samples"
    return (f"By this method's estimate (mutual information over {n_samples} {how}), epistemic uncertainty averages "
            f"{_with_ci(metrics, 'mean_epistemic')} nats, {100 * epi / total:.0f} % of the mean predictive entropy; the split "
            "describes this model's sampling, not what more data or training would change.")


def calibration_sentence(metrics: Mapping, floor: Mapping | None) -> tuple[str, str]:
    """(verdict, sentence): the ECE judged against the noise floor of a perfectly calibrated model.

    verdict is "miscalibrated", "consistent" or "unknown".
    """
    ece = _num(metrics, "ece")
    if ece is None or not floor:
        return "unknown", "Calibration was not measured."
    conf, acc = _num(metrics, "mean_confidence"), _num(metrics, "accuracy")
    n = metrics.get("n_samples")
    base = (f"ECE {_with_ci(metrics, 'ece')} against a noise floor of {floor['floor_q95']:.3f} (the 95th percentile of "
            f"the ECE of a perfectly calibrated model with the same confidences and {fmt(n)} samples; p = {floor['p_value']:.3g})")
    if floor["verdict"] == "consistent":
        return "consistent", f"{base}: consistent with calibration at this sample size."
    side = ""
    if conf is not None and acc is not None:
        side = (", over-confident on average" if conf > acc else ", under-confident on average")
        side += f" (mean confidence {conf:.3f} vs accuracy {acc:.3f})"
    return "miscalibrated", f"{base}: miscalibrated{side}."


def temperature_sentence(metrics: Mapping, before: Mapping | None, after: Mapping | None) -> str | None:
    """What the fitted temperature does (T < 1 sharpens, T > 1 softens) and whether scaling made a detectable difference."""
    t = _num(metrics, "temperature")
    if t is None:
        return None
    if abs(math.log(t)) < TEMPERATURE_NEAR_ONE:
        what = f"The fitted temperature T = {t:.2f} is close to 1: scaling barely changes the probabilities"
    elif t < 1:
        what = f"The fitted temperature T = {t:.2f} < 1 sharpens the probabilities (the model's confidences were too low)"
    else:
        what = f"The fitted temperature T = {t:.2f} > 1 softens the probabilities (the model's confidences were too high)"
    e0, e1 = _num(metrics, "ece"), _num(metrics, "ece_temperature_scaled")
    if not before or not after or e0 is None or e1 is None:
        return what + "."
    change = f"held-out ECE {e0:.3f} → {e1:.3f}"
    if before["verdict"] == "consistent":
        tail = (f"{change}; the model was already consistent with calibration at this sample size, so no difference "
                "scaling makes can be told from noise")
    elif after["verdict"] == "consistent":
        tail = f"{change}: scaling brings it within the noise floor of a calibrated model, a real improvement"
    else:
        tail = f"{change}, still above the noise floor ({after['floor_q95']:.3f}): scaling alone does not calibrate this model"
    return f"{what}; {tail}."


def selective_sentence(metrics: Mapping) -> tuple[str, str]:
    """(level, sentence) on abstaining below a confidence threshold, with the cross-fitted (honest) error."""
    thr, cov, risk = _num(metrics, "threshold_1pct"), _num(metrics, "coverage_1pct"), _num(metrics, "risk_1pct")
    if thr is None or cov is None or risk is None:
        return "bad", ("No confidence threshold keeps the error at or below 1 % on both random halves of the samples: "
                       "even the most confident predictions need review.")
    hi = metrics.get("risk_1pct_ci_high")
    bound = f", at most {_pct(float(hi))} at 95 % confidence" if hi is not None else ""
    good, bad = COVERAGE_LEVELS
    level = "good" if cov >= good else "bad" if cov < bad else "warn"
    return level, (f"Answering only when confidence is at least {thr:.4f} (chosen for ≤ 1 % error) keeps {_pct(cov)} of the "
                   f"samples; chosen on one half and measured on the other, its error is {_pct(risk)}{bound}.")


def label_sentence(li: Mapping, metrics: Mapping) -> tuple[str, str]:
    """(level, sentence): the label finding, in the words "candidates for human review", never "mislabelled"."""
    n_flag, n_est = int(li.get("n_flagged", 0)), int(li.get("n_estimated", 0))
    n_checked = int(li.get("n_checked") or metrics.get("n_samples") or 0)
    rate = float(li.get("rate") or 0.0)
    checker = li.get("checker") or {}
    reviews = li.get("reviews") or {}
    level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
    if checker.get("independent"):
        acc = checker.get("accuracy")
        who = (f"An independent checker ({checker.get('short', 'cross-validated')}, out-of-sample accuracy "
               f"{_pct(acc)} {fmt_interval(*checker['accuracy_ci'], 'accuracy')})" if acc is not None and checker.get("accuracy_ci")
               else "An independent checker")
        if n_flag == 0:
            text = f"{who} finds no label that confidently disagrees with it among {n_checked:,} checked samples"
            level = "good"
        else:
            text = (f"{who} estimates {n_est:,} label errors ({_pct(rate)}) among {n_checked:,} checked samples and flags "
                    f"{n_flag:,} of them as candidates for human review")
        cases = li.get("cases") or {}
        if cases.get("model_errors"):
            text += (f"; {cases['model_errors']:,} of the audited model's errors are model errors, not label issues "
                     "(the checker agrees with the given label)")
    else:
        who, why = (("The saved probabilities", "they are evidence about labels only if they are out-of-sample and from a "
                     "model far more accurate than the label noise") if checker.get("kind") == "saved" else
                    ("The audited model", "without an independent checker (--cv) these candidates for human review mix label "
                     "errors with the model's own mistakes"))
        if n_flag == 0:
            text = f"{who} confidently disagree{'' if who.endswith('s') else 's'} with no given label"
        else:
            text = (f"{who} confidently disagree{'' if who.endswith('s') else 's'} with {n_flag:,} of {n_checked:,} given labels "
                    f"(confident learning estimates {n_est:,} label errors); {why}")
        level = "warn" if n_flag else "info"
    if reviews.get("reviewed"):
        text += (f"; reviewers have settled {reviews['reviewed']:,} samples ({reviews.get('label_wrong', 0):,} labels confirmed "
                 f"wrong, {reviews.get('label_ok', 0):,} kept)")
    return level, text + "."


# --------------------------------------------------------------------------- findings and badges


def _finding_performance(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    acc = _num(m, "accuracy")
    if acc is None:
        return None
    text = f"Accuracy is {_with_ci(m, 'accuracy')} on {fmt(m.get('n_samples'))} audited samples."
    classes = class_sentence(ctx.get("per_class") or [])
    if classes:
        text += " " + classes
    lo = _num(m, "accuracy_ci_low")
    good, bad = ACCURACY_LEVELS
    level = "good" if lo is not None and lo >= good else "bad" if acc < bad else "warn"
    return {"topic": "performance", "level": level, "score": min(1.0, 4 * (1 - acc)), "text": text}


def _finding_calibration(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    floor = (ctx.get("calibration") or {}).get("floor")
    verdict, text = calibration_sentence(m, floor)
    if verdict == "unknown":
        return None
    t = temperature_sentence(m, floor, (ctx.get("temperature") or {}).get("floor_after"))
    if verdict == "miscalibrated" and t:
        text += " " + t
    level = "good" if verdict == "consistent" else "warn"
    ece = _num(m, "ece") or 0.0
    return {"topic": "calibration", "level": level, "score": 0.15 if verdict == "consistent" else min(1.0, 0.4 + 10 * ece),
            "text": text}


def _finding_label_issues(ctx: Mapping) -> dict | None:
    li = ctx.get("label_issues")
    if not li:
        return None
    level, text = label_sentence(li, ctx.get("metrics", {}))
    rate = float(li.get("rate") or 0.0)
    return {"topic": "label_issues", "level": level, "score": min(1.0, 0.3 + 20 * rate), "text": text}


def _finding_selective(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    if "coverage_1pct" not in m:
        return None
    level, text = selective_sentence(m)
    cov = _num(m, "coverage_1pct")
    return {"topic": "selective", "level": level, "score": 0.5 if cov is None else 0.6 * (1 - cov), "text": text}


def _finding_epistemic(ctx: Mapping) -> dict | None:
    method = ctx.get("method") or {}
    measured = bool(ctx.get("epistemic_measured"))
    text = epistemic_sentence(ctx.get("metrics", {}), measured=measured, n_samples=method.get("n_samples", "?"),
                              method=str(method.get("method", "")))
    return {"topic": "epistemic", "level": "info" if measured else "warn", "score": 0.2 if measured else 0.35, "text": text}


def _finding_confusion(ctx: Mapping) -> dict | None:
    facts = ctx.get("errors") or {}
    names = (ctx.get("data") or {}).get("class_names")
    if not facts.get("confusion") or not names:
        return None
    text = confusion_sentence(facts["confusion"], names)
    concentrated = text.startswith("Errors concentrate")
    return {"topic": "confusion", "level": "warn" if concentrated else "info", "score": 0.45 if concentrated else 0.1,
            "text": text}


_FINDERS = (_finding_performance, _finding_calibration, _finding_label_issues, _finding_selective,
            _finding_epistemic, _finding_confusion)


def findings(ctx: Mapping, *, limit: int | None = N_FINDINGS) -> list[dict]:
    """The executive summary's findings, most important first; the label finding is always among them.

    Each candidate (performance, calibration, label issues, selective prediction, epistemic
    uncertainty, confusion) gets a score in [0, 1] from its own numbers; ties keep that order. The
    cover always shows a label badge, so the label finding is kept whatever its score (then up to
    `limit` others).

    Args:
        ctx: a report context or a summary.json (plain data).
        limit: how many besides the label finding (None: all candidates).
    Returns:
        [{"topic", "level" (good|warn|bad|info), "score", "text"}].
    """
    found = [f for fn in _FINDERS if (f := fn(ctx)) is not None]
    found.sort(key=lambda f: -f["score"])  # stable: equal scores keep the candidate order
    if limit is None:
        return found
    label = [f for f in found if f["topic"] == "label_issues"]
    rest = [f for f in found if f["topic"] != "label_issues"][:limit]
    return sorted(rest + label, key=lambda f: -f["score"])


def verdicts(ctx: Mapping) -> list[dict]:
    """Cover badges: [{"label", "text", "level"}]; each text carries the verdict in words."""
    m = ctx.get("metrics", {})
    out = []
    if _num(m, "accuracy") is not None:
        out.append({"label": "Accuracy", "text": _with_ci(m, "accuracy"), "level": "info"})
    verdict, _ = calibration_sentence(m, (ctx.get("calibration") or {}).get("floor"))
    if verdict != "unknown":
        word = "consistent with calibration" if verdict == "consistent" else "miscalibrated"
        out.append({"label": "Calibration", "text": f"{word} (ECE {_num(m, 'ece'):.3f}, noise floor "
                    f"{_num(m, 'ece_noise_floor'):.3f})", "level": "good" if verdict == "consistent" else "warn"})
    if ctx.get("epistemic_measured"):
        s = (ctx.get("method") or {}).get("n_samples", "?")
        out.append({"label": "Epistemic uncertainty", "text": f"estimated (S = {s})", "level": "good"})
    else:
        out.append({"label": "Epistemic uncertainty", "text": "not measured", "level": "warn"})
    li = ctx.get("label_issues")
    if li:
        rate = float(li.get("rate") or 0.0)
        n_flag = int(li.get("n_flagged", 0))
        if (li.get("checker") or {}).get("independent"):
            level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
            text = f"{n_flag:,} candidates for review ({fmt(rate, 'label_error_rate')} estimated)"
        else:
            level = "warn" if n_flag else "info"
            text = f"{n_flag:,} candidates for review, no independent checker"
        out.append({"label": "Label issues", "text": text, "level": level})
    g = ctx.get("gates") or []
    if g:
        failed = sum(1 for x in g if x["failed"])
        out.append({"label": "CI gates", "text": f"{failed} of {len(g)} failed" if failed else f"all {len(g)} passed",
                    "level": "bad" if failed else "good"})
    return out


def readings(ctx: Mapping) -> dict[str, list[str]]:
    """The sentences under each section heading, by section (performance, uncertainty, calibration, selective)."""
    m = ctx.get("metrics", {})
    method = ctx.get("method") or {}
    facts = ctx.get("errors") or {}
    names = (ctx.get("data") or {}).get("class_names") or []
    cal = ctx.get("calibration") or {}
    out: dict[str, list[str]] = {"performance": [], "uncertainty": [], "calibration": [], "selective": []}
    classes = class_sentence(ctx.get("per_class") or [])
    if classes:
        out["performance"].append(classes)
    if facts.get("confusion") and names:
        out["performance"].append(confusion_sentence(facts["confusion"], names))
    link = aleatoric_link_sentence(facts)
    if link:
        out["uncertainty"].append(link)
    out["uncertainty"].append(epistemic_sentence(m, measured=bool(ctx.get("epistemic_measured")),
                                                 n_samples=method.get("n_samples", "?"), method=str(method.get("method", ""))))
    verdict, text = calibration_sentence(m, cal.get("floor"))
    out["calibration"].append(text)
    t = temperature_sentence(m, cal.get("floor"), (ctx.get("temperature") or {}).get("floor_after"))
    if t:
        out["calibration"].append(t)
    out["selective"].append(selective_sentence(m)[1])
    return out


# --------------------------------------------------------------------------- conclusions


def _action_labels(ctx: Mapping) -> dict | None:
    li, m = ctx.get("label_issues") or {}, ctx.get("metrics", {})
    if not li:
        return None
    checker = li.get("checker") or {}
    n_flag = int(li.get("n_flagged", 0))
    if not checker.get("independent"):
        if checker.get("kind") == "saved":
            return None if not n_flag else {
                "topic": "labels", "action": f"Review the {n_flag:,} candidates in review.csv only if the saved probabilities are "
                                             "out-of-sample; otherwise produce them by cross-validation first",
                "evidence": "the flags come from the saved probabilities alone, which cannot tell label errors from the model's own"}
        return {"topic": "labels", "action": "Check the labels with an independent checker: rerun with --cv 5",
                "evidence": f"the {n_flag:,} flags of this audit come from the audited model itself (accuracy "
                            f"{_with_ci(m, 'accuracy')}), so they mix label errors with its own mistakes"}
    if not n_flag:
        return None
    open_flags = int((li.get("reviews") or {}).get("unreviewed_flags", n_flag))
    if not open_flags:
        return None
    return {"topic": "labels",
            "action": f"Review the {open_flags:,} unreviewed candidates in review.csv, then rerun with --reviews review.csv "
                      "(add --apply-reviews to train and score on the corrected labels)",
            "evidence": f"the checker agrees with the given labels {_pct(checker['accuracy'])} of the time out of sample and "
                        f"confident learning estimates {int(li.get('n_estimated', 0)):,} label errors"}


def _action_model_errors(ctx: Mapping) -> dict | None:
    cases = (ctx.get("label_issues") or {}).get("cases") or {}
    n = int(cases.get("model_errors") or 0)
    if not n:
        return None
    wrong = n + int(cases.get("ambiguous") or 0) + int(cases.get("label_candidates") or 0)
    return {"topic": "model", "action": "Improve the model, not the labels, for its errors on correctly labelled samples",
            "evidence": f"on {n:,} of the audited model's errors the independent checker agrees with the given label "
                        f"(model errors, not label issues; {wrong:,} error or flag cases in all)"}


def _action_calibration(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    floor = (ctx.get("calibration") or {}).get("floor")
    after = (ctx.get("temperature") or {}).get("floor_after")
    t, e0, e1 = _num(m, "temperature"), _num(m, "ece"), _num(m, "ece_temperature_scaled")
    if not floor or floor.get("verdict") != "miscalibrated" or t is None or e0 is None or e1 is None:
        return None
    if after and after.get("verdict") == "consistent":
        return {"topic": "calibration", "action": f"Recalibrate with temperature scaling, T = {t:.2f} (divide the logits by T)",
                "evidence": f"held-out ECE {e0:.3f} → {e1:.3f}, within the noise floor of a calibrated model "
                            f"({after['floor_q95']:.3f})"}
    return {"topic": "calibration", "action": "Recalibrate with a richer method than one temperature (e.g. per-class or histogram binning)",
            "evidence": f"ECE {e0:.3f} is above its noise floor ({floor['floor_q95']:.3f}) and stays above it after temperature "
                        f"scaling ({e1:.3f})"}


def _action_abstain(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    thr, cov, risk, hi = (_num(m, k) for k in ("threshold_1pct", "coverage_1pct", "risk_1pct", "risk_1pct_ci_high"))
    if thr is None or cov is None or risk is None:
        return {"topic": "abstain", "action": "Keep a human in the loop for every prediction if errors must stay at or below 1 %",
                "evidence": "no confidence threshold keeps the error at or below 1 % on both random halves of the samples"}
    bound = f", at most {_pct(hi)}" if hi is not None else ""
    return {"topic": "abstain", "action": f"Abstain below confidence {thr:.4f} and route those samples to a person",
            "evidence": f"chosen on one half and measured on the other, the error of the kept {_pct(cov)} is {_pct(risk)}{bound} "
                        "(95 % interval)"}


def _action_weak_class(ctx: Mapping) -> dict | None:
    rows = [r for r in ctx.get("per_class") or [] if r.get("accuracy") is not None and r.get("accuracy_ci")]
    if len(rows) < 2:
        return None
    worst = min(rows, key=lambda r: (r["accuracy"], str(r["name"])))
    if worst["accuracy_ci"][1] >= min(r["accuracy_ci"][0] for r in rows if r is not worst):
        return None
    return {"topic": "class", "action": f"Collect more (or cleaner) training data for class {_quote(worst['name'])}",
            "evidence": f"its recall {_pct(worst['accuracy'])} {fmt_interval(*worst['accuracy_ci'], 'accuracy')} is below every "
                        "other class's 95 % interval"}


def _action_data(ctx: Mapping) -> dict | None:
    note = (ctx.get("dataset") or {}).get("subset_note")
    if not note:
        return None
    return {"topic": "data", "action": "Retrain and audit on the full data set before comparing with published results",
            "evidence": note.rstrip(".")}  # the template ends each evidence with its full stop


def _action_epistemic(ctx: Mapping) -> dict | None:
    if ctx.get("epistemic_measured"):
        return None
    return {"topic": "epistemic", "action": "Estimate epistemic uncertainty: rerun with --mc-samples 30 or a deep ensemble",
            "evidence": "one deterministic pass per sample measures no spread between predictions"}


_ACTIONS = (_action_labels, _action_model_errors, _action_calibration, _action_weak_class, _action_abstain, _action_data,
            _action_epistemic)


def conclusions(ctx: Mapping) -> list[dict]:
    """Recommended actions, each with the evidence behind it, in a fixed order of urgency.

    Returns:
        [{"topic", "action", "evidence"}]: labels, model errors, calibration, a weak class, abstention,
        data, epistemic uncertainty; a topic appears only when its numbers call for it.
    """
    return [a for fn in _ACTIONS if (a := fn(ctx)) is not None]
