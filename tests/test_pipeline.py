"""Pipeline paths beyond the default audit: saved probabilities, cross-validation, ensembles."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

from reportgen.model.checker import kfold_indices


def test_kfold_indices_are_a_stratified_partition():
    y = np.repeat(np.arange(3), [30, 20, 10])
    folds = kfold_indices(y, 5, seed=7)
    allidx = np.concatenate(folds)
    assert sorted(allidx.tolist()) == list(range(60))
    for f in folds:
        assert np.bincount(y[f], minlength=3).tolist() == [6, 4, 2]
    again = kfold_indices(y, 5, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, kfold_indices(y, 5, seed=8)))


def _noisy_probs(n=3000, k=5, flip=0.08, seed=0):
    """Seeded probabilities centred on the TRUE class; a known share of GIVEN labels flipped."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    alpha = np.full((n, k), 0.4)
    alpha[np.arange(n), true] = 12.0
    p = np.array([rng.dirichlet(a) for a in alpha])
    given = true.copy()
    flips = rng.choice(n, int(flip * n), replace=False)
    given[flips] = (true[flips] + rng.integers(1, k, len(flips))) % k
    return p, given, set(flips.tolist())


def test_audit_saved_probabilities_finds_the_flips(tmp_path):
    p, given, flips = _noisy_probs()
    np.save(tmp_path / "probs.npy", p.astype(np.float32))
    np.save(tmp_path / "labels.npy", given)
    (tmp_path / "names.txt").write_text("ant\nbee\ncat\ndog\neel\n")
    out = tmp_path / "out"
    r = run_cli(["--quiet", "audit", "--predictions", str(tmp_path / "probs.npy"), "--labels", str(tmp_path / "labels.npy"),
                 "--class-names", str(tmp_path / "names.txt"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    folder = Path(r.stdout.strip())
    rows = list(csv.DictReader(open(folder / "flagged.csv")))
    found = {int(row["row"]) for row in rows}
    assert {row["split"] for row in rows} == {"all"}
    precision = len(found & flips) / len(found)
    recall = len(found & flips) / len(flips)
    assert precision > 0.9 and recall > 0.8, (precision, recall)
    assert {row["given"] for row in rows} <= {"ant", "bee", "cat", "dog", "eel"}
    s = json.loads((folder / "summary.json").read_text())
    assert s["metrics"]["mean_epistemic"] is None
    assert s["metrics"]["accuracy"] == pytest.approx(float(np.mean(p.argmax(1) == given)), abs=1e-12)
    html = (folder / "report.html").read_text()
    assert '<figure id="fig-gallery' not in html  # no images given: image galleries are skipped
    assert "fig-noise_matrix" in html


def test_cv_checks_every_label_with_out_of_sample_checkers(tmp_path, mnist_npz):
    """--cv 2 on a file with train (2,000) and test (1,000) splits: the audited model is audited on the test split,
    while every one of the 3,000 labels is checked by a checker fold that never saw it."""
    out = tmp_path / "out"
    args = ["audit", "--data", str(mnist_npz), "--cv", "2", "--epochs", "1", "--checker-epochs", "1", "--mc-samples", "3",
            "--output", str(out)]
    r = run_cli(args)
    assert r.exit_code == 0, r.output
    assert "checker fold 1/2" in r.stderr and "checker fold 2/2" in r.stderr
    folder = Path(r.stdout.strip().splitlines()[-1])
    s = json.loads((folder / "summary.json").read_text())
    li = s["label_issues"]
    assert s["data"]["count"] == 1000 and s["metrics"]["n_checked"] == 3000 and li["n_checked"] == 3000
    assert li["checker"]["independent"] is True and li["checker"]["folds"] == 2 and len(li["checker"]["fold_sha256"]) == 2
    assert 0.5 < s["metrics"]["checker_accuracy"] <= 1 and s["metrics"]["checker_accuracy_ci_low"] < s["metrics"]["checker_accuracy"]
    cases = li["cases"]
    assert cases["model_errors"] == s["metrics"]["n_model_errors"] and cases["ambiguous"] == s["metrics"]["n_ambiguous_errors"]
    wrong = round((1 - s["metrics"]["accuracy"]) * 1000)
    assert cases["model_errors"] + cases["ambiguous"] <= wrong  # every model error or ambiguous case is a wrong prediction
    rows = list(csv.DictReader(open(folder / "flagged.csv")))
    assert {row["split"] for row in rows} <= {"train", "test"}
    assert len(list((out / ".models").glob("*checker-default-fold*.keras"))) == 2
    # Rerun with the same seed reuses the fold models and reproduces the numbers.
    r2 = run_cli(args + ["--force"])
    assert r2.exit_code == 0 and "reusing" in r2.stderr
    assert json.loads((folder / "summary.json").read_text())["metrics"] == s["metrics"]


def test_cv_rejects_saved_predictions(tmp_path):
    r = run_cli(["audit", "--cv", "3", "--predictions", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--output", str(tmp_path)])
    assert r.exit_code != 0 and "--cv trains checker models on images" in r.stderr


def test_train_ensemble_then_audit_it(tmp_path, mnist_npz):
    models = tmp_path / "models"
    r = run_cli(["--quiet", "train", "--data", str(mnist_npz), "--ensemble", "2", "--epochs", "1", "--train-size", "600",
                 "--output", str(models), "--name", "ens"])
    assert r.exit_code == 0, r.output
    paths = r.stdout.split()
    assert [Path(p).name for p in paths] == ["ens-0.keras", "ens-1.keras"]
    seeds = [json.loads(Path(p).with_suffix(".json").read_text())["seed"] for p in paths]
    assert seeds == [0, 1]
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", paths[0], "--model", paths[1], "--output", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    s = json.loads((Path(r.stdout.strip()) / "summary.json").read_text())
    assert s["method"]["method"] == "ensemble" and s["method"]["n_samples"] == 2
    assert s["metrics"]["mean_epistemic"] > 0
    assert s["model"]["kind"] == "ensemble of 2 Keras models"


def test_audit_model_on_its_own_training_file_audits_only_the_held_out_part(tmp_path, mnist_dir):
    """`train --data X` then `audit --model m --data X` must not score samples the model trained on."""
    r = run_cli(["--quiet", "train", "--data", str(mnist_dir), "--epochs", "1", "--train-size", "400",
                 "--output", str(tmp_path / "m"), "--name", "own"])
    assert r.exit_code == 0, r.output
    model = r.stdout.strip()
    r = run_cli(["--quiet", "audit", "--data", str(mnist_dir), "--model", model, "--mc-samples", "2", "--output", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    s = json.loads((Path(r.stdout.strip()) / "summary.json").read_text())
    assert s["data"]["count"] == 1000  # the 20 % held out of 5,000, not all of them
    assert s["data"]["role"].startswith("held out from training")


def test_python_api_returns_the_cli_numbers(deterministic_audit, mnist, tmp_path):
    import reportgen
    from conftest import N_AUDIT, N_TRAIN

    folder, model_path = deterministic_audit
    x, y = mnist
    a = reportgen.audit(str(model_path), x[N_TRAIN:N_TRAIN + N_AUDIT], y[N_TRAIN:N_TRAIN + N_AUDIT], mc_samples=1)
    cli_metrics = json.loads((folder / "summary.json").read_text())["metrics"]
    assert set(a.metrics) == set(cli_metrics)
    # The label check differs by design: the CLI's default audit checks all 3,000 labels with the cross-validated
    # checker, the API only the audited model's own 1,000. Every other number must agree.
    from reportgen.report.inputs import label_metrics
    import inspect
    label_keys = set(re.findall(r'"(\w+)": ', inspect.getsource(label_metrics)))
    assert {"n_checked", "checker_accuracy", "n_flagged"} <= label_keys
    assert cli_metrics["n_checked"] == 3000 and a.metrics["n_checked"] == 1000
    for key, value in cli_metrics.items():
        if key not in label_keys:
            assert a.metrics[key] == (pytest.approx(value, abs=1e-12) if value is not None else None), key
    out = a.write(tmp_path / "nb")
    assert json.loads((out / "summary.json").read_text())["metrics"] == a.metrics
    from reportgen.errors import OutputError

    with pytest.raises(OutputError, match="already exists"):
        a.write(tmp_path / "nb")


def test_python_api_with_in_memory_model_and_probabilities(mnist):
    import keras

    import reportgen
    from reportgen.model.network import build_default_cnn

    x, y = mnist
    keras.utils.set_random_seed(0)
    net = build_default_cnn((28, 28, 1), 10)
    a = reportgen.audit(net, x[:300], y[:300], mc_samples=4)
    assert a.method["n_samples"] == 4 and a.metrics["n_samples"] == 300
    p, given, _ = _noisy_probs(n=400, k=3)
    b = reportgen.audit(p, labels=given)
    assert b.metrics["accuracy"] == pytest.approx(float(np.mean(p.argmax(1) == given)))
    assert b.metrics["mean_epistemic"] is None


def test_flagged_indices_are_rows_of_the_source_file_and_compare_sees_different_samples(tmp_path, mnist_dir):
    """Audits of a held-out subset name source rows; two different subsets are not 'the same samples'."""
    import csv as _csv

    from conftest import read_idx

    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    folders = []
    for seed in (0, 1):
        r = run_cli(["--quiet", "audit", "--data", str(mnist_dir), "--epochs", "1", "--train-size", "300", "--cv", "0", "--seed", str(seed),
                     "--mc-samples", "2", "--output", str(tmp_path / "out"), "--name", "sub", "--version", f"s{seed}"])
        assert r.exit_code == 0, r.output
        folders.append(Path(r.stdout.strip()))
        rows = list(_csv.DictReader(open(folders[-1] / "flagged.csv")))
        assert rows
        names = json.loads((folders[-1] / "summary.json").read_text())["data"]["class_names"]
        for row in rows:
            assert row["split"] == "test" and names[labels[int(row["row"])]] == row["given"]  # rows of the t10k files
        assert max(int(row["row"]) for row in rows) >= 1000  # source rows, not positions 0..999
    from reportgen.archive.compare import same_samples

    a, b = (json.loads((f / "summary.json").read_text()) for f in folders)
    assert a["data"]["index_sha256"] != b["data"]["index_sha256"]
    assert same_samples(a, b) == (False, "different rows of the data file were audited")
    assert same_samples(a, a) == (True, "")


def test_python_api_checks_what_the_cli_checks(mnist, tmp_path):
    """Lengths of images and labels, labels within the model's classes, ensemble members that agree."""
    import keras

    import reportgen
    from reportgen.errors import DataError, ModelError

    x, y = mnist
    ten = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    four = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    with pytest.raises(DataError, match=r"^labels: wrong length: 99 labels for 100 samples$"):
        reportgen.audit(ten, x[:100], y[:99])
    with pytest.raises(ModelError, match=r"ensemble members predict different numbers of classes \(10, 4\)"):
        reportgen.audit([ten, four], x[:100], y[:100])
    with pytest.raises(DataError, match=r"^labels: 1 labels outside \[0, 4\)"):
        reportgen.audit(four, x[:100], np.where(np.arange(100) == 7, 9, y[:100] % 4))
    p = np.full((100, 10), 0.1)
    with pytest.raises(DataError, match=r"^images: 50 images for 100 labels$"):
        reportgen.audit(p, x[:50], y[:100])
    with pytest.raises(DataError, match=r"^probabilities: wrong length: 99 labels for 100 probability rows$"):
        reportgen.audit(p, None, y[:99])
