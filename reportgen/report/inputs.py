"""What the report is built from: dataset-level summaries of an audit plus a bounded sample of rows.

Both engines end here. The local engine reduces its per-sample arrays (pipeline.reduce_local); the Beam
engine (reportgen.beam) merges the same summaries from shards. The report, the figures, the archive,
the gates and `compare` read only a `ReducedAudit`, so they cannot tell the engines apart:

- exact summaries: metrics, calibration bins, per-class rows, the confusion matrix, the label check's
  estimates and every flagged sample;
- a bounded display sample (`DisplaySample`): a seeded, deterministic choice of at most DISPLAY_ROWS
  audited rows (all of them when N <= DISPLAY_ROWS) for the scatter, strip and histogram figures;
- keyed top-N lists for the galleries (`GalleryItem`), with their images and probabilities.

Types only (numpy and intervals' row hash); nothing here computes a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stats import intervals
# Rows of the display sample: the figures' scatter/strip/histograms draw from at most this many rows.
DISPLAY_ROWS = 20_000
# Seed of the display sample's row hash (fixed, like figures.SEED, so a rerun draws the same picture).
DISPLAY_SEED = 0
# Images per uncertainty gallery and in the flagged gallery (figures show them five per row).
UNCERTAINTY_GALLERY_SIZE = 5
FLAGGED_GALLERY_SIZE = 10


@dataclass(frozen=True)
class DataSummary:
    """The audited samples as the report names them.

    name: data set name; class_names: K names; class_counts: (K,) given labels per class;
    count: N; provenance: data.Provenance as a dict; index_sha256: sha256 of the audited (split, row) pairs.
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
class DisplaySample:
    """At most DISPLAY_ROWS audited rows for figures, in ascending row order; every array is (L,).

    position: int64 position among the audited rows; label, predicted: int64; correct: bool;
    confidence, total, aleatoric, epistemic: float64 (epistemic zeros when not measured).
    """

    position: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray

    def __len__(self) -> int:
        return int(self.position.shape[0])


def display_key(positions) -> np.ndarray:
    """(n,) float64 row hash that picks the display sample: the DISPLAY_ROWS smallest keys are drawn."""
    return intervals.row_uniform(positions, seed=DISPLAY_SEED, stream=intervals.DISPLAY_STREAM)


def display_positions(n: int) -> np.ndarray:
    """Positions (ascending) of the display sample of N audited rows: all of them, or the DISPLAY_ROWS smallest keys."""
    rows = np.arange(n)
    if n <= DISPLAY_ROWS:
        return rows
    return np.sort(rows[np.argsort(display_key(rows), kind="stable")[:DISPLAY_ROWS]])


@dataclass(frozen=True)
class GalleryItem:
    """One picture of a gallery: the sample, its labels, the ranked value and its class probabilities.

    split, source_row: how the data set names it; label, predicted: class indices (for the flagged
    gallery: given and suggested); value: the ranked number (an uncertainty, or p(given));
    probs: (K,) mean probabilities (the checker's for flagged samples); std: (K,) spread over the
    stochastic samples or None; image: (H, W, C) uint8 or None when the audit has no images.
    """

    split: str
    source_row: int
    label: int
    predicted: int
    value: float
    probs: np.ndarray
    std: np.ndarray | None
    image: np.ndarray | None


@dataclass(frozen=True)
class FlaggedSamples:
    """Every flagged sample, most likely issue first; every array is (M,).

    split: str source split; row: int64 source row; file: str image file ("" when none); given,
    suggested: int64 class indices; self_confidence: float64 p(given); score: float64 ranking score;
    audited_prediction: int64 the audited model's prediction (-1 when the sample was not audited);
    review: str a reviewer's verdict ("" when none).
    """

    split: np.ndarray
    row: np.ndarray
    file: np.ndarray
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
    """The label check, reduced: estimates, flagged samples, cases and reviews.

    rule, rank_by: names (label_issues.RULES, RANKERS); n_checked: labels checked; checked_sha256: of their
    (split, row) pairs; thresholds: (K,) per-class thresholds (NaN: never given); calibrated_joint: (K, K);
    per_class_issues: (K,) flags per given label; n_issues_estimated: int; checker: plain data
    (pipeline._checker_info); cases: {"label_candidates", "model_errors", "ambiguous"} counts or None;
    model_error_rows: example rows [{split, row, given, predicted, checker_p_given}]; reviews: counts
    (reviews.Reviews.counts) plus "source"; n_unreviewed_flags: int; flagged: FlaggedSamples;
    reviewed: [{split, row, file, given, verdict, label, note}] every sample with a verdict (review.csv).
    """

    rule: str
    rank_by: str
    n_checked: int
    checked_sha256: str
    thresholds: np.ndarray
    calibrated_joint: np.ndarray
    per_class_issues: np.ndarray
    n_issues_estimated: int
    checker: dict
    cases: dict | None
    model_error_rows: list[dict]
    reviews: dict
    n_unreviewed_flags: int
    flagged: FlaggedSamples
    reviewed: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReducedAudit:
    """Everything the report reads, as exact summaries plus a bounded sample.

    data: DataSummary; metrics: summary.json's metrics; calibration: uncertainty.CalibrationStats;
    temperature: uncertainty.TemperatureScaling; selective: uncertainty.SelectiveStats; per_class: K dicts
    (uncertainty.per_class); errors: uncertainty.error_facts; epistemic_measured: bool; n_passes: S;
    labels: LabelSummary; display: DisplaySample; galleries: key -> GalleryItems ("gallery_aleatoric",
    "gallery_epistemic" or "gallery_entropy", "gallery_flagged"); engine: "local" or "beam";
    resolution: what a sharded run computed from histograms, and how finely (empty when exact);
    per_sample_files: (name in the report folder, path on disk) of per-sample files written already.
    """

    data: DataSummary
    metrics: dict
    calibration: object
    temperature: object
    selective: object
    per_class: list[dict]
    errors: dict
    epistemic_measured: bool
    n_passes: int
    labels: LabelSummary
    display: DisplaySample
    galleries: dict[str, list[GalleryItem]]
    engine: str = "local"
    resolution: dict = field(default_factory=dict)
    per_sample_files: tuple[tuple[str, str], ...] = ()
