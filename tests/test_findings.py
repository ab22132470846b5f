"""Every generated sentence on the constructed cases that would make it wrong: Holm-separated and inseparable classes,
ties, calibration verdicts from intervals, T < 1 and T > 1, the mode that ships, certified and uncertifiable
abstention, the label finding with and without an independent checker."""

from __future__ import annotations

import re

import numpy as np
import pytest

from reportgen.report import conclusions as CC
from reportgen.report import findings as F
from reportgen.stats.classes import recall_comparisons
from reportgen.stats.intervals import wilson


def row(name, correct, count):
    lo, hi = wilson(correct, count)
    return {"name": name, "accuracy": correct / count, "accuracy_ci": [float(lo), float(hi)], "count": count, "correct": correct}


def classes(*rows):
    """(per-class rows, their Holm-corrected pairwise comparisons) as the report context holds them."""
    names = [r["name"] for r in rows]
    return list(rows), recall_comparisons(names, [r["count"] for r in rows], [r["correct"] for r in rows])


# --------------------------------------------------------------------------- which class is weaker


def test_inseparable_classes_are_not_ranked():
    """86 of 100 against 90-95 of 100: no pair survives Holm's correction, so nothing is ranked."""
    text = F.class_sentence(*classes(row("5", 86, 100), row("3", 90, 100), row("1", 95, 100), row("7", 92, 100)))
    assert "no class can be called weaker than another" in text and "6 pairwise comparisons" in text
    assert "weakest class is" not in text and "86.0 %" in text and "95.0 %" in text


def test_two_separated_classes_are_named_although_no_class_is_weakest():
    """The reviewer's case: class 5 at 77.9-91.5 and class 6 at 93.0-99.4 do not overlap, yet the old sentence said no
    class could be called weakest. The pairwise test names the difference it can support, and only that."""
    rows, pairs = classes(row("5", 75, 88), row("6", 96, 98), row("4", 88, 98), row("2", 92, 103))
    assert rows[0]["accuracy_ci"][1] < rows[1]["accuracy_ci"][0]  # the intervals really are apart
    text = F.class_sentence(rows, pairs)
    assert re.search(r"‘5’ \(85\.2 % \([0-9.]+–[0-9.]+\)\) is lower than ‘6’", text)
    assert "none is called the weakest" in text and "no class can be called weaker" not in text


def test_a_class_lower_than_every_other_is_named_weakest():
    text = F.class_sentence(*classes(row("5", 700, 1000), row("3", 950, 1000), row("1", 960, 1000), row("7", 955, 1000)))
    assert text.startswith("The weakest class is ‘5’ (70.0 % (67.1–72.8))")
    assert "lower than every other class's (Holm-corrected, 5 %)" in text


def test_holm_correction_withholds_a_claim_a_single_test_would_make():
    """Two of many classes whose raw p-value is below 0.05 but not after correcting for every pair: no claim."""
    rows = [row(str(i), 90, 100) for i in range(8)] + [row("a", 76, 100)]  # Fisher p = 0.014 against each, 36 pairs
    rows, pairs = classes(*rows)
    raw = [p for p in pairs if p["lower"] == "a"]
    assert min(p["p"] for p in raw) < 0.05 and all(not p["differ"] for p in pairs)
    assert "no class can be called weaker" in F.class_sentence(rows, pairs)


# --------------------------------------------------------------------------- confusions


def test_a_tie_between_confusion_pairs_is_named_as_a_tie():
    names = ["1", "7", "8", "9"]
    cm = [[50, 0, 3, 0], [0, 50, 0, 2], [1, 0, 50, 0], [0, 2, 0, 50]]  # 1<->8: 4, 7<->9: 4
    text = F.confusion_sentence(cm, names)
    assert text == "The most frequent confusions are tied: 1↔8 and 7↔9, 4 errors each, of 8 errors in all."


def test_a_single_top_pair_concentrates_or_not():
    names = ["a", "b", "c", "d"]
    cm = [[9, 5, 0, 0], [1, 9, 0, 1], [0, 0, 9, 1], [0, 0, 1, 9]]
    assert F.confusion_sentence(cm, names) == "Errors concentrate in a↔b: 6 of 9 errors."
    spread = [[9, 2, 1, 1], [1, 9, 1, 1], [1, 1, 9, 1], [1, 1, 1, 9]]
    assert F.confusion_sentence(spread, names).startswith("Errors are spread out: the most frequent confusion, a↔b, accounts for 3 of 13")


def test_no_errors():
    assert F.confusion_sentence([[5, 0], [0, 5]], ["a", "b"]) == "There are no errors between classes to analyse."


# --------------------------------------------------------------------------- calibration and temperature


M = {"calibration_error": 0.028, "calibration_error_ci_low": 0.0, "calibration_error_ci_high": 0.041, "mean_confidence": 0.90,
     "accuracy": 0.93, "n_samples": 1000, "temperature": 0.88, "nll": 0.25}


def cal(verdict):
    return {"verdict": verdict, "estimate": 0.028}


def temp(after_verdict, nll_after=0.21):
    return {"nll_after": nll_after, "after": {"verdict": after_verdict}}


def test_an_interval_that_includes_zero_reads_as_consistent():
    verdict, text = F.calibration_sentence(M, cal("consistent"))
    assert verdict == "consistent" and "0.028 (0.000–0.041)" in text
    assert text.endswith("consistent with calibration at this sample size.") and "miscalibrated" not in text


def test_an_interval_that_excludes_zero_is_miscalibrated_and_names_the_side():
    m = {**M, "calibration_error_ci_low": 0.012}
    verdict, text = F.calibration_sentence(m, cal("miscalibrated"), mode="deterministic")
    assert verdict == "miscalibrated" and text.startswith("The deterministic network: calibration error 0.028 (0.012–0.041)")
    assert "under-confident on average (mean confidence 0.900 vs accuracy 0.930)" in text
    assert "over-confident" in F.calibration_sentence({**m, "mean_confidence": 0.97}, cal("miscalibrated"))[1]


@pytest.mark.parametrize("t, words, not_words", [
    (0.88, "T = 0.88 < 1 sharpens", "softens"),
    (1.6, "T = 1.60 > 1 softens", "sharpens"),
    (1.02, "close to 1", "sharpens"),
])
def test_temperature_wording_follows_the_fitted_t(t, words, not_words):
    text = F.temperature_sentence({**M, "temperature": t}, cal("miscalibrated"), temp("consistent"))
    assert words in text and not_words not in text


def test_temperature_effect_follows_the_held_out_verdicts():
    assert "no temperature is recommended" in F.temperature_sentence(M, cal("consistent"), temp("consistent"))
    assert "scaling calibrates it" in F.temperature_sentence(M, cal("miscalibrated"), temp("consistent"))
    still = F.temperature_sentence(M, cal("miscalibrated"), temp("miscalibrated"))
    assert "still excludes 0" in still and "calibrates it" not in still


def mode(name, verdict, t, after="consistent", shipped=False):
    return {"name": name, "shipped": shipped, "metrics": {**M, "temperature": t}, "calibration": cal(verdict),
            "temperature": temp(after)}


def test_the_temperature_recommended_is_the_shipped_modes_not_the_mc_averages():
    """The reviewer's case: the MC-dropout average is miscalibrated (T = 0.88 would help it) while the deterministic
    network that ships is consistent with calibration; no temperature may be recommended for what ships."""
    modes = [mode("deterministic", "consistent", 1.00, shipped=True), mode("mc_dropout", "miscalibrated", 0.88)]
    ctx = {"shipped": "deterministic", "metrics": {**M, "temperature": 1.00}, "calibration": cal("consistent"),
           "temperature": temp("consistent"), "modes": modes}
    assert not [a for a in CC.conclusions(ctx) if a["topic"] == "calibration"]
    text = " ".join(F.readings(ctx)["calibration"])
    assert "The deterministic network: calibration error" in text and "The MC-dropout average: calibration error" in text
    # The same audit shipping the MC average gets that mode's temperature, and the action names the mode.
    ctx.update(shipped="mc_dropout", metrics={**M, "temperature": 0.88, "calibration_error_ci_low": 0.01},
               calibration=cal("miscalibrated"))
    a = next(a for a in CC.conclusions(ctx) if a["topic"] == "calibration")
    assert "the MC-dropout average (the mode that ships)" in a["action"] and "T = 0.88" in a["action"]


def test_a_temperature_that_does_not_calibrate_is_not_recommended():
    ctx = {"shipped": "deterministic", "metrics": {**M, "calibration_error_ci_low": 0.01}, "calibration": cal("miscalibrated"),
           "temperature": temp("miscalibrated")}
    a = next(a for a in CC.conclusions(ctx) if a["topic"] == "calibration")
    assert "richer method than one temperature" in a["action"] and "T =" not in a["action"]


# --------------------------------------------------------------------------- uncertainty, selective


def test_epistemic_sentence_makes_no_causal_promise():
    m = {"mean_epistemic": 0.05, "mean_entropy": 0.4, "mean_epistemic_ci_low": 0.04, "mean_epistemic_ci_high": 0.06}
    text = F.epistemic_sentence(m, measured=True, n_samples=30, method="mc_dropout")
    assert "By this method's estimate" in text and "12 %" in text and "30 MC-dropout samples" in text
    assert not re.search(r"will not remove|should reduce|in the data itself", text)
    assert "not measured" in F.epistemic_sentence(m, measured=False, n_samples=1)


def rule(certified, coverage=0.713, kept=713, risk=0.0056, bound=0.0098, threshold=0.8992):
    return {"certified": certified, "threshold": threshold, "kept": kept, "errors": round(risk * kept), "coverage": coverage,
            "risk": risk, "bound": bound, "tests": 10, "target": 0.01, "delta": 0.05}


def test_selective_sentence_states_the_coverage_kept_at_the_threshold_and_its_certified_bound():
    """The reviewer's case: the sentence said 74.5 % was kept where the threshold kept 71.3 %. The sentence now reads
    the coverage of the very rule it recommends."""
    level, text = F.selective_sentence({"n_samples": 1000}, rule(True))
    assert "at least 0.8992 keeps 71.3 % of the audited samples (713 of 1,000)" in text
    assert "at most 1.0 % with 95 % confidence (target 1.0 %)" in text and level == "warn"


def test_an_uncertifiable_target_is_not_recommended_and_the_lowest_certified_risk_is_given():
    """The reviewer's case: the 1 % target was missed and the threshold still recommended."""
    r = rule(False, coverage=0.43, bound=0.052)
    level, text = F.selective_sentence({"n_samples": 1000}, r)
    assert level == "bad" and "No confidence threshold can be certified for at most 1.0 % error" in text
    assert "lowest error bound that can be certified is 5.2 %, keeping 43.0 %" in text
    a = next(a for a in CC.conclusions({"selective": {"rule": r}}) if a["topic"] == "abstain")
    assert "human in the loop" in a["action"] and "Abstain below" not in a["action"]
    a = next(a for a in CC.conclusions({"selective": {"rule": rule(True)}}) if a["topic"] == "abstain")
    assert "Abstain below confidence 0.8992" in a["action"] and "71.3 %" in a["evidence"] and "at most 1.0 %" in a["evidence"]


# --------------------------------------------------------------------------- labels


CHECKER = {"independent": True, "short": "5-fold cross-validation, default checker", "accuracy": 0.992, "accuracy_ci": [0.990, 0.994]}


def test_label_sentence_with_a_checker_gives_the_estimated_rate_with_its_interval():
    li = {"n_flagged": 57, "n_estimated": 52, "n_checked": 10000, "checker": CHECKER, "cases": {"model_errors": 310}}
    m = {"label_error_rate": 0.0052, "label_error_rate_ci_low": 0.0041, "label_error_rate_ci_high": 0.0066}
    level, text = F.label_sentence(li, m)
    assert "flags 57 of 10,000 checked samples as candidates for human review" in text
    assert "label-error rate of 0.5 % (0.4–0.7)" in text and "99.2 %" in text
    assert "310 of the audited model's errors are model errors, not label issues" in text
    assert not re.search(r"\bmislabell", text, re.I)


def test_without_a_checker_the_rate_is_a_disagreement_rate_not_an_estimate():
    """The reviewer's case: "Estimated label-error rate 1.8 %" from the audited model's own disagreements."""
    li = {"n_flagged": 18, "n_estimated": 18, "n_checked": 1000, "checker": {"independent": False, "kind": "audited_model"}}
    level, text = F.label_sentence(li, {"disagreement_rate": 0.018, "label_error_rate": None})
    assert "a disagreement rate of 1.8 %, an upper bound on label errors, not an estimate" in text
    assert "mix label errors with the model's own mistakes" in text and level == "warn"
    assert "label-error rate" not in text


def test_the_label_finding_is_always_in_the_executive_summary():
    """Even when its score is the lowest: the summary must say something about labels."""
    ctx = {"metrics": {"accuracy": 0.5, "n_samples": 100}, "per_class": [], "epistemic_measured": False, "method": {"n_samples": 1},
           "selective": {"rule": rule(False)}, "label_issues": {"n_flagged": 0, "checker": {"independent": False}}}
    found = F.findings(ctx)
    assert "label_issues" in [f["topic"] for f in found]
    assert len(found) == F.N_FINDINGS + 1
    assert any(v["label"] == "Labels" for v in F.verdicts(ctx))


def test_badges_are_verdicts_with_a_rule_never_a_bare_metric():
    """No badge for accuracy (no rule says what is good enough) or for having computed epistemic uncertainty."""
    ctx = {"metrics": {**M, "calibration_error_ci_low": 0.01}, "calibration": cal("miscalibrated"), "selective": {"rule": rule(True)},
           "epistemic_measured": True, "label_issues": {"n_flagged": 3, "checker": CHECKER}}
    labels = [v["label"] for v in F.verdicts(ctx)]
    assert labels == ["Calibration", "Abstention", "Labels"]
    assert F.verdicts(ctx)[0]["text"] == "miscalibrated (calibration error 0.028 (0.010–0.041))"
    assert set(labels) <= set(F.VERDICT_RULES)  # every badge's rule is stated in the methods


@pytest.mark.parametrize("states, text, level", [
    (["met", "met"], "all 2 criteria met", "good"),
    (["met", "not met", "not shown"], "1 of 3 criteria not met", "bad"),  # a failure outranks an unknown
    (["met", "not shown"], "1 of 2 criteria not shown", "warn"),
])
def test_the_acceptance_badge_leads_and_follows_the_worst_criterion(states, text, level):
    ctx = {"metrics": M, "acceptance": [{"expr": f"e{i}", "state": s} for i, s in enumerate(states)]}
    first = F.verdicts(ctx)[0]
    assert first == {"label": "Acceptance", "text": text, "level": level}
    assert "Acceptance" not in [v["label"] for v in F.verdicts({"metrics": M, "acceptance": []})]


# --------------------------------------------------------------------------- conclusions and recommended actions


def action(ctx, topic):
    found = [a for a in CC.conclusions(ctx) if a["topic"] == topic]
    assert len(found) <= 1
    return found[0] if found else None


def test_label_action_without_checker_asks_for_cv_and_counts_the_flags():
    ctx = {"metrics": {"accuracy": 0.931}, "label_issues": {"n_flagged": 16, "checker": {"independent": False, "kind": "model"}}}
    a = action(ctx, "labels")
    assert "--cv 5" in a["action"] and "the 16 flags" in a["evidence"] and "93.1 %" in a["evidence"]


@pytest.mark.parametrize("flags, expected", [(0, None), (7, "Review the 7 candidates")])
def test_label_action_on_saved_probabilities_is_conditional(flags, expected):
    ctx = {"label_issues": {"n_flagged": flags, "checker": {"independent": False, "kind": "saved"}}}
    a = action(ctx, "labels")
    assert (a is None) if expected is None else (expected in a["action"] and "out-of-sample" in a["action"])


@pytest.mark.parametrize("flags, unreviewed, expected", [(0, 0, None), (12, 0, None), (12, 5, "Review the 5 unreviewed")])
def test_label_action_with_checker_counts_only_open_candidates(flags, unreviewed, expected):
    ctx = {"metrics": {"label_error_rate": 0.0014, "label_error_rate_ci_low": 0.0008, "label_error_rate_ci_high": 0.0021},
           "label_issues": {"n_flagged": flags, "reviews": {"unreviewed_flags": unreviewed}, "checker": CHECKER}}
    a = action(ctx, "labels")
    if expected is None:
        assert a is None
    else:
        assert expected in a["action"] and "99.2 %" in a["evidence"] and "0.1 % (0.1–0.2)" in a["evidence"]


def test_model_error_action_counts_model_errors_and_all_cases():
    assert action({"label_issues": {"cases": {"model_errors": 0, "ambiguous": 3}}}, "model") is None
    a = action({"label_issues": {"cases": {"model_errors": 5, "ambiguous": 2, "label_candidates": 3}}}, "model")
    assert "on 5 of" in a["evidence"] and "10 error or flag cases" in a["evidence"]


def test_weak_class_action_only_for_a_class_lower_than_every_other():
    rows, pairs = classes(row("5", 86, 100), row("3", 90, 100), row("1", 95, 100))
    assert action({"per_class": rows, "class_pairs": pairs}, "class") is None
    rows, pairs = classes(row("5", 800, 1000), row("3", 950, 1000), row("1", 960, 1000))
    a = action({"per_class": rows, "class_pairs": pairs}, "class")
    assert "‘5’" in a["action"] and "80.0 %" in a["evidence"] and "Holm" in a["evidence"]


def test_data_action_only_for_the_offline_subset_and_ends_with_one_full_stop():
    assert action({"dataset": {"subset_note": None}}, "data") is None
    a = action({"dataset": {"subset_note": "A subset, so not comparable."}}, "data")
    assert a["evidence"] == "A subset, so not comparable"  # the template adds the full stop


def test_epistemic_action_only_when_not_measured():
    assert action({"epistemic_measured": True}, "epistemic") is None
    assert "--mc-samples 30" in action({"epistemic_measured": False}, "epistemic")["action"]


def test_conclusions_keep_their_order_of_urgency():
    ctx = {"shipped": "deterministic", "metrics": {**M, "calibration_error_ci_low": 0.01}, "calibration": cal("miscalibrated"),
           "temperature": temp("consistent"), "selective": {"rule": rule(False)}, "dataset": {"subset_note": "x."},
           "epistemic_measured": False, "label_issues": {"n_flagged": 3, "checker": {"independent": False, "kind": "model"}}}
    assert [a["topic"] for a in CC.conclusions(ctx)] == ["card", "labels", "calibration", "abstain", "data", "epistemic"]


def test_numbers_in_sentences_are_the_metrics_numbers():
    """Every number a sentence prints comes from the dict it was given (a regression guard on formatting)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        ce, lo = rng.uniform(0.02, 0.2), rng.uniform(0.001, 0.01)
        m = {**M, "calibration_error": ce, "calibration_error_ci_low": lo, "calibration_error_ci_high": ce + 0.01}
        text = F.calibration_sentence(m, cal("miscalibrated"))[1]
        assert f"{ce:.3f} ({lo:.3f}–{ce + 0.01:.3f})" in text


# --------------------------------------------------------------------------- does the epistemic split earn its place


def paired(a, b, delta, called):
    return {"auroc": [a, b], "delta": delta, "ci": [delta - 0.01, delta + 0.01], "p": 0.001 if called else 0.4, "called": called}


def test_worth_says_the_split_adds_nothing_when_no_paired_test_shows_it():
    """The reviewer's case: Spearman 0.96 with aleatoric, error-detection AUROC 0.894 against 0.904 for confidence."""
    worth = {"spearman_aleatoric": 0.96, "error_detection": paired(0.904, 0.894, -0.010, False)}
    ood = {"sets": [{"name": "rotated", "epistemic_vs": {"total": paired(0.80, 0.81, 0.01, False)}}]}
    text = F.worth_sentence(worth, ood)
    assert text.startswith("The epistemic estimate adds nothing measurable in this audit")
    assert "Spearman 0.96" in text and "AUROC 0.894 against 0.904 for plain confidence" in text and "not significant" in text


def test_worth_names_what_the_split_adds_when_a_paired_test_shows_it():
    worth = {"spearman_aleatoric": 0.55, "error_detection": paired(0.90, 0.89, -0.01, False)}
    ood = {"sets": [{"name": "rotated", "epistemic_vs": {"total": paired(0.70, 0.86, 0.16, True)}}]}
    text = F.worth_sentence(worth, ood)
    assert text.startswith("The epistemic estimate earns its place here: it adds to the simpler scores in spotting rotated images")
    assert "rank the samples differently (Spearman 0.55)" in text
    assert F.worth_sentence(None, ood) is None  # not sampled: nothing to judge


def test_ood_sentence_gives_each_score_with_its_interval():
    a = lambda v: {"auroc": v, "ci": [v - 0.02, v + 0.02]}  # noqa: E731
    ood = {"sets": [{"name": "rotated", "description": "the audited images rotated by 90 degrees", "n": 1000,
                     "auroc": {"epistemic": a(0.81), "total": a(0.79), "confidence": a(0.74)}}]}
    text = F.ood_sentence(ood)
    assert "rotated by 90 degrees (1,000 images)" in text and "0.810 (0.790–0.830) for epistemic uncertainty" in text
    assert "0.740 (0.720–0.760) for 1 − confidence" in text and text.endswith("(0.5 is chance).")
