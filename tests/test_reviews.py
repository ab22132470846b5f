"""Reviewer verdicts: reading review files, every bad file case, matching by sample id, and the effect on labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from conftest import run_cli
from reportgen.data import reviews as R
from reportgen.errors import DataError

SPLITS = np.array(["train", "train", "test", "test", "test"])
ROWS = np.array([0, 1, 0, 1, 2])
NAMES = ["cat", "dog", "eel"]
LABELS = [1, 0, 2, 0, 2]  # given labels of the five samples
IDS = np.array(["train/dog/a.png", "train/cat/b.png", "test/eel/c.png", "test/cat/d.png", "test/eel/e.png"], dtype=object)


def keys(ids=IDS):
    return R.SampleKeys(SPLITS, ROWS, lambda: ids, [NAMES[c] for c in LABELS], NAMES)


def write(tmp_path, text: str):
    p = tmp_path / "review.csv"
    p.write_text(text, encoding="utf-8")
    return p


def read(path):
    return R.read(path, keys())


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
    assert rv.apply(np.array(LABELS)).tolist() == [1, 0, 2, 1, 2]


def test_corrected_label_may_be_an_index(tmp_path):
    rv = read(write(tmp_path, "split,row,given,verdict,label,note\ntest,0,eel,label_wrong,2,\n"))
    assert rv.corrected[2] == 2


@pytest.mark.parametrize("body, message", [
    ("test,9,,label_ok,,\n", r"line 2: split 'test' row 9 names no sample of this data set"),
    ("nope,0,,label_ok,,\n", r"line 2: split 'nope' row 0 names no sample"),
    ("test,x,,label_ok,,\n", r"line 2: row 'x' is not an integer"),
    ("test,0,,maybe,,\n", r"line 2: unknown verdict 'maybe' \(use one of label_wrong, label_ok, ambiguous\)"),
    ("test,0,,label_wrong,7,\n", r"line 2: label '7' is not a class name or an index in \[0, 3\)"),
    ("test,0,,label_wrong,wolf,\n", r"line 2: label 'wolf' is not a class name"),
    ("test,0,,label_ok,,\ntest,0,,label_ok,,\n", r"line 3: the sample of line 2 is reviewed twice"),
    ("test,0,,label_wrong,,\n", r"line 2: verdict label_wrong needs the corrected label in the 'label' column"),
    ("test,0,cat,label_ok,,\n", r"line 2: the review is of a sample given 'cat', but that sample is now given 'eel'"),
])
def test_bad_review_files_give_one_line_errors(tmp_path, body, message):
    p = write(tmp_path, "split,row,given,verdict,label,note\n" + body)
    with pytest.raises(DataError, match=message) as e:
        read(p)
    assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value)


def test_a_sample_id_wins_over_split_and_row(tmp_path):
    """Rows move when images are added; the sample id (the image file, or a hash of its pixels) does not."""
    p = write(tmp_path, "split,row,file,sample_id,given,verdict,label,note\n"
                        "test,0,x,test/cat/d.png,cat,label_wrong,dog,\n")  # split/row point at c.png, the id at d.png
    rv = read(p)
    assert rv.verdict.tolist() == ["", "", "", "label_wrong", ""] and rv.corrected[3] == 1
    with pytest.raises(DataError, match=r"line 2: sample 'test/cat/gone.png' is not in this data set"):
        read(write(tmp_path, "split,row,sample_id,given,verdict,label,note\ntest,0,test/cat/gone.png,cat,label_ok,,\n"))


def test_missing_columns_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) given, verdict, label"):
        read(write(tmp_path, "split,row,note\ntest,0,x\n"))
    with pytest.raises(DataError, match="no rows"):
        read(write(tmp_path, ""))
    with pytest.raises(DataError, match="no such review file"):
        read(tmp_path / "absent.csv")


def test_template_rows_name_samples_like_flagged_csv():
    rows = R.template_rows([{"rank": 1, "split": "test", "row": 4, "file": "", "sample_id": "sha256:00ff", "given": "cat",
                             "suggested": "dog", "p_given": 0.1}])
    assert rows == [{"split": "test", "row": 4, "file": "", "sample_id": "sha256:00ff", "given": "cat", "suggested": "dog",
                     "verdict": "", "label": "", "note": ""}]
    assert list(rows[0]) == list(R.REVIEW_COLUMNS)


def test_an_image_added_to_a_class_folder_does_not_move_a_verdict(mnist, tmp_path):
    """The reviewer's case: between two audits one image is added to a class folder. Every later row of that split
    moves by one, so matching by (split, row) would put each verdict on its neighbour and --apply-reviews would rewrite
    the wrong labels without a word. Matched by the file, the verdicts stay on their samples; and a row whose file now
    holds another label is refused in one line before any work."""
    from PIL import Image

    x, y = mnist
    root = tmp_path / "photos"
    for split, rows in (("train", range(0, 160)), ("test", range(160, 200))):
        for i in rows:
            (root / split / str(y[i])).mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(root / split / str(y[i]) / f"{i:04d}.png")
    out = tmp_path / "out"
    first = run_cli(["--quiet", "audit", "--data", str(root), "--epochs", "1", "--mc-samples", "1", "--cv", "0", "--output", str(out),
                     "--name", "m", "--version", "v1"])
    assert first.exit_code == 0, first.output
    rows = list(csv.DictReader(open(out / "m" / "v1" / "review.csv")))
    assert rows and all(r["sample_id"].startswith("test/") and r["sample_id"].endswith(".png") for r in rows)
    target = rows[0]
    target.update(verdict="label_wrong", label=next(n for n in map(str, range(10)) if n != target["given"]), note="checked")
    review = tmp_path / "review.csv"
    with open(review, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow(target)
    # One more image in the same class folder, named to sort first: every row of that folder shifts by one.
    Image.fromarray(x[300]).save(root / "test" / target["given"] / "0000a.png")
    second = run_cli(["--quiet", "audit", "--data", str(root), "--epochs", "1", "--mc-samples", "1", "--cv", "0", "--output", str(out),
                      "--name", "m", "--version", "v2", "--reviews", str(review)])
    assert second.exit_code == 0, second.output
    again = {r["sample_id"]: r for r in csv.DictReader(open(out / "m" / "v2" / "review.csv"))}
    assert again[target["sample_id"]]["verdict"] == "label_wrong" and again[target["sample_id"]]["label"] == target["label"]
    moved = {r["sample_id"] for r in again.values() if r["verdict"]}
    assert moved == {target["sample_id"]}
    # The same review after the file's label changed (the image moved to another class folder): refused in one line.
    old = root / target["sample_id"]
    new_class = target["label"]
    (root / "test" / new_class).mkdir(exist_ok=True)
    old.rename(root / "test" / new_class / old.name)
    target["sample_id"] = f"test/{new_class}/{old.name}"
    with open(review, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(target))
        w.writeheader()
        w.writerow(target)
    third = run_cli(["--quiet", "audit", "--data", str(root), "--epochs", "1", "--mc-samples", "1", "--cv", "0", "--output", str(out),
                     "--name", "m", "--version", "v3", "--reviews", str(review)])
    assert third.exit_code != 0 and len(third.output.strip().splitlines()) == 1
    assert f"the review is of a sample given '{target['given']}', but that sample is now given '{new_class}'" in third.output
    assert not (out / "m" / "v3").exists()
