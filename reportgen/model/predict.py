"""Run models over images: the deterministic network, MC dropout (split at the first dropout layer), or ensembles.

Each batch yields the deterministic pass (dropout off, what `model.predict` returns) and, for a model with dropout
and S > 1 or an ensemble, the S sampled distributions, which are reduced at once to their mean, spread and mean
entropy: memory is O(N·K) whatever S is. The predictive distribution of each sample is a
tfp.distributions.Categorical, whose entropy gives the aleatoric estimate E_s H[p_s]. Images given as files
(`images.ImageFiles`) are decoded batch by batch by a tf.data pipeline, so they are never all in memory either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ReportgenError
from . import network as M
from .network import LoadedModel

Progress = Callable[[str], None]
# Bound on the activations of one sampled batch (S x B x features x 4 bytes).
MAX_BATCH_BYTES = 192 * 1024 * 1024
# Largest and smallest images-per-batch of the prediction loop.
MAX_BATCH, MIN_BATCH = 512, 16
# Images of the first batch that decides logits vs probabilities for a model not yet prepared.
FIRST_PROBE = 64


@dataclass(frozen=True)
class PredictInfo:
    """How the samples were drawn: method name, S, and a sentence for the report."""

    method: str  # "deterministic" | "mc_dropout" | "mc_dropout_full" | "ensemble"
    n_samples: int
    description: str
    detail: str = ""  # how the sampling is implemented (the report's provenance appendix)


# Inference modes a model's predictions come in (the keys of Predictions.modes), with what each one is.
MODES = {
    "deterministic": "the deterministic network: one forward pass with dropout off, what model.predict returns",
    "mc_dropout": "the MC-dropout average: the mean of S forward passes with dropout on",
    "ensemble": "the ensemble average: the mean of the members' deterministic passes",
}


@dataclass(frozen=True)
class Predictions:
    """What the model(s) predict for N images, in every inference mode they support.

    modes: name (MODES) -> (N, K) float64 probabilities, rows sum to 1; "deterministic" for a single model, plus
        "mc_dropout" for a model with dropout and S > 1, or only "ensemble" for several models;
    sampled: the mode that averages S samples ("mc_dropout", "ensemble") or None;
    aleatoric: (N,) float64 E_s H[p_s] in nats over the sampled mode's samples (TFP's Categorical entropy), or None;
    std: (N, K) float64 population spread of p_s over those samples, or None;
    info: how the samples were drawn.
    """

    modes: dict
    sampled: str | None
    aleatoric: np.ndarray | None
    std: np.ndarray | None
    info: PredictInfo


def _dropout_layers():
    import keras

    return keras.layers.Dropout  # SpatialDropout1D/2D/3D subclass it


def _is_stochastic(layer) -> bool:
    import keras

    L = keras.layers
    return isinstance(layer, (L.Dropout, L.GaussianDropout, L.GaussianNoise, L.AlphaDropout))


def _chain(model) -> list | None:
    """The model's layers as a linear chain (Sequential or single-path functional), else None."""
    import keras

    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    try:
        prev = model.inputs[0]
        for l in layers:
            if len(l._inbound_nodes) != 1 or l.input is not prev:
                return None
            prev = l.output
        return layers if prev is model.outputs[0] else None
    except Exception:
        return None


def _mask_shape(layer, x_shape) -> list[int]:
    """Shape of the keep-mask a Dropout-family layer draws for input shape `x_shape`."""
    import keras

    L = keras.layers
    b = x_shape[0]
    if isinstance(layer, (L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D)):
        nd = len(x_shape) - 2
        first = getattr(layer, "data_format", "channels_last") == "channels_first"
        return [b, x_shape[1]] + [1] * nd if first else [b] + [1] * nd + [x_shape[-1]]
    ns = getattr(layer, "noise_shape", None)
    if ns is None:
        return list(x_shape)
    return [x_shape[i] if d is None else int(d) for i, d in enumerate(ns)]


def _draw_masks(layer, s: int, x_shape, seed: tuple[int, int]):
    """(S, *mask_shape) float32 keep-masks scaled by 1/(1-rate): one stateless draw per batch."""
    import tensorflow as tf

    rate = float(layer.rate)
    shape = [s] + _mask_shape(layer, x_shape)
    u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    return tf.cast(u >= rate, tf.float32) * (1.0 / (1.0 - rate))


def _to_probs(out, outputs_probs: bool) -> np.ndarray:
    import tensorflow as tf

    p = out if outputs_probs else tf.nn.softmax(out, axis=-1)
    p = np.asarray(p, dtype=np.float64)
    return p / p.sum(axis=-1, keepdims=True)


def _run(layers, x, *, mask_for=None, training_stochastic=False):
    """Apply a chain of layers; a Dropout-family layer multiplies by `mask_for(j, layer, x)` when that is given.

    Masks are drawn from the tensor that reaches the layer, so models whose spatial size is free
    (None in their input shape) are sampled at the size of the images they are given.
    """
    for j, l in enumerate(layers):
        if mask_for is not None and isinstance(l, _dropout_layers()):
            x = x * mask_for(j, l, x)
        elif _is_stochastic(l):
            x = l(x, training=training_stochastic)
        else:
            x = l(x, training=False)
    return x


class _Sampler:
    """MC dropout for one chain model: head once per batch, tail S times with explicit masks."""

    def __init__(self, m: LoadedModel, chain: list, split: int, s: int, seed: int):
        self.m, self.head, self.tail, self.s, self.seed = m, chain[:split], chain[split:], s, seed
        self.linear = _channel_dropout_dense(self.tail)

    def features(self, x1) -> int:
        """Activations per image that the sampled tail holds S copies of (1 on the linear path), for input `x1`."""
        return 1 if self.linear else int(np.prod(_run(self.head, x1).shape[1:]))

    def mask(self, batch_index: int, j: int, layer, per_image_shape):
        """(S, B, ...) keep-masks of tail layer j for S samples of a batch whose input to it has `per_image_shape` (B, ...)."""
        return _draw_masks(layer, self.s, tuple(int(d) for d in per_image_shape), (self.seed, batch_index * 1009 + j))

    def sample_efficient(self, xb, batch_index: int) -> tuple[np.ndarray, np.ndarray]:
        """((B, K) deterministic probabilities, (S, B, K) sampled ones): the head runs once, the tail on S stacked copies."""
        import tensorflow as tf

        if self.linear:
            det, sampled = self.logits_linear(xb, batch_index)
            return _to_probs(det, self.m.outputs_probs), _to_probs(sampled, self.m.outputs_probs)
        h = _run(self.head, xb)
        b = int(h.shape[0])
        hs = tf.reshape(tf.repeat(h[None], self.s, axis=0), [self.s * b] + list(h.shape[1:]))

        def stacked(j, layer, x):  # x holds S copies of the batch: (S * B, ...)
            m = self.mask(batch_index, j, layer, (b, *x.shape[1:]))
            return tf.reshape(m, [self.s * b] + list(m.shape[2:]))

        out = _run(self.tail, hs, mask_for=stacked)
        return _to_probs(_run(self.tail, h), self.m.outputs_probs), _to_probs(tf.reshape(out, [self.s, b, -1]), self.m.outputs_probs)

    def logits_linear(self, xb, batch_index: int):
        """((B, K) deterministic, (S, B, K) sampled) outputs of the dense layer (logits, or probabilities for a softmax
        layer) on the linear path.

        SpatialDropout2D -> Flatten -> Dense is linear in the channel mask m (S, B, C):
        logits_s = sum_c m_sc * (h_c . W_c) + bias, so each channel's contribution to the logits is computed once per
        batch, the S samples cost one small einsum, and the deterministic pass (m = 1) is their plain sum.
        """
        import tensorflow as tf

        h = _run(self.head, xb)
        mask = self.mask(batch_index, 0, self.tail[0], h.shape)
        dense = self.tail[-1]
        hh, ww, cc = (int(d) for d in h.shape[1:])
        w = tf.reshape(dense.kernel, [hh, ww, cc, -1])
        contrib = tf.einsum("bhwc,hwck->bck", h, w)
        m = tf.reshape(mask, [self.s, -1, cc])
        out = tf.einsum("sbc,bck->sbk", m, contrib)
        det = tf.reduce_sum(contrib, axis=1)
        if dense.use_bias:
            out, det = out + dense.bias, det + dense.bias
        return dense.activation(det), dense.activation(out)

    def sample_full(self, xb, batch_index: int) -> np.ndarray:
        """(S, B, K) probabilities from S complete forward passes with the same masks (reference)."""
        outs = []
        for i in range(self.s):
            h = _run(self.head, xb)
            # The same (S, B, ...) draw as the efficient path; pass i keeps its own slice.
            outs.append(_run(self.tail, h, mask_for=lambda j, layer, x, i=i: self.mask(batch_index, j, layer, x.shape)[i]))
        return _to_probs(np.stack([np.asarray(o) for o in outs]), self.m.outputs_probs)


def _channel_dropout_dense(tail: list) -> bool:
    """True when the sampled tail is SpatialDropout2D (channels_last) -> Flatten -> Dense."""
    import keras

    L = keras.layers
    return (
        len(tail) == 3
        and isinstance(tail[0], L.SpatialDropout2D)
        and getattr(tail[0], "data_format", "channels_last") == "channels_last"
        and isinstance(tail[1], L.Flatten)
        and isinstance(tail[2], L.Dense)
        and getattr(tail[2].activation, "__name__", "") in ("linear", "softmax")
    )


def _stochastic_copy(model):
    """The same model (shared weights) with every stochastic layer forced on, whatever `training` says."""
    import keras

    class _AlwaysOn(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(name=f"{inner.name}_always_on", **kwargs)
            self.inner = inner

        def call(self, x, training=None):
            return self.inner(x, training=True)

    return keras.models.clone_model(model, clone_function=lambda l: _AlwaysOn(l) if _is_stochastic(l) else l)


def _batch_size(features: int, s: int) -> int:
    b = MAX_BATCH_BYTES // max(1, s * features * 4)
    return int(max(MIN_BATCH, min(MAX_BATCH, b)))


def predict(
    models: Sequence[LoadedModel],
    images,
    *,
    mc_samples: int = 30,
    seed: int = 0,
    full_passes: bool = False,
    progress: Progress | None = None,
    first_batch: int = 0,
) -> Predictions:
    """Predict `images` (N,H,W,C uint8: an array, or images.ImageFiles streamed in batches) in every inference mode.

    One model: its deterministic pass, plus, when it has dropout and mc_samples > 1, MC dropout (split at the first
    dropout layer unless `full_passes`). Several models: a deep ensemble, each member one deterministic pass. Each
    model gets the images scaled and laid out as it takes them (network.model_input); a model not yet prepared
    (network.prepare) has its preprocessing chosen and its logits told from probabilities on the first images.

    first_batch: global index of the first batch, when `images` are rows first_batch * batch_size(...) onwards of a
    larger set predicted in parts (a sharded run): MC dropout masks are keyed on the batch index, so each part
    draws the masks the whole set would.
    """
    fn, batch, info = _plan(models, images, mc_samples=mc_samples, seed=seed, full_passes=full_passes)
    return _loop(len(images), models[0].n_outputs, images, fn, batch, info, progress, first_batch)


def plan(models: Sequence[LoadedModel], images, *, mc_samples: int = 30, seed: int = 0) -> tuple[int, PredictInfo, bool]:
    """(images per batch, PredictInfo, keyed) of `predict` for these models, images and S, without predicting: a sharded
    run cuts its shards at multiples of the batch and reports the method. keyed: every sample's randomness is keyed on
    the batch index (deterministic, ensembles, split MC dropout), so rows predicted in parts from their global batch
    index get one run's samples; False for a model whose dropout cannot be split, sampled from Keras' global generator."""
    _, batch, info = _plan(models, images, mc_samples=mc_samples, seed=seed, full_passes=False)
    # Without full_passes, "mc_dropout_full" is only the unsplit path's method (a split model gives "mc_dropout").
    return batch, info, info.method != "mc_dropout_full"


def _plan(models: Sequence[LoadedModel], images, *, mc_samples: int, seed: int, full_passes: bool):
    """(fn(batch, batch_index) -> ((B, K) deterministic or None, (S, B, K) sampled or None), images per batch,
    PredictInfo) of `predict`."""
    import tensorflow as tf

    probe = images[:FIRST_PROBE]
    models = [M.ready(mm, probe) for mm in models]

    def inputs(mm, xb):
        return tf.convert_to_tensor(M.model_input(mm, xb))

    def deterministic(mm, xb):
        return _to_probs(mm.model(inputs(mm, xb), training=False), mm.outputs_probs)

    if len(models) > 1:
        info = PredictInfo("ensemble", len(models), f"deep ensemble of {len(models)} independently trained models; each member is one sample")
        return lambda xb, bi: (None, np.stack([deterministic(mm, xb) for mm in models])), MAX_BATCH, info
    m = models[0]
    chain = _chain(m.model)
    split = None
    if chain is not None:
        split = next((i for i, l in enumerate(chain) if _is_stochastic(l)), None)
    has_dropout = any(_is_stochastic(l) for l in m.model.layers)
    if mc_samples <= 1 or not has_dropout:
        why = "one deterministic pass" if mc_samples <= 1 else "one deterministic pass (the model has no dropout layer to sample)"
        info = PredictInfo("deterministic", 1, why)
        return lambda xb, bi: (deterministic(m, xb), None), MAX_BATCH, info
    tail_ok = split is not None and all(isinstance(l, _dropout_layers()) or not _is_stochastic(l) for l in chain[split:])
    if tail_ok:
        sampler = _Sampler(m, chain, split, mc_samples, seed)
        feats = sampler.features(inputs(m, probe[:1]))
        first = chain[split]
        desc = f"MC dropout, S = {mc_samples} forward passes with '{first.name}' ({first.__class__.__name__}, rate {float(first.rate):g}) on"
        detail = (f"layers up to '{chain[split - 1].name if split else 'input'}' run once per batch; '{first.name}' and the "
                  f"{len(chain) - split - 1} layer(s) after it are sampled S times")
        if sampler.linear:
            detail += "; the dense layer is linear in the channel mask, so each channel's contribution to the logits is computed once and the S samples cost one small product"
        if full_passes:
            info = PredictInfo("mc_dropout_full", mc_samples, desc, detail)
            return lambda xb, bi: (deterministic(m, xb), sampler.sample_full(inputs(m, xb), bi)), _batch_size(feats, mc_samples), info
        info = PredictInfo("mc_dropout", mc_samples, desc, detail)
        return lambda xb, bi: sampler.sample_efficient(inputs(m, xb), bi), _batch_size(feats, mc_samples), info
    # Not splittable: S full passes of a copy whose stochastic layers are always on, run in
    # inference mode so BatchNorm and friends keep their stored statistics (and are not updated).
    import keras

    keras.utils.set_random_seed(seed)
    sampling = _stochastic_copy(m.model)
    desc = f"MC sampling, S = {mc_samples} full forward passes with only the model's stochastic layers active (model could not be split)"
    info = PredictInfo("mc_dropout_full", mc_samples, desc)

    def full(xb, bi):
        x = inputs(m, xb)
        return deterministic(m, xb), np.stack([_to_probs(sampling(x, training=False), m.outputs_probs) for _ in range(mc_samples)])

    return full, MAX_BATCH, info


def _batches(images, batch: int):
    """uint8 batches of `images` in order: streamed from files by tf.data, or slices of an array."""
    if hasattr(images, "batches"):
        yield from images.batches(batch)
    else:
        for start in range(0, len(images), batch):
            yield images[start:start + batch]


def sample_entropy(samples: np.ndarray) -> np.ndarray:
    """(B,) E_s H[p_s] in nats of (S, B, K) sampled probabilities: the mean entropy of each sample's S
    tfp.distributions.Categorical distributions (the aleatoric estimate)."""
    import tensorflow_probability as tfp

    return np.asarray(tfp.distributions.Categorical(probs=samples).entropy(), dtype=np.float64).mean(axis=0) + 0.0


def _loop(n, k, images, sample_fn, batch, info: PredictInfo, progress, first_batch: int = 0) -> Predictions:
    """Feed uint8 batches to `sample_fn(batch, first_batch + batch_index)` and keep per-row means, spreads and entropies."""
    sampled_mode = {"ensemble": "ensemble", "deterministic": None}.get(info.method, "mc_dropout")
    det = np.zeros((n, k)) if info.method != "ensemble" else None
    mean = np.zeros((n, k)) if sampled_mode else None
    std = np.zeros((n, k)) if sampled_mode else None
    aleatoric = np.zeros(n) if sampled_mode else None
    step = max(1, n // 10)
    next_report = step
    start = 0
    for bi, xb in enumerate(_batches(images, batch)):
        d, s = sample_fn(xb, first_batch + bi)
        rows = slice(start, start + len(xb))
        if det is not None:
            det[rows] = d
        if mean is not None:
            mean[rows], std[rows], aleatoric[rows] = s.mean(axis=0), s.std(axis=0), sample_entropy(s)
        start += len(xb)
        if progress and (start >= next_report or start == n):
            progress(f"predicting: {start}/{n} images")
            next_report = start + step
    if start != n:
        raise ReportgenError(f"predicted {start} of {n} images: the image source ended early")
    modes = {name: p / p.sum(axis=1, keepdims=True) for name, p in (("deterministic", det), (sampled_mode, mean)) if p is not None}
    return Predictions(modes=modes, sampled=sampled_mode, aleatoric=aleatoric, std=std, info=info)
