"""Model loading and fitting: logits vs probabilities, preprocessing, layouts, classes, .h5, metadata, Lambda refusal, cache keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

import keras  # noqa: E402

from reportgen.model import network as M  # noqa: E402
from reportgen.data.datasets import sha256_file  # noqa: E402
from reportgen.errors import DataError, ModelError, OutputError  # noqa: E402


def _tiny(activation=None, softmax_layer=False):
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation=activation)]
    if softmax_layer:
        layers.append(keras.layers.Softmax())
    return keras.Sequential(layers)


def _nested_softmax():
    """Softmax inside a nested model: the outer model's last layer is a Sequential, not a softmax."""
    inner = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    return keras.Sequential([keras.Input((28, 28, 1)), inner])


def _ops_softmax():
    """A functional model whose output is keras.ops.softmax of logits: no softmax layer at all."""
    inp = keras.Input((28, 28, 1))
    return keras.Model(inp, keras.ops.softmax(keras.layers.Dense(10)(keras.layers.Flatten()(inp))))


_PIXELS = np.random.default_rng(0).integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)


@pytest.mark.parametrize("build, expected", [
    (lambda: _tiny(), False),
    (lambda: _tiny(activation="relu"), False),  # non-negative, but rows do not sum to 1
    (lambda: _tiny(activation="softmax"), True),
    (lambda: _tiny(softmax_layer=True), True),
    (_nested_softmax, True),
    (_ops_softmax, True),
], ids=["logits", "relu", "softmax-activation", "softmax-layer", "nested-softmax", "ops-softmax"])
def test_outputs_told_apart_by_a_probe_batch_and_softmax_applied_once(tmp_path, build, expected):
    from reportgen.model.predict import predict

    keras.utils.set_random_seed(0)
    p = tmp_path / "m.keras"
    build().save(p)
    m = M.load(p)
    assert m.outputs_probs is None  # nothing guessed from the layers
    assert M.ready(m, _PIXELS).outputs_probs is expected
    sp = predict([m], _PIXELS, mc_samples=1)
    raw = np.asarray(m.model(_PIXELS.astype(np.float32) / 255.0), np.float64)
    want = raw / raw.sum(1, keepdims=True) if expected else np.exp(raw) / np.exp(raw).sum(1, keepdims=True)
    # Softmax applied twice would flatten the rows: max |difference| ~0.1 here, far beyond 1e-6.
    np.testing.assert_allclose(sp.modes["deterministic"], want, atol=1e-6)


def test_h5_model_loads(tmp_path):
    p = tmp_path / "legacy.h5"
    _tiny(activation="softmax").save(p)
    m = M.load(p)
    assert m.n_outputs == 10 and m.input_shape == (28, 28, 1) and M.ready(m, _PIXELS).outputs_probs


@pytest.mark.parametrize("rows, expected", [
    ([[0.2, 0.8], [1.0, 0.0]], True),
    ([[0.5, 0.5009]], True),  # float16-saved probabilities drift ~1e-3
    ([[0.5, 0.502]], False),
    ([[0.2, 0.7]], False),
    ([[-0.1, 1.1]], False),
    ([[3.0, -2.0]], False),
])
def test_looks_like_probabilities(rows, expected):
    assert M.looks_like_probabilities(np.array(rows)) is expected


def test_preprocessing_scales():
    x = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(M.preprocess(x, "unit").ravel(), [0, 0.2, 1])
    np.testing.assert_allclose(M.preprocess(x, "symmetric").ravel(), [-1, -0.6, 1], atol=1e-6)
    np.testing.assert_allclose(M.preprocess(x, "raw").ravel(), [0, 51, 255])
    rgb = np.full((1, 1, 1, 3), 255, np.uint8)
    np.testing.assert_allclose(M.preprocess(rgb, "imagenet").ravel(),
                               [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6)
    with pytest.raises(ValueError, match="choose one of unit, symmetric, raw, imagenet"):
        M.preprocess(x, "zscore")


def test_preprocessing_choice_order():
    """--preprocess, else raw for the model's own scaling layer, else its metadata, else unit."""
    plain = M.from_keras(_tiny())
    assert M.choose_preprocessing(plain)[0] == "unit"
    recorded = M.LoadedModel(**{**plain.__dict__, "metadata": {"preprocessing": "symmetric"}})
    assert M.choose_preprocessing(recorded) == ("symmetric", "as the model's metadata records")
    inner = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0, name="scale"), keras.layers.Flatten()])
    own = M.from_keras(keras.Sequential([keras.Input((28, 28, 1)), inner, keras.layers.Dense(10)]))  # nested, still found
    name, why = M.choose_preprocessing(own)
    assert name == "raw" and "Rescaling 'scale'" in why
    assert M.choose_preprocessing(own, "unit")[0] == "unit"  # the user's word wins


def test_default_cnn_records_its_preprocessing(tmp_path):
    from reportgen.data.datasets import Dataset, Provenance

    rng = np.random.default_rng(0)
    ds = Dataset(rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8), np.arange(40) % 2, ["a", "b"],
                 Provenance("t", "t", "x", 40), "t")
    _, meta = M.train(ds, config=M.TrainConfig(epochs=1, preprocessing="symmetric"))
    assert meta["preprocessing"] == "symmetric"
    path = M.save(M.build_default_cnn((8, 8, 1), 2), meta, tmp_path / "cnn")
    assert M.choose_preprocessing(M.load(path))[0] == "symmetric"
    # Only a non-default scaling changes the cache key, so models cached before the option stay valid.
    assert M.TrainConfig(preprocessing="unit").key("d") == M.TrainConfig().key("d") != M.TrainConfig(preprocessing="raw").key("d")


def test_model_layouts_and_free_sizes():
    hw = M.from_keras(keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(3)]))
    assert hw.layout == "hw" and hw.image_shape == (28, 28, 1)
    assert M.model_input(hw, _PIXELS[:2]).shape == (2, 28, 28)
    free = M.from_keras(keras.Sequential([keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]))
    assert free.layout == "hwc" and free.image_shape == (None, None, 3)
    cf = keras.Sequential([keras.Input((1, 28, 28)), keras.layers.Conv2D(2, 3, data_format="channels_first"),
                           keras.layers.Flatten(), keras.layers.Dense(3)])
    chw = M.from_keras(cf)
    assert chw.layout == "chw" and chw.image_shape == (28, 28, 1)
    x = M.model_input(chw, _PIXELS[:2])
    assert x.shape == (2, 1, 28, 28) and np.array_equal(x[1, 0], _PIXELS[1, ..., 0] / np.float32(255))
    flat = M.from_keras(keras.Sequential([keras.Input((784,)), keras.layers.Dense(3)]))
    assert flat.layout == "flat" and M.model_input(flat, _PIXELS[:2]).shape == (2, 784)


def _numbered(labels, k=None):
    from reportgen.data.datasets import Dataset, Provenance

    y = np.asarray(labels)
    k = k or int(y.max()) + 1
    return Dataset(np.zeros((len(y), 28, 28, 1), np.uint8), y, [str(i) for i in range(k)], Provenance("npz", "d.npz", "x", len(y)), "d")


def _named(labels, names):
    from reportgen.data.datasets import Dataset, Provenance

    y = np.asarray(labels)
    return Dataset(np.zeros((len(y), 28, 28, 1), np.uint8), y, names, Provenance("folder", "/data/pets", "x", len(y)), "pets")


def test_align_classes_by_name_position_and_metadata():
    m = M.from_keras(_tiny())  # K = 10
    meta = M.LoadedModel(**{**m.__dict__, "metadata": {"class_names": [f"c{i}" for i in range(10)]}})
    # Numbered data (0..7) takes the model's ten names by position.
    got = M.align_classes(_numbered([0, 7, 3]), meta)
    assert got.class_names[7] == "c7" and got.labels.tolist() == [0, 7, 3] and got.n_classes == 10
    # Named folders are matched by name: folder 'c9' (label 1 of the folder) is the model's class 9.
    got = M.align_classes(_named([0, 1, 1], ["c2", "c9"]), meta)
    assert got.labels.tolist() == [2, 9, 9] and got.class_names == meta.metadata["class_names"]
    with pytest.raises(DataError, match=r"/data/pets: class\(es\) 'dog' are not among the 10 classes of"):
        M.align_classes(_named([0, 1], ["c2", "dog"]), meta)
    # Without names anywhere, numbered data widens to K and named data must have exactly K classes.
    assert M.align_classes(_numbered([0, 4]), m).class_names == [str(i) for i in range(10)]
    with pytest.raises(DataError, match="2 classes in the data, but the model predicts 10; give --class-names"):
        M.align_classes(_named([0, 1], ["cat", "dog"]), m)


def test_align_classes_refuses_labels_beyond_k_and_wrong_name_counts():
    m = M.from_keras(_tiny())
    with pytest.raises(ModelError, match="model predicts 10 classes, labels go up to 12"):
        M.align_classes(_numbered([0, 12]), m)
    with pytest.raises(DataError, match=r"names\.txt: 3 class names for a model of 10 classes"):
        M.align_classes(_numbered([0, 1]), m, names=["a", "b", "c"], names_source="names.txt")


def test_save_writes_metadata_with_weights_sha(tmp_path):
    path = M.save(_tiny(), {"seed": 4, "epochs": 2}, tmp_path / "net")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert path.name == "net.keras"
    assert meta["sha256"] == sha256_file(path) and meta["seed"] == 4
    with pytest.raises(OutputError, match="exists; pass --force"):
        M.save(_tiny(), {}, tmp_path / "net")
    M.save(_tiny(), {"seed": 5}, tmp_path / "net", force=True)
    assert json.loads(path.with_suffix(".json").read_text())["seed"] == 5
    assert M.load(path).metadata["seed"] == 5


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_unless_trusted(tmp_path, suffix):
    """Both formats: a legacy .h5 file must not run stored code either (safe_mode covers .h5 from Keras 3.11.3)."""
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    out = keras.layers.Dense(10)(x)
    p = tmp_path / f"lam{suffix}"
    keras.Model(inp, out).save(p)
    with pytest.raises(ModelError, match=rf"lam\{suffix}: contains a Lambda layer .* --trust-model"):
        M.load(p)
    assert M.load(p, trust=True).n_outputs == 10


def test_h5_refused_when_keras_is_too_old_to_check_it(tmp_path, monkeypatch):
    p = tmp_path / "plain.h5"
    _tiny().save(p)
    monkeypatch.setattr(keras, "__version__", "3.10.0")
    with pytest.raises(ModelError, match=r"plain\.h5: Keras 3\.10\.0 does not check \.h5 files.*keras>=3\.11\.3 or pass --trust-model"):
        M.load(p)
    assert M.load(p, trust=True).n_outputs == 10
    monkeypatch.setattr(keras, "__version__", "3.11.3")
    assert M.load(p).n_outputs == 10


def test_train_config_key():
    a = M.TrainConfig(epochs=1).key("abc")
    assert a == M.TrainConfig(epochs=1).key("abc")
    assert a != M.TrainConfig(epochs=2).key("abc")
    assert a != M.TrainConfig(epochs=1).key("abd")


def test_default_cnn_matches_the_tfp_example_plus_dropout():
    net = M.build_default_cnn((28, 28, 1), 10)
    kinds = [l.__class__.__name__ for l in net.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "SpatialDropout2D", "Flatten", "Dense"]
    assert net.layers[0].filters == 32 and net.layers[0].kernel_size == (3, 3)
    assert net.output_shape == (None, 10)
    # Dense sees 13 x 13 x 32 = 5,408 features, as in the original example.
    assert net.layers[-1].kernel.shape == (5408, 10)
