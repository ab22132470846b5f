"""The label checker: K models whose only job is out-of-sample probabilities for every labelled sample.

Confident learning is only as good as the probabilities it is given, so the label check does not
reuse the audited model. `--cv K` splits every labelled sample into K stratified folds; each fold's
checker trains on the other K-1 folds and predicts only its own, so no sample is scored by a model
that saw its label. Fold models are cached by recipe, data and options, and reused.

Recipes, picked by name (`--checker`):
- "default": a stronger CNN built for the job (see DEFAULT_RECIPE; bench/checker.py measures it);
- "seed": the audited default CNN (the TFP example's) with MC dropout, for comparison.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.datasets import Dataset
from ..errors import ReportgenError

Progress = Callable[[str], None]

# Bumped whenever a recipe changes, so cached fold models are not reused across it.
RECIPE_VERSION = 2
# The default checker (measured in bench/checker.py on the 10,000 real MNIST test images, 5 folds).
DEFAULT_RECIPE = {
    "filters": (32, 64),  # two blocks: 3x3 conv (same padding) + ReLU + 2x2 max pooling
    "dense": 128,  # a hidden dense layer after flattening
    "dropout": 0.5,  # before the hidden and the output layer
    "epochs": 20,
    "batch_size": 128,
    "learning_rate": 4e-3,  # peak of a one-cycle schedule: linear warm-up over 20 %, cosine decay to 0.1 %
    "warmup": 0.2,
    "shift": 2.0,  # augmentation: random shifts up to 2 px and rotations up to 10 degrees, redrawn every epoch
    "rotation": 10.0,
    "tta": True,  # test-time augmentation: average over the image and its four one-pixel shifts
}
RECIPES = {
    "default": "two-block CNN (32, 64 filters) + dense 128 with dropout, one-cycle learning rate, shift/rotation "
               "augmentation, predictions averaged over five one-pixel shifts",
    "seed": "the default audited CNN (one conv layer, channel dropout), MC-dropout averaged",
}


@dataclass(frozen=True)
class CheckerResult:
    """Out-of-sample probabilities for every checked sample, and how they were made.

    probs: (N, K) float64, rows sum to 1; row i was predicted by the fold model that did not train on it.
    recipe: a RECIPES name; folds: K; description: one sentence for the report.
    fold_sha256: sha256 of each fold model file.
    """

    probs: np.ndarray
    recipe: str
    folds: int
    description: str
    fold_sha256: list[str] = field(default_factory=list)


def kfold_indices(labels: np.ndarray, folds: int, *, seed: int) -> list[np.ndarray]:
    """Seeded stratified K-fold: `folds` disjoint sorted index arrays covering every row."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        for f, chunk in enumerate(np.array_split(idx, folds)):
            parts[f].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


# --------------------------------------------------------------------------- the default recipe


def _augment(x: np.ndarray, rng: np.random.Generator, max_shift: float, max_rotation: float) -> np.ndarray:
    """Random rotation and shift per image (bilinear, edges clamped): uint8 (N,H,W,C) in, float32 [0, 1] out."""
    n, h, w, c = x.shape
    theta = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n)).astype(np.float32)
    ty = rng.uniform(-max_shift, max_shift, n).astype(np.float32)
    tx = rng.uniform(-max_shift, max_shift, n).astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float32) - cy, np.arange(w, dtype=np.float32) - cx, indexing="ij")
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    oy, ox = gy[None] - ty[:, None, None], gx[None] - tx[:, None, None]
    sy, sx = cos * oy - sin * ox + cy, sin * oy + cos * ox + cx  # source coordinates of every output pixel
    y0, x0 = np.floor(sy), np.floor(sx)
    wy, wx = (sy - y0)[..., None], (sx - x0)[..., None]
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    flat = x.reshape(n * h * w, c)
    base = (np.arange(n, dtype=np.int64) * (h * w))[:, None, None]

    def at(yy, xx):
        return flat[(base + yy * w + xx).ravel()].reshape(n, h, w, c).astype(np.float32)

    out = (at(ya, xa) * (1 - wx) + at(ya, xb) * wx) * (1 - wy) + (at(yb, xa) * (1 - wx) + at(yb, xb) * wx) * wy
    return out * np.float32(1.0 / 255.0)


def _shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`x` moved by (dy, dx) pixels, zero fill."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[:, dst_y, dst_x] = x[:, src_y, src_x]
    return out


# Test-time shifts of the default recipe: the image and its four one-pixel neighbours.
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def build_default(input_shape: tuple[int, ...], n_classes: int, recipe: dict = DEFAULT_RECIPE):
    """The default checker network for images of `input_shape` (H, W, C) and `n_classes` classes (logits)."""
    import keras

    L = keras.layers
    inp = keras.Input(input_shape)
    x = inp
    for f in recipe["filters"]:
        x = L.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = L.MaxPooling2D(2)(x) if min(x.shape[1:3]) >= 2 else x
    x = L.Flatten()(x)
    x = L.Dropout(recipe["dropout"])(x)
    x = L.Dense(recipe["dense"], activation="relu")(x)
    x = L.Dropout(recipe["dropout"])(x)
    return keras.Model(inp, L.Dense(n_classes)(x), name="reportgen_checker")


def train_default(images: np.ndarray, labels: np.ndarray, n_classes: int, *, seed: int, epochs: int | None = None,
                  recipe: dict = DEFAULT_RECIPE):
    """Train the default checker on uint8 (N,H,W,C) images; returns the Keras model (logits)."""
    from concurrent.futures import ThreadPoolExecutor

    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    epochs = epochs or recipe["epochs"]
    model = build_default(images.shape[1:], n_classes, recipe)
    steps = math.ceil(len(labels) / recipe["batch_size"]) * epochs
    warm = int(recipe["warmup"] * steps)
    lr = recipe["learning_rate"]
    schedule = keras.optimizers.schedules.CosineDecay(lr / 10.0, max(1, steps - warm), alpha=1e-3,
                                                      warmup_target=lr, warmup_steps=warm)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.asarray(labels)
    n, batch = len(labels), recipe["batch_size"]
    aug_rng = np.random.default_rng([seed, 1])
    # A fresh random augmentation every epoch, built in a thread while the previous epoch trains (numpy
    # releases the GIL); one train_on_batch per batch avoids model.fit's per-call dataset set-up.
    with ThreadPoolExecutor(1) as pool:
        upcoming = pool.submit(_augment, images, aug_rng, recipe["shift"], recipe["rotation"])
        for epoch in range(epochs):
            x = upcoming.result()
            if epoch + 1 < epochs:
                upcoming = pool.submit(_augment, images, aug_rng, recipe["shift"], recipe["rotation"])
            order = rng.permutation(n)
            for i in range(0, n, batch):
                b = order[i:i + batch]
                model.train_on_batch(x[b], labels[b])
    return model


def predict_default(model, images: np.ndarray, recipe: dict = DEFAULT_RECIPE) -> np.ndarray:
    """(N, K) float64 probabilities, averaged over the test-time shifts."""
    shifts = TTA_SHIFTS if recipe["tta"] else TTA_SHIFTS[:1]
    total = None
    for dy, dx in shifts:
        x = _shifted(images, dy, dx).astype(np.float32) / 255.0
        z = np.asarray(model.predict(x, batch_size=1024, verbose=0), np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        total = p if total is None else total + p
    return total / len(shifts)


# --------------------------------------------------------------------------- cross-validation


def _fold_key(ds: Dataset, train_idx: np.ndarray, *, recipe: str, epochs: int, batch_size: int, seed: int,
              mc_samples: int) -> str:
    """Cache key of one fold model: recipe, options, the data file and the exact training labels and rows."""
    blob = json.dumps({"recipe": recipe, "version": RECIPE_VERSION, "epochs": epochs, "batch_size": batch_size,
                       "seed": seed, "mc": mc_samples if recipe == "seed" else None,
                       "default": DEFAULT_RECIPE if recipe == "default" else None, "data": ds.provenance.sha256},
                      sort_keys=True, default=list)
    h = hashlib.sha256(blob.encode())
    h.update(np.ascontiguousarray(ds.labels[train_idx]).tobytes())
    h.update(np.ascontiguousarray(ds.source_index[train_idx]).tobytes())
    h.update("\n".join(ds.source_split[train_idx].tolist()).encode())
    return h.hexdigest()[:16]


def cross_val_probabilities(ds: Dataset, *, folds: int, recipe: str = "default", epochs: int | None = None,
                            batch_size: int = 128, seed: int = 0, mc_samples: int = 30, cache_dir: Path,
                            name: str, progress: Progress | None = None) -> CheckerResult:
    """Out-of-sample probabilities for every row of `ds` from `folds` checker models.

    Args:
        ds: the labelled samples to check (labels as given, or as corrected by reviews).
        folds: K >= 2 stratified folds.
        recipe: a RECIPES name.
        epochs: training epochs per fold (default: the recipe's own).
        batch_size, mc_samples: for the "seed" recipe (the default CNN and its MC dropout).
        seed: seed of the folds (fold f trains with seed + f).
        cache_dir: where fold models are kept and reused.
        name: prefix of the cached files.
    Returns:
        CheckerResult.
    Raises:
        ReportgenError: K out of range or an unknown recipe.
    """
    from . import network as M
    from .predict import predict

    if recipe not in RECIPES:
        raise ReportgenError(f"--checker {recipe!r}: choose one of {', '.join(RECIPES)}")
    n = len(ds.labels)
    if not 2 <= folds <= n:
        raise ReportgenError(f"--cv {folds}: need 2 <= K <= {n} (the number of labelled samples)")
    counts = np.bincount(ds.labels)
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise ReportgenError(f"--cv {folds}: a class has only {smallest} labelled sample(s); each of the {folds} folds "
                             "needs every class (use a smaller K)")
    probs = np.zeros((n, ds.n_classes))
    shas = []
    epochs_used = epochs or (DEFAULT_RECIPE["epochs"] if recipe == "default" else M.DEFAULT_EPOCHS)
    for f, held in enumerate(kfold_indices(ds.labels, folds, seed=seed)):
        train_idx = np.setdiff1d(np.arange(n), held)
        key = _fold_key(ds, train_idx, recipe=recipe, epochs=epochs_used, batch_size=batch_size, seed=seed + f,
                        mc_samples=mc_samples)
        path = Path(cache_dir) / f"{name}-checker-{recipe}-fold{f + 1}of{folds}-{key}.keras"
        if progress:
            progress(f"checker fold {f + 1}/{folds}: training on {len(train_idx)} labelled images, checking {len(held)}")
        if path.exists():
            if progress:
                progress(f"checker fold {f + 1}/{folds}: reusing {path}")
        elif recipe == "default":
            net = train_default(ds.images[train_idx], ds.labels[train_idx], ds.n_classes, seed=seed + f, epochs=epochs_used)
            M.save(net, {"checker": recipe, "recipe": DEFAULT_RECIPE, "fold": f + 1, "folds": folds, "seed": seed + f,
                         "epochs": epochs_used}, path, force=True)
        else:
            net, meta = M.train(ds.subset(train_idx), config=M.TrainConfig(epochs=epochs_used, batch_size=batch_size,
                                                                          seed=seed + f))
            M.save(net, meta, path, force=True)
        m = M.load(path)
        if recipe == "default":
            probs[held] = predict_default(m.model, ds.images[held])
        else:
            preds = predict([m], ds.images[held], mc_samples=mc_samples, seed=seed + f)
            probs[held] = preds.modes[preds.sampled or "deterministic"]
        shas.append(m.sha256)
    how = RECIPES[recipe] + (f" (S = {mc_samples})" if recipe == "seed" else "")
    desc = (f"{folds}-fold cross-validation over all {n:,} labelled samples: each fold's checker ({how}, {epochs_used} epochs) "
            "trains on the other folds and predicts only its own, so no sample is scored by a model that saw its label")
    return CheckerResult(probs / probs.sum(axis=1, keepdims=True), recipe, folds, desc, shas)
