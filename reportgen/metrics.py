"""The one list of metric keys: display names, how a value is shown, which way is better, which carry intervals.

summary.json's "metrics", the report tables, the archive index, `reportgen list`, gates and
compare all take their keys from here. A metric with an interval also has the keys
`<key>_ci_low` and `<key>_ci_high` (the 95 % interval's bounds), which gates accept too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Suffixes of the two interval keys of a metric that carries a 95 % interval.
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"


@dataclass(frozen=True)
class Metric:
    """One metric key.

    key: short snake_case key (summary.json); name: display name; kind: "percent" (a share shown
    as %), "count" (an integer) or "value"; better: "higher", "lower", "closer_to_1" or None
    (describes the data or the method); interval: True when a 95 % interval is reported; short: the name used inside sentences;
    missing: the words shown when the value is None.
    """

    key: str
    name: str
    kind: str = "value"
    better: str | None = None
    interval: bool = False
    short: str = ""  # name inside a sentence ("ECE"); the display name when empty
    missing: str = "not measured"  # what a value of None means for this metric


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "Accuracy", "percent", "higher", True),
    Metric("n_samples", "Evaluated samples", "count"),
    Metric("n_passes", "Stochastic passes per sample (S)", "count"),
    Metric("mean_confidence", "Mean confidence", "value", None, True),
    Metric("mean_entropy", "Mean total uncertainty H(E[p]) (nats)", "value", None, True),
    Metric("mean_aleatoric", "Mean aleatoric uncertainty E[H(p)] (nats)", "value", None, True),
    Metric("mean_epistemic", "Mean epistemic uncertainty I = H(E[p]) − E[H(p)] (nats)", "value", None, True),
    Metric("calibration_error", "Calibration error (unbiased binned L2, 15 equal-width bins)", "value", "lower", True, "calibration error"),
    Metric("ece", "Expected calibration error (ECE, plug-in, 15 equal-width bins; biased upwards, no interval)", "value", "lower",
           False, "plug-in ECE"),
    Metric("ce_debiased", "Debiased calibration error (Kumar et al. 2019, L2, 15 equal-mass bins)", "value", "lower", False,
           "debiased CE (equal-mass)"),
    Metric("ece_equal_mass", "ECE with 15 equal-mass bins (ties kept together)", "value", "lower", False, "equal-mass ECE"),
    Metric("classwise_ece", "Classwise ECE (mean over classes of p_k against 1[y = k])", "value", "lower", False, "classwise ECE"),
    Metric("mce", "Maximum calibration error (MCE, bins with ≥ 30 samples)", "value", "lower", False, "MCE",
           "not enough samples per bin (no bin holds 30)"),
    Metric("brier", "Brier score", "value", "lower", True, "Brier score"),
    Metric("nll", "Negative log-likelihood (nats)", "value", "lower", True, "NLL"),
    Metric("temperature", "Temperature T fitted on all samples (divide the logits by T)", "value", "closer_to_1", False, "temperature T"),
    Metric("nll_temperature_scaled", "NLL after temperature scaling (held out, nats)", "value", "lower", False, "NLL after scaling"),
    Metric("ece_temperature_scaled", "Plug-in ECE after temperature scaling (held out)", "value", "lower", False, "ECE after scaling"),
    Metric("calibration_error_temperature_scaled", "Calibration error after temperature scaling (held out)", "value", "lower", True,
           "calibration error after scaling"),
    Metric("aurc", "Area under the risk–coverage curve (AURC)", "value", "lower", True, "AURC"),
    Metric("acc_at_80", "Accuracy on the 80 % most confident", "percent", "higher", True),
    Metric("acc_at_90", "Accuracy on the 90 % most confident", "percent", "higher", True),
    Metric("acc_at_95", "Accuracy on the 95 % most confident", "percent", "higher", True),
    Metric("acc_at_99", "Accuracy on the 99 % most confident", "percent", "higher", True),
    Metric("threshold_1pct", "Confidence threshold certified for at most 1 % error (SGR, 95 % confidence)", "value", None, False,
           "threshold", "no threshold certifies 1 % error"),
    Metric("coverage_1pct", "Share of samples kept at that threshold", "percent", "higher", True, "coverage",
           "no threshold certifies 1 % error"),
    Metric("risk_1pct", "Error rate of the kept samples at that threshold (in sample)", "percent", "lower", False, "error of the kept",
           "no threshold certifies 1 % error"),
    Metric("risk_bound_1pct", "Certified upper bound on that error rate (SGR, 95 % confidence)", "percent", "lower", False,
           "certified error bound", "no threshold certifies 1 % error"),
    Metric("n_checked", "Labels checked", "count"),
    Metric("n_flagged", "Label-error candidates flagged for human review", "count"),
    Metric("n_issues_estimated", "Estimated label errors (confident learning)", "count"),
    Metric("label_error_rate", "Estimated label-error rate (independent checker; sampling interval)", "percent", None, True,
           "estimated label-error rate", "needs an independent checker (--cv)"),
    Metric("disagreement_rate", "Disagreement rate of the audited model (an upper bound on label errors, not an estimate)", "percent",
           None, False, "disagreement rate", "an independent checker was used"),
    Metric("checker_accuracy", "Checker's out-of-sample agreement with the given labels", "percent", "higher", True,
           "checker accuracy", "no independent checker (--cv)"),
    Metric("n_model_errors", "Audited model's errors where the checker agrees with the label (model errors)", "count",
           None, False, "", "needs an independent checker (--cv)"),
    Metric("n_ambiguous_errors", "Audited model's errors where the checker is unsure too (ambiguous)", "count",
           None, False, "", "needs an independent checker (--cv)"),
    Metric("n_reviewed", "Samples with a reviewer's verdict", "count"),
    Metric("n_confirmed_label_errors", "Label errors confirmed by reviewers", "count"),
    Metric("n_reviewed_label_ok", "Labels reviewers kept (not flagged again)", "count"),
    Metric("n_unreviewed_flags", "Flagged samples not yet reviewed", "count"),
)

BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
# Headline metrics on the report's first page, in order.
HEADLINE = ("accuracy", "calibration_error", "nll", "brier", "aurc", "n_flagged", "label_error_rate", "checker_accuracy")
# Metrics shown per version in the archive index and `reportgen list`, in order, with short column headers.
ARCHIVE_COLUMNS = {"accuracy": "Accuracy", "calibration_error": "Calibration", "nll": "NLL", "aurc": "AURC",
                   "mean_epistemic": "Epistemic", "n_flagged": "Flagged"}


def names() -> dict[str, str]:
    """Display name of every metric key, interval keys included."""
    out = {}
    for m in METRICS:
        out[m.key] = m.name
        if m.interval:
            out[m.key + CI_LOW] = f"{m.name}: 95 % interval, lower bound"
            out[m.key + CI_HIGH] = f"{m.name}: 95 % interval, upper bound"
    return out


def short_name(key: str) -> str:
    """The name of a metric inside a sentence: 'ECE', 'NLL', else its display name."""
    m = BY_KEY.get(key)
    return (m.short or m.name) if m else key


def base_key(key: str) -> str:
    """The metric an interval key belongs to ('accuracy_ci_low' -> 'accuracy'); other keys unchanged."""
    for suffix in (CI_LOW, CI_HIGH):
        if key.endswith(suffix) and key[: -len(suffix)] in BY_KEY:
            return key[: -len(suffix)]
    return key


def better(key: str) -> str | None:
    """'higher', 'lower', 'closer_to_1' or None for a metric key (interval keys follow their metric)."""
    m = BY_KEY.get(base_key(key))
    return m.better if m else None


def is_percent(key: str) -> bool:
    m = BY_KEY.get(base_key(key))
    return bool(m and m.kind == "percent")


def fmt(value: Any, key: str = "") -> str:
    """The one way a metric value is displayed (HTML, PDF, Markdown and tests use it)."""
    if value is None:
        m = BY_KEY.get(base_key(key))
        return m.missing if m else "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if is_percent(key):
        return f"{100 * v:.1f} %"
    return f"{v:.4f}"


def fmt_interval(low: Any, high: Any, key: str = "") -> str:
    """'(91.4–94.5)' for percentages, '(0.0210–0.0350)' otherwise; '' when the interval is unknown."""
    if low is None or high is None:
        return ""
    lo, hi = float(low), float(high)
    if math.isnan(lo) or math.isnan(hi):
        return ""
    if is_percent(key):
        return f"({100 * lo:.1f}–{100 * hi:.1f})"
    return f"({lo:.4f}–{hi:.4f})"


def fmt_with_interval(metrics: dict, key: str) -> str:
    """'93.10 % (91.4–94.5)': a metric with its 95 % interval when summary metrics carry one."""
    text = fmt(metrics.get(key), key)
    ci = fmt_interval(metrics.get(key + CI_LOW), metrics.get(key + CI_HIGH), key)
    return f"{text} {ci}" if ci else text
