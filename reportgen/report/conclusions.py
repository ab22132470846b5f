"""Conclusions and recommended actions: each action with the evidence behind it, from the report context alone.

The blocking gaps come first (acceptance criteria not shown to be met, a missing or incomplete model card), then what
the numbers call for; every action names the inference mode it applies to when it depends on one. Each rule is
unit-tested on the constructed cases that would make it wrong (tests/test_findings.py).
"""

from __future__ import annotations

from typing import Mapping

from ..metrics import fmt_interval
from .findings import MODE_WORDS, _num, _pct, _quote, _with_ci


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
    open_flags = int((li.get("reviews") or {}).get("unreviewed_flags", n_flag))
    if not n_flag or not open_flags:
        return None
    return {"topic": "labels",
            "action": f"Review the {open_flags:,} unreviewed candidates in review.csv, then rerun with --reviews review.csv "
                      "(add --apply-reviews to train and score on the corrected labels)",
            "evidence": f"the checker agrees with the given labels {_pct(checker['accuracy'])} of the time out of sample and "
                        f"confident learning estimates a label-error rate of {_with_ci(m, 'label_error_rate')}"}


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
    """A temperature only for the mode that ships, and only when it calibrates that mode held out."""
    shipped = ctx.get("shipped", "")
    m, cal, temp = ctx.get("metrics", {}), ctx.get("calibration") or {}, ctx.get("temperature") or {}
    t = _num(m, "temperature")
    if cal.get("verdict") != "miscalibrated" or t is None:
        return None
    who = MODE_WORDS.get(shipped, shipped)
    after = temp.get("after") or {}
    if after.get("verdict") == "consistent":
        return {"topic": "calibration", "action": f"Recalibrate {who} (the mode that ships) with temperature scaling, T = {t:.2f} "
                                                  "(divide its logits by T)",
                "evidence": f"its calibration error {_with_ci(m, 'calibration_error')} excludes 0; held out, scaling brings it to "
                            f"{_with_ci(m, 'calibration_error_temperature_scaled')} and NLL {_num(m, 'nll'):.4f} → "
                            f"{_num(temp, 'nll_after'):.4f}"}
    return {"topic": "calibration", "action": f"Recalibrate {who} (the mode that ships) with a richer method than one temperature "
                                              "(e.g. per-class or histogram binning)",
            "evidence": f"its calibration error {_with_ci(m, 'calibration_error')} excludes 0 and stays above 0 after temperature "
                        f"scaling, held out ({_with_ci(m, 'calibration_error_temperature_scaled')})"}


def _action_abstain(ctx: Mapping) -> dict | None:
    rule = (ctx.get("selective") or {}).get("rule")
    if not rule:
        return None
    if not rule["certified"]:
        return {"topic": "abstain", "action": f"Keep a human in the loop for every prediction if errors must stay at or below "
                                              f"{_pct(rule['target'])}",
                "evidence": f"no confidence threshold certifies that at 95 % confidence; the lowest certified bound is "
                            f"{_pct(rule['bound'])} at {_pct(rule['coverage'])} coverage"}
    return {"topic": "abstain", "action": f"Abstain below confidence {rule['threshold']:.4f} and route those samples to a person",
            "evidence": f"it keeps {_pct(rule['coverage'])} of the audited samples, whose error is certified to be at most "
                        f"{_pct(rule['bound'])} with 95 % confidence (selection with guaranteed risk)"}


def _action_weak_class(ctx: Mapping) -> dict | None:
    pairs = [p for p in ctx.get("class_pairs") or [] if p["differ"]]
    rows = {r["name"]: r for r in ctx.get("per_class") or [] if r.get("accuracy") is not None}
    below: dict[str, list[str]] = {}
    for p in pairs:
        below.setdefault(p["lower"], []).append(p["higher"])
    weakest = [n for n, h in below.items() if len(h) == len(rows) - 1]
    if not weakest:
        return None
    r = rows[weakest[0]]
    return {"topic": "class", "action": f"Collect more (or cleaner) training data for class {_quote(r['name'])}",
            "evidence": f"its recall {_pct(r['accuracy'])} {fmt_interval(*r['accuracy_ci'], 'accuracy')} is lower than every other "
                        "class's (Holm-corrected pairwise tests, 5 %)"}


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


def _action_acceptance(ctx: Mapping) -> dict | None:
    """Blocking: acceptance criteria (--accept, the card's acceptance list) the audit does not show to be met."""
    open_ = [a for a in ctx.get("acceptance") or [] if a["state"] != "met"]
    if not open_:
        return None
    parts = "; ".join(f"{a['expr']} is {a['state']} ({a['text']})" for a in open_)
    return {"topic": "acceptance", "blocking": True,
            "action": f"Do not accept this version yet: {len(open_)} of {len(ctx['acceptance'])} acceptance criteria are not shown to "
                      "be met", "evidence": parts}


def _action_card(ctx: Mapping) -> dict | None:
    """Blocking: a model card that is missing or incomplete (the report cannot be attached to a model review without one)."""
    card = ctx.get("card") or {}
    missing = card.get("missing") or []
    if card.get("source") and not missing:
        return None
    what = "no model card was given" if not card.get("source") else f"the model card leaves out {', '.join(missing)}"
    return {"topic": "card", "blocking": True,
            "action": "Complete the model card (--card card.toml or [tool.reportgen.card]) before attaching this report to a model review",
            "evidence": f"{what}; a reviewer cannot judge intended use, users or limitations without it"}


_ACTIONS = (_action_acceptance, _action_card, _action_labels, _action_model_errors, _action_calibration, _action_weak_class,
            _action_abstain, _action_data, _action_epistemic)


def conclusions(ctx: Mapping) -> list[dict]:
    """Recommended actions, each with the evidence behind it, in a fixed order of urgency.

    Returns:
        [{"topic", "action", "evidence", "blocking" (optional)}]: the blocking gaps first (acceptance criteria not shown to
        be met, a missing or incomplete model card), then labels, model errors, calibration, a weak class, abstention,
        data, epistemic uncertainty; a topic appears only when its numbers call for it.
    """
    return [a for fn in _ACTIONS if (a := fn(ctx)) is not None]
