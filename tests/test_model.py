"""Model loading: softmax detection, .h5, metadata, Lambda refusal, cache keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from reportgen import model as M  # noqa: E402
from reportgen.data import sha256_file  # noqa: E402
from reportgen.errors import ModelError, OutputError  # noqa: E402


def _tiny(activation=None, softmax_layer=False):
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation=activation)]
    if softmax_layer:
        layers.append(keras.layers.Softmax())
    return keras.Sequential(layers)


@pytest.mark.parametrize("kw, expected", [({}, False), ({"activation": "softmax"}, True), ({"softmax_layer": True}, True), ({"activation": "relu"}, False)])
def test_softmax_detection(tmp_path, kw, expected):
    p = tmp_path / "m.keras"
    _tiny(**kw).save(p)
    assert M.load(p).outputs_probs is expected


def test_h5_model_loads(tmp_path):
    p = tmp_path / "legacy.h5"
    _tiny(activation="softmax").save(p)
    m = M.load(p)
    assert m.outputs_probs and m.n_outputs == 10 and m.input_shape == (28, 28, 1)


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
