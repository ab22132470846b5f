"""Reviewer verdicts on flagged samples, carried from one audit to the next.

`reportgen audit` writes `review.csv` beside `flagged.csv`: one row per flagged sample, with empty `verdict`,
`label` and `note` columns for a reviewer to fill. `--reviews FILE` reads such a file back:

- `label_ok`: the reviewer kept the given label; the sample is not flagged again.
- `label_wrong`: a confirmed label error; `label` is the corrected label (a class name or index).
  With --apply-reviews the corrected label replaces the given one for the checker and the metrics.
- `ambiguous`: the reviewer could not decide; the sample stays a candidate, marked as reviewed.

A row names its sample by `sample_id` (the image file relative to the data root, or a hash of an array image's
pixels), so adding or reordering images between two audits cannot move a verdict onto another sample; files
written before sample ids existed are matched by `split` and `row`. Either way the row's `given` label must still
be the sample's given label, or the file is refused: the data changed under the review. A row with an empty
verdict is an unreviewed template row and is ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError

REVIEW_FILE = "review.csv"
# Columns of review.csv, in order; `sample_id` (or `split` and `row`) names the sample, the rest is the reviewer's.
REVIEW_COLUMNS = ("split", "row", "file", "sample_id", "given", "suggested", "verdict", "label", "note")
# Columns a --reviews file must have.
REQUIRED_COLUMNS = ("split", "row", "given", "verdict", "label", "note")
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


@dataclass(frozen=True)
class SampleKeys:
    """How the N samples of a data set can be named: source split and row, sample id, given label's name."""

    split: np.ndarray
    row: np.ndarray
    sample_id: object  # callable () -> (N,) str ids, computed only if a review row needs them
    given: list[str]
    class_names: list[str]

    @classmethod
    def of(cls, ds) -> "SampleKeys":
        """The keys of a data.datasets.Dataset."""
        return cls(ds.source_split, ds.source_index, ds.sample_ids, [ds.class_names[c] for c in ds.labels], list(ds.class_names))


def _parse_label(text: str, class_names: Sequence[str]) -> int | None:
    """A class name, or an integer index into the classes; None when it is neither."""
    if text in class_names:
        return list(class_names).index(text)
    try:
        k = int(text)
    except ValueError:
        return None
    return k if 0 <= k < len(class_names) else None


def _table(p: Path) -> list[dict]:
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(f"{p}: no such review file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{p}: unreadable review file ({e.__class__.__name__})") from e
    if not table:
        raise DataError(f"{p}: no rows (expected the columns {', '.join(REQUIRED_COLUMNS)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in table[0]]
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(missing)} (a review file has {', '.join(REQUIRED_COLUMNS)})")
    return table


def read(path: str | Path, keys: SampleKeys) -> Reviews:
    """Read a review file and align it with the samples `keys` names.

    Raises:
        DataError: one line naming the file and the CSV line: unreadable file, missing column, a row that names no
            sample (or whose given label is no longer the sample's), an unknown verdict, a label out of range, a
            duplicate row, or a label_wrong row without a label.
    """
    p = Path(path)
    table = _table(p)
    by_row = {(str(s), int(r)): i for i, (s, r) in enumerate(zip(keys.split, keys.row))}
    by_id: dict[str, int] | None = None
    out = no_reviews(len(keys.row))
    seen: dict[int, int] = {}
    names = keys.class_names
    for line, rec in enumerate(table, start=2):  # line 1 is the header
        sample = (rec.get("sample_id") or "").strip().lstrip("'")
        split = (rec.get("split") or "").strip().lstrip("'")
        if sample:
            if by_id is None:
                by_id = {str(s): i for i, s in enumerate(keys.sample_id())}
            if sample not in by_id:
                raise DataError(f"{p}: line {line}: sample {sample!r} is not in this data set")
            i = by_id[sample]
        else:
            try:
                row = int((rec.get("row") or "").strip())
            except ValueError:
                raise DataError(f"{p}: line {line}: row {rec.get('row')!r} is not an integer") from None
            if (split, row) not in by_row:
                raise DataError(f"{p}: line {line}: split {split!r} row {row} names no sample of this data set")
            i = by_row[(split, row)]
        given = (rec.get("given") or "").strip().lstrip("'")
        if given and given != keys.given[i]:
            raise DataError(f"{p}: line {line}: the review is of a sample given {given!r}, but that sample is now given "
                            f"{keys.given[i]!r} (the data changed since the review; review it again)")
        if i in seen:
            raise DataError(f"{p}: line {line}: the sample of line {seen[i]} is reviewed twice")
        seen[i] = line
        v = (rec.get("verdict") or "").strip()
        if not v:
            continue
        if v not in VERDICTS:
            raise DataError(f"{p}: line {line}: unknown verdict {v!r} (use one of {', '.join(VERDICTS)})")
        label_text = (rec.get("label") or "").strip().lstrip("'")
        if v == "label_wrong" and not label_text:
            raise DataError(f"{p}: line {line}: verdict label_wrong needs the corrected label in the 'label' column")
        k = _parse_label(label_text, names) if label_text else None
        if label_text and k is None:
            raise DataError(f"{p}: line {line}: label {label_text!r} is not a class name or an index in [0, {len(names)})")
        if v == "label_wrong":
            out.corrected[i] = k
        out.verdict[i], out.note[i] = v, (rec.get("note") or "").strip()
    return Reviews(out.verdict, out.corrected, out.note, str(p))


def template_rows(flagged_rows: Sequence[dict]) -> list[dict]:
    """review.csv rows for the flagged samples: how to name each sample, and empty reviewer columns."""
    return [{"split": r["split"], "row": r["row"], "file": r.get("file", ""), "sample_id": r.get("sample_id", ""),
             "given": r["given"], "suggested": r["suggested"], "verdict": "", "label": "", "note": ""} for r in flagged_rows]
