"""`reportgen compare`: the pure comparisons, then two real audits of two models, compared, listed, verified, indexed."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import run_cli

from reportgen.archive import compare as compare
from reportgen.archive.index import list_versions, write_index

# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("key, old, new, noise, expected", [
    ("accuracy", 0.90, 0.92, 0.01, "better"),
    ("accuracy", 0.92, 0.90, 0.01, "worse"),
    ("accuracy", 0.90, 0.92, 0.025, "same"),  # +2 pp within a ±2.5 pp noise: not called
    ("ece", 0.05, 0.04, 0.005, "better"),
    ("ece", 0.04, 0.05, 0.005, "worse"),
    ("ece", 0.04, 0.05, 0.02, "same"),
    ("aurc", 0.02, 0.03, 0.001, "worse"),
    ("temperature", 0.8, 1.1, 0.01, "better"),  # |0.2| from 1 -> |0.1|
    ("temperature", 1.05, 0.8, 0.01, "worse"),
    ("n_samples", 1000, 2000, 1.0, "changed"),  # describes the data: no better direction
    ("mean_epistemic", None, 0.01, 0.1, "n/a"),
    ("ece_temperature_scaled", 0.05, 0.02, None, "changed"),  # no interval: never better or worse
    ("ece_temperature_scaled", 0.05, 0.0502, None, "same"),
])
def test_change_is_called_only_beyond_its_noise(key, old, new, noise, expected):
    assert compare.change(key, old, new, noise) == expected


def test_noise_combines_both_intervals():
    old = {"accuracy": 0.9, "accuracy_ci_low": 0.88, "accuracy_ci_high": 0.92}
    new = {"accuracy": 0.95, "accuracy_ci_low": 0.935, "accuracy_ci_high": 0.965}
    assert compare.noise("accuracy", old, new) == pytest.approx((0.02 ** 2 + 0.015 ** 2) ** 0.5)
    assert compare.noise("ece", old, new) is None


def test_fmt_delta_units():
    assert compare.fmt_delta("accuracy", 0.0123) == "+1.23 pp"
    assert compare.fmt_delta("ece", -0.0117) == "−0.0117"
    assert compare.fmt_delta("n_flagged", 4.0) == "+4"
    assert compare.fmt_delta("ece", None) == "—"


def test_flagged_sets():
    t = lambda *rows: [("test", r) for r in rows]  # noqa: E731
    s = compare.flagged_sets(t(5, 3, 9, 1) + [("train", 5)], t(9, 2, 5, 7))
    assert (s["new"], s["resolved"], s["still"]) == (["test #2", "test #7"], ["test #1", "test #3", "train #5"],
                                                     ["test #5", "test #9"])
    assert s["counts"] == {"new": 2, "resolved": 3, "still": 2, "old": 5, "new_total": 4}


def deltas(noise: float = 0.01, **pairs):
    """Metric deltas where every metric carries a 95 % interval of half-width noise / sqrt(2) on both sides."""
    h = noise / 2 ** 0.5
    side = lambda i: {**{k: v[i] for k, v in pairs.items()},  # noqa: E731
                      **{k + "_ci_low": v[i] - h for k, v in pairs.items() if v[i] is not None},
                      **{k + "_ci_high": v[i] + h for k, v in pairs.items() if v[i] is not None}}
    return compare.metric_deltas(side(0), side(1))


def test_verdict_words():
    ce = "calibration_error"
    v = compare.verdict(deltas(accuracy=(0.90, 0.95), **{ce: (0.05, 0.02)}), old_label="m a", new_label="m b")
    assert (v["word"], v["level"]) == ("better", "good")
    assert v["text"] == ("m b is better than m a: accuracy +5.00 pp, beyond sampling noise (±1.00 pp); "
                         "also better in calibration error −0.0300 (±0.0100).")
    # Accuracy that moved decides, whatever calibration did.
    v = compare.verdict(deltas(accuracy=(0.90, 0.80), nll=(1.0, 2.0), **{ce: (0.30, 0.02)}), old_label="m a", new_label="m b")
    assert v["word"] == "worse"
    assert v["text"] == ("m b is worse than m a: accuracy −10.00 pp, beyond sampling noise (±1.00 pp); also worse in NLL +1.0000 "
                         "(±0.0100); but better in calibration error −0.2800 (±0.0100).")
    # Accuracy within its noise: the other metrics decide, and disagree.
    v = compare.verdict(deltas(accuracy=(0.90, 0.905), brier=(0.2, 0.1), **{ce: (0.02, 0.05)}), old_label="m a", new_label="m b")
    assert v["word"] == "mixed" and v["text"].startswith(
        "Mixed: m b is better than m a in Brier score −0.1000 (±0.0100), but worse in calibration error +0.0300")
    assert v["text"].endswith("the accuracy change (+0.50 pp) is within sampling noise (±1.00 pp).")
    v = compare.verdict(deltas(accuracy=(0.90, 0.905), **{ce: (0.02, 0.021)}), old_label="m a", new_label="m b")
    assert v["word"] == "unchanged" and v["text"] == "No difference between m b and m a exceeds its sampling noise in Accuracy, calibration error."
    v = compare.verdict(deltas(accuracy=(0.90, 0.85)), old_label="a", new_label="b", comparable=False, reason="the data files differ (sha256)")
    assert v["level"] == "warn" and v["text"].startswith("Caution, not the same samples (the data files differ (sha256)): b is worse")


def test_a_large_accuracy_change_without_intervals_is_not_called():
    """Old summaries without intervals: nothing measures the noise, so nothing is called better or worse."""
    d = compare.metric_deltas({"accuracy": 0.80, "ece": 0.1}, {"accuracy": 0.95, "ece": 0.01})
    assert {x["key"]: x["change"] for x in d} == {"accuracy": "changed", "ece": "changed"}
    assert compare.verdict(d, old_label="a", new_label="b")["word"] == "unchanged"


def test_same_samples():
    base = {"data": {"sha256": "ab", "count": 10, "class_counts": [5, 5], "role": "test split"},
            "provenance": {"options": {"seed": 0, "audit_size": None}}}
    assert compare.same_samples(base, base) == (True, "")
    other = json.loads(json.dumps(base))
    other["data"]["sha256"] = "cd"
    assert compare.same_samples(base, other) == (False, "the data files differ (sha256)")
    seeded = json.loads(json.dumps(base))
    seeded["data"]["role"] = "held out from training (seeded stratified split)"
    reseeded = json.loads(json.dumps(seeded))
    reseeded["provenance"]["options"]["seed"] = 1
    assert compare.same_samples(seeded, reseeded)[0] is False
    other_seed = json.loads(json.dumps(base))
    other_seed["provenance"]["options"]["seed"] = 1  # a fixed test split: the seed does not pick the samples
    assert compare.same_samples(base, other_seed) == (True, "")


def test_per_class_changes_match_by_name():
    def r(name, acc, lo, hi, ece):
        return {"name": name, "count": 1000, "accuracy": acc, "accuracy_ci": [lo, hi], "classwise_ece": ece}

    rows = compare.per_class_changes([r("cat", 0.5, 0.47, 0.53, 0.1), r("dog", 0.8, 0.77, 0.83, 0.2)],
                                     [r("dog", 0.9, 0.88, 0.92, 0.1), r("cat", 0.48, 0.45, 0.51, 0.1)])
    assert [x["name"] for x in rows] == ["dog", "cat"]
    assert rows[0]["delta_accuracy"] == pytest.approx(0.1) and rows[0]["change_accuracy"] == "better"
    assert rows[1]["change_accuracy"] == "same"  # -2 pp inside the noise of two ±3 pp intervals
    assert rows[0]["change_ece"] == "changed" and rows[1]["change_ece"] == "same"  # no interval: never better or worse


def test_missing_files_are_named(tmp_path):
    from reportgen.errors import ReportgenError

    (tmp_path / "v").mkdir()
    with pytest.raises(ReportgenError, match=r"summary\.json: missing"):
        compare.load_version(tmp_path / "v")
    (tmp_path / "v" / "summary.json").write_text('{"metrics": {}}')
    with pytest.raises(ReportgenError, match=r"flagged\.csv: missing"):
        compare.load_version(tmp_path / "v")
    (tmp_path / "v" / "flagged.csv").write_text("rank,index\n1,x\n")
    with pytest.raises(ReportgenError, match=r"flagged\.csv: unreadable"):
        compare.load_version(tmp_path / "v")


# --------------------------------------------------------------------------- two real versions


@pytest.fixture(scope="module")
def two_versions(deterministic_audit, mnist_npz, tmp_path_factory):
    """(root, v1, v2): the session's deterministic audit (copied), and a second CNN (500 images, seed 1, S = 5)."""
    root = tmp_path_factory.mktemp("two-versions")
    src, _ = deterministic_audit
    v1 = root / src.parent.name / src.name
    shutil.copytree(src, v1)
    models = tmp_path_factory.mktemp("second-model")
    r = run_cli(["--quiet", "train", "--data", str(mnist_npz), "--epochs", "1", "--train-size", "500", "--seed", "1",
                 "--output", str(models), "--name", "second"])
    assert r.exit_code == 0, r.output
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(models / "second.keras"), "--name", src.parent.name,
                 "--version", "v2", "--mc-samples", "5", "--output", str(root)])
    assert r.exit_code == 0, r.output
    v2 = Path(r.stdout.strip().splitlines()[-1])
    assert v2 == root / src.parent.name / "v2"
    return root, v1, v2


@pytest.fixture(scope="module")
def compared(two_versions):
    root, v1, v2 = two_versions
    r = run_cli(["--quiet", "compare", str(v1), str(v2)])
    assert r.exit_code == 0, r.output
    out = Path(r.stdout.strip())
    return out, json.loads((out / "compare.json").read_text())


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def flagged(folder: Path) -> set[tuple[str, int]]:
    return {(row["split"], int(row["row"])) for row in csv.DictReader(open(folder / "flagged.csv"))}


def test_compare_writes_its_files_inside_the_new_version(two_versions, compared):
    _, v1, v2 = two_versions
    out, _ = compared
    assert out == v2 / f"compare-{v1.name}"
    assert {p.name for p in out.iterdir()} == {"compare.html", "compare.pdf", "compare.json", "manifest.json"}


def test_metric_deltas_are_new_minus_old_with_direction(two_versions, compared):
    _, v1, v2 = two_versions
    _, c = compared
    old, new = summary(v1)["metrics"], summary(v2)["metrics"]
    rows = {d["key"]: d for d in c["metrics"]}
    assert set(rows) == {k for k in set(old) | set(new) if not k.endswith(("_ci_low", "_ci_high"))}
    assert rows["accuracy"]["delta"] == pytest.approx(new["accuracy"] - old["accuracy"], abs=1e-12)
    assert rows["mean_epistemic"]["old"] is None and rows["mean_epistemic"]["change"] == "n/a"  # v1 had S = 1
    assert rows["n_passes"]["change"] == "changed"
    # Same samples and both per-sample exports: the headline metrics are compared pair by pair.
    assert c["same_samples"] is True and c["paired"] is True
    assert rows["accuracy"]["test"] == "McNemar, paired" and rows["accuracy"]["p"] is not None
    for key in compare.VERDICT_METRICS:
        assert rows[key]["test"].endswith("paired"), key
    # A CNN trained on 500 images instead of 2,000: the accuracy change is far beyond sampling noise, so it decides.
    assert rows["accuracy"]["p"] < 1e-6 and rows["accuracy"]["change"] == "worse"
    assert c["verdict"]["word"] == "worse"
    assert c["verdict"]["text"].startswith(f"{v2.parent.name} v2 is worse than {v1.parent.name} {v1.name}: accuracy ")


def test_paired_comparison_detects_a_change_independent_intervals_miss(tmp_path):
    """The reviewer's case: two audits of the same samples treated as independent almost never detect a change. Here
    the new model fixes 30 of 10,000 samples and breaks 10 (a real +0.2 pp): McNemar calls it (p < 0.05), the sum of the
    two Wilson half-widths does not."""
    import gzip

    import numpy as np

    from reportgen.stats.intervals import wilson

    rng = np.random.default_rng(0)
    n, k = 10_000, 4
    y = rng.integers(0, k, n)
    right_old = rng.random(n) < 0.95
    right_new = right_old.copy()
    wrong = np.flatnonzero(~right_old)
    good = np.flatnonzero(right_old)
    right_new[rng.choice(wrong, 30, replace=False)] = True
    right_new[rng.choice(good, 10, replace=False)] = False
    sides = []
    for right in (right_old, right_new):
        p = np.full((n, k), 0.1 / (k - 1))
        guess = np.where(right, y, (y + 1) % k)
        p[np.arange(n), guess] = 0.9
        sides.append(p)
    for name, p, right in (("old", sides[0], right_old), ("new", sides[1], right_new)):
        d = tmp_path / name
        d.mkdir()
        with gzip.open(d / "predictions.csv.gz", "wt") as f:
            f.write("split,row,file,given,predicted," + ",".join(f"p_{c}" for c in range(k)) + ",confidence,total,aleatoric,epistemic,flagged,case,review\n")
            for i in range(n):
                f.write(f"test,{i},,{y[i]},{p[i].argmax()}," + ",".join(f"{v:.6g}" for v in p[i]) + ",0,0,0,,0,,\n")
    tests = compare.paired_tests(compare.read_per_sample(tmp_path / "old"), compare.read_per_sample(tmp_path / "new"))
    acc = tests["accuracy"]
    assert acc["delta"] == pytest.approx(0.002) and acc["discordant"] == [10, 30] and acc["p"] < 0.05 and acc["called"]
    halves = [(hi - lo) / 2 for lo, hi in (wilson(int(r.sum()), n) for r in (right_old, right_new))]
    assert (halves[0] ** 2 + halves[1] ** 2) ** 0.5 > 0.002  # the independent comparison would call it "same"
    assert tests["nll"]["called"] and tests["nll"]["delta"] < 0


def test_flagged_sets_follow_the_two_csv_files(two_versions, compared):
    _, v1, v2 = two_versions
    _, c = compared
    a, b = flagged(v1), flagged(v2)
    name = lambda keys: [f"{s} #{r}" for s, r in sorted(keys)]  # noqa: E731
    assert c["flagged"]["new"] == name(b - a)
    assert c["flagged"]["resolved"] == name(a - b)
    assert c["flagged"]["still"] == name(a & b)
    assert len(a) > 0 and len(b) > 0


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.changes = [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "tr" and "data-change" in a:
            self.changes[a["data-key"]] = a["data-change"]


def test_compare_html_links_both_reports_and_shows_each_verdict(two_versions, compared):
    _, v1, v2 = two_versions
    out, c = compared
    p = _Links()
    p.feed((out / "compare.html").read_text())
    assert [os.path.normpath(out / h) for h in p.hrefs[:2]] == [str(v1 / "report.html"), str(v2 / "report.html")]
    assert p.changes == {d["key"]: d["change"] for d in c["metrics"]}
    assert 'alt="Accuracy against mean confidence per confidence bin' in (out / "compare.html").read_text()


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils (pdftotext) not installed")
def test_compare_pdf_states_the_verdict(compared):
    out, c = compared
    text = subprocess.run(["pdftotext", str(out / "compare.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "Verdict:" in text
    assert c["verdict"]["text"][:40] in " ".join(text.split())


def test_compare_refuses_to_overwrite_without_force(two_versions, compared):
    _, v1, v2 = two_versions
    out, _ = compared
    before = (out / "compare.json").read_bytes()
    r = run_cli(["compare", str(v1), str(v2)])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1] == f"Error: {out}: already exists; pass --force to overwrite it"
    assert (out / "compare.json").read_bytes() == before
    r = run_cli(["--quiet", "compare", str(v1), str(v2), "--force", "--paper", "letter"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "compare.json").read_text())["metrics"] == json.loads(before)["metrics"]


def test_list_shows_both_versions_newest_first(two_versions, compared):
    root, v1, v2 = two_versions
    r = run_cli(["list", "--output", str(root), "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert [(v["model"], v["version"]) for v in listed] == [(v2.parent.name, "v2"), (v1.parent.name, v1.name)]
    assert listed[0]["metrics"]["accuracy"] == summary(v2)["metrics"]["accuracy"]
    assert listed[0]["compares"] == [{"name": v1.name, "path": f"{v2.parent.name}/v2/compare-{v1.name}/compare.html"}]


def test_verify_passes_and_fails_after_one_byte_of_summary_changes(two_versions, compared, tmp_path):
    root, v1, v2 = two_versions
    r = run_cli(["verify", str(root)])
    assert r.exit_code == 0, r.output
    assert sorted(r.stdout.split()) == sorted(["ok:", str(v1), "ok:", str(v2)])
    copy = tmp_path / "v1"
    shutil.copytree(v1, copy)
    s = bytearray((copy / "summary.json").read_bytes())
    i = s.index(b'"accuracy": 0.') + len(b'"accuracy": 0.')
    s[i] = ord("0") if s[i] != ord("0") else ord("1")
    (copy / "summary.json").write_bytes(bytes(s))
    r = run_cli(["verify", str(copy)])
    assert r.exit_code != 0
    assert r.stderr.strip() == f"Error: verification failed: {copy / 'summary.json'}: changed (sha256 differs from the manifest)"


class _IndexRows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.hrefs, self.alts = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-version" in a:
            self.rows.append(a["data-version"])
        if tag == "a" and not a["href"].startswith("#"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.alts.append(a["alt"])


def test_index_page_shows_both_versions(two_versions, compared):
    root, v1, v2 = two_versions
    p = _IndexRows()
    p.feed(write_index(root).read_text())
    assert p.rows == ["v2", v1.name]
    assert {f"{v1.parent.name}/{v1.name}/report.html", f"{v2.parent.name}/v2/report.html",
            f"{v2.parent.name}/v2/compare-{v1.name}/compare.html"} <= set(p.hrefs)
    assert all((root / h).is_file() for h in p.hrefs)
    assert len(p.alts) == 1 and f"{v1.name} " in p.alts[0] and "v2 " in p.alts[0]
    assert [v["version"] for v in list_versions(root)] == ["v2", v1.name]


# --------------------------------------------------------------------------- hostile archive contents


@pytest.mark.parametrize("field, value", [("version", "../../escaped"), ("name", "/tmp/abs"), ("version", "a/b"), ("name", "..")])
def test_compare_refuses_a_summary_whose_name_or_version_could_steer_the_output_path(tmp_path, field, value):
    from reportgen.errors import ReportgenError

    for v in ("old", "new"):
        d = tmp_path / "m" / v
        d.mkdir(parents=True)
        model = {"name": "m", "version": v}
        if v == "old":
            model[field] = value
        (d / "summary.json").write_text(json.dumps({"model": model, "metrics": {"accuracy": 0.9}}))
        (d / "flagged.csv").write_text("rank,index\n")
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ReportgenError, match=r"old/summary\.json: (model name|version) .*use letters, digits"):
        compare.write(tmp_path / "m" / "old", tmp_path / "m" / "new")
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere
    r = run_cli(["compare", "--quiet", str(tmp_path / "m" / "old"), str(tmp_path / "m" / "new")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "summary.json" in r.stderr, r.stderr
    assert set(tmp_path.rglob("*")) == before


def test_flags_are_compared_when_the_label_checks_covered_the_same_samples():
    """With --cv the checked samples (all labelled ones) decide, not the audited subset."""
    a = {"data": {"sha256": "d1", "count": 100, "index_sha256": "x"}, "label_issues": {"checked_sha256": "all-rows"}}
    b = {"data": {"sha256": "d1", "count": 200, "index_sha256": "y"}, "label_issues": {"checked_sha256": "all-rows"}}
    assert compare.same_samples(a, b)[0] is False  # different audited subsets...
    assert compare.same_checked_labels(a, b) == (True, "")  # ...but every label was checked in both
    c = {**b, "label_issues": {"checked_sha256": "other"}}
    assert compare.same_checked_labels(a, c) == (False, "the label checks covered different samples")
    d = {**b, "data": {"sha256": "d2"}}
    assert compare.same_checked_labels(a, d) == (False, "the data files differ (sha256)")
    assert compare.same_checked_labels({"data": a["data"]}, {"data": b["data"]}) == compare.same_samples(a, b)
