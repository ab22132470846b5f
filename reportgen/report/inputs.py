"""What the report is built from: every statistic of an audit, per inference mode, plus the label check.

Both engines end here: the local engine finishes its merged sums on one machine, the Beam engine on many shards,
and both hand the report an `AuditResults`. The report, the archive, the gates and `compare` read only this (and
the summary.json written from it), so they cannot tell the engines apart. Types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stats.summary import ModeStats

# Images in the flagged gallery (figures show them five per row).
FLAGGED_GALLERY_SIZE = 10
# Model errors shown in the errors gallery (one page at most), grouped by confusion pair.
ERRORS_GALLERY_SIZE = 72
# Model errors listed as examples in the label section (the audited model wrong, the checker agreeing with the label).
MODEL_ERROR_EXAMPLES = 8


@dataclass(frozen=True)
class DataSummary:
    """The audited samples as the report names them.

    name: data set name; class_names: K names; class_counts: (K,) given labels per class; count: N;
    provenance: data.Provenance as a dict; index_sha256: sha256 of the audited (split, row) pairs.
    """

    name: str
    class_names: list[str]
    class_counts: list[int]
    count: int
    provenance: dict
    index_sha256: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class GalleryItem:
    """One picture of a gallery: how the data set names the sample, its labels, the ranked value, its probabilities.

    label, predicted: class indices (for the flagged gallery: given and suggested); value: the ranked number;
    probs: (K,) probabilities (the checker's for flagged samples); std: (K,) spread over the samples or None;
    image: (H, W, C) uint8.
    """

    split: str
    source_row: int
    label: int
    predicted: int
    value: float
    probs: np.ndarray
    std: np.ndarray | None
    image: np.ndarray


@dataclass(frozen=True)
class FlaggedSamples:
    """Every flagged sample, most likely issue first; every array is (M,).

    split: str source split; row: int64 source row; file: str image file ("" when none); sample_id: str (data.datasets
    Dataset.sample_ids); given, suggested: int64 class indices; self_confidence: float64 p(given); score: float64
    ranking score; audited_prediction: int64 the audited model's prediction (-1 when not audited); review: str verdict.
    """

    split: np.ndarray
    row: np.ndarray
    file: np.ndarray
    sample_id: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    score: np.ndarray
    audited_prediction: np.ndarray
    review: np.ndarray

    def __len__(self) -> int:
        return int(self.row.shape[0])


@dataclass(frozen=True)
class LabelSummary:
    """The label check: its checker, estimates, flagged samples, cases and reviews.

    rule, rank_by: names (stats.labels.RULES, RANKERS); n_checked: labels checked; checked_sha256: of their
    (split, row) pairs; thresholds: (K,) (NaN: never given); calibrated_joint: (K, K); per_class_issues: (K,) flags per
    given label; n_estimated, n_estimated_ci: the estimated number of label errors and its interval; checker: plain
    data (engines' checker_info); cases: {"label_candidates", "model_errors", "ambiguous"} or None without an
    independent checker; model_error_rows: examples; reviews: counts plus "source"; n_unreviewed_flags; flagged;
    reviewed: every sample with a verdict ({split, row, file, sample_id, given, verdict, label, note}).
    """

    rule: str
    rank_by: str
    n_checked: int
    checked_sha256: str
    thresholds: np.ndarray
    calibrated_joint: np.ndarray
    per_class_issues: np.ndarray
    n_estimated: int
    n_estimated_ci: list
    checker: dict
    cases: dict | None
    model_error_rows: list[dict]
    reviews: dict
    n_unreviewed_flags: int
    flagged: FlaggedSamples
    reviewed: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class AuditResults:
    """Everything the report reads.

    data: DataSummary; modes: inference mode -> stats.summary.ModeStats; shipped: the mode that ships, whose numbers
    lead (summary.json's metrics); sampled: the mode with S > 1 samples whose uncertainty split is reported, or None;
    n_passes: S; labels: LabelSummary; galleries: key -> GalleryItems ("gallery_aleatoric", "gallery_epistemic" or
    "gallery_entropy", "gallery_flagged", "gallery_errors"); engine: "local" or "beam"; per_sample_files: (name in the
    report folder, path on disk) of per-sample files a sharded run wrote already; ood: the uncertainty scores judged on
    shifted images (engines.local.ood_check) or None; worth: whether the epistemic estimate adds to plain confidence and
    aleatoric uncertainty on the audited samples (engines.local.epistemic_worth) or None.
    """

    data: DataSummary
    modes: dict
    shipped: str
    sampled: str | None
    n_passes: int
    labels: LabelSummary
    galleries: dict = field(default_factory=dict)
    engine: str = "local"
    per_sample_files: tuple = ()
    ood: dict | None = None
    worth: dict | None = None
    baseline: dict | None = None

    @property
    def lead(self) -> ModeStats:
        """The shipped mode's statistics."""
        return self.modes[self.shipped]

    @property
    def uncertainty(self) -> ModeStats:
        """The mode whose uncertainty split is reported: the sampled one, else the shipped one."""
        return self.modes[self.sampled or self.shipped]

    @property
    def metrics(self) -> dict:
        """summary.json's metrics: the shipped mode's, the uncertainty split of the sampled mode (total = aleatoric +
        epistemic of that mode), the label check's."""
        out = dict(self.lead.metrics)
        out["n_passes"] = int(self.n_passes)
        for key in ("mean_entropy", "mean_aleatoric", "mean_epistemic"):
            for suffix in ("", "_ci_low", "_ci_high"):
                out[key + suffix] = self.uncertainty.metrics.get(key + suffix)
        out.update(label_metrics(self.labels))
        return out


def label_metrics(li: LabelSummary) -> dict:
    """The label check's numbers for summary.json (plain Python values).

    Without an independent checker the flags are the audited model's (or the saved probabilities') own confident
    disagreements: their rate is an upper bound on label errors, so it is "disagreement_rate", and no label-error
    rate is claimed. With one, "label_error_rate" is confident learning's estimate with its interval.
    """
    independent = bool(li.checker.get("independent"))
    n = max(1, int(li.n_checked))
    lo, hi = li.n_estimated_ci if li.n_estimated_ci else (None, None)
    out = {
        "n_checked": int(li.n_checked),
        "n_flagged": int(len(li.flagged)),
        "n_issues_estimated": int(li.n_estimated),
        "label_error_rate": li.n_estimated / n if independent else None,
        "label_error_rate_ci_low": lo / n if independent and lo is not None else None,
        "label_error_rate_ci_high": hi / n if independent and hi is not None else None,
        "disagreement_rate": None if independent else li.n_estimated / n,
        "checker_accuracy": li.checker["accuracy"] if independent else None,
        "checker_accuracy_ci_low": li.checker["accuracy_ci"][0] if independent else None,
        "checker_accuracy_ci_high": li.checker["accuracy_ci"][1] if independent else None,
        "n_model_errors": None if li.cases is None else int(li.cases["model_errors"]),
        "n_ambiguous_errors": None if li.cases is None else int(li.cases["ambiguous"]),
        "n_reviewed": int(li.reviews.get("reviewed", 0)),
        "n_confirmed_label_errors": int(li.reviews.get("label_wrong", 0)),
        "n_reviewed_label_ok": int(li.reviews.get("label_ok", 0)),
        "n_unreviewed_flags": int(li.n_unreviewed_flags),
    }
    return out
