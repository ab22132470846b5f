"""Generated sentences: findings of the executive summary, the cover's badges, the sections' readings, conclusions.

Every generator reads only plain data (a report context or a summary.json), so an archived audit rebuilds the same
sentences. Each sentence states only what its numbers support, and each rule is stated where it is used:
- a class is called lower than another only when Fisher's exact test of their recalls rejects after Holm's
  correction over every pair (stats.classes), and weakest only when it is lower than every other class;
- calibration is "miscalibrated" only when the calibration error's 95 % interval excludes 0;
- a temperature is recommended only for the mode that ships, and only when scaling, held out, brings that mode's
  interval to include 0; its wording follows T < 1 or T > 1;
- an abstention threshold is recommended only when selection with guaranteed risk certifies the error target;
- without an independent checker the flags give a disagreement rate, an upper bound on label errors, not an estimate.
Each generator is unit-tested on the constructed cases that would make it wrong (tests/test_findings.py).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from .. import metrics as K
from ..metrics import fmt, fmt_interval

# Findings shown in the executive summary besides the label finding (the most important first).
N_FINDINGS = 3
# Cross-fitted coverage at the certified 1 %-error threshold at or above which it reads as good; below the second, bad.
COVERAGE_LEVELS = (0.90, 0.50)
# |log T| below this reads as "T close to 1" (about 0.95 < T < 1.05).
TEMPERATURE_NEAR_ONE = 0.05
# Share of all errors above which one class pair is said to concentrate them.
CONCENTRATED_ERROR_SHARE = 0.25
# The rule behind each cover badge (verdicts), stated in the report's methods appendix.
VERDICT_RULES = {
    "Acceptance": "all met when every acceptance criterion holds over the whole 95 % interval of its metric; not met when "
                  "a criterion fails over its whole interval or its metric was not measured; otherwise the criteria whose "
                  "interval straddles the threshold are not shown (this sample cannot show them)",
    "Calibration": "miscalibrated when the 95 % interval of the calibration error (of the mode that ships) excludes 0, "
                   "consistent with calibration when it includes 0",
    "Abstention": "certified when selection with guaranteed risk finds a confidence threshold whose error is at most 1 % "
                  "with 95 % confidence on the audited samples, else not certified",
    "Labels": "a warning when any sample is flagged for review or when no independent (out-of-sample) checker judged "
              "the labels; passed when an independent checker flags none",
    "CI gates": "failed when any --fail-on expression holds",
}
# What a metric is called inside a sentence (else metrics.short_name).
METRIC_WORDS = {"accuracy": "accuracy", "calibration_error": "calibration error", "nll": "NLL", "brier": "Brier score",
                "aurc": "AURC"}
# What each inference mode is called inside a sentence.
MODE_WORDS = {"deterministic": "the deterministic network", "mc_dropout": "the MC-dropout average",
              "ensemble": "the ensemble average", "saved": "the saved probabilities"}


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
    percent = K.is_percent(key)
    text = fmt(v, key) if percent else f"{v:.{digits}f}"
    lo, hi = metrics.get(key + "_ci_low"), metrics.get(key + "_ci_high")
    if lo is None or hi is None:
        return text
    return f"{text} {fmt_interval(lo, hi, key)}" if percent else f"{text} ({float(lo):.{digits}f}–{float(hi):.{digits}f})"


def _quote(name) -> str:
    return f"‘{name}’"


def _names(names: Sequence[str]) -> str:
    quoted = [_quote(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


# --------------------------------------------------------------------------- sentences


def class_sentence(per_class: Sequence[Mapping], pairs: Sequence[Mapping]) -> str | None:
    """Which classes are recognised less often than which, by Holm-corrected pairwise tests (stats.classes).

    Args:
        per_class: rows with name, accuracy and accuracy_ci; pairs: recall_comparisons (lower, higher, p_holm, differ).
    Returns:
        One or two sentences, or None with fewer than two classes that have samples.
    """
    rows = {r["name"]: r for r in per_class if r.get("accuracy") is not None}
    if len(rows) < 2:
        return None
    differ = [p for p in pairs if p["differ"]]

    def show(name):
        r = rows[name]
        return f"{_quote(name)} ({_pct(r['accuracy'])} {fmt_interval(*r['accuracy_ci'], 'accuracy')})"

    if not differ:
        worst = min(rows.values(), key=lambda r: (r["accuracy"], str(r["name"])))
        best = max(rows.values(), key=lambda r: (r["accuracy"], str(r["name"])))
        return (f"Per-class recall ranges from {_pct(worst['accuracy'])} ({_quote(worst['name'])}) to {_pct(best['accuracy'])} "
                f"({_quote(best['name'])}), but no two classes differ after correcting for the {len(pairs)} pairwise comparisons "
                "(Holm, 5 %): no class can be called weaker than another at this sample size.")
    below: dict[str, list[str]] = {}
    for p in differ:
        below.setdefault(p["lower"], []).append(p["higher"])
    everyone = [name for name, higher in below.items() if len(higher) == len(rows) - 1]
    if everyone:
        text = f"The weakest class is {show(everyone[0])}: its recall is lower than every other class's (Holm-corrected, 5 %)."
    else:
        lows = sorted(below, key=lambda n: (-len(below[n]), rows[n]["accuracy"]))
        parts = [f"{show(n)} is lower than {_names(sorted(below[n]))}" for n in lows[:3]]
        text = ("; ".join(parts) + (f"; and {len(lows) - 3} more classes are lower than some other" if len(lows) > 3 else "")
                + " (Holm-corrected pairwise tests, 5 %). No class is lower than every other, so none is called the weakest.")
        text = text[0].upper() + text[1:]
    return text


def confusion_sentence(confusion: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """The most frequent confusion between two classes (either direction), naming ties as ties."""
    k = len(names)
    pairs = {(i, j): int(confusion[i][j]) + int(confusion[j][i]) for i in range(k) for j in range(i + 1, k)}
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
    return (f"{100 * caught / n_err:.0f} % of the wrong predictions ({caught:.0f} of {n_err}) are among the "
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


def baseline_sentence(baseline: Mapping | None) -> str | None:
    """The model against its reference (archive.baseline), metric by metric: better or worse only where the paired 95 %
    interval (McNemar's test for accuracy) excludes no change, else not distinguishable."""
    if not baseline or not baseline.get("rows"):
        return None
    rows = baseline["rows"]
    name = lambda r: METRIC_WORDS.get(r["key"], r["short"])  # noqa: E731
    said = lambda r: f"{name(r)} {r['delta_text']} ({r['ci_text']})" if r["ci_text"] else f"{name(r)} {r['delta_text']}"  # noqa: E731
    parts = []
    for word, what in (("better", "better on"), ("worse", "worse on")):
        picked = [said(r) for r in rows if r["change"] == word]
        if picked:
            parts.append(f"{what} " + ", ".join(picked))
    same = [name(r) for r in rows if r["change"] not in ("better", "worse")]
    if same:
        parts.append("not distinguishable on " + ", ".join(same) + " (the paired 95 % interval includes no change)")
    return f"Against {baseline['against']}, paired on the same samples, the model is " + "; ".join(parts) + "."


def _auroc(a: Mapping | None) -> str:
    if not a or a.get("auroc") is None:
        return "not measured"
    return f"{a['auroc']:.3f} ({a['ci'][0]:.3f}–{a['ci'][1]:.3f})"


def ood_sentence(ood: Mapping | None) -> str | None:
    """How well each uncertainty score tells shifted images from the audited ones (AUROC, DeLong's 95 % interval)."""
    if not ood or not ood.get("sets"):
        return None
    parts = []
    for s in ood["sets"]:
        a = s["auroc"]
        text = (f"on {s['description']} ({s['n']:,} images), the AUROC of telling them from the audited images is "
                + (f"{_auroc(a['epistemic'])} for epistemic uncertainty, " if "epistemic" in a else "")
                + f"{_auroc(a['total'])} for total uncertainty and {_auroc(a['confidence'])} for 1 − confidence")
        parts.append(text)
    return "Out of distribution: " + "; ".join(parts) + " (0.5 is chance)."


def worth_sentence(worth: Mapping | None, ood: Mapping | None) -> str | None:
    """Whether splitting off epistemic uncertainty earns its place here: it must add something over plain confidence (to
    flag errors, paired test) or over total uncertainty (to flag shifted images, paired test)."""
    if not worth:
        return None
    detect = worth.get("error_detection")
    gains, facts = [], [f"epistemic and aleatoric estimates rank the samples alike (Spearman {worth['spearman_aleatoric']:.2f})"
                        if worth.get("spearman_aleatoric", 0) >= 0.8 else
                        f"epistemic and aleatoric estimates rank the samples differently (Spearman {worth['spearman_aleatoric']:.2f})"]
    if detect:
        a, b = detect["auroc"]
        better = detect["called"] and detect["delta"] > 0
        facts.append(f"it flags the model's errors with AUROC {b:.3f} against {a:.3f} for plain confidence"
                     f" (paired difference {detect['delta']:+.3f}, {'significant' if detect['called'] else 'not significant'})")
        if better:
            gains.append("flagging errors")
    for s in (ood or {}).get("sets") or []:
        vs = (s.get("epistemic_vs") or {}).get("total")
        if vs:
            facts.append(f"on {s['name']} images its AUROC is {vs['auroc'][1]:.3f} against {vs['auroc'][0]:.3f} for total "
                         f"uncertainty (paired difference {vs['delta']:+.3f}, {'significant' if vs['called'] else 'not significant'})")
            if vs["called"] and vs["delta"] > 0:
                gains.append(f"spotting {s['name']} images")
    verdict = (f"The epistemic estimate earns its place here: it adds to the simpler scores in {' and '.join(gains)}"
               if gains else "The epistemic estimate adds nothing measurable in this audit: no paired test shows it doing better "
                             "than plain confidence at flagging errors or than total uncertainty at spotting shifted images")
    return f"{verdict}. " + "; ".join(facts)[0].upper() + "; ".join(facts)[1:] + "."


def calibration_sentence(metrics: Mapping, calibration: Mapping | None, *, mode: str = "") -> tuple[str, str]:
    """(verdict, sentence): the calibration error with its 95 % interval; "miscalibrated" only when the interval excludes 0.

    verdict is "miscalibrated", "consistent" or "unknown".
    """
    ce = _num(metrics, "calibration_error")
    if ce is None or not calibration or calibration.get("verdict") not in ("miscalibrated", "consistent"):
        return "unknown", "Calibration was not measured."
    who = f"{MODE_WORDS.get(mode, mode)}: " if mode else ""
    base = f"{who[:1].upper() + who[1:]}calibration error {_with_ci(metrics, 'calibration_error')}"
    if calibration["verdict"] == "consistent":
        return "consistent", f"{base}: the interval includes 0, so this is consistent with calibration at this sample size."
    conf, acc = _num(metrics, "mean_confidence"), _num(metrics, "accuracy")
    side = ""
    if conf is not None and acc is not None:
        side = (", over-confident on average" if conf > acc else ", under-confident on average")
        side += f" (mean confidence {conf:.3f} vs accuracy {acc:.3f})"
    return "miscalibrated", f"{base}: the interval excludes 0, so the model is miscalibrated{side}."


def temperature_sentence(metrics: Mapping, calibration: Mapping | None, temperature: Mapping | None, *, mode: str = "") -> str | None:
    """What the fitted temperature does (T < 1 sharpens, T > 1 softens) and what scaling does held out, for one mode."""
    t = _num(metrics, "temperature")
    if t is None or not temperature:
        return None
    of = f" of {MODE_WORDS.get(mode, mode)}" if mode else ""
    if abs(math.log(t)) < TEMPERATURE_NEAR_ONE:
        what = f"The fitted temperature{of} T = {t:.2f} is close to 1: scaling barely changes the probabilities"
    elif t < 1:
        what = f"The fitted temperature{of} T = {t:.2f} < 1 sharpens the probabilities (they were too soft)"
    else:
        what = f"The fitted temperature{of} T = {t:.2f} > 1 softens the probabilities (they were too sharp)"
    before, after = _num(metrics, "nll"), _num(temperature, "nll_after")
    verdict = (calibration or {}).get("verdict")
    after_verdict = (temperature.get("after") or {}).get("verdict")
    if before is None or after is None:
        return what + "."
    change = f"held-out NLL {before:.4f} → {after:.4f}"
    if verdict != "miscalibrated":
        tail = f"{change}; calibration was already consistent with its interval, so no temperature is recommended"
    elif after_verdict == "consistent":
        tail = f"{change}, and the held-out calibration error's interval then includes 0: scaling calibrates it"
    else:
        tail = f"{change}, but the held-out calibration error's interval still excludes 0: one temperature does not calibrate it"
    return f"{what}; {tail}."


def selective_sentence(metrics: Mapping, rule: Mapping | None) -> tuple[str, str]:
    """(level, sentence) on abstaining below a confidence threshold certified by selection with guaranteed risk."""
    if not rule:
        return "info", "Selective prediction was not measured."
    target, conf = _pct(rule["target"]), f"{100 * (1 - rule['delta']):.0f} %"
    if not rule["certified"]:
        return "bad", (f"No confidence threshold can be certified for at most {target} error at {conf} confidence on these "
                       f"{fmt(metrics.get('n_samples'))} samples; the lowest error bound that can be certified is "
                       f"{_pct(rule['bound'])}, keeping {_pct(rule['coverage'])} of the samples (confidence ≥ {rule['threshold']:.4f}).")
    cov = rule["coverage"]
    good, bad = COVERAGE_LEVELS
    level = "good" if cov >= good else "bad" if cov < bad else "warn"
    return level, (f"Answering only when confidence is at least {rule['threshold']:.4f} keeps {_pct(cov)} of the audited samples "
                   f"({rule['kept']:,} of {fmt(metrics.get('n_samples'))}), whose error rate here is {_pct(rule['risk'])}; selection "
                   f"with guaranteed risk certifies it is at most {_pct(rule['bound'])} with {conf} confidence (target {target}).")


def label_sentence(li: Mapping, metrics: Mapping) -> tuple[str, str]:
    """(level, sentence): the label finding, in the words "candidates for human review", never "mislabelled"."""
    n_flag = int(li.get("n_flagged", 0))
    n_checked = int(li.get("n_checked") or metrics.get("n_samples") or 0)
    checker = li.get("checker") or {}
    reviews = li.get("reviews") or {}
    if checker.get("independent"):
        acc = checker.get("accuracy")
        who = (f"An independent checker ({checker.get('short', 'cross-validated')}, out-of-sample accuracy "
               f"{_pct(acc)} {fmt_interval(*checker['accuracy_ci'], 'accuracy')})" if acc is not None and checker.get("accuracy_ci")
               else "An independent checker")
        if n_flag == 0:
            text, level = f"{who} finds no label that confidently disagrees with it among {n_checked:,} checked samples", "good"
        else:
            rate = _with_ci(metrics, "label_error_rate")
            text = (f"{who} flags {n_flag:,} of {n_checked:,} checked samples as candidates for human review; confident learning "
                    f"estimates a label-error rate of {rate} (the interval is the estimate's sampling noise, not the checker's own errors)")
            level = "warn"
        cases = li.get("cases") or {}
        if cases.get("model_errors"):
            text += (f"; {cases['model_errors']:,} of the audited model's errors are model errors, not label issues "
                     "(the checker agrees with the given label)")
    else:
        saved = checker.get("kind") == "saved"
        who = "The saved probabilities" if saved else "The audited model"
        why = ("they are evidence about labels only if they are out-of-sample and from a model far more accurate than the label noise"
               if saved else "without an independent checker (--cv) these mix label errors with the model's own mistakes")
        verb = "disagree" if saved else "disagrees"
        if n_flag == 0:
            text = f"{who} confidently {verb} with no given label"
        else:
            text = (f"{who} confidently {verb} with {n_flag:,} of {n_checked:,} given labels: a disagreement rate of "
                    f"{_pct(float(metrics.get('disagreement_rate') or 0.0))}, an upper bound on label errors, not an estimate; {why}")
        level = "warn" if n_flag else "info"
    if reviews.get("reviewed"):
        text += (f"; reviewers have settled {reviews['reviewed']:,} samples ({reviews.get('label_wrong', 0):,} labels confirmed "
                 f"wrong, {reviews.get('label_ok', 0):,} kept)")
    return level, text + "."


# --------------------------------------------------------------------------- findings and badges


def _mode_of(ctx: Mapping, name: str) -> Mapping:
    return next((m for m in ctx.get("modes") or [] if m["name"] == name), {})


def _finding_performance(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    acc = _num(m, "accuracy")
    if acc is None:
        return None
    text = f"Accuracy is {_with_ci(m, 'accuracy')} on {fmt(m.get('n_samples'))} audited samples."
    classes = class_sentence(ctx.get("per_class") or [], ctx.get("class_pairs") or [])
    if classes:
        text += " " + classes
    return {"topic": "performance", "level": "info", "score": min(1.0, 4 * (1 - acc)), "text": text}


def _finding_calibration(ctx: Mapping) -> dict | None:
    m, shipped = ctx.get("metrics", {}), ctx.get("shipped", "")
    verdict, text = calibration_sentence(m, ctx.get("calibration"), mode=shipped)
    if verdict == "unknown":
        return None
    if verdict == "miscalibrated":
        t = temperature_sentence(m, ctx.get("calibration"), ctx.get("temperature"), mode=shipped)
        text += " " + t if t else ""
    ce = _num(m, "calibration_error") or 0.0
    return {"topic": "calibration", "level": "good" if verdict == "consistent" else "warn",
            "score": 0.15 if verdict == "consistent" else min(1.0, 0.4 + 10 * ce), "text": text}


def _finding_label_issues(ctx: Mapping) -> dict | None:
    li = ctx.get("label_issues")
    if not li:
        return None
    level, text = label_sentence(li, ctx.get("metrics", {}))
    return {"topic": "label_issues", "level": level, "score": min(1.0, 0.3 + 20 * float(li.get("rate") or 0.0)), "text": text}


def _finding_selective(ctx: Mapping) -> dict | None:
    rule = (ctx.get("selective") or {}).get("rule")
    if not rule:
        return None
    level, text = selective_sentence(ctx.get("metrics", {}), rule)
    return {"topic": "selective", "level": level, "score": 0.5 if not rule["certified"] else 0.6 * (1 - rule["coverage"]),
            "text": text}


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
    return {"topic": "confusion", "level": "warn" if concentrated else "info", "score": 0.45 if concentrated else 0.1, "text": text}


_FINDERS = (_finding_performance, _finding_calibration, _finding_label_issues, _finding_selective, _finding_epistemic,
            _finding_confusion)


def findings(ctx: Mapping, *, limit: int | None = N_FINDINGS) -> list[dict]:
    """The executive summary's findings, most important first; the label finding is always among them.

    Each candidate gets a score in [0, 1] from its own numbers (the methods appendix states the scores); ties keep the
    candidate order. Returns [{"topic", "level" (good|warn|bad|info), "score", "text"}].
    """
    found = [f for fn in _FINDERS if (f := fn(ctx)) is not None]
    found.sort(key=lambda f: -f["score"])  # stable: equal scores keep the candidate order
    if limit is None:
        return found
    label = [f for f in found if f["topic"] == "label_issues"]
    rest = [f for f in found if f["topic"] != "label_issues"][:limit]
    return sorted(rest + label, key=lambda f: -f["score"])


def verdicts(ctx: Mapping) -> list[dict]:
    """Cover badges, each a verdict with a stated rule behind it: [{"label", "text", "level"}]."""
    m = ctx.get("metrics", {})
    out = []
    acc = ctx.get("acceptance") or []
    if acc:
        states = [a["state"] for a in acc]
        failed, unknown = states.count("not met"), len(states) - states.count("met") - states.count("not met")
        text = (f"{failed} of {len(acc)} criteria not met" if failed else f"{unknown} of {len(acc)} criteria not shown"
                if unknown else f"all {len(acc)} criteria met")
        out.append({"label": "Acceptance", "text": text, "level": "bad" if failed else "warn" if unknown else "good"})
    verdict, _ = calibration_sentence(m, ctx.get("calibration"))
    if verdict != "unknown":
        word = "consistent with calibration" if verdict == "consistent" else "miscalibrated"
        out.append({"label": "Calibration", "text": f"{word} (calibration error {_with_ci(m, 'calibration_error')})",
                    "level": "good" if verdict == "consistent" else "warn"})
    rule = (ctx.get("selective") or {}).get("rule")
    if rule:
        text = (f"≤ {_pct(rule['target'])} error certified at {_pct(rule['coverage'])} coverage" if rule["certified"]
                else f"{_pct(rule['target'])} error cannot be certified")
        out.append({"label": "Abstention", "text": text, "level": "good" if rule["certified"] else "warn"})
    li = ctx.get("label_issues")
    if li:
        n_flag = int(li.get("n_flagged", 0))
        independent = (li.get("checker") or {}).get("independent")
        text = f"{n_flag:,} candidates for review" + ("" if independent else ", no independent checker")
        out.append({"label": "Labels", "text": text, "level": "warn" if n_flag or not independent else "good"})
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
    out: dict[str, list[str]] = {"performance": [], "uncertainty": [], "calibration": [], "selective": []}
    classes = class_sentence(ctx.get("per_class") or [], ctx.get("class_pairs") or [])
    if classes:
        out["performance"].append(classes)
    if facts.get("confusion") and names:
        out["performance"].append(confusion_sentence(facts["confusion"], names))
    against = baseline_sentence(ctx.get("baseline"))
    if against:
        out["performance"].insert(0, against)
    link = aleatoric_link_sentence(facts)
    if link:
        out["uncertainty"].append(link)
    out["uncertainty"].append(epistemic_sentence(m, measured=bool(ctx.get("epistemic_measured")),
                                                 n_samples=method.get("n_samples", "?"), method=str(method.get("method", ""))))
    for sentence in (worth_sentence(ctx.get("worth"), ctx.get("ood")), ood_sentence(ctx.get("ood"))):
        if sentence:
            out["uncertainty"].append(sentence)
    for mode in ctx.get("modes") or []:
        _, text = calibration_sentence(mode["metrics"], mode["calibration"], mode=mode["name"])
        out["calibration"].append(text)
        t = temperature_sentence(mode["metrics"], mode["calibration"], mode["temperature"], mode=mode["name"])
        if t:
            out["calibration"].append(t)
    out["selective"].append(selective_sentence(m, (ctx.get("selective") or {}).get("rule"))[1])
    return out
