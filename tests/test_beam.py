"""--engine beam on Beam's DirectRunner against the local engine on the same rows (reportgen/beam.py)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytest.importorskip("apache_beam")

# Rows of the parity data set (three uneven shards): big enough that every pass has work, small enough for `make test`.
N, K = 3000, 6
# Metrics the sharded run reads from a confidence histogram (reportgen.engines.beam.RESOLUTION), and how close they must be.
HISTOGRAM_KEYS = {"aurc": 1e-3, "aurc_ci_low": 5e-3, "aurc_ci_high": 5e-3}


def _noisy(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities of a decent classifier and labels with 6 % flipped (some confident label errors)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0, 1, (n, k))
    z[np.arange(n), y] += 3.5
    given = np.where(rng.random(n) < 0.06, rng.integers(0, k, n), y)
    p = np.exp(z)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), given


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """One local and one beam audit of the same rows: (local folder, beam folder, archive root)."""
    d = tmp_path_factory.mktemp("beam")
    p, y = _noisy(N, K)
    np.save(d / "all-probs.npy", p)
    np.save(d / "all-labels.npy", y)
    for key, rows in (("a", slice(0, 1100)), ("b", slice(1100, 1101 + 1000)), ("c", slice(2101, N))):
        np.save(d / f"probs-{key}.npy", p[rows])
        np.save(d / f"labels-{key}.npy", y[rows])
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
    assert (d / "temp").is_dir() and not list((d / "temp").iterdir())  # the workers' pieces went there and are gone
    return out / "m" / "local", out / "m" / "beam", out


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())["metrics"]


def test_beam_metrics_equal_the_local_engine(parity):
    """Counts exactly, floats within 1e-9 relative, histogram-based metrics within their documented resolution."""
    local, beam = _metrics(parity[0]), _metrics(parity[1])
    assert local["n_flagged"] > 20 and local["n_issues_estimated"] > 20  # the label check has real work to agree on
    _assert_same_metrics(local, beam)


def _assert_same_metrics(local: dict, beam: dict, bounds: dict | None = None) -> None:
    """bounds: the beam run's resolution bounds (key -> largest |difference|) instead of HISTOGRAM_KEYS's tolerances."""
    assert set(local) == set(beam)
    for key, a in local.items():
        b = beam[key]
        if a is None or isinstance(a, int) and not isinstance(a, bool):
            assert b == a, key
        elif bounds and key in bounds:
            assert abs(b - a) <= bounds[key], key
        elif key in HISTOGRAM_KEYS:
            assert b == pytest.approx(a, rel=HISTOGRAM_KEYS[key]), key
        else:
            assert b == pytest.approx(a, rel=1e-9, abs=1e-15), key


def test_beam_flags_the_same_samples_in_the_same_order(parity):
    local, beam = (list(csv.DictReader(open(f / "flagged.csv"))) for f in parity[:2])
    assert [(r["split"], r["row"], r["given"], r["suggested"]) for r in beam] == [(r["split"], r["row"], r["given"], r["suggested"])
                                                                                  for r in local]
    assert [float(r["p_given"]) for r in beam] == pytest.approx([float(r["p_given"]) for r in local], rel=1e-9)


def test_beam_writes_per_sample_shards_listed_in_the_manifest(parity):
    """flagged/ and predictions/ hold one file per input shard; together they are the local per-sample files."""
    local, beam = parity[:2]
    listed = json.loads((beam / "manifest.json").read_text())["files"]
    shards = sorted(name for name in listed if name.startswith(("flagged/", "predictions/")))
    assert shards == ["flagged/flagged-a.csv", "flagged/flagged-b.csv", "flagged/flagged-c.csv",
                      "predictions/predictions-a.csv.gz", "predictions/predictions-b.csv.gz", "predictions/predictions-c.csv.gz"]
    rows = [r for key in "abc" for r in csv.reader(gzip.open(beam / "predictions" / f"predictions-{key}.csv.gz", "rt")) if r[0] != "split"]
    expected = [r for r in csv.reader(gzip.open(local / "predictions.csv.gz", "rt")) if r[0] != "split"]
    assert len(rows) == N
    drop = lambda r: r[:5 + K + 1] + r[5 + K + 3:]  # noqa: E731 - entropies: numpy here, TFP there (agree to ~1e-15)
    assert [drop(r) for r in rows] == [drop(r) for r in expected]
    flagged = {int(r["row"]) for key in "abc" for r in csv.DictReader(open(beam / "flagged" / f"flagged-{key}.csv"))}
    assert flagged == {int(r["row"]) for r in csv.DictReader(open(local / "flagged.csv"))}
    assert not list(parity[2].glob(".beam-*"))  # the staging folder is gone


def test_verify_and_compare_accept_the_beam_folder(parity):
    local, beam, out = parity
    assert run_cli(["verify", str(beam)]).exit_code == 0
    r = run_cli(["compare", str(local), str(beam), "--output", str(out / "cmp"), "--quiet"])
    assert r.exit_code == 0, r.output
    cmp = json.loads((out / "cmp" / "compare.json").read_text())
    assert cmp["same_samples"] is True, cmp["samples_note"]
    assert cmp["verdict"]["word"] == "unchanged"
    assert cmp["flagged"]["new"] == [] and cmp["flagged"]["resolved"] == []
    summary = json.loads((beam / "summary.json").read_text())
    resolution = summary["provenance"]["resolution"]
    assert summary["provenance"]["engine"] == "beam" and resolution["also_from_histogram"] == []
    local = json.loads((local / "summary.json").read_text())["metrics"]
    assert abs(summary["metrics"]["aurc"] - local["aurc"]) <= resolution["aurc_bound"]
    for key in ("aurc_ci_low", "aurc_ci_high"):
        assert abs(summary["metrics"][key] - local[key]) <= resolution["aurc_ci_bound"], key


def _shards(d: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for key, (p, y) in parts.items():
        np.save(d / f"probs-{key}.npy", p)
        np.save(d / f"labels-{key}.npy", y)


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
    assert not (tmp_path / "out").exists()


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


def test_every_pass_runs_numpy_blas_on_one_thread_and_the_caller_keeps_its_own(tmp_path, monkeypatch):
    """A worker process has one core of its own (beam.WORKER_BLAS_THREADS), so each pass limits OpenBLAS to one thread for
    its call; an in-process runner leaves the driver's setting as it was."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from reportgen.engines import beam as B
    def blas_threads():
        return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

    log = tmp_path / "threads.txt"  # Beam pickles the passes, so they report through a file
    for name in ("pass1", "pass2", "pass3", "pass4"):
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
    assert seen == [f"{name} [{B.WORKER_BLAS_THREADS}]" for name in ("pass1", "pass2", "pass3", "pass4") for _ in range(2)]
    assert before and after == before


def test_keyed_selections_do_not_depend_on_the_sharding():
    """Smallest / Largest (display sample, temperature-fit rows, prune margins) merge to the one-pass selection."""
    from reportgen.engines.beam import Largest, Smallest

    rng = np.random.default_rng(3)
    rec = np.zeros(500, dtype=[("key", "f8"), ("row", "i8")])
    rec["key"] = rng.integers(0, 50, 500) / 50  # many ties: broken by row
    rec["row"] = np.arange(500)
    whole = Smallest.of(rec, 40, ("key", "row")).records
    parts = [Smallest.of(rec[i:j], 40, ("key", "row")) for i, j in ((0, 130), (130, 131), (131, 500))]
    merged = parts[2].merge(parts[0]).merge(parts[1]).records
    assert sorted(merged["row"].tolist()) == sorted(whole["row"].tolist())
    assert whole["key"].max() == pytest.approx(np.sort(rec["key"])[39])
    v = rng.normal(size=300)
    a, b = Largest({(0, 1): 17}, {(0, 1): v[:100]}), Largest({(0, 1): 17}, {(0, 1): v[100:]})
    a = Largest(a.limits, {key: np.sort(x)[-17:] for key, x in a.values.items()})
    assert np.sort(a.merge(b).values[(0, 1)]).tolist() == np.sort(v)[-17:].tolist()


# Images of the model parity run (a class-folder image set, real digits the fixture model did not train on), S, and the
# rows asked per predicted part (rounded to whole prediction batches of 512 here: two parts, the second starting at global
# batch 1).
MODEL_N, MODEL_S, PART_ROWS = 600, 4, 300


@pytest.fixture(scope="module")
def model_parity(deterministic_audit, mnist, tmp_path_factory):
    """The fixture's trained CNN on a folder of PNG digits, audited by both engines with S MC dropout samples:
    (local folder, beam folder, {"local": ReducedAudit, "beam": ReducedAudit})."""
    from PIL import Image

    from reportgen.engines import beam as B
    from reportgen.engines import local as P
    _, model = deterministic_audit
    d = tmp_path_factory.mktemp("beam-model")
    x, y = mnist
    for i in range(MODEL_N):
        row = 3000 + i  # the npz fixture trained on rows 0..1999 and audited 2000..2999
        (d / "digits" / str(y[row])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[row]).save(d / "digits" / str(y[row]) / f"{row:05d}.png")
    reduced = {}
    write = P.Audit.write

    def keep(self, folder, **kw):  # what each engine hands the report, for the galleries (not in summary.json)
        reduced[self.reduced.engine] = self.reduced
        return write(self, folder, **kw)

    common = ["--model", str(model), "--data", str(d / "digits"), "--mc-samples", str(MODEL_S), "--bootstrap", "200",
              "--output", str(d / "out"), "--name", "m", "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P.Audit, "write", keep)
        mp.setattr(B, "PREDICT_SHARD_ROWS", PART_ROWS)
        local = run_cli(["audit", "--version", "local", *common])
        assert local.exit_code == 0, local.output
        beam = run_cli(["audit", "--engine", "beam", "--version", "beam", "--beam-option=--runner=DirectRunner", *common])
        assert beam.exit_code == 0, beam.output
    return d / "out" / "m" / "local", d / "out" / "m" / "beam", reduced


def test_beam_audits_a_model_on_an_image_folder_like_the_local_engine(model_parity):
    local, beam, reduced = model_parity
    lm, bm = _metrics(local), _metrics(beam)
    assert bm["n_passes"] == MODEL_S and bm["n_samples"] == MODEL_N
    assert lm["mean_epistemic"] > 1e-4 and lm["n_flagged"] >= 3  # MC dropout and the label check have work to agree on
    ls, bs = (json.loads((f / "summary.json").read_text()) for f in (local, beam))
    res = bs["provenance"]["resolution"]
    # 600 rows: few samples per histogram bin, so the AURC and its interval are checked against their proven bounds
    # (worst cases over the order of the samples inside each bin; the interval's coarse bins make its bound loose).
    assert 0 < res["aurc_bound"] < 0.01 * lm["aurc"] and res["aurc_ci_bound"] > 0
    _assert_same_metrics(lm, bm, {"aurc": res["aurc_bound"], "aurc_ci_low": res["aurc_ci_bound"], "aurc_ci_high": res["aurc_ci_bound"]})
    assert bs["method"] == ls["method"] and bs["method"]["method"] == "mc_dropout"
    assert bs["epistemic_measured"] is True and bs["data"] == ls["data"]
    assert bs["label_issues"]["checker"]["kind"] == "audited_model" == ls["label_issues"]["checker"]["kind"]
    for a, b in zip(ls["per_class"], bs["per_class"]):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == (pytest.approx(a[key], rel=1e-9) if isinstance(a[key], float) else a[key]), (a["name"], key)
    lf, bf = (list(csv.DictReader(open(f / "flagged.csv"))) for f in (local, beam))
    assert [(r["split"], r["row"], r["file"], r["given"], r["suggested"]) for r in bf] == \
        [(r["split"], r["row"], r["file"], r["given"], r["suggested"]) for r in lf]
    assert all(r["file"].endswith(".png") for r in bf)
    shards = [r for f in sorted((beam / "flagged").glob("*.csv")) for r in csv.DictReader(open(f))]
    assert sorted((r["split"], r["row"], r["file"]) for r in shards) == sorted((r["split"], r["row"], r["file"]) for r in lf)


def test_beam_model_run_predicts_in_parts_with_the_local_per_sample_numbers(model_parity):
    """Two parts, the second predicted from global batch 1: per-sample probabilities, aleatoric and epistemic equal."""
    local, beam, _ = model_parity
    parts = sorted((beam / "predictions").glob("*.csv.gz"))
    assert len(parts) == 2
    rows = [r for f in parts for r in csv.reader(gzip.open(f, "rt"))]
    header, rows = rows[0], [r for r in rows if r[0] != "split"]
    expected = list(csv.reader(gzip.open(local / "predictions.csv.gz", "rt")))
    assert header == expected[0] and len(rows) == MODEL_N
    entropies = [header.index("total"), header.index("epistemic")]  # numpy here, TFP there (agree to ~1e-15)
    for a, b in zip(expected[1:], rows):
        assert [v for i, v in enumerate(b) if i not in entropies] == [v for i, v in enumerate(a) if i not in entropies]
        assert [float(b[i]) for i in entropies] == pytest.approx([float(a[i]) for i in entropies], rel=1e-9, abs=1e-12)


def test_beam_model_run_shows_the_local_galleries(model_parity):
    local, beam = model_parity[2]["local"], model_parity[2]["beam"]
    assert set(beam.galleries) == set(local.galleries) == {"gallery_aleatoric", "gallery_epistemic", "gallery_flagged"}
    for key, items in local.galleries.items():
        other = beam.galleries[key]
        assert [(g.split, g.source_row, g.label, g.predicted) for g in other] == [(g.split, g.source_row, g.label, g.predicted)
                                                                                  for g in items], key
        assert [g.value for g in other] == pytest.approx([g.value for g in items], rel=1e-9), key
        for a, b in zip(items, other):
            np.testing.assert_array_equal(b.image, a.image)
            np.testing.assert_allclose(b.probs, a.probs, rtol=1e-12)
            assert (a.std is None) == (b.std is None)
    assert beam.galleries["gallery_epistemic"][0].std.max() > 0  # the spread over the MC samples is shown
    np.testing.assert_allclose(beam.display.epistemic, local.display.epistemic, rtol=1e-9, atol=1e-15)


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
    from reportgen.model import predict as PR
    from reportgen.errors import DataError

    _, model = deterministic_audit
    real = PR.predict

    def broken(models, images, **kw):  # the second part's images cannot be decoded on its worker
        if kw.get("first_batch"):
            raise DataError("photos/7/x.png: cannot decode the image (truncated file)")
        return real(models, images, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PR, "predict", broken)
        mp.setattr(B, "PREDICT_SHARD_ROWS", PART_ROWS)
        r = run_cli(["audit", "--engine", "beam", "--model", str(model), "--data", str(mnist_npz), "--mc-samples", "2",
                     "--bootstrap", "20", "--output", str(tmp_path / "out"), "--name", "m", "--quiet"])
    assert r.exit_code != 0
    assert r.output.strip() == "Error: photos/7/x.png: cannot decode the image (truncated file)"
    assert not (tmp_path / "out").exists()  # no report, and the staging folder (with the first part's files) is gone


def test_beam_without_a_model_audits_the_default_cnn_like_the_local_engine(deterministic_audit, archive, mnist_npz, tmp_path):
    """No --model: the driver trains the default CNN as --engine local does, or reuses it from the model cache (here the
    one the local fixture audit trained), and the beam run's numbers and flags are the local audit's."""
    import shutil

    local, _ = deterministic_audit
    shutil.copytree(archive / ".models", tmp_path / "out" / ".models")
    r = run_cli(["audit", "--engine", "beam", "--data", str(mnist_npz), "--epochs", "1", "--mc-samples", "1",
                 "--output", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "reusing the default model" in r.stderr
    beam = Path(r.stdout.strip().splitlines()[-1])
    assert beam.relative_to(tmp_path / "out") == local.relative_to(archive)  # same model, so the same name and version
    a, b = (json.loads((f / "summary.json").read_text())["metrics"] for f in (local, beam))
    assert a["n_samples"] == b["n_samples"] == 1000 and a["n_flagged"] == b["n_flagged"]
    for key, x in a.items():
        if isinstance(x, float) and not any(key.startswith(h) for h in ("aurc",)):
            assert b[key] == pytest.approx(x, rel=1e-9, abs=1e-12), key
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
    assert not (tmp_path / "out").exists()


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
    assert not (tmp_path / "out").exists()
