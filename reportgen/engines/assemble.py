"""The pieces of an AuditResults that name samples: data summary, label summary, galleries with their pictures.

Both engines finish their statistics as stats.* results; this module names the rows they point at (source split,
row, file, sample id) and attaches the few pictures the galleries show, so a local and a Beam run of the same
rows give the same report.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..report import inputs as R
from ..stats import intervals
from ..stats.labels import LabelCheck, separate_cases

# What the report says about each kind of label checker.
CHECKER_KINDS = {
    "cv": None,  # described by the checker itself (model.checker.CheckerResult)
    "saved": ("the saved probabilities themselves (reportgen assumes they are out-of-sample); no separate checker, so label "
              "errors and the model's own errors cannot be told apart", "the saved probabilities"),
    "audited_model": ("no independent checker: the audited model's own held-out probabilities; its confident disagreements "
                      "mix label errors with its own mistakes (rerun with --cv K for a checker)", "the audited model itself"),
}


def data_summary(ds) -> R.DataSummary:
    """The audited data set (data.datasets.Dataset) as the report names it."""
    return R.DataSummary(ds.name, list(ds.class_names), np.bincount(ds.labels, minlength=ds.n_classes).tolist(),
                         int(len(ds.labels)), asdict(ds.provenance), ds.index_sha256())


def checker_info(count, agree, class_names: list[str], *, kind: str, checker=None) -> dict:
    """What the report says about the checker, from per-given-label counts and how often its argmax agrees.

    Args:
        count, agree: (K,) samples per given label and those whose checker argmax is the given label;
        kind: a CHECKER_KINDS key; checker: model.checker.CheckerResult with kind "cv".
    """
    count, agree = np.asarray(count, dtype=np.int64), np.asarray(agree, dtype=np.int64)
    n, right = int(count.sum()), int(agree.sum())
    ci = intervals.wilson(agree, count)
    per_class = [{"name": class_names[c], "count": int(count[c]), "accuracy": float(agree[c] / count[c]) if count[c] else None,
                  "accuracy_ci": [float(v) for v in ci[c]] if count[c] else None} for c in range(len(class_names))]
    info = {"kind": kind, "independent": kind == "cv", "accuracy": right / n, "accuracy_ci": [float(v) for v in intervals.wilson(right, n)],
            "per_class": per_class, "recipe": None, "folds": None, "fold_sha256": []}
    if kind == "cv":
        info.update(recipe=checker.recipe, folds=checker.folds, description=checker.description, fold_sha256=checker.fold_sha256,
                    short=f"{checker.folds}-fold cross-validation, {checker.recipe} checker")
    else:
        info["description"], info["short"] = CHECKER_KINDS[kind]
    return info


def label_summary(check: LabelCheck, *, checker: dict, names: list[str], checked=None, checked_sha256: str = "",
                  reviews=None, cases: np.ndarray | None = None, audited_prediction: np.ndarray | None = None,
                  audit=None, audit_pos: np.ndarray | None = None, checker_probs: np.ndarray | None = None) -> R.LabelSummary:
    """The report's label section from the finished passes.

    Args:
        check: the passes' result; checker: checker_info; names: K class names.
        checked: the data.datasets.Dataset whose rows were checked (None: rows named by their global index, "all").
        reviews: data.reviews.Reviews aligned with the checked rows (reviewed label_ok rows are not flagged again).
        cases: (N,) separate_cases of the audited rows, or None without an independent checker.
        audited_prediction: (M,) the audited model's prediction per checked row (-1 where not audited).
        audit, audit_pos, checker_probs: the audited Dataset, the checked row of each audited row, and the checker's
            probabilities of the checked rows, for the model-error examples.
    """
    rec = check.flagged
    if reviews is not None and len(rec):
        rec = rec[reviews.verdict[rec["row"]] != "label_ok"]
    rows = rec["row"].astype(np.int64)
    m, k = len(rec), len(names)
    if checked is None:
        split, source_row, file, sample = np.full(m, "all").astype(str), rows, np.full(m, ""), np.full(m, "")
    else:
        files = checked.source_files
        split, source_row = np.asarray(checked.source_split[rows]).astype(str), np.asarray(checked.source_index[rows], dtype=np.int64)
        file = np.full(m, "") if files is None else np.asarray(files[rows]).astype(str)
        sample = np.asarray(checked.sample_ids(rows)).astype(str) if m else np.full(0, "")
    verdicts = np.full(m, "") if reviews is None else np.asarray(reviews.verdict[rows]).astype(str)
    predicted = np.full(m, -1, dtype=np.int64) if audited_prediction is None else audited_prediction[rows]
    flagged = R.FlaggedSamples(split=split, row=np.asarray(source_row, dtype=np.int64), file=file, sample_id=sample,
                               given=rec["given"].astype(np.int64), suggested=rec["suggested"].astype(np.int64),
                               self_confidence=rec["p_given"], score=rec["score"], audited_prediction=predicted, review=verdicts)
    case_counts, examples = None, []
    if cases is not None:
        case_counts = {"label_candidates": int(np.sum(cases == "label_candidate")), "model_errors": int(np.sum(cases == "model_error")),
                       "ambiguous": int(np.sum(cases == "ambiguous"))}
        for i in np.flatnonzero(cases == "model_error")[:R.MODEL_ERROR_EXAMPLES]:
            j = audit_pos[i]
            examples.append({"split": str(audit.source_split[i]), "row": int(audit.source_index[i]), "given": names[audit.labels[i]],
                             "predicted": names[int(audited_prediction[j])], "checker_p_given": float(checker_probs[j, audit.labels[i]])})
    counts = {"label_wrong": 0, "label_ok": 0, "ambiguous": 0, "reviewed": 0, "source": ""}
    reviewed = []
    if reviews is not None:
        counts = {**reviews.counts(), "source": reviews.source}
        for i in np.flatnonzero(reviews.reviewed):
            reviewed.append({"split": str(checked.source_split[i]), "row": int(checked.source_index[i]),
                             "file": "" if checked.source_files is None else str(checked.source_files[i]),
                             "sample_id": str(checked.sample_ids(np.array([i]))[0]), "given": names[checked.labels[i]],
                             "verdict": str(reviews.verdict[i]), "note": str(reviews.note[i]),
                             "label": names[reviews.corrected[i]] if reviews.verdict[i] == "label_wrong" else ""})
    unreviewed = int(np.sum(verdicts == ""))
    return R.LabelSummary(
        rule=check.rule, rank_by=check.rank_by, n_checked=check.n, checked_sha256=checked_sha256,
        thresholds=check.thresholds, calibrated_joint=check.estimates.calibrated,
        per_class_issues=np.bincount(flagged.given, minlength=k).astype(np.int64), n_estimated=check.estimates.n_estimated,
        n_estimated_ci=check.estimates.n_estimated_ci, checker=checker, cases=case_counts, model_error_rows=examples,
        reviews=counts, n_unreviewed_flags=unreviewed, flagged=flagged, reviewed=reviewed)


def cases_of(audit, predicted: np.ndarray, checker_probs: np.ndarray, flagged_rows: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """separate_cases of the audited rows, given the checked rows they are (checker_probs are theirs) and the flags."""
    mask = np.zeros(len(audit.labels), dtype=bool)
    mask[flagged_rows] = True
    return separate_cases(audit.labels, predicted, checker_probs, mask, thresholds)


def galleries(results_modes: dict, sampled: str | None, shipped: str, ds, flagged: R.FlaggedSamples, flagged_rows: np.ndarray,
              flagged_probs: np.ndarray, flagged_images) -> dict:
    """The galleries with their pictures: the most uncertain rows of the sampled mode (by aleatoric and epistemic, else
    the shipped mode's by total uncertainty) and the first flagged samples (their pictures from `flagged_images`)."""
    mode = results_modes[sampled or shipped]
    out: dict[str, list] = {}
    keys = {"aleatoric": "gallery_aleatoric", "epistemic": "gallery_epistemic", "total": "gallery_entropy"}
    for name, rows in mode.galleries.items():
        pictures = np.asarray(ds.images[np.array([r["row"] for r in rows], dtype=np.int64)]) if rows else []
        out[keys[name]] = [R.GalleryItem(str(ds.source_split[r["row"]]), int(ds.source_index[r["row"]]), r["label"], r["predicted"],
                                         r["value"], np.asarray(r["probs"]), None if r["std"] is None else np.asarray(r["std"]), pic)
                           for r, pic in zip(rows, pictures)]
    out["gallery_errors"] = errors_gallery(results_modes[shipped], ds)
    top = slice(0, R.FLAGGED_GALLERY_SIZE)
    if len(flagged):
        pictures = np.asarray(flagged_images[flagged_rows[top]])
        out["gallery_flagged"] = [
            R.GalleryItem(str(s), int(r), int(g), int(sg), float(pg), np.asarray(p), None, pic)
            for s, r, g, sg, pg, p, pic in zip(flagged.split[top], flagged.row[top], flagged.given[top], flagged.suggested[top],
                                               flagged.self_confidence[top], flagged_probs[top], pictures)]
    return out


def errors_gallery(mode, ds) -> list:
    """Every error of a mode's display sample (all audited rows up to stats.summary.DISPLAY_ROWS), at most
    report.inputs.ERRORS_GALLERY_SIZE, grouped by confusion pair (the most frequent pair first), lowest confidence first
    inside a pair."""
    d = mode.display
    wrong = [i for i, ok in enumerate(d["correct"]) if not ok]
    groups: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        groups.setdefault((d["label"][i], d["predicted"][i]), []).append(i)
    order = sorted(groups, key=lambda pair: (-len(groups[pair]), pair))
    picked = [i for pair in order for i in sorted(groups[pair], key=lambda i: d["confidence"][i])][:R.ERRORS_GALLERY_SIZE]
    if not picked:
        return []
    rows = np.array([d["position"][i] for i in picked], dtype=np.int64)
    pictures = np.asarray(ds.images[rows])
    return [R.GalleryItem(str(ds.source_split[r]), int(ds.source_index[r]), int(d["label"][i]), int(d["predicted"][i]),
                          float(d["confidence"][i]), np.zeros(0), None, pic) for i, r, pic in zip(picked, rows, pictures)]
