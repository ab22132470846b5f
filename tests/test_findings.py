"""Every generated sentence on the constructed cases that would make it wrong: ties, T < 1 and T > 1,
calibrated and miscalibrated, separable and inseparable classes, the label finding's wording."""

from __future__ import annotations

import re

import pytest

from reportgen.report import findings as F
from reportgen.stats.intervals import wilson


def row(name, correct, count):
    lo, hi = wilson(correct, count)
    return {"name": name, "accuracy": correct / count, "accuracy_ci": [float(lo), float(hi)], "count": count}


# --------------------------------------------------------------------------- weakest / strongest class


def test_inseparable_classes_are_not_ranked():
    """The issue's case: 86 of 100 overlaps the others at this sample size."""
    rows = [row("5", 86, 100), row("3", 90, 100), row("1", 95, 100), row("7", 92, 100)]
    text = F.class_sentence(rows)
    assert "no class can be called weakest or strongest" in text
    assert "weakest class is" not in text and "86.0 %" in text and "95.0 %" in text


def test_a_class_whose_interval_is_below_every_other_is_named_weakest():
    rows = [row("5", 700, 1000), row("3", 950, 1000), row("1", 960, 1000), row("7", 955, 1000)]
    text = F.class_sentence(rows)
    assert text.startswith("The weakest class is ‘5’ at 70.0 % (67.1–72.8)")
    assert "strongest" not in text and "the other classes cannot be told apart" in text


def test_strongest_named_only_when_separated_from_the_runner_up():
    rows = [row("a", 900, 1000), row("b", 905, 1000), row("c", 999, 1000)]
    text = F.class_sentence(rows)
    assert "strongest is ‘c’" in text and "weakest" not in text
    rows[2] = row("c", 915, 1000)  # now overlapping b
    assert "no class can be called weakest or strongest" in F.class_sentence(rows)


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


def floor(verdict, q95=0.022, p=0.3):
    return {"verdict": verdict, "floor_q95": q95, "p_value": p, "floor_mean": q95 * 0.8}


M = {"ece": 0.028, "ece_ci_low": 0.021, "ece_ci_high": 0.035, "mean_confidence": 0.90, "accuracy": 0.93, "n_samples": 1000}


def test_calibrated_is_consistent_not_slightly_miscalibrated():
    verdict, text = F.calibration_sentence(M, floor("consistent", 0.031, 0.21))
    assert verdict == "consistent"
    assert text.endswith("consistent with calibration at this sample size.")
    assert "0.031" in text and "1,000 samples" in text and "miscalibrated" not in text


def test_miscalibrated_names_the_side_from_the_numbers():
    verdict, text = F.calibration_sentence(M, floor("miscalibrated", 0.02, 0.001))
    assert verdict == "miscalibrated" and "under-confident on average (mean confidence 0.900 vs accuracy 0.930)" in text
    over = {**M, "mean_confidence": 0.97}
    assert "over-confident" in F.calibration_sentence(over, floor("miscalibrated", 0.02, 0.001))[1]


@pytest.mark.parametrize("t, words, not_words", [
    (0.88, "T = 0.88 < 1 sharpens", "softens"),
    (1.6, "T = 1.60 > 1 softens", "sharpens"),
    (1.02, "close to 1", "sharpens"),
])
def test_temperature_wording_follows_the_fitted_t(t, words, not_words):
    text = F.temperature_sentence({"temperature": t}, None, None)
    assert words in text and not_words not in text


def test_temperature_difference_is_judged_by_the_same_noise_floor_rule():
    m = {"temperature": 0.88, "ece": 0.037, "ece_temperature_scaled": 0.028}
    assert "already consistent with calibration" in F.temperature_sentence(m, floor("consistent"), floor("consistent"))
    assert "a real improvement" in F.temperature_sentence(m, floor("miscalibrated"), floor("consistent"))
    still = F.temperature_sentence(m, floor("miscalibrated"), floor("miscalibrated", 0.02))
    assert "still above the noise floor (0.020)" in still and "real improvement" not in still


# --------------------------------------------------------------------------- uncertainty, selective


def test_epistemic_sentence_makes_no_causal_promise():
    m = {"mean_epistemic": 0.05, "mean_entropy": 0.4, "mean_epistemic_ci_low": 0.04, "mean_epistemic_ci_high": 0.06}
    text = F.epistemic_sentence(m, measured=True, n_samples=30, method="mc_dropout")
    assert "By this method's estimate" in text and "12 %" in text and "30 MC-dropout samples" in text
    assert not re.search(r"will not remove|should reduce|in the data itself", text)
    assert "not measured" in F.epistemic_sentence(m, measured=False, n_samples=1)


def test_selective_sentence_reports_the_cross_fitted_error_and_its_bound():
    m = {"threshold_1pct": 0.8992, "coverage_1pct": 0.62, "risk_1pct": 0.013, "risk_1pct_ci_high": 0.024}
    level, text = F.selective_sentence(m)
    assert "chosen on one half and measured on the other, its error is 1.3 %, at most 2.4 %" in text and level == "warn"
    level, text = F.selective_sentence({"threshold_1pct": None, "coverage_1pct": None, "risk_1pct": None})
    assert level == "bad" and "No confidence threshold" in text


# --------------------------------------------------------------------------- labels


def test_label_sentence_uses_candidate_wording_and_reconciles_estimate_and_flags():
    li = {"n_flagged": 57, "n_estimated": 52, "n_checked": 10000, "rate": 0.0052,
          "checker": {"independent": True, "short": "5-fold cross-validation, default checker", "accuracy": 0.992,
                      "accuracy_ci": [0.990, 0.994]},
          "cases": {"model_errors": 310}}
    level, text = F.label_sentence(li, {})
    assert "estimates 52 label errors (0.5 %) among 10,000 checked samples and flags 57 of them as candidates for human review" in text
    assert "99.2 %" in text and "310 of the audited model's errors are model errors, not label issues" in text
    assert not re.search(r"\bmislabell", text, re.I)


def test_label_sentence_without_checker_says_what_it_cannot_tell():
    li = {"n_flagged": 9, "n_estimated": 12, "n_checked": 1000, "rate": 0.012, "checker": {"independent": False, "kind": "audited_model"}}
    level, text = F.label_sentence(li, {})
    assert "mix label errors with the model's own mistakes" in text and level == "warn"
    assert "independent checker" in text


def test_the_label_finding_is_always_in_the_executive_summary():
    """Even when its score is the lowest: the cover shows a label badge, so the summary must say something about labels."""
    ctx = {"metrics": {"accuracy": 0.5, "n_samples": 100, "coverage_1pct": None, "threshold_1pct": None, "risk_1pct": None},
           "per_class": [], "epistemic_measured": False, "method": {"n_samples": 1},
           "label_issues": {"n_flagged": 0, "n_estimated": 0, "rate": 0.0, "checker": {"independent": False}}}
    found = F.findings(ctx)
    assert "label_issues" in [f["topic"] for f in found]
    assert len(found) == F.N_FINDINGS + 1
    assert any(v["label"] == "Label issues" for v in F.verdicts(ctx))


# --------------------------------------------------------------------------- conclusions and recommended actions


def action(ctx, topic):
    found = [a for a in F.conclusions(ctx) if a["topic"] == topic]
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
    ctx = {"label_issues": {"n_flagged": flags, "n_estimated": 14, "reviews": {"unreviewed_flags": unreviewed},
                            "checker": {"independent": True, "accuracy": 0.9924}}}
    a = action(ctx, "labels")
    if expected is None:
        assert a is None
    else:
        assert expected in a["action"] and "99.2 %" in a["evidence"] and "estimates 14 label errors" in a["evidence"]


def test_model_error_action_counts_model_errors_and_all_cases():
    assert action({"label_issues": {"cases": {"model_errors": 0, "ambiguous": 3}}}, "model") is None
    a = action({"label_issues": {"cases": {"model_errors": 5, "ambiguous": 2, "label_candidates": 3}}}, "model")
    assert "on 5 of" in a["evidence"] and "10 error or flag cases" in a["evidence"]


def calibration_ctx(verdict, after_verdict, t=0.88):
    return {"metrics": {"temperature": t, "ece": 0.037, "ece_temperature_scaled": 0.023},
            "calibration": {"floor": {"verdict": verdict, "floor_q95": 0.030}},
            "temperature": {"floor_after": {"verdict": after_verdict, "floor_q95": 0.029}}}


def test_calibration_action_follows_the_noise_floor_verdicts():
    assert action(calibration_ctx("consistent", "consistent"), "calibration") is None
    a = action(calibration_ctx("miscalibrated", "consistent"), "calibration")
    assert "T = 0.88" in a["action"] and "0.037 → 0.023" in a["evidence"] and "(0.029)" in a["evidence"]
    a = action(calibration_ctx("miscalibrated", "miscalibrated"), "calibration")
    assert "richer method" in a["action"] and "stays above it" in a["evidence"]


def test_abstain_action_uses_the_cross_fitted_numbers_or_says_none_works():
    a = action({"metrics": {}}, "abstain")
    assert "human in the loop" in a["action"] and "both random halves" in a["evidence"]
    m = {"threshold_1pct": 0.89921, "coverage_1pct": 0.745, "risk_1pct": 0.013, "risk_1pct_ci_high": 0.025}
    a = action({"metrics": m}, "abstain")
    assert "0.8992" in a["action"] and "74.5 %" in a["evidence"] and "1.3 %, at most 2.5 %" in a["evidence"]


def test_weak_class_action_only_when_its_interval_is_below_every_other():
    overlapping = [row("5", 86, 100), row("3", 90, 100), row("1", 95, 100)]
    assert action({"per_class": overlapping}, "class") is None
    separated = [row("5", 800, 1000), row("3", 950, 1000), row("1", 960, 1000)]
    a = action({"per_class": separated}, "class")
    assert "‘5’" in a["action"] and "80.0 %" in a["evidence"]


def test_data_action_only_for_the_offline_subset_and_ends_with_one_full_stop():
    assert action({"dataset": {"subset_note": None}}, "data") is None
    a = action({"dataset": {"subset_note": "A subset, so not comparable."}}, "data")
    assert a["evidence"] == "A subset, so not comparable"  # the template adds the full stop


def test_epistemic_action_only_when_not_measured():
    assert action({"epistemic_measured": True}, "epistemic") is None
    assert "--mc-samples 30" in action({"epistemic_measured": False}, "epistemic")["action"]


def test_conclusions_keep_their_order_of_urgency():
    ctx = {**calibration_ctx("miscalibrated", "consistent"), "dataset": {"subset_note": "x."}, "epistemic_measured": False,
           "label_issues": {"n_flagged": 3, "checker": {"independent": False, "kind": "model"}}}
    assert [a["topic"] for a in F.conclusions(ctx)] == ["labels", "calibration", "abstain", "data", "epistemic"]
