"""--engine beam on Beam's DirectRunner against the local engine on the same rows (reportgen/engines/beam.py).

Both engines compute every statistic with the same stats functions, merged over different chunks, so:
- on saved float32 probabilities every count and flag is equal and every float agrees to summation order (1e-12);
- with a model predicting images, the probabilities are TensorFlow float32 results: the same batches on the same
  machine give the same bits, but a CPU with other vector units may round the last bit (2^-24 ~ 6e-8 relative)
  differently, so floats derived from them are compared within FLOAT32_REL, counts and flags exactly.
"""

from __future__ import annotations

import csv
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

import apache_beam  # noqa: F401,E402  (the beam extra: installed by `make test`; a missing one fails, never skips)

# Rows of the parity data set (three uneven shards, one bigger than a chunk is not needed: chunks are tested below).
N, K = 3000, 6
# Relative tolerance of floats computed from float32 model outputs: 2^-24 per probability, amplified ~100x at most by the
# statistics (sums of logs, ratios); far below any difference the report prints.
FLOAT32_REL = 1e-5


def _noisy(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities of a decent classifier and labels with 6 % flipped (some confident label errors)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0, 1, (n, k))
    z[np.arange(n), y] += 3.5
    given = np.where(rng.random(n) < 0.06, rng.integers(0, k, n), y)
    p = np.exp(z)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), given


def _shards(d: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for key, (p, y) in parts.items():
        np.save(d / f"probs-{key}.npy", p)
        np.save(d / f"labels-{key}.npy", y)


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """One local and one beam audit of the same rows: (local folder, beam folder, archive root)."""
    d = tmp_path_factory.mktemp("beam")
    p, y = _noisy(N, K)
    np.save(d / "all-probs.npy", p)
    np.save(d / "all-labels.npy", y)
    _shards(d, {"a": (p[:1100], y[:1100]), "b": (p[1100:2101], y[1100:2101]), "c": (p[2101:], y[2101:])})
    out = d / "out"
    common = ["--output", str(out), "--bootstrap", "300", "--name", "m", "--quiet"]
    local = run_cli(["audit", "--predictions", str(d / "all-probs.npy"), "--labels", str(d / "all-labels.npy"), "--version", "local",
                     *common])
    assert local.exit_code == 0, local.output
    beam = run_cli(["audit", "--engine", "beam", "--predictions", str(d / "probs-*.npy"), "--labels", str(d / "labels-*.npy"),
                    "--version", "beam", "--beam-option=--runner=DirectRunner", f"--beam-option=--temp_location={d / 'temp'}",
                    "--fail-on", "n_flagged>20", "--fail-on", "accuracy<0.5", *common])
    # The gates read the beam engine's summary.json like any other: the first holds (exit 3), the second does not.
    assert beam.exit_code == 3, beam.output
    assert "n_flagged>20" in beam.output and "accuracy<0.5" not in beam.output
    assert (d / "temp").is_dir() and not list((d / "temp").iterdir())  # the workers' files went there and are gone
    return out / "m" / "local", out / "m" / "beam", out


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def assert_same_numbers(a, b, *, rel: float, where: str = "") -> None:
    """Equal structure; integers, strings, booleans and None exactly; floats within `rel` relative."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same_numbers(a[key], b[key], rel=rel, where=f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_numbers(x, y, rel=rel, where=f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=rel, abs=1e-15), where
    else:
        assert b == a, where


# Parts of summary.json that describe the run rather than the samples, and the checks only the local engine runs (the
# out-of-distribution check predicts shifted copies of the images; the epistemic estimate's worth and the paired
# comparison with the baseline need per-sample pairs, which the Beam engine does not collect).
RUN_KEYS = ("title", "created_at", "model", "provenance", "configuration", "figures", "gates", "findings", "verdicts", "readings",
            "conclusions", "label_issues", "data", "dataset", "ood", "worth", "baseline")


def test_beam_statistics_equal_the_local_engine(parity):
    """Every metric of every mode, the calibration, temperature, selective and uncertainty details, the per-class rows:
    counts exactly, floats to summation order."""
    local, beam = _summary(parity[0]), _summary(parity[1])
    assert local["metrics"]["n_flagged"] > 20 and local["metrics"]["n_issues_estimated"] > 20  # real work to agree on
    assert_same_numbers({k: v for k, v in local.items() if k not in RUN_KEYS}, {k: v for k, v in beam.items() if k not in RUN_KEYS},
                        rel=1e-12)
    assert beam["provenance"]["engine"] == "beam" and local["provenance"]["engine"] == "local"


def test_beam_flags_the_same_samples_in_the_same_order(parity):
    local, beam = (list(csv.DictReader(open(f / "flagged.csv"))) for f in parity[:2])
    assert local == beam


def test_beam_writes_per_chunk_exports_listed_in_the_manifest(parity):
    """predictions/ holds one per-sample file per chunk; together they are the local per-sample export."""
    local, beam = parity[:2]
    listed = json.loads((beam / "manifest.json").read_text())["files"]
    assert sorted(name for name in listed if name.startswith("predictions/")) == [
        "predictions/predictions-a.csv.gz", "predictions/predictions-b.csv.gz", "predictions/predictions-c.csv.gz"]
    rows = [r for key in "abc" for r in csv.reader(gzip.open(beam / "predictions" / f"predictions-{key}.csv.gz", "rt")) if r[0] != "split"]
    expected = [r for r in csv.reader(gzip.open(local / "predictions.csv.gz", "rt")) if r[0] != "split"]
    assert len(rows) == N and rows == expected
    assert not list(parity[2].glob(".beam-*"))  # the staging folder is gone


def test_verify_and_compare_accept_the_beam_folder(parity):
    local, beam, out = parity
    assert run_cli(["verify", str(beam)]).exit_code == 0
    r = run_cli(["compare", str(local), str(beam), "--output", str(out / "cmp"), "--quiet"])
    assert r.exit_code == 0, r.output
    cmp = json.loads((out / "cmp" / "compare.json").read_text())
    assert cmp["same_samples"] is True and cmp["paired"] is True, cmp["samples_note"]
    assert cmp["verdict"]["word"] == "unchanged"
    assert cmp["flagged"]["new"] == [] and cmp["flagged"]["resolved"] == []


def _beam_cli(d: Path, *extra: str):
    return run_cli(["audit", "--engine", "beam", "--predictions", str(d / "probs-*.npy"), "--labels", str(d / "labels-*.npy"),
                    "--output", str(d / "out"), "--bootstrap", "20", *extra])


def test_a_bad_shard_fails_in_one_line_and_writes_nothing(tmp_path):
    p, y = _noisy(200, 3)
    bad = p[100:].copy()
    bad[7] *= 3  # a row that sums to 3: logits or a broken export
    _shards(tmp_path, {"0": (p[:100], y[:100]), "1": (bad, y[100:])})
    r = _beam_cli(tmp_path, "--quiet")
    assert r.exit_code != 0
    line = r.output.strip()
    assert "\n" not in line and line.startswith("Error: ") and "probs-1.npy" in line and "row 7" in line
    assert not (tmp_path / "out" / "probs").exists() and not list((tmp_path / "out").glob(".beam-*"))


def test_unmatched_shards_and_other_inputs_are_refused_in_one_line(tmp_path):
    p, y = _noisy(200, 3)
    _shards(tmp_path, {"0": (p[:100], y[:100]), "1": (p[100:], y[100:])})
    (tmp_path / "labels-1.npy").rename(tmp_path / "labels-2.npy")
    r = _beam_cli(tmp_path)
    assert r.exit_code != 0 and "no partner" in r.output and "'1'" in r.output
    r = _beam_cli(tmp_path, "--images", str(tmp_path / "probs-0.npy"))
    assert r.exit_code != 0 and "--images is not supported with --engine beam" in r.output and len(r.output.strip().splitlines()) == 1
    r = run_cli(["audit", "--beam-option=--runner=DirectRunner", "--output", str(tmp_path / "out")])
    assert r.exit_code != 0 and "--beam-option is for --engine beam" in r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing", ["apache_beam", "threadpoolctl"])
def test_without_the_beam_extra_the_engine_says_how_to_install_it(tmp_path, monkeypatch, missing):
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # importing it now raises ImportError
    r = _beam_cli(tmp_path)
    assert r.exit_code != 0
    assert "pip install 'reportgen[beam]'" in r.output and len(r.output.strip().splitlines()) == 1


PASSES = ("pass_a", "pass_b", "pass_c", "pass_d")


def test_every_pass_runs_numpy_blas_on_one_thread_and_the_caller_keeps_its_own(tmp_path, monkeypatch):
    """A worker process has one core of its own (beam.WORKER_BLAS_THREADS), so each pass limits OpenBLAS to one thread for
    its call; an in-process runner leaves the driver's setting as it was."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from reportgen.engines import beam as B

    def blas_threads():
        return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

    log = tmp_path / "threads.txt"  # Beam pickles the passes, so they report through a file
    for name in PASSES:
        def record(*args, _fn=getattr(B, name), _name=name, _log=str(log)):
            with open(_log, "a") as f:
                f.write(f"{_name} {blas_threads()}\n")
            return _fn(*args)
        monkeypatch.setattr(B, name, record)
    p, y = _noisy(200, 3)
    _shards(tmp_path, {"0": (p[:100], y[:100]), "1": (p[100:], y[100:])})
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        r = _beam_cli(tmp_path, "--quiet")
        after = blas_threads()
    assert r.exit_code == 0, r.output
    seen = sorted(log.read_text().splitlines())
    assert seen == [f"{name} [{B.WORKER_BLAS_THREADS}]" for name in PASSES for _ in range(2)]
    assert before and after == before


def test_a_big_shard_is_read_in_row_ranges_and_the_job_graph_holds_only_file_names(tmp_path, monkeypatch):
    """A shard of more rows than a chunk becomes several chunks that each read only their own bytes; the chunks put in
    the job graph are a few hundred bytes whatever the number of rows."""
    from reportgen.engines import shards

    monkeypatch.setattr(shards, "CHUNK_ROWS", 70)
    p, y = _noisy(200, 3)
    _shards(tmp_path, {"0": (p[:170], y[:170]), "1": (p[170:], y[170:])})
    chunks, k = shards.plan_saved(str(tmp_path / "probs-*.npy"), str(tmp_path / "labels-*.npy"))
    assert k == 3 and [(c.start, c.rows, c.offset) for c in chunks] == [(0, 70, 0), (70, 70, 70), (140, 30, 140), (170, 30, 0)]
    assert max(len(pickle.dumps(c)) for c in chunks) < 1000
    np.testing.assert_array_equal(shards.read_rows(chunks[1].probs["saved"], chunks[1].offset, chunks[1].rows), p[70:140])
    # The run over those chunks equals the run over whole shards.
    whole = _beam_cli(tmp_path, "--quiet", "--version", "chunked")
    assert whole.exit_code == 0, whole.output
    monkeypatch.setattr(shards, "CHUNK_ROWS", 1 << 16)
    again = _beam_cli(tmp_path, "--quiet", "--version", "whole")
    assert again.exit_code == 0, again.output
    a, b = (_summary(tmp_path / "out" / "probs" / v) for v in ("chunked", "whole"))
    assert_same_numbers(a["metrics"], b["metrics"], rel=1e-12)
    assert (tmp_path / "out/probs/chunked/flagged.csv").read_text() == (tmp_path / "out/probs/whole/flagged.csv").read_text()


# Images of the model parity run (a class-folder image set, real digits the fixture model did not train on), S, and the
# rows asked per predicted part (rounded to whole prediction batches of 512 here: two parts, the second starting at global
# batch 1).
MODEL_N, MODEL_S, PART_ROWS = 600, 4, 300


@pytest.fixture(scope="module")
def model_parity(deterministic_audit, mnist, tmp_path_factory):
    """The fixture's trained CNN on a folder of PNG digits, audited by both engines with S MC dropout samples:
    (local folder, beam folder, {"local": AuditResults, "beam": AuditResults}, the ModelSpec the workers loaded)."""
    from PIL import Image

    from reportgen.engines import audit as A
    from reportgen.engines import beam as B

    _, model = deterministic_audit
    d = tmp_path_factory.mktemp("beam-model")
    x, y = mnist
    for i in range(MODEL_N):
        row = 3000 + i  # the npz fixture trained on rows 0..1999 and audited 2000..2999
        (d / "digits" / str(y[row])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[row]).save(d / "digits" / str(y[row]) / f"{row:05d}.png")
    results = {}
    write, load = A.Audit.write, B.load_models
    log = d / "loaded.txt"  # Beam pickles the DoFn (and this function) by value, so it reports through a file

    def keep(self, folder, **kw):  # what each engine hands the report, for the galleries (not in summary.json)
        results[self.results.engine] = self.results
        return write(self, folder, **kw)

    def loaded(spec, _log=str(log)):
        with open(_log, "a") as f:
            f.write("\n".join(spec.paths) + "\n")
        return load(spec)

    common = ["--model", str(model), "--data", str(d / "digits"), "--mc-samples", str(MODEL_S), "--bootstrap", "200",
              "--output", str(d / "out"), "--name", "m", "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A.Audit, "write", keep)
        mp.setattr(B, "PREDICT_PART_ROWS", PART_ROWS)
        mp.setattr(B, "load_models", loaded)
        local = run_cli(["audit", "--version", "local", *common])
        assert local.exit_code == 0, local.output
        beam = run_cli(["audit", "--engine", "beam", "--version", "beam", "--beam-option=--runner=DirectRunner",
                        f"--beam-option=--temp_location={d / 'temp'}", *common])
        assert beam.exit_code == 0, beam.output
    return d / "out" / "m" / "local", d / "out" / "m" / "beam", results, log.read_text().split(), d


def test_beam_audits_a_model_on_an_image_folder_like_the_local_engine(model_parity):
    local, beam = (_summary(f) for f in model_parity[:2])
    lm = local["metrics"]
    assert beam["metrics"]["n_passes"] == MODEL_S and beam["metrics"]["n_samples"] == MODEL_N
    assert lm["mean_epistemic"] > 1e-4 and lm["n_flagged"] >= 3  # MC dropout and the label check have work to agree on
    assert [m["name"] for m in beam["modes"]] == ["deterministic", "mc_dropout"] and beam["shipped"] == "deterministic"
    assert_same_numbers({k: v for k, v in local.items() if k not in RUN_KEYS}, {k: v for k, v in beam.items() if k not in RUN_KEYS},
                        rel=FLOAT32_REL)
    lf, bf = (list(csv.DictReader(open(f / "flagged.csv"))) for f in model_parity[:2])
    assert [(r["split"], r["row"], r["file"], r["sample_id"], r["given"], r["suggested"]) for r in bf] == \
        [(r["split"], r["row"], r["file"], r["sample_id"], r["given"], r["suggested"]) for r in lf]
    assert all(r["file"].endswith(".png") and r["sample_id"].endswith(".png") for r in bf)


def test_the_workers_load_the_model_staged_under_the_temp_location(model_parity):
    """Workers of a cluster cannot read the driver's disk: they load a copy staged next to the run's other files."""
    paths, d = model_parity[3], model_parity[4]
    assert paths and all(p.startswith(str(d / "temp")) for p in paths)
    assert not list((d / "temp").iterdir())  # and it is removed with the rest


def test_beam_model_run_predicts_in_parts_with_the_local_per_sample_numbers(model_parity):
    """Two parts, the second predicted from global batch 1: per-sample probabilities and uncertainties equal."""
    local, beam = model_parity[:2]
    parts = sorted((beam / "predictions").glob("*.csv.gz"))
    assert len(parts) == 2
    rows = [r for f in parts for r in csv.reader(gzip.open(f, "rt"))]
    header, rows = rows[0], [r for r in rows if r[0] != "split"]
    expected = list(csv.reader(gzip.open(local / "predictions.csv.gz", "rt")))
    assert header == expected[0] and len(rows) == MODEL_N
    numbers = [i for i, h in enumerate(header) if h.startswith("p_") or h in ("confidence", "total", "aleatoric", "epistemic")]
    for a, b in zip(expected[1:], rows):
        assert [v for i, v in enumerate(b) if i not in numbers] == [v for i, v in enumerate(a) if i not in numbers]
        assert [float(b[i]) for i in numbers] == pytest.approx([float(a[i]) for i in numbers], rel=FLOAT32_REL, abs=1e-9)


def test_beam_model_run_shows_the_local_galleries(model_parity):
    local, beam = model_parity[2]["local"], model_parity[2]["beam"]
    assert set(beam.galleries) == set(local.galleries) == {"gallery_aleatoric", "gallery_epistemic", "gallery_errors", "gallery_flagged"}
    for key, items in local.galleries.items():
        other = beam.galleries[key]
        assert [(g.split, g.source_row, g.label, g.predicted) for g in other] == [(g.split, g.source_row, g.label, g.predicted)
                                                                                  for g in items], key
        assert [g.value for g in other] == pytest.approx([g.value for g in items], rel=FLOAT32_REL), key
        for a, b in zip(items, other):
            np.testing.assert_array_equal(b.image, a.image)
            np.testing.assert_allclose(b.probs, a.probs, rtol=FLOAT32_REL, atol=1e-9)
            assert (a.std is None) == (b.std is None)
    assert beam.galleries["gallery_epistemic"][0].std is not None and max(beam.galleries["gallery_epistemic"][0].std) > 0


@pytest.mark.parametrize("extra, message", [
    (["--cv", "3"], "--cv is not supported with --engine beam"),
    (["--audit-size", "50"], "--audit-size is not supported with --engine beam"),
    (["--reviews", "review.csv"], "--reviews is not supported with --engine beam"),
    (["--images", "x.npy"], "--images is not supported with --engine beam"),
])
def test_beam_refuses_what_it_cannot_run_yet_in_one_line(tmp_path, extra, message):
    r = run_cli(["audit", "--engine", "beam", "--output", str(tmp_path / "out"), *extra])
    assert r.exit_code != 0 and message in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_part_that_cannot_be_predicted_fails_in_one_line_and_writes_nothing(deterministic_audit, mnist_npz, tmp_path):
    from reportgen.engines import beam as B
    from reportgen.errors import DataError
    from reportgen.model import predict as PR

    _, model = deterministic_audit
    real = PR.predict

    def broken(models, images, **kw):  # the second part's images cannot be decoded on its worker
        if kw.get("first_batch"):
            raise DataError("photos/7/x.png: cannot decode the image (truncated file)")
        return real(models, images, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PR, "predict", broken)
        mp.setattr(B, "PREDICT_PART_ROWS", PART_ROWS)
        r = run_cli(["audit", "--engine", "beam", "--model", str(model), "--data", str(mnist_npz), "--mc-samples", "2",
                     "--bootstrap", "20", "--output", str(tmp_path / "out"), "--name", "m", "--quiet"])
    assert r.exit_code != 0
    assert r.output.strip() == "Error: photos/7/x.png: cannot decode the image (truncated file)"
    assert not (tmp_path / "out" / "m").exists() and not list((tmp_path / "out").glob(".beam-*"))


def test_beam_without_a_model_audits_the_default_cnn_like_the_local_engine(deterministic_audit, archive, mnist_npz, tmp_path):
    """No --model: the driver trains the default CNN as --engine local does, or reuses it from the model cache (here the
    one the local fixture audit trained), and the beam run's numbers and flags are those of a local audit of the same
    model with the same label check (--cv 0: the Beam engine has no cross-validated checker)."""
    import shutil

    fixture, _ = deterministic_audit
    shutil.copytree(archive / ".models", tmp_path / "out" / ".models")
    args = ["audit", "--data", str(mnist_npz), "--epochs", "1", "--mc-samples", "1", "--cv", "0", "--output", str(tmp_path / "out")]
    r = run_cli([*args, "--engine", "beam", "--version", "beam"])
    assert r.exit_code == 0, r.output
    assert "reusing the default model" in r.stderr
    beam = Path(r.stdout.strip().splitlines()[-1])
    assert beam.parent.relative_to(tmp_path / "out") == fixture.parent.relative_to(archive)  # same model, so the same name
    r = run_cli([*args, "--version", "local"])
    assert r.exit_code == 0, r.output
    local = beam.parent / "local"
    a, b = _summary(local)["metrics"], _summary(beam)["metrics"]
    assert a["n_samples"] == b["n_samples"] == 1000 and a["n_checked"] == b["n_checked"] == 1000
    assert_same_numbers(a, b, rel=FLOAT32_REL)
    rows = lambda f: [(r["split"], r["row"]) for r in csv.DictReader(open(f / "flagged.csv"))]  # noqa: E731
    assert rows(local) == rows(beam)


def test_beam_refuses_mc_samples_of_a_model_whose_dropout_cannot_be_split(mnist_npz, tmp_path):
    """Such a model samples from Keras' global generator, so parts predicted apart would not draw one run's samples."""
    import keras

    inp = keras.Input((28, 28, 1))
    x = keras.layers.Add()([keras.layers.Conv2D(2, 3, padding="same")(inp), keras.layers.Conv2D(2, 1)(inp)])
    out = keras.layers.Dense(10)(keras.layers.Dropout(0.1)(keras.layers.Flatten()(x)))
    keras.Model(inp, out).save(tmp_path / "skip.keras")
    args = ["audit", "--engine", "beam", "--model", str(tmp_path / "skip.keras"), "--data", str(mnist_npz), "--output", str(tmp_path / "out")]
    r = run_cli([*args, "--mc-samples", "3"])
    assert r.exit_code != 0 and "skip.keras: its dropout cannot be split" in r.output and "--engine local" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "skip").exists()


@pytest.mark.parametrize("error, line", [
    (lambda: __import__("reportgen.errors").errors.ModelError("m.keras: not a Keras model file"), "Error: m.keras: not a Keras model file"),
    (lambda: OSError("No such file or directory: '/shared/m.keras'"), "the worker cannot load the model (No such file or directory"),
])
def test_a_model_the_workers_cannot_load_fails_in_one_line(deterministic_audit, mnist_npz, tmp_path, error, line):
    from reportgen.engines import beam as B

    _, model = deterministic_audit

    def cannot(spec):
        raise error()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(B, "load_models", cannot)
        r = run_cli(["audit", "--engine", "beam", "--model", str(model), "--data", str(mnist_npz), "--mc-samples", "2",
                     "--bootstrap", "20", "--output", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code != 0 and line in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not (tmp_path / "out" / "m").exists() and not list((tmp_path / "out").glob(".beam-*"))
