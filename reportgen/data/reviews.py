"""Reviewer verdicts on flagged samples, carried from one audit to the next.

`reportgen audit` writes `review.csv` beside `flagged.csv`: one row per flagged sample, named the
way flagged.csv names it (split and row of the source), with empty `verdict`, `label` and `note`
columns for a reviewer to fill. `--reviews FILE` reads such a file back:

- `label_ok`: the reviewer kept the given label; the sample is not flagged again.
- `label_wrong`: a confirmed label error; `label` is the corrected label (a class name or index).
  With --apply-reviews the corrected label replaces the given one for the checker and the metrics.
- `ambiguous`: the reviewer could not decide; the sample stays a candidate, marked as reviewed.

A row with an empty verdict is an unreviewed template row and is ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError

REVIEW_FILE = "review.csv"
# Columns of review.csv, in order; `split` and `row` name the sample, the rest is the reviewer's.
REVIEW_COLUMNS = ("split", "row", "file", "given", "suggested", "verdict", "label", "note")
# Columns a --reviews file must have.
REQUIRED_COLUMNS = ("split", "row", "verdict", "label", "note")
VERDICTS = ("label_wrong", "label_ok", "ambiguous")


@dataclass(frozen=True)
class Reviews:
    """Reviewer verdicts, aligned with the rows of one Dataset.

    verdict: (N,) object array: "label_wrong", "label_ok", "ambiguous" or "" (not reviewed).
    corrected: (N,) int64 corrected label for "label_wrong" rows, -1 elsewhere.
    note: (N,) object array of the reviewers' notes ("" when none).
    source: the file they came from.
    """

    verdict: np.ndarray
    corrected: np.ndarray
    note: np.ndarray
    source: str

    @property
    def reviewed(self) -> np.ndarray:
        """(N,) bool: a verdict was given."""
        return self.verdict != ""

    def counts(self) -> dict[str, int]:
        """Samples per verdict, and all reviewed."""
        out = {v: int(np.sum(self.verdict == v)) for v in VERDICTS}
        out["reviewed"] = int(self.reviewed.sum())
        return out

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """A copy of `labels` with every confirmed label error replaced by its corrected label."""
        out = np.array(labels, dtype=np.int64, copy=True)
        wrong = self.verdict == "label_wrong"
        out[wrong] = self.corrected[wrong]
        return out


def no_reviews(n: int) -> Reviews:
    """N samples, none reviewed."""
    return Reviews(np.full(n, "", dtype=object), np.full(n, -1, np.int64), np.full(n, "", dtype=object), "")


def _parse_label(text: str, class_names: Sequence[str]) -> int | None:
    """A class name, or an integer index into the classes; None when it is neither."""
    if text in class_names:
        return list(class_names).index(text)
    try:
        k = int(text)
    except ValueError:
        return None
    return k if 0 <= k < len(class_names) else None


def read(path: str | Path, *, splits: np.ndarray, rows: np.ndarray, class_names: Sequence[str]) -> Reviews:
    """Read a review file and align it with the samples named by (splits[i], rows[i]).

    Args:
        path: a CSV with the REQUIRED_COLUMNS (review.csv from an earlier audit, filled in).
        splits: (N,) str source split of each sample of the data set.
        rows: (N,) int64 source row of each sample.
        class_names: the K class names (a corrected label may be a name or an index).
    Returns:
        Reviews for the N samples (unreviewed where the file has no verdict).
    Raises:
        DataError: one line naming the file and the CSV line: unreadable file, missing column, a row
            that names no sample, an unknown verdict, a label out of range, a duplicate row, or a
            label_wrong row without a label.
    """
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
            header = list(table[0].keys()) if table else []
    except FileNotFoundError:
        raise DataError(f"{p}: no such review file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{p}: unreadable review file ({e.__class__.__name__})") from e
    if not table:
        raise DataError(f"{p}: no rows (expected the columns {', '.join(REQUIRED_COLUMNS)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(missing)} (a review file has {', '.join(REQUIRED_COLUMNS)})")
    where = {(str(s), int(r)): i for i, (s, r) in enumerate(zip(splits, rows))}
    n = len(rows)
    out = no_reviews(n)
    verdict, corrected, note = out.verdict, out.corrected, out.note
    seen: dict[tuple[str, int], int] = {}
    for line, rec in enumerate(table, start=2):  # line 1 is the header
        v = (rec.get("verdict") or "").strip()
        split = (rec.get("split") or "").strip().lstrip("'")
        try:
            row = int((rec.get("row") or "").strip())
        except ValueError:
            raise DataError(f"{p}: line {line}: row {rec.get('row')!r} is not an integer") from None
        key = (split, row)
        if key not in where:
            raise DataError(f"{p}: line {line}: split {split!r} row {row} names no sample of this data set")
        if key in seen:
            raise DataError(f"{p}: line {line}: split {split!r} row {row} is reviewed twice (first on line {seen[key]})")
        seen[key] = line
        if not v:
            continue
        if v not in VERDICTS:
            raise DataError(f"{p}: line {line}: unknown verdict {v!r} (use one of {', '.join(VERDICTS)})")
        label_text = (rec.get("label") or "").strip().lstrip("'")
        i = where[key]
        if v == "label_wrong":
            if not label_text:
                raise DataError(f"{p}: line {line}: verdict label_wrong needs the corrected label in the 'label' column")
            k = _parse_label(label_text, class_names)
            if k is None:
                raise DataError(f"{p}: line {line}: label {label_text!r} is not a class name or an index in [0, {len(class_names)})")
            corrected[i] = k
        elif label_text and _parse_label(label_text, class_names) is None:
            raise DataError(f"{p}: line {line}: label {label_text!r} is not a class name or an index in [0, {len(class_names)})")
        verdict[i] = v
        note[i] = (rec.get("note") or "").strip()
    return Reviews(verdict, corrected, note, str(p))


def template_rows(flagged_rows: Sequence[dict]) -> list[dict]:
    """review.csv rows for the flagged samples: how to name each sample, and empty reviewer columns."""
    return [{"split": r["split"], "row": r["row"], "file": r.get("file", ""), "given": r["given"], "suggested": r["suggested"],
             "verdict": "", "label": "", "note": ""} for r in flagged_rows]
