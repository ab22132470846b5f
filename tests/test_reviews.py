"""Reviewer verdicts: reading review files, every bad file case, and the effect on labels."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.data import reviews as R
from reportgen.errors import DataError

SPLITS = np.array(["train", "train", "test", "test", "test"])
ROWS = np.array([0, 1, 0, 1, 2])
NAMES = ["cat", "dog", "eel"]


def write(tmp_path, text: str):
    p = tmp_path / "review.csv"
    p.write_text(text, encoding="utf-8")
    return p


def read(path):
    return R.read(path, splits=SPLITS, rows=ROWS, class_names=NAMES)


def test_verdicts_are_aligned_with_the_samples_and_applied(tmp_path):
    p = write(tmp_path, "split,row,given,suggested,verdict,label,note\n"
                        "test,1,cat,dog,label_wrong,dog,clearly a dog\n"
                        "train,0,dog,cat,label_ok,,\n"
                        "test,2,eel,cat,ambiguous,,blurry\n"
                        "train,1,cat,eel,,,\n")  # an unfilled template row: not reviewed
    rv = read(p)
    assert rv.verdict.tolist() == ["label_ok", "", "", "label_wrong", "ambiguous"]
    assert rv.corrected.tolist() == [-1, -1, -1, 1, -1]
    assert rv.note[3] == "clearly a dog" and rv.note[4] == "blurry"
    assert rv.counts() == {"label_wrong": 1, "label_ok": 1, "ambiguous": 1, "reviewed": 3}
    assert rv.apply(np.array([1, 0, 2, 0, 2])).tolist() == [1, 0, 2, 1, 2]


def test_corrected_label_may_be_an_index(tmp_path):
    rv = read(write(tmp_path, "split,row,verdict,label,note\ntest,0,label_wrong,2,\n"))
    assert rv.corrected[2] == 2


@pytest.mark.parametrize("body, message", [
    ("test,9,label_ok,,\n", r"line 2: split 'test' row 9 names no sample of this data set"),
    ("nope,0,label_ok,,\n", r"line 2: split 'nope' row 0 names no sample"),
    ("test,x,label_ok,,\n", r"line 2: row 'x' is not an integer"),
    ("test,0,maybe,,\n", r"line 2: unknown verdict 'maybe' \(use one of label_wrong, label_ok, ambiguous\)"),
    ("test,0,label_wrong,7,\n", r"line 2: label '7' is not a class name or an index in \[0, 3\)"),
    ("test,0,label_wrong,wolf,\n", r"line 2: label 'wolf' is not a class name"),
    ("test,0,label_ok,,\ntest,0,label_ok,,\n", r"line 3: split 'test' row 0 is reviewed twice \(first on line 2\)"),
    ("test,0,label_wrong,,\n", r"line 2: verdict label_wrong needs the corrected label in the 'label' column"),
])
def test_bad_review_files_give_one_line_errors(tmp_path, body, message):
    p = write(tmp_path, "split,row,verdict,label,note\n" + body)
    with pytest.raises(DataError, match=message) as e:
        read(p)
    assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value)


def test_missing_columns_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) verdict, label"):
        read(write(tmp_path, "split,row,note\ntest,0,x\n"))
    with pytest.raises(DataError, match="no rows"):
        read(write(tmp_path, ""))
    with pytest.raises(DataError, match="no such review file"):
        read(tmp_path / "absent.csv")


def test_template_rows_name_samples_like_flagged_csv():
    rows = R.template_rows([{"rank": 1, "split": "test", "row": 4, "given": "cat", "suggested": "dog", "p_given": 0.1}])
    assert rows == [{"split": "test", "row": 4, "file": "", "given": "cat", "suggested": "dog", "verdict": "", "label": "",
                     "note": ""}]
    assert list(rows[0]) == list(R.REVIEW_COLUMNS)
