"""The Keras CNN: build the default model, train it, save it with metadata, load a model and fit data to it.

Fitting a model to data happens before any prediction, each step a one-line error when it fails:
`align_classes` (class names and labels agree with the model's K outputs), `fit_images` (the
images take the model's input shape: files are resized, arrays must already fit), and `prepare`
(a probe batch picks the input scaling and tells logits from probabilities, and the guard stops a
scaling under which the model is at chance while another one works).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import validate
from ..data.datasets import Dataset, sha256_file, split_train_audit
from ..errors import DataError, ModelError, OutputError
from ..data.images import ImageFiles

# Bumped whenever the default architecture changes, so cached models are not reused across it.
ARCHITECTURE_VERSION = 3
# The stochastic layer of the default CNN. Channel-wise dropout on the 13x13x32 pooled maps draws
# 32 mask bits per image instead of 5,408, which is what makes S=30 MC samples cheap. Rate 0.5
# (Gal & Ghahramani's usual choice): measured on MNIST vs Fashion-MNIST, 5 epochs on 5,000 digits,
# the AUROC of epistemic uncertainty as an OOD score was 0.805 at 0.5 against 0.751 at 0.25, at
# the same accuracy (0.90).
DEFAULT_DROPOUT = 0.5
ARCHITECTURE = (
    "Conv2D(32, 3x3, relu) -> MaxPooling2D(2x2) -> SpatialDropout2D({rate}) -> Flatten -> Dense(K logits)"
)
# Epochs of the default CNN: on the 3,600 training digits of the offline subset, 5 epochs reach
# ~92 % validation accuracy and 10 about 93.5 %, in seconds on 2 cores.
DEFAULT_EPOCHS = 10
# First Keras release whose safe_mode also covers legacy .h5 files (earlier ones load Lambda code from them).
SAFE_H5_KERAS = (3, 11, 3)
# First bytes of every HDF5 file.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Fewest images the default CNN is trained on (a handful cannot even fill the validation split).
MIN_TRAIN = 20
# Share of the training images held out for the validation accuracy in the metadata.
VALIDATION_FRACTION = 0.1
METADATA_SUFFIX = ".json"
# How reportgen can scale uint8 pixels for a model (`--preprocess`), each with the sentence the report prints.
PREPROCESSING = {
    "unit": "pixels divided by 255, so the model sees values in [0, 1]",
    "symmetric": "pixels scaled to [-1, 1] (x / 127.5 - 1)",
    "raw": "raw pixel values 0-255, as floats",
    "imagenet": "pixels divided by 255, then normalised per channel with ImageNet's mean (0.485, 0.456, 0.406) "
                "and standard deviation (0.229, 0.224, 0.225); grey images with their averages (0.449, 0.226)",
}
# The scaling of a model that neither has its own scaling layer nor records one in its metadata.
DEFAULT_PREPROCESSING = "unit"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Images of the probe batch that picks the scaling and tells logits from probabilities.
PROBE_SIZE = 256
# The guard stops an audit when another scaling is right on the probe at least FAR_BETTER more often
# (absolute accuracy, ~5 standard errors on 256 images) and either the chosen one is within NEAR_CHANCE
# of chance or the other at least halves the error. The second arm is needed: the default CNN trained
# on [-1, 1] and fed [0, 1] is right on ~55 % of digits, far from chance, yet every number would be wrong.
NEAR_CHANCE = 0.1
FAR_BETTER = 0.2
# Other scalings within this of the best are named with it in the guard's message (the probe cannot rank them).
ABOUT_AS_GOOD = 0.05

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Options that fully determine a default-CNN training run (with the data's sha256)."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    seed: int = 0
    dropout: float = DEFAULT_DROPOUT
    train_size: int | None = None
    preprocessing: str = DEFAULT_PREPROCESSING

    def key(self, data_sha256: str) -> str:
        """Cache key: same data and same options give the same key."""
        import hashlib

        opts = asdict(self)
        if opts["preprocessing"] == DEFAULT_PREPROCESSING:
            del opts["preprocessing"]  # keys of models cached before the option existed stay valid
        blob = json.dumps({"data": data_sha256, "arch": ARCHITECTURE_VERSION, **opts}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model and what reportgen knows about it.

    outputs_probs: True when the outputs are probabilities, False for logits; None until a probe
        batch decides it (`prepare`, or the first batch of `predict`).
    input_shape: the model's input without the batch axis, -1 for a free dimension.
    preprocessing: a PREPROCESSING name; None until `prepare` (or `predict`) picks it.
    preprocessing_why: where that choice came from, in words.
    """

    model: Any
    path: str
    name: str
    sha256: str
    outputs_probs: bool | None
    n_outputs: int
    input_shape: tuple[int, ...]
    metadata: dict = field(default_factory=dict)
    preprocessing: str | None = None
    preprocessing_why: str = ""

    @property
    def layout(self) -> str:
        """How images reach the model: "hwc", "chw" (channels-first), "hw" (no channel axis) or "flat"."""
        if len(self.input_shape) == 1:
            return "flat"
        if len(self.input_shape) == 2:
            return "hw"
        return "chw" if _channels_first(self.model) else "hwc"

    @property
    def image_shape(self) -> tuple[int | None, int | None, int | None]:
        """(H, W, C) of the images the model takes; None where the model leaves a dimension free (or flat input)."""
        s = [None if d == -1 else d for d in self.input_shape]
        return {"hwc": lambda: tuple(s), "chw": lambda: (s[1], s[2], s[0]), "hw": lambda: (s[0], s[1], 1),
                "flat": lambda: (None, None, None)}[self.layout]()


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def preprocess(images: np.ndarray, name: str = DEFAULT_PREPROCESSING) -> np.ndarray:
    """uint8 (N,H,W,C) -> float32 scaled as PREPROCESSING[name] says (default: [0, 1])."""
    x = np.asarray(images).astype(np.float32)
    if name == "unit":
        return x / np.float32(255.0)
    if name == "symmetric":
        return x / np.float32(127.5) - np.float32(1.0)
    if name == "raw":
        return x
    if name == "imagenet":
        c = x.shape[-1]
        mean = np.array(IMAGENET_MEAN if c == 3 else [np.mean(IMAGENET_MEAN)] * c, np.float32)
        std = np.array(IMAGENET_STD if c == 3 else [np.mean(IMAGENET_STD)] * c, np.float32)
        return (x / np.float32(255.0) - mean) / std
    raise ValueError(f"preprocessing {name!r}: choose one of {', '.join(PREPROCESSING)}")


def model_input(m: "LoadedModel", images: np.ndarray) -> np.ndarray:
    """uint8 (B,H,W,C) -> the float32 batch `m` takes: scaled by its preprocessing, laid out as its input."""
    x = preprocess(images, m.preprocessing or DEFAULT_PREPROCESSING)
    if m.layout == "hw":
        return x[..., 0]
    if m.layout == "chw":
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    if m.layout == "flat":
        return x.reshape(len(x), -1)
    return x


def _all_layers(model) -> list:
    """Every layer of `model`, nested models' layers included."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out += _all_layers(layer)
    return out


def _channels_first(model) -> bool:
    return any(getattr(layer, "data_format", None) == "channels_first" for layer in _all_layers(model))


def own_scaling_layers(model) -> list[str]:
    """'Kind 'name'' of every Rescaling or Normalization layer in `model` (nested models included)."""
    keras = _keras()
    kinds = (keras.layers.Rescaling, keras.layers.Normalization)
    return [f"{layer.__class__.__name__} '{layer.name}'" for layer in _all_layers(model) if isinstance(layer, kinds)]


def build_default_cnn(input_shape: tuple[int, int, int], n_classes: int, *, dropout: float = DEFAULT_DROPOUT):
    """The original TFP example's CNN, with channel-wise dropout before the dense layer."""
    keras = _keras()
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            L.Conv2D(32, (3, 3), activation="relu", name="conv"),
            L.MaxPooling2D((2, 2), name="pool"),
            L.SpatialDropout2D(dropout, name="mc_dropout"),
            L.Flatten(name="flatten"),
            L.Dense(n_classes, name="logits"),
        ],
        name="reportgen_cnn",
    )


def train(ds: Dataset, *, config: TrainConfig, progress: Progress | None = None) -> tuple[Any, dict]:
    """Train the default CNN on `ds` (10 % held out for validation); return (model, metadata)."""
    keras = _keras()
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if len(ds.labels) < MIN_TRAIN:
        raise DataError(f"{ds.provenance.path}: {len(ds.labels)} training images; the default CNN needs at least {MIN_TRAIN} "
                        "(raise --train-size or give more data)")
    fit_ds, val_ds = split_train_audit(ds, audit_fraction=VALIDATION_FRACTION, seed=config.seed)
    has_val = len(val_ds.labels) > 0
    model = build_default_cnn(tuple(ds.images.shape[1:]), ds.n_classes, dropout=config.dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class _Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if progress:
                logs = logs or {}
                progress(
                    f"epoch {epoch + 1}/{config.epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                    f"val accuracy {logs.get('val_accuracy', float('nan')):.4f}"
                )

    # Training needs every image each epoch: image files are decoded once, here.
    scale = lambda images: preprocess(np.asarray(images), config.preprocessing)  # noqa: E731
    hist = model.fit(
        scale(fit_ds.images), fit_ds.labels,
        validation_data=(scale(val_ds.images), val_ds.labels) if has_val else None,
        epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
        callbacks=[_Report()],
    )
    meta = {
        "architecture": ARCHITECTURE.format(rate=config.dropout),
        "architecture_version": ARCHITECTURE_VERSION,
        "data": asdict(ds.provenance),
        "class_names": list(ds.class_names),
        "train_count": int(len(fit_ds.labels)),
        "validation_count": int(len(val_ds.labels)),
        "seed": config.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "dropout": config.dropout,
        "preprocessing": config.preprocessing,
        "validation_accuracy": float(hist.history["val_accuracy"][-1]) if has_val else None,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    return model, meta


def save(model, metadata: dict, path: str | Path, *, force: bool = False) -> Path:
    """Write `<path>.keras` and `<path>.json` (metadata + sha256 of the weights file) atomically."""
    p = Path(path)
    if p.suffix != ".keras":
        p = p.with_suffix(".keras")
    meta_path = p.with_suffix(METADATA_SUFFIX)
    if (p.exists() or meta_path.exists()) and not force:
        raise OutputError(f"{p}: exists; pass --force to overwrite")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.stem}.tmp-{os.getpid()}.keras")
        model.save(tmp)
        meta = {**metadata, "model_file": p.name, "sha256": sha256_file(tmp)}
        tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, p)
        os.replace(tmp_meta, meta_path)
    except OSError as e:
        raise OutputError(f"{p.parent}: cannot write model ({e.strerror or e})") from e
    return p


def _version_tuple(version: str) -> tuple[int, ...]:
    """'3.15.1' -> (3, 15, 1); a pre-release suffix is ignored."""
    import re

    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def looks_like_probabilities(outputs) -> bool:
    """True when every output row is non-negative and sums to 1 (within validate.ROW_SUM_TOLERANCE): probabilities, not logits."""
    out = np.asarray(outputs, dtype=np.float64)
    return bool(np.all(out >= 0) and np.all(np.abs(out.sum(axis=-1) - 1.0) <= validate.ROW_SUM_TOLERANCE))


def load(path: str | Path, *, trust: bool = False, name: str | None = None) -> LoadedModel:
    """Load a `.keras` / `.h5` model (safe_mode unless `trust`), with its metadata JSON if present."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model file")
    if p.suffix not in (".keras", ".h5"):
        raise ModelError(f"{p}: not a Keras model file (expected .keras or .h5)")
    with open(p, "rb") as f:
        head = f.read(8)
    if p.suffix == ".keras" and not zipfile.is_zipfile(p):
        raise ModelError(f"{p}: not a Keras model file (a .keras file is a zip archive; this one is not)")
    if p.suffix == ".h5" and head != _HDF5_SIGNATURE:
        raise ModelError(f"{p}: not a Keras model file (a .h5 file is HDF5; this one is not)")
    keras = _keras()
    if p.suffix == ".h5" and not trust and _version_tuple(keras.__version__) < SAFE_H5_KERAS:
        # Keras before 3.11.3 ignores safe_mode for .h5 files: a Lambda layer's code would run.
        raise ModelError(f"{p}: Keras {keras.__version__} does not check .h5 files for stored code; "
                         f"install keras>={'.'.join(map(str, SAFE_H5_KERAS))} or pass --trust-model")
    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=not trust)
    except Exception as e:  # Keras raises many types for unreadable files
        text = str(e)
        if "lambda" in text.lower() and ("safe_mode" in text or "unsafe" in text.lower()):
            raise ModelError(f"{p}: contains a Lambda layer (arbitrary code); pass --trust-model to load it") from e
        first = text.strip().splitlines()[0][:160] if text.strip() else e.__class__.__name__
        raise ModelError(f"{p}: cannot load as a Keras model ({first})") from e
    if not hasattr(model, "layers") or not model.layers:
        raise ModelError(f"{p}: file holds no layered Keras model")
    out_shape = tuple(model.outputs[0].shape) if getattr(model, "outputs", None) else tuple(model.output_shape)
    if len(out_shape) != 2 or out_shape[-1] is None or out_shape[-1] < 2:
        raise ModelError(f"{p}: model output shape {out_shape} is not (batch, K classes)")
    in_shape = _input_shape(model, p)
    meta_path = p.with_suffix(METADATA_SUFFIX)
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
    return LoadedModel(
        model=model, path=str(p.resolve()), name=name or p.stem, sha256=sha256_file(p),
        outputs_probs=None, n_outputs=int(out_shape[-1]), input_shape=in_shape, metadata=meta,
    )


def _input_shape(model, where) -> tuple[int, ...]:
    """The model's input shape without the batch axis (-1 for a free dimension), if it takes images."""
    shape = tuple(int(d) if d is not None else -1 for d in model.inputs[0].shape[1:])
    if not 1 <= len(shape) <= 3:
        raise ModelError(f"{where}: model input shape {shape} is not an image (H, W, C), (C, H, W), (H, W) or flat")
    return shape


def from_keras(model, *, name: str | None = None) -> LoadedModel:
    """Wrap an in-memory Keras model; its sha256 is that of its weights."""
    import hashlib

    if not hasattr(model, "layers") or not getattr(model, "outputs", None):
        raise ModelError(f"{type(model).__name__}: not a built Keras model")
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    out_shape = tuple(model.outputs[0].shape)
    return LoadedModel(model=model, path="<in memory>", name=name or model.name, sha256=h.hexdigest(),
                       outputs_probs=None, n_outputs=int(out_shape[-1]), input_shape=_input_shape(model, model.name))


def check_ensemble(models: list[LoadedModel]) -> list[LoadedModel]:
    """Return `models` if they can form an ensemble (same number of classes, same input shape), else raise ModelError."""
    if len({m.n_outputs for m in models}) > 1:
        raise ModelError(f"{models[0].path}: ensemble members predict different numbers of classes "
                         f"({', '.join(str(m.n_outputs) for m in models)})")
    if len({m.input_shape for m in models}) > 1:
        raise ModelError(f"{models[0].path}: ensemble members expect different input shapes "
                         f"({', '.join(str(m.input_shape) for m in models)})")
    return models


def align_classes(ds: Dataset, m: LoadedModel, *, names: list[str] | None = None, names_source: str = "") -> Dataset:
    """`ds` with the model's K classes: labels checked against K, class names from `names`, else the model's metadata.

    Data whose class names identify classes (folder names, manifest labels) is matched to those
    names by name; numbered data (.npz, IDX) takes them by position. Without names from either,
    named data must have exactly K classes (taken in sorted order, as Keras' folder loader does).

    Raises:
        DataError: a name count other than K, a data class the model does not know.
        ModelError: a label >= K.
    """
    k = m.n_outputs
    source = names_source
    if names is not None and len(names) != k:
        raise DataError(f"{names_source}: {len(names)} class names for a model of {k} classes")
    meta = m.metadata.get("class_names")
    if names is None and isinstance(meta, list) and len(meta) == k and all(isinstance(n, str) for n in meta):
        names, source = meta, f"{Path(m.path).name}'s metadata"
    if names is not None and ds.named_classes:
        return ds.relabel(names, source=source)
    if names is None and ds.named_classes and ds.n_classes != k:
        raise DataError(f"{ds.provenance.path}: {ds.n_classes} classes in the data, but the model predicts {k}; give "
                        f"--class-names FILE with the model's {k} class names in the order of its outputs")
    top = int(ds.labels.max())
    if top >= k:
        raise ModelError(f"{m.path}: model predicts {k} classes, labels go up to {top}")
    if names is None:
        names = list(ds.class_names) if ds.n_classes == k else [str(i) for i in range(k)]
    return ds.with_class_names(names)


def fit_images(ds: Dataset, m: LoadedModel, *, trained_here: bool = False) -> tuple[Dataset, str]:
    """`ds` with images of the shape `m` takes, and the resize policy in a sentence for the report.

    Image files are decoded to the model's size and channels (or, where the model leaves them free,
    to the data set's most common size); arrays are used as they are and must already fit.

    Raises:
        ModelError: arrays of another shape than the model's input, or files for a model that takes neither 1 nor 3 channels.
    """
    n, h, w, c = (int(v) for v in ds.images.shape)
    want_h, want_w, want_c = m.image_shape
    shown = tuple(None if d == -1 else d for d in m.input_shape)
    if m.layout == "flat":
        if h * w * c != m.input_shape[0]:
            raise ModelError(f"{m.path}: model takes flat inputs of {m.input_shape[0]} values, data has {h}×{w}×{c} = "
                             f"{h * w * c} pixels per image")
        return ds, f"{h}×{w}×{c} images, flattened to the model's {m.input_shape[0]} inputs"
    if m.layout == "hw":
        want_c = 1
    layout = {"hw": "; the channel axis dropped for the model's (H, W) input",
              "chw": "; transposed to channels-first for the model"}.get(m.layout, "")
    if isinstance(ds.images, ImageFiles):
        th, tw, tc = want_h or h, want_w or w, want_c or c
        if tc not in (1, 3):
            raise ModelError(f"{m.path}: model takes {tc}-channel images; image files decode to 1 (grey) or 3 (RGB) channels")
        files = ds.images.with_target(th, tw, tc)
        if trained_here:
            size = f"the data set's most common size, {th}×{tw}, which the default CNN takes"
        elif want_h is None or want_w is None:
            size = f"the data set's most common size, {th}×{tw}, as the model leaves its input size free"
        else:
            size = f"the model's {th}×{tw} input"
        k = files.n_resized
        resized = f"{k:,} of {n:,} resized" if k else "none needed it"
        colour = ""
        if files.n_converted:
            colour = (f"; {files.n_converted:,} colour images converted to grey (ITU-R BT.601 luma)" if tc == 1
                      else f"; {files.n_converted:,} grey images repeated to 3 channels")
        return (ds.with_images(files),
                f"{n:,} image files decoded and resized to {size} (bilinear, antialiased; {resized}){colour}{layout}")
    want = (want_h or h, want_w or w, want_c or c)
    if (h, w, c) != want:
        raise ModelError(f"{m.path}: model expects images of shape {shown}, data has {(h, w, c)}; reportgen resizes image "
                         "files but not arrays: resize the arrays, or give the images as a folder of files")
    return ds, f"arrays used as given ({h}×{w}×{c}); arrays of another size than the model's input are refused, not resized{layout}"


def choose_preprocessing(m: LoadedModel, explicit: str | None = None) -> tuple[str, str]:
    """(PREPROCESSING name, why) for `m`: --preprocess, else raw pixels for a model with its own scaling
    layer, else the model's metadata, else DEFAULT_PREPROCESSING."""
    own = own_scaling_layers(m.model)
    if explicit is not None:
        if explicit not in PREPROCESSING:
            raise ModelError(f"--preprocess {explicit!r}: choose one of {', '.join(PREPROCESSING)}")
        also = f"; the model also has its own {own[0]} layer" if own and explicit != "raw" else ""
        return explicit, f"as --preprocess {explicit} asks{also}"
    if own:
        return "raw", f"the model scales its inputs itself ({own[0]} layer)"
    meta = m.metadata.get("preprocessing")
    if meta in PREPROCESSING:
        return meta, "as the model's metadata records"
    if "architecture_version" in m.metadata:
        return DEFAULT_PREPROCESSING, "as reportgen trained its default CNN before the metadata recorded a scaling"
    return DEFAULT_PREPROCESSING, "reportgen's default: the model has no scaling layer and its metadata records none"


def _outputs(m: LoadedModel, images: np.ndarray, preprocessing: str) -> np.ndarray:
    """(B, K) float64 outputs of one deterministic pass."""
    return np.asarray(m.model(model_input(replace(m, preprocessing=preprocessing), images), training=False), np.float64)


def ready(m: LoadedModel, images: np.ndarray) -> LoadedModel:
    """`m` with its preprocessing chosen (no guard) and logits/probabilities decided on `images` (a uint8 batch)."""
    if m.preprocessing is None:
        name, why = choose_preprocessing(m)
        m = replace(m, preprocessing=name, preprocessing_why=why)
    if m.outputs_probs is None:
        m = replace(m, outputs_probs=looks_like_probabilities(_outputs(m, images, m.preprocessing)))
    return m


def prepare(m: LoadedModel, ds: Dataset, *, explicit: str | None = None, seed: int = 0) -> LoadedModel:
    """Pick `m`'s input scaling and tell its logits from probabilities on a probe batch of `ds`; guard the choice.

    Args:
        m: a loaded model whose classes and input shape already fit `ds` (align_classes, fit_images).
        ds: the audited samples; a seeded choice of PROBE_SIZE of them is decoded and run.
        explicit: the --preprocess name, if given.
    Returns:
        `m` with preprocessing, preprocessing_why and outputs_probs set.
    Raises:
        ModelError: another scaling is right on the probe FAR_BETTER more often, and the chosen one is
            near chance or has at least twice its error (the message names the better option).
    """
    name, why = choose_preprocessing(m, explicit)
    n = len(ds.labels)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(PROBE_SIZE, n), replace=False))
    x, y = ds.images[rows], ds.labels[rows]
    out = _outputs(m, x, name)
    acc = float(np.mean(out.argmax(axis=1) == y))
    chance = max(1.0 / m.n_outputs, float(np.bincount(y).max() / len(y)))
    if acc + FAR_BETTER <= 1.0:  # otherwise no scaling can beat it by FAR_BETTER: skip the extra passes
        others = {o: float(np.mean(_outputs(m, x, o).argmax(axis=1) == y)) for o in PREPROCESSING if o != name}
        best = max(others, key=others.get)
        top = others[best]
        if top >= acc + FAR_BETTER and (acc <= chance + NEAR_CHANCE or 1.0 - top <= (1.0 - acc) / 2):
            near = [f"{o} {others[o]:.0%}" for o in sorted(others, key=others.get, reverse=True)[1:] if top - others[o] <= ABOUT_AS_GOOD]
            also = f" ({', '.join(near)})" if near else ""
            at = f", about chance ({chance:.0%})" if acc <= chance + NEAR_CHANCE else ""
            raise ModelError(f"{m.path}: with {name} preprocessing ({why}) the model is right on {acc:.0%} of a {len(y)}-image "
                             f"probe{at}, but on {top:.0%} with {best}{also}: pass --preprocess {best}")
    return replace(m, preprocessing=name, preprocessing_why=why, outputs_probs=looks_like_probabilities(out))


def describe_inputs(models: list[LoadedModel], policy: str) -> str:
    """How pixels reach the model(s), in one sentence for the report: scaling, why, and the resize policy."""
    parts = sorted({f"{PREPROCESSING[m.preprocessing]} ({m.preprocessing_why})" for m in models})
    return "; ".join(parts) + f". {policy[0].upper()}{policy[1:]}."
