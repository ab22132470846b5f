"""The files of a report folder: report.html/.pdf/.md, summary.json, model_card.json, flagged.csv, review.csv,
predictions.csv.gz and manifest.json, written in one process, one after the other."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..data.reviews import REVIEW_COLUMNS, REVIEW_FILE, template_rows
from . import card as model_card
from . import render
from .folder import FLAGGED_FILE, HTML_FILE, MD_FILE, PDF_FILE, SUMMARY_FILE, write_manifest

# Columns of flagged.csv, in order (compare.py and review files name a sample by "sample_id", else "split" and "row").
FLAGGED_COLUMNS = ("rank", "split", "row", "file", "sample_id", "given", "suggested", "p_given", "score", "audited_prediction", "review")
# The per-sample export, written in chunks of this many rows with a fast gzip level (it can be 10^6 rows).
PREDICTIONS_FILE = "predictions.csv.gz"
PREDICTIONS_CHUNK = 65_536
PREDICTIONS_GZIP_LEVEL = 1


def flagged_rows(results, *, limit: int | None = None) -> list[dict]:
    """One row per flagged sample (the first `limit`), most likely first, named by its source split, row and sample id.

    Columns FLAGGED_COLUMNS: rank, split, row, file (the image file, for folders and manifests), sample_id, given,
    suggested, p_given (the checker's probability of the given label), score, audited_prediction (when the sample was
    audited), review (a reviewer's verdict, if any).
    """
    f = results.labels.flagged
    names = results.data.class_names
    return [
        {"rank": r + 1, "split": str(f.split[i]), "row": int(f.row[i]), "file": str(f.file[i]), "sample_id": str(f.sample_id[i]),
         "given": names[f.given[i]], "suggested": names[f.suggested[i]], "p_given": round(float(f.self_confidence[i]), 6),
         "score": round(float(f.score[i]), 6), "audited_prediction": names[f.audited_prediction[i]] if f.audited_prediction[i] >= 0 else "",
         "review": str(f.review[i])}
        for r, i in enumerate(range(len(f))[slice(0, limit)])
    ]


def review_rows(results) -> list[dict]:
    """review.csv: every flagged sample and every sample reviewed before, with the verdicts known so far."""
    rows = template_rows(flagged_rows(results))
    known = {(r["split"], r["row"]): r for r in rows}
    for rv in results.labels.reviewed:
        key = (rv["split"], rv["row"])
        row = known.get(key)
        if row is None:
            row = {"split": key[0], "row": key[1], "file": rv["file"], "sample_id": rv["sample_id"], "given": rv["given"],
                   "suggested": "", "verdict": "", "label": "", "note": ""}
            rows.append(row)
        row.update(verdict=rv["verdict"], note=rv["note"], label=rv["label"])
    return rows


def write_csv(path: Path, rows: Sequence[Mapping], columns: Sequence[str]) -> Path:
    """A CSV file whose text cells cannot start a spreadsheet formula (render.csv_cell)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows({k: render.csv_cell(v) for k, v in row.items()} for row in rows)
    return path


def write_prediction_rows(path, *, split, rows, files, labels, predicted, probs, confidence, total, aleatoric, epistemic,
                          flagged, cases, review) -> Path:
    """predictions.csv.gz: one row per audited sample, enough to recompute every per-sample number.

    Columns: split, row (the sample in its source), file (its image file for folders and manifests), given, predicted
    (class indices; names in summary.json data.class_names), p_0 .. p_{K-1} (the shipped mode's probabilities),
    confidence, total, aleatoric, epistemic (nats, of the sampled mode; epistemic empty when not measured), flagged (1 for
    a candidate for review), case, review. `path`: a path or a binary stream (left open); arrays are (n,), probs (n, K).
    """
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


def summary_of(context: dict) -> dict:
    """summary.json: the context without embedded figures and pictures."""
    return {k: v for k, v in context.items() if k not in ("figures", "galleries", "metric_names")}


def write_all(folder: Path, context: dict, *, html: str, print_html: str, markdown: str, results, predictions=None,
              card: dict | None = None) -> None:
    """Write every file of a report folder into `folder` (a staging folder), the manifest last.

    html, print_html, markdown: the context rendered (context.render_html, its print variant, render_markdown);
    predictions: writes predictions.csv.gz into a path (None: a sharded run's per-shard files, results.per_sample_files,
    are moved in instead).
    """
    (folder / HTML_FILE).write_text(html, encoding="utf-8")
    render.html_to_pdf(print_html, folder, folder / PDF_FILE)
    (folder / MD_FILE).write_text(markdown, encoding="utf-8")
    (folder / SUMMARY_FILE).write_text(json.dumps(summary_of(context), indent=2) + "\n", encoding="utf-8")
    write_csv(folder / FLAGGED_FILE, flagged_rows(results), FLAGGED_COLUMNS)
    write_csv(folder / REVIEW_FILE, review_rows(results), REVIEW_COLUMNS)
    (folder / model_card.CARD_FILE).write_text(json.dumps(render.plain(model_card.model_card_json(card, context)), indent=2) + "\n",
                                               encoding="utf-8")
    if predictions is not None:
        predictions(folder / PREDICTIONS_FILE)
    for name, source in results.per_sample_files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    write_manifest(folder)
