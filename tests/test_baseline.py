"""The report's reference comparison (archive.baseline): the class-prior baseline's numbers recomputed by hand, and the
previous version chosen, aligned by sample, or refused when it audited other samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.archive import baseline as B
from reportgen.report.files import write_prediction_rows
from reportgen.report.findings import baseline_sentence

K = 3


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(K, size=n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, K)) + 2.5 * np.eye(K)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


def _metrics(y, p):
    """The model's own accuracy, NLL and Brier score (numpy, not reportgen)."""
    rows = np.arange(len(y))
    onehot = np.eye(K)[y]
    return {"accuracy": float(np.mean(p.argmax(1) == y)), "nll": float(np.mean(-np.log(p[rows, y]))),
            "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))), "calibration_error": 0.01, "aurc": 0.05}


def _version(root, name, version, created_at, y, p, rows=None):
    d = root / name / version
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"created_at": created_at, "metrics": {}}))
    n = len(y)
    rows = np.arange(n) if rows is None else rows
    write_prediction_rows(d / "predictions.csv.gz", split=np.full(n, "test"), rows=rows, files=np.full(n, ""), labels=y,
                          predicted=p.argmax(1), probs=p, confidence=p.max(1), total=np.zeros(n), aleatoric=np.zeros(n),
                          epistemic=None, flagged=np.zeros(n, bool), cases=np.full(n, "", dtype=object),
                          review=np.full(n, "", dtype=object))
    return d


def test_class_prior_gives_every_class_at_least_half_a_count():
    np.testing.assert_allclose(B.class_prior(np.array([3, 0, 1])), np.array([3, 0.5, 1]) / 4.5)


def test_without_an_archive_the_model_is_paired_against_the_training_class_frequencies(tmp_path):
    y, p = _data()
    m = _metrics(y, p)
    train_counts = np.array([40, 35, 25])  # class 0 most frequent: the baseline always predicts it
    b = B.against(root=tmp_path, name="m", version="v2", split=np.full(len(y), "test"), rows=np.arange(len(y)), labels=y,
                  probs=p, model_metrics=m, prior_counts=train_counts)
    assert b["kind"] == "prior" and "training labels" in b["against"] and b["note"] == ""
    rows = {r["key"]: r for r in b["rows"]}
    prior = train_counts / train_counts.sum()
    assert rows["accuracy"]["reference"] == pytest.approx(np.mean(y == 0), abs=1e-12)
    assert rows["accuracy"]["delta"] == pytest.approx(m["accuracy"] - np.mean(y == 0), abs=1e-12)
    assert rows["nll"]["reference"] == pytest.approx(np.mean(-np.log(prior[y])), rel=1e-9)
    assert rows["brier"]["reference"] == pytest.approx(np.mean(np.sum((prior - np.eye(K)[y]) ** 2, axis=1)), rel=1e-9)
    assert rows["accuracy"]["change"] == "better" and rows["nll"]["change"] == "better"
    lo, hi = rows["nll"]["ci"]
    assert lo < rows["nll"]["delta"] < hi < 0


def test_unknown_training_labels_fall_back_to_the_audited_frequencies_and_say_so(tmp_path):
    y, p = _data()
    b = B.against(root=tmp_path, name="m", version="v", split=np.full(len(y), "test"), rows=np.arange(len(y)), labels=y,
                  probs=p, model_metrics=_metrics(y, p), prior_counts=None)
    assert "audited labels" in b["against"]
    nll = next(r for r in b["rows"] if r["key"] == "nll")
    freq = np.bincount(y, minlength=K) / len(y)
    assert nll["reference"] == pytest.approx(np.mean(-np.log(freq[y])), rel=1e-9)


def test_the_newest_previous_version_on_the_same_samples_is_the_reference(tmp_path):
    y, p = _data()
    _, older = _data(seed=5)
    _version(tmp_path, "m", "v1", "2026-01-01T00:00:00+00:00", y, older)
    _version(tmp_path, "m", "v2", "2026-02-01T00:00:00+00:00", y, p)  # the newest: identical predictions
    _version(tmp_path, "other", "v9", "2026-03-01T00:00:00+00:00", y, older)  # another model: ignored
    b = B.against(root=tmp_path, name="m", version="v3", split=np.full(len(y), "test"), rows=np.arange(len(y)), labels=y,
                  probs=p, model_metrics=_metrics(y, p), prior_counts=np.array([1, 1, 1]))
    assert b["kind"] == "previous" and b["against"].startswith("the previous version v2 (2026-02-01)")
    for r in b["rows"]:
        assert r["change"] == "same", r
        assert r["delta"] == pytest.approx(0.0, abs=1e-5)  # the export rounds probabilities
    assert "not distinguishable on accuracy, calibration error, NLL, Brier score, AURC" in baseline_sentence(b)


def test_a_previous_version_of_other_samples_is_not_compared_and_the_report_says_why(tmp_path):
    y, p = _data()
    _version(tmp_path, "m", "v1", "2026-01-01T00:00:00+00:00", y, p, rows=np.arange(len(y)) + 1)
    b = B.against(root=tmp_path, name="m", version="v2", split=np.full(len(y), "test"), rows=np.arange(len(y)), labels=y,
                  probs=p, model_metrics=_metrics(y, p), prior_counts=None)
    assert b["kind"] == "prior" and "v1 was audited on other samples" in b["note"]


def _row(key, change, delta_text="+1.00 pp", ci_text="+0.50 pp to +1.50 pp"):
    return {"key": key, "short": key, "change": change, "delta_text": delta_text, "ci_text": ci_text}


def test_baseline_sentence_calls_only_what_the_paired_interval_supports():
    assert baseline_sentence(None) is None and baseline_sentence({"rows": []}) is None
    b = {"against": "the previous version v1", "rows": [_row("accuracy", "better"), _row("nll", "worse", "+0.0100", "+0.0020 to +0.0180"),
                                                        _row("brier", "same", "−0.0010", "−0.0030 to +0.0010")]}
    text = baseline_sentence(b)
    assert text == ("Against the previous version v1, paired on the same samples, the model is better on accuracy +1.00 pp "
                    "(+0.50 pp to +1.50 pp); worse on NLL +0.0100 (+0.0020 to +0.0180); not distinguishable on Brier score "
                    "(the paired 95 % interval includes no change).")
    only_same = {"against": "x", "rows": [_row("aurc", "same")]}
    assert "better" not in baseline_sentence(only_same) and "worse" not in baseline_sentence(only_same)
