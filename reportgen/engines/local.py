"""The only module that chains the stages: data -> model -> predict -> uncertainty -> label issues -> report."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..version import __version__
from ..report.folder import check_component, version_dir
from ..data.datasets import Dataset, Provenance, Splits, load, load_class_names, load_mnist, sha256_file, split_train_audit, take
from ..errors import DataError, ModelError, OutputError, ReportgenError
from ..stats.intervals import DEFAULT_REPLICATES
from ..report.context import describe_data
from ..model.network import DEFAULT_EPOCHS

Progress = Callable[[str], None]
# Engines of `audit` (--engine): one process, or an Apache Beam pipeline (sharded saved predictions, or a model on data).
ENGINES = ("local", "beam")
# Options --engine beam does not take yet, each refused in one line.
BEAM_UNSUPPORTED = {"cv": "--cv", "reviews": "--reviews", "audit_size": "--audit-size", "images": "--images"}
# The method of an audit of saved probabilities (either engine).
SAVED_METHOD = {"method": "saved_probabilities", "n_samples": 1,
                "description": "saved probabilities from another framework: one distribution per sample, epistemic uncertainty not measured"}
# Share of a single-split data set held out for the audit when reportgen trains the model itself.
AUDIT_FRACTION = 0.2
# Folder under the archive root where default models trained by `audit` are cached for reuse.
MODEL_CACHE = ".models"
# Number of characters of the model's sha256 used as the default version.
VERSION_DIGITS = 12


@dataclass(frozen=True)
class TrainOptions:
    """What `reportgen train` needs."""

    data: str | None = None
    output: str = "output/models"
    name: str | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    seed: int = 0
    train_size: int | None = None
    ensemble: int = 1
    force: bool = False
    preprocess: str | None = None  # model.PREPROCESSING name the CNN trains with (None: the default)


@dataclass(frozen=True)
class AuditOptions:
    """Everything `reportgen audit` takes; the CLI fills it, tests and notebooks may too."""

    data: str | None = None
    models: tuple[str, ...] = ()
    predictions: str | None = None
    labels: str | None = None
    images: str | None = None
    class_names: str | None = None
    output: str = "output"
    name: str | None = None
    version: str | None = None
    force: bool = False
    mc_samples: int = 30
    seed: int = 0
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    train_size: int | None = None
    audit_size: int | None = None
    rank_by: str = "self_confidence"
    cv: int | None = None
    checker: str = "default"
    checker_epochs: int | None = None
    flag_rule: str = "reportgen"
    reviews: str | None = None
    apply_reviews: bool = False
    bootstrap: int = DEFAULT_REPLICATES
    card: str | None = None
    card_table: dict | None = None
    trust_model: bool = False
    preprocess: str | None = None  # model.PREPROCESSING name; None: the model's own layers, its metadata, else "unit"
    paper: str = "a4"
    fail_on: tuple[str, ...] = ()
    config_file: str | None = None
    option_sources: dict | None = None
    command: str = ""
    engine: str = "local"  # ENGINES name: "local" (one process) or "beam" (sharded saved predictions on Apache Beam)
    beam_options: tuple[str, ...] = ()  # Beam PipelineOptions flags, e.g. "--runner=FlinkRunner", with engine "beam"


def _say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


def _load_data(spec: str | None, class_names_path: str | None, progress: Progress | None) -> Splits:
    """The data of --data (MNIST by default), with --class-names applied when given (their count must match the data's classes)."""
    warn = (lambda m: _say(progress, f"warning: {m}")) if progress else (lambda m: print(f"warning: {m}", file=sys.stderr))
    if spec is None or spec == "mnist":
        splits = load_mnist(warn=warn)
    else:
        splits = load(spec)
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
    _say(progress, f"training the default CNN on {len(ds.labels)} images ({epochs} epoch(s), seed {seed})")
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
    return [
        train_default(train_ds, epochs=opts.epochs, batch_size=opts.batch_size, seed=opts.seed + i, path=p, force=opts.force,
                      progress=progress, held_out=_held_out(splits, opts.seed), preprocessing=opts.preprocess)
        for i, p in enumerate(paths)
    ]


@dataclass
class _Resolved:
    """The audit's inputs once resolved: data, models or saved probabilities, name, version."""

    audit: Dataset
    name: str
    version: str
    models: list = field(default_factory=list)
    probs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    model_info: dict = field(default_factory=dict)
    data_role: str = "held-out"
    dataset: dict = field(default_factory=dict)  # _dataset_info: the data set in plain words
    checked: Dataset | None = None  # the samples whose labels are checked (None: the audited ones)
    checker: object | None = None  # checker.CheckerResult for `checked` (None: no independent checker)
    reviews: object | None = None  # reviews.Reviews aligned with `checked` (or with `audit` when checked is None)


def _load_npy(path: str, what: str) -> np.ndarray:
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


def _resolve_predictions(opts: AuditOptions) -> _Resolved:
    from .. import validate
    from ..data.datasets import as_images

    if not opts.labels:
        raise ReportgenError("--predictions needs --labels (the given label of every row)")
    probs = validate.probabilities(_load_npy(opts.predictions, "predictions"), source=str(opts.predictions))
    labels = validate.labels(_load_npy(opts.labels, "labels"), source=str(opts.labels), n=len(probs), k=probs.shape[1])
    names = load_class_names(opts.class_names, probs.shape[1]) if opts.class_names else None
    images = as_images(_load_npy(opts.images, "images"), str(opts.images)) if opts.images else None
    if images is not None and len(images) != len(labels):
        raise DataError(f"{opts.images}: {len(images)} images for {len(labels)} labels")
    probs_sha, labels_sha = sha256_file(opts.predictions), sha256_file(opts.labels)
    prov = Provenance("predictions", str(Path(opts.labels).resolve()), labels_sha, int(len(labels)))
    r = _from_probabilities(probs, labels, images, names, prov=prov, probs_sha=probs_sha, name=opts.name or Path(opts.predictions).stem,
                            version=opts.version, path=str(Path(opts.predictions).resolve()), data_name=Path(opts.labels).stem)
    r.dataset = describe_data(None, r.audit, role=r.data_role, trained=None, checked=None,
                              preprocessing="none: reportgen reads the saved probabilities as given")
    reviews = _read_reviews(opts, r.audit)
    if reviews is not None and opts.apply_reviews:
        r.audit = Dataset(r.audit.images, reviews.apply(r.audit.labels), r.audit.class_names, r.audit.provenance, r.audit.name)
    r.reviews = reviews
    return r


def _from_probabilities(probs, labels, images, names, *, prov: Provenance, probs_sha: str, name: str, version: str | None,
                        path: str, data_name: str) -> _Resolved:
    """Resolved inputs for validated saved probabilities (CLI files or in-memory arrays)."""
    from .. import validate
    k = probs.shape[1]
    images = images if images is not None else np.zeros((len(labels), 1, 1, 1), np.uint8)
    probs = validate.normalised(probs)
    ds = Dataset(images, labels.astype(np.int64), list(names) if names else [str(i) for i in range(k)], prov, data_name)
    sha = hashlib.sha256((probs_sha + prov.sha256).encode()).hexdigest()
    info = {"path": path, "sha256": probs_sha, "kind": "saved probabilities", "outputs_probs": True, "metadata": {}}
    return _Resolved(audit=ds, name=name, version=version or sha[:VERSION_DIGITS], probs=probs,
                     model_info=info, data_role="saved probabilities (assumed out-of-sample)")


def _trained_on(models: list) -> dict | None:
    """What the (first) model's metadata says it trained on; None when it says nothing."""
    md = models[0].metadata if models else {}
    if not md.get("train_count"):
        return None
    return {"count": int(md["train_count"]), "validation_count": int(md.get("validation_count") or 0),
            "data": (md.get("data") or {}).get("path"), "held_out": md.get("held_out")}


def _row_keys(ds: Dataset) -> list[tuple[str, int]]:
    """(split, row) of every sample: how flagged.csv and review files name it."""
    return list(zip(ds.source_split.tolist(), ds.source_index.tolist()))


def _align_reviews(reviews, source: Dataset, target: Dataset):
    """Reviews read against `source` rows, re-aligned with the rows of `target` (a subset or the same)."""
    from ..data.reviews import Reviews, no_reviews

    if reviews is None:
        return no_reviews(len(target.labels))
    pos = {k: i for i, k in enumerate(_row_keys(source))}
    idx = np.array([pos[k] for k in _row_keys(target)], dtype=np.int64)
    return Reviews(reviews.verdict[idx], reviews.corrected[idx], reviews.note[idx], reviews.source)


def _read_reviews(opts: AuditOptions, labelled: Dataset):
    """The --reviews file aligned with every labelled sample (None without one)."""
    if not opts.reviews:
        return None
    from ..data import reviews as R
    return R.read(opts.reviews, splits=labelled.source_split, rows=labelled.source_index, class_names=labelled.class_names)


def _apply_reviews(splits: Splits, reviews, labelled: Dataset, progress: Progress | None) -> Splits:
    """Every split with the labels reviewers confirmed wrong replaced by their corrected labels."""
    corrected = {k: int(c) for k, v, c in zip(_row_keys(labelled), reviews.verdict, reviews.corrected) if v == "label_wrong"}
    if not corrected:
        return splits
    _say(progress, f"applying {len(corrected)} reviewed label correction(s) from {reviews.source}")

    def fix(ds: Dataset) -> Dataset:
        y = np.array([corrected.get(k, int(v)) for k, v in zip(_row_keys(ds), ds.labels)], dtype=np.int64)
        return Dataset(ds.images, y, ds.class_names, ds.provenance, ds.name, ds.index, ds.split)

    return splits.map(fix)


def _resolve_models(opts: AuditOptions, progress: Progress | None) -> _Resolved:
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
            _say(progress, f"warning: auditing every sample of {audit.provenance.path}; if the model trained on any of them, "
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
            _say(progress, f"reusing the default model trained earlier with the same data and options: {cached}")
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
    info = _model_info(models)
    r = _Resolved(audit=audit, name=name, version=opts.version or info["sha256"][:VERSION_DIGITS], models=models,
                  notes=notes, model_info=info, data_role=role)
    r.dataset = describe_data(splits, audit, role=role, trained=_trained_on(models),
                              checked=len(splits.labelled().labels) if opts.cv else None,
                              preprocessing=M.describe_inputs(models, policy))
    if opts.cv:
        from ..model.checker import cross_val_probabilities

        labelled = splits.labelled()
        r.checked = labelled
        epochs = opts.checker_epochs or (opts.epochs if opts.checker == "seed" else None)
        r.checker = cross_val_probabilities(labelled, folds=opts.cv, recipe=opts.checker, epochs=epochs,
                                            batch_size=opts.batch_size, seed=opts.seed, mc_samples=opts.mc_samples,
                                            cache_dir=Path(opts.output) / MODEL_CACHE, name=name, progress=progress)
        r.reviews = _align_reviews(reviews, splits.labelled(), labelled)
    else:
        r.reviews = _align_reviews(reviews, splits.labelled(), audit)
    return r


def _check_learnable(train: Dataset, audit: Dataset) -> None:
    """Raise DataError when audited labels never occur among the training labels (the default CNN cannot learn them)."""
    unseen = np.setdiff1d(np.unique(audit.labels), np.unique(train.labels))
    if unseen.size:
        shown = ", ".join(audit.class_names[i] for i in unseen[:5]) + (", ..." if unseen.size > 5 else "")
        raise DataError(f"{audit.provenance.path}: {unseen.size} audited label(s) never occur in the {len(train.labels):,} "
                        f"training labels ({shown}), so the default CNN cannot learn them; give training images of every class")


def _model_info(models: list) -> dict:
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


@dataclass(frozen=True)
class LabelResult:
    """The label check: confident learning on a checker's out-of-sample probabilities, and what it can tell.

    checked: the Dataset whose labels were checked (every labelled sample with --cv, else the audited ones).
    probs: (M, K) float64 the checker's probabilities for them.
    issues: label_issues.LabelIssues on (checked.labels, probs); samples reviewed label_ok are not flagged again.
    checker: plain data: kind ("cv" | "audited_model" | "saved"), independent, description, short, recipe,
        folds, accuracy and accuracy_ci against the given labels, per_class [{name, count, accuracy, accuracy_ci}].
    rule: the flag rule (label_issues.RULES).
    reviews: reviews.Reviews aligned with `checked`.
    audit_pos: (N,) int64 position of each audited sample in `checked`.
    cases: (N,) object array of label_issues.CASES keys or "" per audited sample; None without an
        independent checker (then label errors and model errors cannot be told apart).
    """

    checked: Dataset
    probs: np.ndarray
    issues: object
    checker: dict
    rule: str
    reviews: object
    audit_pos: np.ndarray
    cases: np.ndarray | None


@dataclass(frozen=True)
class AuditResult:
    """Every statistic of one audit: per-sample uncertainty, summaries with intervals, and the label check."""

    sampled: object  # uncertainty.SampledPredictions
    stats: object  # uncertainty.UncertaintyStats
    calibration: object  # uncertainty.CalibrationStats
    temperature: object  # uncertainty.TemperatureScaling
    selective: object  # uncertainty.SelectiveStats
    per_class: list[dict]
    metrics: dict
    errors: dict  # uncertainty.error_facts
    labels: LabelResult


def _checker_info(checked: Dataset, probs: np.ndarray, checker, kind: str) -> dict:
    """What the report says about the checker: how it was made and how often it agrees with the given labels."""
    from ..stats.labels import checker_info

    y = checked.labels
    right = probs.argmax(axis=1) == y
    k = checked.n_classes
    return checker_info(np.bincount(y, minlength=k), np.bincount(y[right], minlength=k), checked.class_names, kind=kind,
                        checker=checker)


def check_labels(audit: Dataset, predicted: np.ndarray, audit_probs: np.ndarray, *, checked: Dataset | None = None,
                 checker=None, reviews=None, kind: str = "audited_model", rule: str = "reportgen",
                 rank_by: str = "self_confidence") -> LabelResult:
    """Confident learning on the checker's probabilities (or the audited ones), reviews applied, cases separated.

    Args:
        audit: the audited samples; predicted: (N,) the audited model's predictions; audit_probs: (N, K) its probabilities.
        checked, checker: every labelled sample and its checker.CheckerResult (--cv); None: check the audited labels
            with `audit_probs`.
        reviews: reviews.Reviews aligned with the checked samples (None: none).
        kind: "cv", "audited_model" or "saved" (what the probabilities are, for the report).
    """
    from ..stats import labels as LI
    from ..data.reviews import no_reviews

    if checker is None:
        checked, probs, audit_pos = audit, audit_probs, np.arange(len(audit.labels))
    else:
        probs = checker.probs
        pos = {key: i for i, key in enumerate(_row_keys(checked))}
        audit_pos = np.array([pos[key] for key in _row_keys(audit)], dtype=np.int64)
    reviews = reviews if reviews is not None else no_reviews(len(checked.labels))
    issues = LI.find_label_issues(checked.labels, probs, rule=rule, rank_by=rank_by)
    issues = LI.drop_flags(issues, reviews.verdict == "label_ok")
    cases = None
    if checker is not None:
        cases = LI.separate_cases(audit.labels, predicted, probs[audit_pos], issues.issue_mask[audit_pos], issues.thresholds)
    return LabelResult(checked, probs, issues, _checker_info(checked, probs, checker, kind), rule, reviews, audit_pos, cases)


def label_metrics(lr: LabelResult) -> dict:
    """The label check's numbers for summary.json (plain Python values)."""
    from ..stats.labels import label_metrics_from

    iss, rv = lr.issues, lr.reviews
    cases = None if lr.cases is None else {"model_errors": int(np.sum(lr.cases == "model_error")),
                                           "ambiguous": int(np.sum(lr.cases == "ambiguous"))}
    return label_metrics_from(n_checked=len(lr.checked.labels), n_flagged=len(iss.flagged), n_estimated=iss.n_issues_estimated,
                              checker=lr.checker, cases=cases, review_counts=rv.counts(),
                              n_unreviewed_flags=int(np.sum(~rv.reviewed[iss.flagged])))


def analyse(ds: Dataset, sampled, *, rank_by: str = "self_confidence", seed: int = 0, flag_rule: str = "reportgen",
            replicates: int = DEFAULT_REPLICATES, checked: Dataset | None = None, checker=None, reviews=None,
            kind: str = "audited_model") -> AuditResult:
    """All dataset-level statistics for `ds` given its sampled predictions, with 95 % intervals, and the label check."""
    from ..stats import uncertainty as U
    probs, labels, k = sampled.mean_probs, ds.labels, ds.n_classes
    stats = U.per_sample(sampled, labels)
    cal = U.calibration(probs, labels, seed=seed)
    temp = U.temperature_scaling(probs, labels, seed=seed)
    sel = U.selective_prediction(stats.confidence, stats.correct, seed=seed)
    per_class = U.per_class(stats, labels, probs, n_classes=k, class_names=ds.class_names, classwise=cal.classwise)
    metrics = U.summarize(stats, cal, temp, sel)
    metrics.update(U.interval_metrics(stats, probs, labels, sel, replicates=replicates, seed=seed))
    lr = check_labels(ds, stats.predicted, probs, checked=checked, checker=checker, reviews=reviews, kind=kind,
                      rule=flag_rule, rank_by=rank_by)
    metrics.update(label_metrics(lr))
    return AuditResult(sampled, stats, cal, temp, sel, per_class, metrics, U.error_facts(stats, labels, k), lr)


def reduce_local(ds: Dataset, result: AuditResult, *, has_images: bool = True):
    """The local engine's per-sample result reduced to what the report reads (reduced.ReducedAudit).

    Every number is the local one, exact; the display sample and the gallery lists are cut from the
    per-sample arrays exactly as a sharded run (reportgen.beam) merges them from its shards.
    """
    from ..report import inputs as R
    st, lr = result.stats, result.labels
    iss, checked = lr.issues, lr.checked
    n, k, names = len(ds.labels), ds.n_classes, ds.class_names
    data = R.DataSummary(ds.name, list(names), np.bincount(ds.labels, minlength=k).tolist(), int(n), asdict(ds.provenance),
                         ds.index_sha256())
    pos = R.display_positions(n)
    display = R.DisplaySample(pos, ds.labels[pos], st.predicted[pos], st.correct[pos], st.confidence[pos], st.total[pos],
                              st.aleatoric[pos], st.epistemic[pos])
    galleries: dict[str, list] = {}
    if has_images:
        sp = result.sampled
        ranked = ((("gallery_aleatoric", st.aleatoric), ("gallery_epistemic", st.epistemic)) if st.epistemic_measured
                  else (("gallery_entropy", st.total),))
        for key, vals in ranked:
            top = np.argsort(-vals, kind="stable")[:R.UNCERTAINTY_GALLERY_SIZE]
            pictures = np.asarray(ds.images[top])  # one decode call for image files
            galleries[key] = [R.GalleryItem(str(ds.source_split[i]), int(ds.source_index[i]), int(ds.labels[i]), int(st.predicted[i]),
                                            float(vals[i]), sp.mean_probs[i], sp.std_probs[i] if st.epistemic_measured else None, pic)
                              for i, pic in zip(top, pictures)]
        top = iss.flagged[:R.FLAGGED_GALLERY_SIZE]
        if len(top):
            pictures = np.asarray(checked.images[top])
            galleries["gallery_flagged"] = [
                R.GalleryItem(str(checked.source_split[i]), int(checked.source_index[i]), int(g), int(sg), float(sc), lr.probs[i], None, pic)
                for i, g, sg, sc, pic in zip(top, iss.given, iss.suggested, iss.self_confidence, pictures)]
    audited = np.full(len(checked.labels), -1, dtype=np.int64)
    audited[lr.audit_pos] = st.predicted
    files = checked.source_files
    f = iss.flagged
    flagged = R.FlaggedSamples(
        split=np.asarray(checked.source_split[f]).astype(str), row=np.asarray(checked.source_index[f], dtype=np.int64),
        file=np.full(len(f), "", dtype=object) if files is None else np.asarray(files[f]).astype(str),
        given=iss.given, suggested=iss.suggested, self_confidence=iss.self_confidence, score=iss.score,
        audited_prediction=audited[f], review=np.asarray(lr.reviews.verdict[f]).astype(str))
    cases = examples = None
    if lr.cases is not None:
        cases = {"label_candidates": int(np.sum(lr.cases == "label_candidate")), "model_errors": int(np.sum(lr.cases == "model_error")),
                 "ambiguous": int(np.sum(lr.cases == "ambiguous"))}
        examples = []
        from ..report.context import MODEL_ERROR_EXAMPLES

        for i in np.flatnonzero(lr.cases == "model_error")[:MODEL_ERROR_EXAMPLES]:
            j = lr.audit_pos[i]
            examples.append({"split": str(ds.source_split[i]), "row": int(ds.source_index[i]), "given": names[ds.labels[i]],
                             "predicted": names[st.predicted[i]], "checker_p_given": float(lr.probs[j, ds.labels[i]])})
    rv = lr.reviews
    reviewed = [{"split": str(checked.source_split[i]), "row": int(checked.source_index[i]),
                 "file": "" if files is None else str(files[i]), "given": names[checked.labels[i]], "verdict": str(rv.verdict[i]),
                 "note": str(rv.note[i]), "label": names[rv.corrected[i]] if rv.verdict[i] == "label_wrong" else ""}
                for i in np.flatnonzero(rv.reviewed)]
    labels = R.LabelSummary(
        rule=lr.rule, rank_by=iss.rank_by, n_checked=int(len(checked.labels)), checked_sha256=checked.index_sha256(),
        thresholds=iss.thresholds, calibrated_joint=iss.calibrated_joint, per_class_issues=iss.per_class_issues,
        n_issues_estimated=int(iss.n_issues_estimated), checker=lr.checker, cases=cases, model_error_rows=examples or [],
        reviews={**rv.counts(), "source": rv.source}, n_unreviewed_flags=int(result.metrics["n_unreviewed_flags"]),
        flagged=flagged, reviewed=reviewed)
    return R.ReducedAudit(data=data, metrics=result.metrics, calibration=result.calibration, temperature=result.temperature,
                          selective=result.selective, per_class=result.per_class, errors=result.errors,
                          epistemic_measured=bool(st.epistemic_measured), n_passes=int(st.n_samples), labels=labels,
                          display=display, galleries=galleries, engine="local")


def _load_card(opts: AuditOptions) -> dict | None:
    """The model card: --card FILE, else [tool.reportgen.card] of the configuration, else none."""
    from ..report import card
    if opts.card:
        return card.load(opts.card)
    if opts.card_table is not None:
        return card.from_table(opts.card_table, f"{opts.config_file or 'configuration'} [tool.reportgen.card]")
    return None


def _validate_options(opts: AuditOptions) -> None:
    from ..model.checker import RECIPES
    from ..stats.labels import RANKERS, RULES

    if opts.rank_by not in RANKERS:
        raise ReportgenError(f"--rank-by {opts.rank_by!r}: choose one of {', '.join(sorted(RANKERS))}")
    if opts.flag_rule not in RULES:
        raise ReportgenError(f"--flag-rule {opts.flag_rule!r}: choose one of {', '.join(RULES)}")
    if opts.checker not in RECIPES:
        raise ReportgenError(f"--checker {opts.checker!r}: choose one of {', '.join(RECIPES)}")
    if opts.mc_samples < 1:
        raise ReportgenError("--mc-samples must be at least 1")
    if opts.bootstrap < 1:
        raise ReportgenError("--bootstrap must be at least 1")
    if opts.engine not in ENGINES:
        raise ReportgenError(f"--engine {opts.engine!r}: choose one of {', '.join(ENGINES)}")
    if opts.beam_options and opts.engine != "beam":
        raise ReportgenError("--beam-option is for --engine beam")
    if opts.engine == "beam":
        for key, flag in BEAM_UNSUPPORTED.items():
            if getattr(opts, key):
                raise ReportgenError(f"{flag} is not supported with --engine beam yet; run it with --engine local")
        if opts.predictions and not opts.labels:
            raise ReportgenError("--predictions needs --labels (the given label of every row)")
    if opts.predictions and opts.models:
        raise ReportgenError("give either --predictions or --model, not both")
    if opts.cv is not None and opts.predictions:
        raise ReportgenError("--cv trains checker models on images: use it with --data (and optionally --model), not --predictions")
    if opts.apply_reviews and not opts.reviews:
        raise ReportgenError("--apply-reviews needs --reviews FILE (the verdicts to apply)")
    for path in opts.models:  # before any slow work (data loading, downloads, TensorFlow)
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such model file")
    globs = (opts.predictions, opts.labels) if opts.engine == "beam" else ()  # shard globs, matched by the engine
    for path in (opts.predictions, opts.labels, opts.images, opts.class_names, opts.reviews, opts.card):
        if path in globs:
            continue
        if path and not Path(path).is_file():
            raise DataError(f"{path}: no such file")
    if opts.version:
        check_component(opts.version, "version")
    if opts.name:
        check_component(opts.name, "model name")
    _load_card(opts)  # a bad card fails before any slow work


@dataclass
class Audit:
    """One finished audit: the numbers (same as the CLI's summary.json) and how to write the report.

    reduced: what the report is built from (reduced.ReducedAudit, either engine's); dataset and result:
    the local engine's audited samples and per-sample AuditResult (None for a sharded run).
    """

    reduced: object
    method: dict
    model_name: str
    version: str
    model_info: dict
    data_role: str
    notes: list[str]
    options: dict
    has_images: bool = True
    command: str = ""
    dataset_info: dict = field(default_factory=dict)
    card: dict | None = None
    dataset: Dataset | None = None
    result: AuditResult | None = None

    @property
    def metrics(self) -> dict:
        """Headline metrics, keyed as in summary.json's "metrics"."""
        return self.reduced.metrics

    def context(self, *, worker=None) -> dict:
        """The report context (figures included), as report.html/pdf/summary.json see it.

        With a render.Worker the figures are drawn there (warm); if it fails, here.
        """
        from ..report import figures
        from ..report import context as report
        from ..report.render import WorkerFailed

        assets = None
        if worker is not None:
            try:
                assets = worker.call(figures.encoded_report_figures, self.reduced, has_images=self.has_images)
            except WorkerFailed:
                pass
        if assets is None:
            assets = figures.encoded_report_figures(self.reduced, has_images=self.has_images)
        return report.build_context(
            reduced=self.reduced, figures=assets, method=self.method, model_name=self.model_name,
            version=self.version, model_info=self.model_info, data_role=self.data_role, notes=self.notes,
            command=self.command, options=self.options, reportgen_version=__version__,
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            dataset_info=self.dataset_info, card=self.card,
        )

    def write(self, folder: str | Path, *, force: bool = False, paper: str = "a4", progress: Progress | None = None,
              worker=None) -> Path:
        """Write the report files into `folder` atomically (refuses an existing folder unless `force`).

        worker: a render.Worker that draws the figures and the PDF (None: this process and its forked children).
        """
        from ..report import context as report
        from ..report.folder import staged_folder

        final = Path(folder)
        _refuse_existing(final, force)
        _say(progress, "drawing figures")
        context = self.context(worker=worker)
        _say(progress, f"rendering the report into {final}")
        predictions = None
        if self.result is not None:
            predictions = lambda path: report.write_predictions(path, self.dataset, self.result)  # noqa: E731
        try:
            with staged_folder(final, force=force) as stage:
                report.write_all(stage, context, flagged_rows=report.flagged_rows(self.reduced),
                                 review_rows=report.review_rows(self.reduced), paper=paper, predictions=predictions,
                                 card=self.card, per_sample_files=self.reduced.per_sample_files,
                                 spawn=worker.spawn if worker is not None else None)
        except OSError as e:
            raise OutputError(f"{final}: cannot write the report ({e.strerror or e})") from e
        return final


def _compute(r: _Resolved, opts: AuditOptions, progress: Progress | None) -> Audit:
    """Predict (unless probabilities are given) and compute every statistic."""
    if r.probs is not None:
        from ..stats.uncertainty import SampleAccumulator

        acc = SampleAccumulator(*r.probs.shape)
        acc.add(0, r.probs[None])
        sampled = acc.result()
        method = dict(SAVED_METHOD)
    else:
        from ..model.predict import predict

        _say(progress, f"predicting {len(r.audit.labels)} images (S = {opts.mc_samples if len(r.models) == 1 else len(r.models)})")
        sampled, pinfo = predict(r.models, r.audit.images, mc_samples=opts.mc_samples, seed=opts.seed, progress=progress)
        method = asdict(pinfo)
    _say(progress, "computing uncertainty, calibration and label issues")
    kind = "cv" if r.checker is not None else "saved" if r.probs is not None else "audited_model"
    result = analyse(r.audit, sampled, rank_by=opts.rank_by, seed=opts.seed, flag_rule=opts.flag_rule, replicates=opts.bootstrap,
                     checked=r.checked, checker=r.checker, reviews=r.reviews, kind=kind)
    has_images = r.probs is None or bool(opts.images)
    return Audit(reduced=reduce_local(r.audit, result, has_images=has_images), method=method, model_name=r.name, version=r.version,
                 model_info=r.model_info, data_role=r.data_role, notes=r.notes, options=asdict(opts),
                 has_images=has_images, command=opts.command, dataset_info=r.dataset, card=_load_card(opts),
                 dataset=r.audit, result=result)


def run_audit(opts: AuditOptions, progress: Progress | None = None) -> Path:
    """`reportgen audit`: resolve inputs, compute every statistic, write the report folder atomically.

    Returns:
        The version folder `<output>/<name>/<version>/`.
    """
    from ..model._tf import load_quietly

    _validate_options(opts)
    if opts.engine == "beam":
        return _run_beam(opts, progress)
    with _render_worker() as worker:
        load_quietly(keras=not opts.predictions)
        r = _resolve_predictions(opts) if opts.predictions else _resolve_models(opts, progress)
        final = version_dir(opts.output, r.name, r.version)
        _refuse_existing(final, opts.force)
        folder = _compute(r, opts, progress).write(final, force=opts.force, paper=opts.paper, progress=progress, worker=worker)
    from ..archive.index import write_index

    write_index(opts.output)
    return folder


def _refuse_existing(final: Path, force: bool) -> None:
    """OutputError for an existing version folder without --force (the runs check before any slow work, Audit.write again)."""
    if final.exists() and not force:
        raise OutputError(f"{final}: already exists; pass --force to overwrite it")


def _warm_rendering() -> None:
    """A render worker's warm-up: matplotlib and WeasyPrint imported, their fonts loaded."""
    from ..report import figures
    from ..report.render import warm_pdf

    figures.warm_up()
    warm_pdf()


@contextlib.contextmanager
def _render_worker():
    """A render.Worker warming up while this process imports TensorFlow, or None when TensorFlow is already imported.

    The worker's gain is the idle core during the TensorFlow import (and a process without
    TensorFlow to fork figure children from); with TensorFlow already loaded, as in a notebook or
    a test session, the figures and the PDF are made here and in forked children as before.
    """
    from ..report.render import Worker

    worker = None if "tensorflow" in sys.modules else Worker.start(_warm_rendering)
    try:
        yield worker
    finally:
        if worker is not None:
            worker.close()


def _run_beam(opts: AuditOptions, progress: Progress | None) -> Path:
    """`reportgen audit --engine beam`: sharded saved predictions through reportgen.beam, the same report folder."""
    from . import beam
    if not opts.predictions:
        return _run_beam_models(opts, progress)
    names = load_class_names(opts.class_names) if opts.class_names else None
    shards, info, names = beam.prepare(opts.predictions, opts.labels, class_names=names, name=opts.name, version=opts.version)
    name = check_component(info.name, "model name")
    final = version_dir(opts.output, name, info.version)
    _refuse_existing(final, opts.force)
    reduced, staging = beam.run(shards, info, names, output=opts.output, seed=opts.seed, replicates=opts.bootstrap,
                                rule=opts.flag_rule, rank_by=opts.rank_by, beam_options=tuple(opts.beam_options), progress=progress)
    return _write_sharded(final, staging, opts, progress, reduced=reduced, method=dict(SAVED_METHOD), model_name=name,
                          version=info.version, model_info=info.model_info, data_role=info.data_role, notes=[], has_images=False,
                          dataset_info=info.dataset_info)


def _run_beam_models(opts: AuditOptions, progress: Progress | None) -> Path:
    """`reportgen audit --engine beam [--model M] [--data D]`: inputs resolved as the local engine resolves them (held-out
    rows, class alignment, image fitting, preprocessing; without --model the default CNN trained here, in the driver, or
    reused from the archive's model cache), then predicted and audited in the Beam pipeline."""
    from . import beam
    from ..model._tf import load_quietly

    beam.require_beam()
    load_quietly()
    r = _resolve_models(opts, progress)
    final = version_dir(opts.output, r.name, r.version)
    _refuse_existing(final, opts.force)
    reduced, method, staging = beam.run_models(r.audit, r.models, output=opts.output, mc_samples=opts.mc_samples, seed=opts.seed,
                                               replicates=opts.bootstrap, rule=opts.flag_rule, rank_by=opts.rank_by,
                                               beam_options=tuple(opts.beam_options), trust=opts.trust_model, progress=progress)
    return _write_sharded(final, staging, opts, progress, reduced=reduced, method=method, model_name=r.name, version=r.version,
                          model_info=r.model_info, data_role=r.data_role, notes=r.notes, has_images=True, dataset_info=r.dataset)


def _write_sharded(final: Path, staging, opts: AuditOptions, progress: Progress | None, **audit) -> Path:
    """The report folder of a Beam run (Audit fields in `audit`), its staging folders removed whatever happens, then the index."""
    from . import beam
    from ..archive.index import write_index

    try:
        folder = Audit(**audit, options=asdict(opts), command=opts.command, card=_load_card(opts)).write(
            final, force=opts.force, paper=opts.paper, progress=progress)
    finally:
        beam.remove_staging(staging)
    write_index(opts.output)
    return folder


def audit(model_or_probs, images=None, labels=None, *, class_names: list[str] | None = None, mc_samples: int = 30,
          seed: int = 0, rank_by: str = "self_confidence", flag_rule: str = "reportgen", bootstrap: int = DEFAULT_REPLICATES,
          name: str | None = None, version: str | None = None, trust_model: bool = False,
          preprocess: str | None = None) -> Audit:
    """Audit in a notebook: the same numbers as `reportgen audit`, without touching the disk.

    Args:
        model_or_probs: a Keras model, a path to a .keras/.h5 file, a list of either (a deep
            ensemble), or saved probabilities (N, K) from any framework.
        images: (N, H, W[, C]) pixels, uint8 or floats in [0, 1]; optional with probabilities.
        labels: (N,) integer labels.
        class_names: K display names (default: the model's metadata, else "0".."K-1").
        preprocess: a model.PREPROCESSING name (default: the model's own scaling layers, its metadata, else "unit").
    Returns:
        An Audit; `Audit.metrics` are the headline numbers, `Audit.write(folder)` writes the report.
    """
    from ..model import network as M
    from .. import validate
    from ..model._tf import load_quietly
    from ..data.datasets import as_images

    if labels is None:
        raise ReportgenError("audit(): labels are required")
    opts = AuditOptions(mc_samples=mc_samples, seed=seed, rank_by=rank_by, flag_rule=flag_rule, bootstrap=bootstrap,
                        command="reportgen.audit()")
    _validate_options(opts)
    load_quietly()
    if isinstance(model_or_probs, np.ndarray):
        y, probs = validate.probabilities_and_labels(labels, model_or_probs, source="probabilities")
        x = as_images(images, "images") if images is not None else None
        if x is not None and len(x) != len(y):
            raise DataError(f"images: {len(x)} images for {len(y)} labels")
        prov = Provenance("arrays", "<in memory>", hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest(), int(len(y)))
        r = _from_probabilities(probs, y, x, class_names, prov=prov, probs_sha=hashlib.sha256(np.ascontiguousarray(probs).tobytes()).hexdigest(),
                                name=name or "probabilities", version=version, path="<in memory>", data_name="arrays")
        r.dataset = describe_data(None, r.audit, role=r.data_role, trained=None, checked=None,
                                  preprocessing="none: the probabilities are used as given")
        opts = replace(opts, images="<in memory>" if images is not None else None)
        return _compute(r, opts, None)
    members = model_or_probs if isinstance(model_or_probs, (list, tuple)) else [model_or_probs]
    models = M.check_ensemble([M.load(m, trust=trust_model) if isinstance(m, (str, Path)) else M.from_keras(m) for m in members])
    if images is None:
        raise ReportgenError("audit(): images are required to audit a model")
    notes: list[str] = []
    x = as_images(images, "images", notes=notes)
    k = models[0].n_outputs
    y = validate.labels(labels, source="labels", n=len(x), k=k, min_classes=2)
    prov = Provenance("arrays", "<in memory>", hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(), int(len(y)))
    ds = Dataset(x, y, [str(i) for i in range(k)], prov, "arrays")
    ds = M.align_classes(ds, models[0], names=list(class_names) if class_names else None, names_source="class_names")
    ds, policy = M.fit_images(ds, models[0])
    models = [M.prepare(m, ds, explicit=preprocess, seed=seed) for m in models]
    info = _model_info(models)
    r = _Resolved(audit=ds, name=name or models[0].name, version=version or info["sha256"][:VERSION_DIGITS], models=models,
                  model_info=info, data_role="given images (make sure the model did not train on them)", notes=notes)
    r.dataset = describe_data(None, ds, role=r.data_role, trained=_trained_on(models), checked=None,
                              preprocessing=M.describe_inputs(models, policy))
    return _compute(r, opts, None)
