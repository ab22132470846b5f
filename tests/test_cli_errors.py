"""Every bad input: one clear line on stderr, non-zero exit, no traceback, nothing new on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


def snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


def assert_clean_failure(result, out: Path, before: set[str], *must_contain: str) -> str:
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    for text in must_contain:
        assert text in lines[0], lines[0]
    assert snapshot(out) == before
    return lines[0]


@pytest.fixture()
def out(tmp_path) -> Path:
    d = tmp_path / "output"
    d.mkdir()
    return d


def audit(out: Path, *args: str):
    return run_cli(["--quiet", "audit", "--output", str(out), *args])


def test_missing_model_file(out, mnist_npz, tmp_path):
    r = audit(out, "--data", str(mnist_npz), "--model", str(tmp_path / "nope.keras"))
    assert_clean_failure(r, out, set(), "nope.keras", "no such model file")


def test_non_model_file_as_model(out, mnist_npz, tmp_path):
    fake = tmp_path / "notes.keras"
    fake.write_text("this is not a model\n")
    r = audit(out, "--data", str(mnist_npz), "--model", str(fake))
    assert_clean_failure(r, out, set(), "notes.keras", "not a Keras model file (a .keras file is a zip archive")


def test_model_input_shape_does_not_fit_images(out, mnist_npz, tmp_path):
    import keras

    m = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path / "rgb32.keras"
    m.save(path)
    r = audit(out, "--data", str(mnist_npz), "--model", str(path))
    assert_clean_failure(r, out, set(), "rgb32.keras", "(32, 32, 3)", "(28, 28, 1)")


def test_corrupt_npz(out, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip archive" * 10)
    r = audit(out, "--data", str(bad))
    assert_clean_failure(r, out, set(), "broken.npz", "not a readable .npz")


def test_labels_out_of_range(out, tmp_path, mnist):
    x, y = mnist
    y = y[:300].copy()
    y[17] = -3
    p = tmp_path / "neg.npz"
    np.savez(p, x=x[:300], y=y)
    r = audit(out, "--data", str(p))
    assert_clean_failure(r, out, set(), "neg.npz", "1 labels outside [0, 10) (label 17 is -3)")


def test_labels_beyond_class_names(out, tmp_path, mnist):
    x, y = mnist
    p = tmp_path / "ten.npz"
    y = y[:300].copy()
    y[5] = 12
    np.savez(p, x=x[:300], y=y)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"digit {i}" for i in range(10)))
    r = audit(out, "--data", str(p), "--class-names", str(names))
    # Without names the .npz's classes are 0..max label = 13 of them, so 10 names cannot cover them.
    assert_clean_failure(r, out, set(), "names.txt", "10 class names for 13 classes")


def test_images_with_nan(out, tmp_path, mnist):
    x, y = mnist
    xf = x[:200].astype(np.float32) / 255.0
    xf[3, 4, 5] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, x=xf, y=y[:200])
    r = audit(out, "--data", str(p))
    assert_clean_failure(r, out, set(), "nan.npz", "NaN", "image 3")


def test_output_folder_cannot_be_written(tmp_path, deterministic_audit, mnist_npz):
    _, model = deterministic_audit
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "reports"  # a folder inside a regular file cannot exist
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--mc-samples", "2", "--output", str(target)])
    assert r.exit_code != 0
    assert "cannot write" in r.stderr and str(blocker) in r.stderr
    assert "Traceback" not in r.output
    assert blocker.read_text() == "x"


def test_existing_version_without_force(out, deterministic_audit, mnist_npz):
    _, model = deterministic_audit
    args = ["--data", str(mnist_npz), "--model", str(model), "--mc-samples", "2", "--version", "v1"]
    r = audit(out, *args)
    assert r.exit_code == 0, r.output
    before = snapshot(out)
    stamp = (out / model.stem / "v1" / "summary.json").read_bytes()
    r = audit(out, *args)
    assert_clean_failure(r, out, before, "already exists", "--force")
    assert (out / model.stem / "v1" / "summary.json").read_bytes() == stamp


def test_failure_mid_write_leaves_no_folder(out, deterministic_audit, mnist_npz, monkeypatch):
    """A crash while rendering (here: the PDF step) removes the staging folder and new parents."""
    from reportgen.report import render
    _, model = deterministic_audit

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "html_to_pdf", boom)
    r = audit(out, "--data", str(mnist_npz), "--model", str(model), "--mc-samples", "2")
    assert r.exit_code == 130
    assert snapshot(out) == set()


def test_debug_shows_traceback(out, tmp_path, mnist_npz):
    from click.testing import CliRunner

    from reportgen.cli import cli

    from reportgen.errors import ModelError

    r = CliRunner().invoke(cli, ["--debug", "audit", "--data", str(mnist_npz), "--model", str(tmp_path / "x.keras"), "--output", str(out)])
    assert isinstance(r.exception, ModelError)


@pytest.mark.parametrize("before", [True, False])
def test_debug_and_quiet_work_before_and_after_the_command(out, tmp_path, mnist_npz, before):
    """People type `reportgen audit --debug`; it must mean what `reportgen --debug audit` means."""
    from click.testing import CliRunner

    from reportgen.cli import cli
    from reportgen.errors import ModelError

    args = ["audit", "--data", str(mnist_npz), "--model", str(tmp_path / "x.keras"), "--output", str(out)]
    r = CliRunner().invoke(cli, ["--debug", *args] if before else [*args, "--debug"])
    assert isinstance(r.exception, ModelError)
    r = CliRunner().invoke(cli, ["--quiet", *args] if before else [*args, "--quiet"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "No such option" not in r.stderr
    for command in (["list", "--output", str(tmp_path)], ["verify", str(tmp_path)]):
        r = CliRunner().invoke(cli, [*command, "--quiet", "--debug"])
        assert "No such option" not in r.stderr


# --- saved probabilities from another framework -----------------------------------------


def _probs(n=200, k=4, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k) * 0.3, size=n)
    y = p.argmax(1)
    return p, y


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda p, y: (p * 0.8, y), "do not sum to 1"),
        (lambda p, y: (np.where(np.arange(p.size).reshape(p.shape) == 7, np.nan, p), y), "NaN"),
        (lambda p, y: (p, y[:-3]), "labels"),
        (lambda p, y: (np.where(np.arange(p.size).reshape(p.shape) == 9, -0.2, p), y), "negative"),
    ],
    ids=["rows-not-summing-to-1", "nan", "wrong-length", "negative"],
)
def test_bad_prediction_arrays(out, tmp_path, mutate, expect):
    p, y = mutate(*_probs())
    np.save(tmp_path / "probs.npy", p)
    np.save(tmp_path / "labels.npy", y)
    r = audit(out, "--predictions", str(tmp_path / "probs.npy"), "--labels", str(tmp_path / "labels.npy"))
    line = assert_clean_failure(r, out, set(), expect)
    assert "probs.npy" in line or "labels.npy" in line


def test_pickled_object_array_is_refused(out, tmp_path):
    p, y = _probs()
    obj = np.empty(len(p), dtype=object)
    obj[:] = list(p)
    np.save(tmp_path / "probs.npy", obj, allow_pickle=True)
    np.save(tmp_path / "labels.npy", y)
    r = audit(out, "--predictions", str(tmp_path / "probs.npy"), "--labels", str(tmp_path / "labels.npy"))
    assert_clean_failure(r, out, set(), "probs.npy", "pickled object array")


def test_ensemble_members_with_different_class_counts(out, mnist_npz, tmp_path):
    import keras

    paths = []
    for k in (10, 12):
        p = tmp_path / f"k{k}.keras"
        keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(k)]).save(p)
        paths += ["--model", str(p)]
    r = audit(out, "--data", str(mnist_npz), *paths)
    assert_clean_failure(r, out, set(), "k10.keras", "different numbers of classes (10, 12)")


def test_negative_seed_is_a_usage_error(out):
    r = audit(out, "--seed", "-1")
    assert r.exit_code == 2 and "--seed" in r.stderr and "Traceback" not in r.output
