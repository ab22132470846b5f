"""Your model on your images: class folders, CSV manifests, RGB of mixed sizes, the model's own preprocessing,
and every disagreement between labels, classes and model caught before any work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import N_AUDIT, N_TRAIN, read_idx, run_cli

from reportgen.data import datasets as D
from reportgen.errors import DataError
from reportgen.data.images import ImageFiles

import keras  # noqa: E402

# Debian's dataset-fashion-mnist (`make test` installs it as root).
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").exists(),
                                   reason="dataset-fashion-mnist not installed")
# Fashion-MNIST's classes in label order ('/' cannot be in a folder name).
FASHION_CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Images exported per split: enough for a one-epoch CNN to beat chance clearly, few enough to stay fast.
FASHION_TRAIN, FASHION_TEST = 1200, 400


def snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


def one_line_error(result, out: Path, *must_contain: str) -> str:
    """The run failed with one 'Error:' line naming what is wrong, and wrote nothing under `out`."""
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in must_contain:
        assert text in lines[0], lines[0]
    assert snapshot(out) == set()
    return lines[0]


def audit(out: Path, *args: str):
    return run_cli(["--quiet", "audit", "--output", str(out), *args])


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads((Path(result.stdout.strip().splitlines()[-1]) / "summary.json").read_text())


# --------------------------------------------------------------------------- Fashion-MNIST as PNG files


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """{"tree": train/ + test/ class folders of PNGs, "manifest": a CSV of the same files, "x_test", "y_test"}.

    File names carry the image's row in the IDX file, so a test can find the original pixels.
    """
    if not (FASHION / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    root = tmp_path_factory.mktemp("fashion")
    tree = root / "tree"
    parts = {"train": ("train", FASHION_TRAIN), "test": ("t10k", FASHION_TEST)}
    rows, arrays = [], {}
    for split, (prefix, n) in parts.items():
        x = read_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz")[:n]
        y = read_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")[:n].astype(np.int64)
        arrays[split] = (x, y)
        for i, (img, label) in enumerate(zip(x, y)):
            f = tree / split / FASHION_CLASSES[label] / f"{i:05d}.png"
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(f)
            rows.append({"path": f.relative_to(root).as_posix(), "label": FASHION_CLASSES[label], "split": split})
    manifest = root / "fashion.csv"
    order = np.random.default_rng(0).permutation(len(rows))  # a manifest need not follow any folder order
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows[i] for i in order)
    return {"tree": tree, "manifest": manifest, "arrays": arrays}


def _rows(files: ImageFiles) -> np.ndarray:
    return np.array([int(Path(p).stem) for p in files.paths])


@needs_fashion
def test_png_tree_and_manifest_load_the_exact_pixels_and_labels(fashion):
    s = D.load(fashion["tree"])
    assert s.train.images.shape == (FASHION_TRAIN, 28, 28, 1) and s.test.images.shape == (FASHION_TEST, 28, 28, 1)
    assert s.test.class_names == sorted(FASHION_CLASSES)  # folder names, sorted as Keras' folder loader does
    x, y = fashion["arrays"]["test"]
    rows = _rows(s.test.images)
    np.testing.assert_array_equal(s.test.images[:][..., 0], x[rows])
    assert [s.test.class_names[k] for k in s.test.labels] == [FASHION_CLASSES[k] for k in y[rows]]
    assert s.test.provenance.source == "folder" and len(s.test.provenance.sha256) == 64
    assert Path(s.test.source_files[3]).stem == f"{rows[3]:05d}" and D.take(s.test, 5, seed=0).source_files.shape == (5,)
    m = D.load(fashion["manifest"])
    assert m.train.images.shape[0] == FASHION_TRAIN and m.test.class_names == s.test.class_names
    mrows = _rows(m.test.images)
    np.testing.assert_array_equal(m.test.images[:][..., 0], x[mrows])
    assert [m.test.class_names[k] for k in m.test.labels] == [FASHION_CLASSES[k] for k in y[mrows]]


@pytest.fixture(scope="module")
def fashion_audit(fashion, tmp_path_factory):
    """`reportgen audit --data <PNG tree>`: the default CNN trained on train/, audited on test/ (S = 1)."""
    out = tmp_path_factory.mktemp("fashion-out")
    r = audit(out, "--data", str(fashion["tree"]), "--epochs", "2", "--mc-samples", "1", "--cv", "0")
    return summary(r), next((out / ".models").glob("*.keras"))


@needs_fashion
def test_png_tree_audit_trains_on_train_and_audits_test(fashion, fashion_audit):
    s, model = fashion_audit
    d = s["dataset"]
    assert [(p["name"], p["count"]) for p in d["splits"]] == [("train", FASHION_TRAIN), ("test", FASHION_TEST)]
    assert d["audited"]["count"] == FASHION_TEST and d["input_format"].startswith("28×28 pixel images, 1 channel")
    assert d["preprocessing"].startswith("pixels divided by 255, so the model sees values in [0, 1] (as the model's metadata records)")
    assert "400 image files decoded and resized to the data set's most common size, 28×28" in d["preprocessing"]
    assert json.loads(model.with_suffix(".json").read_text())["class_names"] == sorted(FASHION_CLASSES)
    # The same model on the original arrays (in the folder's order) is right exactly as often: decoding is exact.
    from reportgen.model import network as M
    from reportgen.model.predict import predict

    x, y = fashion["arrays"]["test"]
    folder = D.load(fashion["tree"]).test
    rows = _rows(folder.images)
    sp = predict([M.load(model)], x[rows][..., None], mc_samples=1)
    assert s["metrics"]["accuracy"] == pytest.approx(float(np.mean(sp.modes["deterministic"].argmax(1) == folder.labels)), abs=1e-12)
    assert s["metrics"]["accuracy"] > 0.6  # two epochs on 1,200 clothes images; chance is 0.1


@needs_fashion
def test_manifest_audit_matches_labels_to_the_model_by_class_name(fashion, fashion_audit, tmp_path):
    """Shuffled manifest rows, labels given as names: matched to the model's classes by name, same accuracy."""
    s_tree, model = fashion_audit
    s = summary(audit(tmp_path / "out", "--data", str(fashion["manifest"]), "--model", str(model), "--mc-samples", "1"))
    assert s["dataset"]["source"] == "csv" and s["dataset"]["audited"]["count"] == FASHION_TEST
    assert s["metrics"]["accuracy"] == pytest.approx(s_tree["metrics"]["accuracy"], abs=1e-12)
    assert [c["name"] for c in s["per_class"]] == sorted(FASHION_CLASSES)


# --------------------------------------------------------------------------- RGB folder, mixed sizes and formats

# (height, width, how many per class): 20 x 20 is the most common size.
RGB_SIZES = [(20, 20, 30), (24, 18, 8), (16, 16, 6)]
RGB_CLASSES = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """Three colour classes (the dominant channel), images of three sizes, one grey image per class, PNG/JPEG/BMP/GIF.

    Every fourth image has a second channel as strong as its class's, so the audited model makes some
    errors (a perfect score is not what this test is about).
    """
    root = tmp_path_factory.mktemp("rgb") / "colours"
    rng = np.random.default_rng(1)
    formats = ["png", "jpg", "bmp", "gif"]
    for c, name in enumerate(RGB_CLASSES):
        channel = 2 - c  # blue -> 2, green -> 1, red -> 0
        (root / name).mkdir(parents=True)
        i = 0
        for h, w, count in RGB_SIZES:
            for _ in range(count):
                img = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
                img[..., channel] = rng.integers(150, 256, (h, w), dtype=np.uint8)
                if i % 4 == 3:
                    img[..., (channel + 1) % 3] = rng.integers(150, 256, (h, w), dtype=np.uint8)
                Image.fromarray(img).save(root / name / f"{i:03d}.{formats[i % 4]}")
                i += 1
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / name / "grey.png")
        (root / name / "notes.txt").write_text("not an image: skipped")
    return root


def test_rgb_folder_of_mixed_sizes_decodes_to_the_common_size(rgb_folder):
    s = D.load(rgb_folder)
    ds = s.whole
    per_class = sum(n for _, _, n in RGB_SIZES) + 1
    assert ds.images.shape == (3 * per_class, 20, 20, 3) and ds.class_names == RGB_CLASSES
    assert ds.images.n_resized == 3 * (8 + 6)
    assert any("3 sizes; the most common, 20×20" in n for n in s.notes)
    assert any("3 file(s) without an image name ending" in n for n in s.notes)
    x = ds.images[:]
    two_colour = np.array([Path(p).stem.isdigit() and int(Path(p).stem) % 4 == 3 for p in ds.images.paths])
    clear = ~ds.images.grey & ~two_colour
    # Every clear colour image, resized or not, keeps its class's dominant channel.
    dominant = x[clear].reshape(int(clear.sum()), -1, 3).mean(axis=1).argmax(axis=1)
    assert clear.sum() > 90 and (dominant == 2 - ds.labels[clear]).all()
    colour = ~ds.images.grey
    # A grey PNG is repeated exactly to three channels.
    g = int(np.flatnonzero(~colour)[0])
    original = np.asarray(Image.open(ds.images.paths[g]))
    assert np.array_equal(x[g], np.repeat(original[..., None], 3, axis=2))
    # Decoded to one channel instead (a grey model): colour becomes BT.601 luma, the grey file stays exact.
    grey = ds.images.with_target(20, 20, 1)
    assert np.array_equal(grey[g][..., 0], original)
    png = int(np.flatnonzero(np.char.endswith(ds.images.paths, "000.png"))[0])
    rgb = np.asarray(Image.open(ds.images.paths[png]), np.float64)
    np.testing.assert_allclose(grey[png][..., 0], np.round(rgb @ [0.299, 0.587, 0.114]), atol=1)


def test_rgb_folder_audit_with_the_default_cnn(rgb_folder, tmp_path):
    s = summary(audit(tmp_path / "out", "--data", str(rgb_folder), "--epochs", "3", "--mc-samples", "3", "--cv", "0"))
    d = s["dataset"]
    assert d["input_format"].startswith("20×20 pixel images, 3 channels")
    # The audited 20 % (reportgen's seeded split, seed 0): how many of them were stored at another size.
    _, audited = D.split_train_audit(D.load(rgb_folder).whole, audit_fraction=0.2, seed=0)
    n, k = len(audited.labels), audited.images.n_resized
    assert 0 < k < n
    grey = int(audited.images.grey.sum())
    assert (f"{n} image files decoded and resized to the data set's most common size, 20×20, which the default CNN takes "
            f"(bilinear, antialiased; {k} of {n} resized)" + (f"; {grey} grey images repeated to 3 channels." if grey else ".")
            ) in d["preprocessing"]
    assert 0.7 <= s["metrics"]["accuracy"] < 1  # the dominant colour decides the class, but for the two-colour images


def test_image_files_index_like_an_array_and_stream_in_batches(rgb_folder, monkeypatch):
    from reportgen.model import network as M
    from reportgen.model.predict import predict

    files = D.load(rgb_folder).whole.images
    full = files[:]
    assert files[5].shape == (20, 20, 3) and np.array_equal(files[-1], full[-1])
    assert np.array_equal(files[[7, 2, 7]], full[[7, 2, 7]])
    assert np.array_equal(files[files.grey], full[files.grey])
    assert np.array_equal(files.subset(np.array([3, 1]))[:], full[[3, 1]])
    # predict streams: batches of at most its batch size, and no row decoded outside them but the first probe.
    net = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    m = M.from_keras(net)
    seen = []
    real = ImageFiles.batches
    monkeypatch.setattr(ImageFiles, "batches", lambda self, size: (seen.append(len(self)) or real(self, size)))
    streamed = predict([m], files, mc_samples=1)
    assert max(seen) == len(files) and seen.count(len(files)) == 1  # one pass over the files ...
    assert all(n <= 64 for n in seen if n != len(files))  # ... plus the small probe that decides logits vs probs
    at_once = predict([m], full, mc_samples=1)
    np.testing.assert_array_equal(streamed.modes["deterministic"], at_once.modes["deterministic"])


def test_a_broken_image_file_is_named_when_decoding(rgb_folder, tmp_path):
    files = D.load(rgb_folder).whole.images
    bad = tmp_path / "broken.png"
    bad.write_bytes(Path(files.paths[0]).read_bytes()[:60])  # a valid header, no image data
    broken = ImageFiles(np.append(files.paths[:3], str(bad)), np.vstack([files.sizes[:3], [[20, 20]]]),
                        np.zeros(4, bool), files.target)
    with pytest.raises(DataError, match=r"broken\.png: cannot decode image"):
        broken[:]


# --------------------------------------------------------------------------- the model's own preprocessing


def _digits(mnist, n=N_TRAIN):
    x, y = mnist
    return x[:n, ..., None], y[:n]


@pytest.fixture(scope="module")
def rescaling_model(mnist, tmp_path_factory):
    """A small CNN with its own Rescaling(1/255) layer, trained on raw 0-255 digits."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0, name="to_unit"),
                            keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                            keras.layers.Flatten(), keras.layers.Dense(10)])
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _digits(mnist)
    net.fit(x.astype(np.float32), y, epochs=2, batch_size=128, verbose=0)
    path = tmp_path_factory.mktemp("rescaling") / "rescaling.keras"
    net.save(path)
    return path


def _keras_accuracy(path: Path, mnist, scale) -> float:
    """The model's accuracy on the audited digits (mnist_npz's test split), computed by Keras itself."""
    x, y = mnist
    xt, yt = x[N_TRAIN:N_TRAIN + N_AUDIT, ..., None], y[N_TRAIN:N_TRAIN + N_AUDIT]
    return float(np.mean(keras.saving.load_model(path).predict(scale(xt), verbose=0).argmax(1) == yt))


def test_model_with_rescaling_gets_raw_pixels(rescaling_model, mnist_npz, mnist, tmp_path):
    s = summary(audit(tmp_path / "out", "--data", str(mnist_npz), "--model", str(rescaling_model), "--mc-samples", "1"))
    assert s["dataset"]["preprocessing"].startswith("raw pixel values 0-255, as floats (the model scales its inputs itself "
                                                    "(Rescaling 'to_unit' layer))")
    expected = _keras_accuracy(rescaling_model, mnist, lambda x: x.astype(np.float32))
    assert s["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-12) and expected > 0.7


def test_guard_stops_double_scaling_and_names_raw(rescaling_model, mnist_npz, tmp_path):
    out = tmp_path / "out"
    r = audit(out, "--data", str(mnist_npz), "--model", str(rescaling_model), "--preprocess", "unit")
    one_line_error(r, out, "rescaling.keras: with unit preprocessing", "about chance", "pass --preprocess raw")


@pytest.fixture(scope="module")
def symmetric_model(mnist, tmp_path_factory):
    """The default CNN trained on [-1, 1] inputs, saved without metadata: nothing tells reportgen its scaling."""
    from reportgen.model import network as M
    keras.utils.set_random_seed(0)
    net = M.build_default_cnn((28, 28, 1), 10)
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _digits(mnist)
    net.fit(M.preprocess(x, "symmetric"), y, epochs=2, batch_size=128, verbose=0)
    path = tmp_path_factory.mktemp("symmetric") / "symmetric.keras"
    net.save(path)
    return path


def test_model_trained_on_symmetric_inputs_is_stopped_then_audited(symmetric_model, mnist_npz, mnist, tmp_path):
    out = tmp_path / "out"
    r = audit(out, "--data", str(mnist_npz), "--model", str(symmetric_model), "--mc-samples", "1")
    line = one_line_error(r, out, "symmetric.keras: with unit preprocessing (reportgen's default", "symmetric")
    assert "pass --preprocess symmetric" in line or "pass --preprocess imagenet (symmetric" in line, line
    s = summary(audit(out, "--data", str(mnist_npz), "--model", str(symmetric_model), "--mc-samples", "1",
                      "--preprocess", "symmetric"))
    assert s["dataset"]["preprocessing"].startswith("pixels scaled to [-1, 1] (x / 127.5 - 1) (as --preprocess symmetric asks)")
    expected = _keras_accuracy(symmetric_model, mnist, lambda x: x.astype(np.float32) / 127.5 - 1)
    assert s["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-12) and expected > 0.7


# --------------------------------------------------------------------------- labels and classes agree first


def _tiny_model(tmp_path, k=10) -> Path:
    p = tmp_path / f"k{k}.keras"
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(k)]).save(p)
    return p


def test_audited_labels_absent_from_training_are_refused_before_training(tmp_path, mnist):
    """The issue's case: test labels 20-29, training labels 0-9. Nothing is trained or cached."""
    x, y = mnist
    p = tmp_path / "shifted.npz"
    np.savez(p, x_train=x[:300], y_train=y[:300], x_test=x[300:400], y_test=y[300:400] + 20)
    out = tmp_path / "out"
    one_line_error(audit(out, "--data", str(p)), out, "shifted.npz", "10 audited label(s) never occur in the 300 training labels",
                   "(20, 21, 22, 23, 24, ...)")


def test_labels_beyond_the_models_classes(tmp_path, mnist):
    x, y = mnist
    y = y[:200].copy()
    y[9] = 12
    p = tmp_path / "twelve.npz"
    np.savez(p, x=x[:200], y=y)
    out = tmp_path / "out"
    one_line_error(audit(out, "--data", str(p), "--model", str(_tiny_model(tmp_path))), out,
                   "k10.keras: model predicts 10 classes, labels go up to 12")


def test_class_name_count_must_equal_the_models_k(tmp_path, mnist_npz):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"digit {i}" for i in range(8)))
    out = tmp_path / "out"
    one_line_error(audit(out, "--data", str(mnist_npz), "--model", str(_tiny_model(tmp_path)), "--class-names", str(names)),
                   out, "names.txt: 8 class names for a model of 10 classes")


def test_folder_classes_must_match_the_models_k(tmp_path, rgb_folder):
    model = tmp_path / "rgb4.keras"
    keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Flatten(), keras.layers.Dense(4)]).save(model)
    out = tmp_path / "out"
    one_line_error(audit(out, "--data", str(rgb_folder), "--model", str(model)), out,
                   "3 classes in the data, but the model predicts 4; give --class-names FILE")


@pytest.mark.parametrize("bad, problem", [
    ("missing", "does not exist"),
    ("text", "is not an image"),
])
def test_manifest_row_whose_file_is_missing_or_not_an_image(tmp_path, mnist, bad, problem):
    x, y = mnist
    rows = ["path,label"]
    for i in range(6):
        Image.fromarray(x[i]).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{y[i]}")
    if bad == "missing":
        rows.insert(3, "gone.png,1")
    else:
        (tmp_path / "notes.png").write_text("a text file with an image's name")
        rows.insert(3, "notes.png,1")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    line = one_line_error(audit(out, "--data", str(manifest)), out, "manifest.csv: line 4:", problem)  # header = line 1
    assert ("gone.png" if bad == "missing" else "notes.png") in line


# --------------------------------------------------------------------------- array shapes


def test_channels_first_arrays_are_transposed_and_noted(tmp_path, mnist):
    x, y = mnist
    rgb = np.repeat(x[:50, None], 3, axis=1)  # (N, 3, 28, 28)
    p = tmp_path / "cf.npz"
    np.savez(p, x=rgb, y=y[:50])
    s = D.load(p)
    assert s.whole.images.shape == (50, 28, 28, 3)
    np.testing.assert_array_equal(s.whole.images[..., 1], x[:50])
    assert any("read as channels-first (N, C, H, W) and transposed" in n for n in s.notes)
    np.savez(p, x=np.zeros((4, 3, 2, 28)), y=[0, 1, 0, 1])  # 3 channels of 2 x 28, or 28 channels of 3 x 2?
    with pytest.raises(DataError, match=r"cannot tell whether images of shape \(4, 3, 2, 28\) are channels-first"):
        D.load(p)


def test_hw_model_and_free_size_model_audit_through_the_api(mnist):
    import reportgen

    x, y = mnist
    keras.utils.set_random_seed(0)
    hw = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    hw.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hw.fit(x[:N_TRAIN] / 255.0, y[:N_TRAIN], epochs=2, verbose=0)
    a = reportgen.audit(hw, x[N_TRAIN:N_TRAIN + N_AUDIT], y[N_TRAIN:N_TRAIN + N_AUDIT], mc_samples=1, bootstrap=20)
    assert a.metrics["accuracy"] > 0.8
    assert "the channel axis dropped for the model's (H, W) input" in a.dataset_info["preprocessing"]
    free = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3), keras.layers.SpatialDropout2D(0.5),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    b = reportgen.audit(free, x[:300], y[:300], mc_samples=4, bootstrap=20)
    assert b.method["method"] == "mc_dropout" and b.results.sampled == "mc_dropout" and b.metrics["mean_epistemic"] > 0
