"""Prediction paths: the split MC-dropout path equals S full passes with the same masks."""

from __future__ import annotations

import numpy as np
import pytest

import keras  # noqa: E402

from types import SimpleNamespace  # noqa: E402

from reportgen.model import network as M  # noqa: E402
from reportgen.model.predict import predict as _predict  # noqa: E402


def view(p):
    """The sampled mode of a model.predict.Predictions (the deterministic one without sampling) as flat arrays."""
    mode = p.sampled or "deterministic"
    mean = p.modes[mode]
    return SimpleNamespace(mean_probs=mean, std_probs=p.std if p.std is not None else np.zeros_like(mean),
                           expected_entropy=p.aleatoric if p.aleatoric is not None else _entropy(mean),
                           n_samples=p.info.n_samples, deterministic=p.modes.get("deterministic"), modes=p.modes)


def predict(*args, **kw):
    p = _predict(*args, **kw)
    return view(p), p.info


def _loaded(net, tmp_path, name="m"):
    path = tmp_path / f"{name}.keras"
    net.save(path)
    return M.load(path)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(70, 28, 28, 1), dtype=np.uint8)


@pytest.fixture()
def default_cnn(tmp_path):
    keras.utils.set_random_seed(1)
    return _loaded(M.build_default_cnn((28, 28, 1), 10), tmp_path)


def _same(a, b, tol=1e-5):
    for field in ("mean_probs", "std_probs", "expected_entropy"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=tol, err_msg=field)
    assert a.n_samples == b.n_samples


def test_efficient_mc_equals_full_passes_default_cnn(default_cnn, images):
    fast, info = predict([default_cnn], images, mc_samples=7, seed=3)
    slow, info_full = predict([default_cnn], images, mc_samples=7, seed=3, full_passes=True)
    assert info.method == "mc_dropout" and info_full.method == "mc_dropout_full"
    assert "linear in the channel mask" in info.detail  # the specialised path ran
    _same(fast, slow)
    np.testing.assert_allclose(fast.deterministic, slow.deterministic, atol=1e-6)
    # The samples really differ (dropout is on), so the agreement above is not vacuous.
    assert fast.std_probs.max() > 1e-3
    ep = _entropy(fast.mean_probs) - fast.expected_entropy
    assert ep.max() > 1e-4


def _entropy(p):
    return -np.sum(p * np.log(np.clip(p, 1e-300, None)), axis=1)


def test_efficient_mc_equals_full_passes_dense_dropout_and_softmax(tmp_path, images):
    """Element-wise Dropout on flattened features, a functional model, softmax already applied."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    m = _loaded(keras.Model(inp, out), tmp_path)
    assert M.ready(m, images).outputs_probs
    fast, info = predict([m], images, mc_samples=5, seed=9)
    slow, _ = predict([m], images, mc_samples=5, seed=9, full_passes=True)
    assert info.method == "mc_dropout" and "linear" not in info.description  # the generic split path ran
    _same(fast, slow)
    np.testing.assert_allclose(fast.mean_probs.sum(1), 1.0, atol=1e-9)


def test_deterministic_pass_matches_keras_predict(default_cnn, images):
    sp, info = predict([default_cnn], images, mc_samples=1)
    logits = np.asarray(default_cnn.model.predict(images.astype(np.float32) / 255.0, verbose=0), np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(sp.mean_probs, p, atol=1e-6)
    assert info.method == "deterministic" and sp.n_samples == 1
    np.testing.assert_array_equal(sp.std_probs, 0)


def test_a_dropout_model_is_measured_in_both_modes_and_the_deterministic_one_is_keras_predict(default_cnn, images):
    """With MC dropout the deterministic network (dropout off) is predicted too, in the same batches: it equals the
    one-pass prediction, and the aleatoric estimate is TFP's mean entropy of the S samples."""
    import tensorflow_probability as tfp

    mc = _predict([default_cnn], images[:20], mc_samples=5, seed=0)
    one = _predict([default_cnn], images[:20], mc_samples=1)
    assert set(mc.modes) == {"deterministic", "mc_dropout"} and mc.sampled == "mc_dropout" and set(one.modes) == {"deterministic"}
    np.testing.assert_allclose(mc.modes["deterministic"], one.modes["deterministic"], atol=1e-6)
    assert np.abs(mc.modes["mc_dropout"] - mc.modes["deterministic"]).max() > 1e-4
    assert one.aleatoric is None and one.std is None and one.sampled is None
    assert tfp is not None and mc.aleatoric.shape == (20,) and np.all(mc.aleatoric >= 0)


def test_mc_mean_differs_from_deterministic_but_seed_reproduces(default_cnn, images):
    a, _ = predict([default_cnn], images, mc_samples=6, seed=0)
    b, _ = predict([default_cnn], images, mc_samples=6, seed=0)
    c, _ = predict([default_cnn], images, mc_samples=6, seed=1)
    np.testing.assert_array_equal(a.mean_probs, b.mean_probs)
    assert np.abs(a.mean_probs - c.mean_probs).max() > 1e-4


def test_model_without_dropout_falls_back_to_one_pass(tmp_path, images):
    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    sp, info = predict([_loaded(net, tmp_path)], images, mc_samples=30)
    assert info.n_samples == 1 and "no dropout" in info.description


def test_ensemble_of_identical_members_has_zero_epistemic(default_cnn, images, tmp_path):
    twin = M.load(default_cnn.path)
    sp, info = predict([default_cnn, twin], images)
    assert info.method == "ensemble" and sp.n_samples == 2
    np.testing.assert_allclose(_entropy(sp.mean_probs) - sp.expected_entropy, 0, atol=1e-9)


def test_ensemble_members_are_the_samples(tmp_path, images):
    keras.utils.set_random_seed(5)
    a = _loaded(M.build_default_cnn((28, 28, 1), 10), tmp_path, "a")
    b = _loaded(M.build_default_cnn((28, 28, 1), 10), tmp_path, "b")
    sp, _ = predict([a, b], images)
    pa, _ = predict([a], images, mc_samples=1)
    pb, _ = predict([b], images, mc_samples=1)
    np.testing.assert_allclose(sp.mean_probs, (pa.mean_probs + pb.mean_probs) / 2, atol=1e-9)
    np.testing.assert_allclose(sp.expected_entropy, (_entropy(pa.mean_probs) + _entropy(pb.mean_probs)) / 2, atol=1e-5)


def test_unsplittable_model_samples_dropout_only_and_leaves_batchnorm_alone(tmp_path, images):
    """A skip connection forces the full-pass fallback; BatchNorm must stay in inference mode."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(inp)])
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.1)(x)
    out = keras.layers.Dense(10)(x)
    net = keras.Model(inp, out)
    bn = next(l for l in net.layers if isinstance(l, keras.layers.BatchNormalization))
    bn.moving_mean.assign(np.full(4, 0.3, np.float32))
    m = _loaded(net, tmp_path)
    bn_loaded = next(l for l in m.model.layers if isinstance(l, keras.layers.BatchNormalization))
    before = bn_loaded.moving_mean.numpy().copy()
    sp, info = predict([m], images, mc_samples=8, seed=0)
    assert info.method == "mc_dropout_full"
    np.testing.assert_array_equal(bn_loaded.moving_mean.numpy(), before)  # not updated by sampling
    det, _ = predict([m], images, mc_samples=1)
    gap = np.abs(sp.mean_probs - det.mean_probs).max()
    assert 1e-4 < gap < 0.3  # dropout at rate 0.1 moves the mean a little, BatchNorm in training mode moved it ~0.8
    assert sp.std_probs.max() > 1e-4
    # Its samples come from Keras' global generator, not from keys on the batch: a sharded run must not cut it in parts.
    assert P_plan([m], images, mc_samples=8)[2] is False
    assert P_plan([m], images, mc_samples=1)[2] is True  # one deterministic pass: nothing random


def P_plan(models, images, **kw):
    from reportgen.model import predict as P
    return P.plan(models, images, **kw)


# ----------------------------------------------------------------- against Keras' own dropout


def test_linear_path_mean_logits_equal_keras_inference_logits(default_cnn):
    """Inverted dropout keeps the expectation: the mean of 3,000,000 MC logits equals Keras' training=False logits.

    A wrong keep rate or a missing 1/(1 - rate) scaling moves the mean by ~0.1-0.2 here, far beyond 1e-3.
    """
    import tensorflow as tf

    from reportgen.model.predict import _chain, _Sampler

    chain = _chain(default_cnn.model)
    split = next(i for i, layer in enumerate(chain) if layer.name == "mc_dropout")
    x = tf.convert_to_tensor(M.preprocess(np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)))
    sampler = _Sampler(default_cnn, chain, split, 100_000, seed=0)
    assert sampler.linear
    total = sum(np.asarray(sampler.logits_linear(x, bi)[1], np.float64).sum(axis=0) for bi in range(30))
    mean = total / 3_000_000
    keras_logits = np.asarray(default_cnn.model(x, training=False), np.float64)
    assert np.abs(keras_logits).max() > 0.1  # a scaling error would be visible
    np.testing.assert_allclose(mean, keras_logits, atol=1e-3)
    # The deterministic logits of the same path (mask = 1) are Keras' inference logits exactly, up to float32 rounding.
    np.testing.assert_allclose(np.asarray(sampler.logits_linear(x, 0)[0], np.float64), keras_logits, atol=1e-5)


def test_sampler_masks_match_keras_spatial_dropout(default_cnn):
    """Keep rate per channel, kept value and per-channel structure equal those of Keras' SpatialDropout2D(training=True)."""
    import tensorflow as tf

    from reportgen.model.predict import _chain, _Sampler

    chain = _chain(default_cnn.model)
    split = next(i for i, layer in enumerate(chain) if layer.name == "mc_dropout")
    layer = chain[split]
    rate = float(layer.rate)
    s, b = 4000, 2
    ours = np.asarray(_Sampler(default_cnn, chain, split, s, seed=7).mask(0, 0, layer, (b, 13, 13, 32)))  # (S, B, 1, 1, C)
    keras.utils.set_random_seed(11)
    ones = tf.ones((b, 13, 13, 32))
    theirs = np.stack([np.asarray(layer(ones, training=True)) for _ in range(400)])  # (400, B, 13, 13, C)
    # Keras drops whole channels: constant over the 13 x 13 positions.
    assert np.all(theirs == theirs[:, :, :1, :1, :])
    for masks in (ours.reshape(-1, 32), theirs[:, :, 0, 0, :].reshape(-1, 32)):
        assert set(np.unique(masks).round(6)) == {0.0, round(1 / (1 - rate), 6)}
        keep = (masks > 0).mean(axis=0)  # per channel
        se = np.sqrt(rate * (1 - rate) / masks.shape[0])
        assert np.all(np.abs(keep - (1 - rate)) < 5 * se), keep


def test_fallback_samples_match_keras_training_true_in_distribution(tmp_path, images):
    """An unsplittable model: our S full passes and S calls of model(x, training=True) draw the same distribution."""
    import tensorflow as tf

    keras.utils.set_random_seed(4)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(inp)])
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    out = keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.05))(x)
    m = _loaded(keras.Model(inp, out), tmp_path)
    few = images[:3]
    s = 600
    sp, info = predict([m], few, mc_samples=s, seed=0)
    assert info.method == "mc_dropout_full"
    xb = tf.convert_to_tensor(M.preprocess(few))
    # One training=True call on S stacked copies: Keras draws an independent dropout mask for every row.
    ref = np.asarray(tf.nn.softmax(m.model(tf.tile(xb, [s, 1, 1, 1]), training=True)), np.float64).reshape(s, len(few), -1)
    ref_mean, ref_std = ref.mean(axis=0), ref.std(axis=0)
    se = np.sqrt(sp.std_probs ** 2 / s + ref_std ** 2 / s)
    assert ref_std.min() > 1e-3  # dropout really varies the outputs
    assert np.all(np.abs(sp.mean_probs - ref_mean) < 5 * se + 1e-9)
    np.testing.assert_allclose(sp.std_probs, ref_std, rtol=0.2)


# ----------------------------------------------------------------- input shapes


def test_free_spatial_size_model_samples_at_the_image_size(tmp_path, images):
    """Input (None, None, 1): masks are drawn from the tensors the images make (this crashed on None before)."""
    keras.utils.set_random_seed(6)
    net = keras.Sequential([
        keras.Input((None, None, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.SpatialDropout2D(0.5),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Dropout(0.3),  # element-wise, on a (H-4, W-4, 8) map whose size only the images fix
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4),
    ])
    m = _loaded(net, tmp_path)
    assert m.input_shape == (-1, -1, 1)
    fast, info = predict([m], images, mc_samples=6, seed=2)
    slow, _ = predict([m], images, mc_samples=6, seed=2, full_passes=True)
    assert info.method == "mc_dropout"
    _same(fast, slow)
    assert fast.std_probs.max() > 1e-3
    small, _ = predict([m], images[:, :20, :20], mc_samples=6, seed=2)  # another size through the same model
    assert small.mean_probs.shape == (70, 4) and np.abs(small.mean_probs - fast.mean_probs).max() > 1e-3


def test_hw_input_model_gets_images_without_the_channel_axis(tmp_path, images):
    keras.utils.set_random_seed(7)
    net = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    m = _loaded(net, tmp_path)
    sp, info = predict([m], images, mc_samples=1)
    logits = np.asarray(net(images[..., 0].astype(np.float32) / 255.0), np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(sp.mean_probs, p / p.sum(1, keepdims=True), atol=1e-6)
    mc, info = predict([m], images, mc_samples=4)
    assert info.method == "mc_dropout" and mc.std_probs.max() > 1e-3


def test_parts_predicted_with_their_first_batch_index_equal_the_whole(default_cnn, images, monkeypatch):
    """A sharded run predicts rows in parts cut at batch boundaries: with the global batch index the MC masks, and so
    every aggregate, are the whole set's exactly; without it the second part would redraw the first part's masks."""
    from reportgen.model import predict as P
    monkeypatch.setattr(P, "MAX_BATCH", 16)
    b, info, keyed = P.plan([default_cnn], images, mc_samples=5, seed=2)
    assert keyed
    assert b == 16 and info.method == "mc_dropout" and info.n_samples == 5
    whole, _ = predict([default_cnn], images, mc_samples=5, seed=2)
    head, _ = predict([default_cnn], images[:2 * b], mc_samples=5, seed=2)
    tail, _ = predict([default_cnn], images[2 * b:], mc_samples=5, seed=2, first_batch=2)
    for field in ("mean_probs", "std_probs", "expected_entropy", "deterministic"):
        np.testing.assert_array_equal(np.concatenate([getattr(head, field), getattr(tail, field)]), getattr(whole, field), err_msg=field)
    restarted, _ = predict([default_cnn], images[2 * b:], mc_samples=5, seed=2)
    assert np.abs(restarted.mean_probs - whole.mean_probs[2 * b:]).max() > 1e-4
