"""The local engine: one process chains data -> model -> statistics -> report.

Statistics are computed exactly as the Beam engine computes them: each stats function summarises one chunk of rows
(CHUNK_ROWS at a time, so temporaries stay bounded), the chunks' sums are merged, and the merged sums are finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..archive.baseline import against
from ..data.datasets import Dataset, Provenance
from ..errors import DataError, ReportgenError
from ..report import inputs as R
from ..report.folder import refuse_existing, version_dir
from ..stats import labels as L
from ..stats import summary as S
from ..stats.merge import merge_all
from . import assemble
from .audit import Audit
from .inputs import (SAVED_METHOD, VERSION_DIGITS, Resolved, describe_data, from_probabilities, model_info, resolve_models,
                     resolve_predictions, say)
from .options import AuditOptions, Progress, load_card, validate

# Rows per chunk of the statistics (bounds their temporaries at any N).
CHUNK_ROWS = 1 << 16
# Audited images copied into each shifted set of the out-of-distribution check.
OOD_ROWS = 1000
# The shifted sets made from the audited images when --ood-data is not given: name -> what was done to them.
SHIFTS = {"rotated": "the audited images rotated by 90 degrees",
          "noisy": "the audited images with Gaussian pixel noise of standard deviation 80 (of 255) added"}


def _spans(n: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + CHUNK_ROWS)) for a in range(0, n, CHUNK_ROWS)]


def mode_stats(labels: np.ndarray, probs: np.ndarray, names: list[str], *, aleatoric=None, std=None, seed: int = 0) -> S.ModeStats:
    """Every statistic of one inference mode: its chunks summarised, merged and finished."""
    cut = lambda a, x, b: None if x is None else x[a:b]  # noqa: E731
    return S.finish(merge_all(S.summarize(S.Chunk(a, labels[a:b], probs[a:b], cut(a, aleatoric, b), cut(a, std, b)), seed=seed)
                              for a, b in _spans(len(labels))), names)


def check_labels(labels: np.ndarray, probs: np.ndarray, *, rule: str, rank_by: str, seed: int, replicates: int) -> L.LabelCheck:
    """Confident learning's four passes (stats.labels) over the chunks of the checked rows."""
    spans = _spans(len(labels))
    k = probs.shape[1]
    classes = merge_all(L.ClassSums.of(labels[a:b], probs[a:b]) for a, b in spans)
    t = L.thresholds(classes, rule=rule)
    est = L.estimates(merge_all(L.JointSums.of(a, labels[a:b], probs[a:b], t, seed=seed, replicates=replicates) for a, b in spans),
                      classes.count)
    limits = L.prunable(est.prune_counts, classes.count)
    cut = L.cutoffs(merge_all(L.margins(labels[a:b], probs[a:b], limits) for a, b in spans), k) if limits else np.full((k, k), np.inf)
    rec = np.concatenate([L.flagged_records(a, labels[a:b], probs[a:b], L.flags(labels[a:b], probs[a:b], cut), rank_by=rank_by)
                          for a, b in spans])
    return L.LabelCheck(rule, rank_by, classes, t, est, L.ranked(rec))


def _scores(probs: np.ndarray, aleatoric: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-sample uncertainty scores, higher meaning more uncertain: 1 - confidence, total, and epistemic when sampled."""
    total = S.entropy(probs)
    out = {"confidence": 1.0 - probs.max(axis=1), "total": total}
    if aleatoric is not None:
        out["epistemic"] = total - aleatoric
    return out


def _shifted(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    if name == "rotated":
        return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))
    noise = np.random.default_rng(seed).normal(0.0, 80.0, images.shape)
    return np.clip(images.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def ood_check(r: Resolved, opts: AuditOptions, modes: dict, sampled: str | None, aleatoric) -> dict | None:
    """The uncertainty scores judged on shifted images: for each shifted set (the audited images rotated, and noised, or
    the --ood-data set), the AUROC with DeLong's interval of each score separating shifted from audited images, and the
    epistemic estimate against the plain scores, paired (stats.paired.paired_auroc). None without a model."""
    if not r.models:
        return None
    from ..model.predict import predict
    from ..stats import histogram as H
    from ..stats.paired import paired_auroc

    ds = r.audit
    mode = sampled or "deterministic"
    base = _scores(modes[mode], aleatoric if sampled else None)
    rows = np.sort(np.random.default_rng(opts.seed).permutation(len(ds.labels))[:OOD_ROWS])
    if opts.ood_data:
        from ..model import network as M
        from .inputs import _load_data

        other = M.fit_images(_load_data(opts.ood_data, None, None).any, r.models[0])[0]
        sets = {"given": (f"the images of {opts.ood_data}", np.asarray(other.images[:OOD_ROWS]))}
    else:
        pictures = np.asarray(ds.images[rows])
        square = pictures.shape[1] == pictures.shape[2]
        sets = {name: (what, _shifted(pictures, name, opts.seed)) for name, what in SHIFTS.items() if square or name != "rotated"}
    out = []
    for name, (what, images) in sets.items():
        p = predict(r.models, images, mc_samples=opts.mc_samples, seed=opts.seed + 7)
        shifted = _scores(p.modes[mode], p.aleatoric if sampled else None)
        positive = np.r_[np.zeros(len(base["total"]), bool), np.ones(len(images), bool)]
        both = {k: np.r_[base[k], shifted[k]] for k in base}
        aurocs = {}
        for k, v in both.items():
            b = H.bin_of(v)
            aurocs[k] = H.auroc(H.counts(b, positive), H.counts(b, ~positive))
        entry = {"name": name, "description": what, "n": int(len(images)), "auroc": aurocs}
        if "epistemic" in both:
            entry["epistemic_vs"] = {k: paired_auroc(both[k], both["epistemic"], positive) for k in ("total", "confidence")}
        out.append(entry)
    return {"mode": mode, "sets": out, "n_audited": int(len(base["total"]))}


def epistemic_worth(modes: dict, sampled: str | None, aleatoric, labels: np.ndarray) -> dict | None:
    """Whether the epistemic estimate adds anything on the audited samples: its rank correlation with the aleatoric
    estimate, and how well it flags the model's errors against plain confidence (paired AUROCs). None without sampling."""
    if sampled is None:
        return None
    from scipy.stats import spearmanr

    from ..stats.paired import paired_auroc

    p = modes[sampled]
    s = _scores(p, aleatoric)
    wrong = p.argmax(axis=1) != labels
    rho = spearmanr(aleatoric, s["epistemic"]).statistic if len(labels) > 2 else float("nan")
    detect = paired_auroc(s["confidence"], s["epistemic"], wrong) if wrong.any() and (~wrong).any() else None
    return {"mode": sampled, "spearman_aleatoric": float(rho), "error_detection": detect}


def shipped_mode(modes, opts: AuditOptions) -> str:
    """The mode whose numbers lead: saved probabilities, an ensemble's average, else --shipped (when measured)."""
    for only in ("saved", "ensemble"):
        if only in modes:
            return only
    return opts.shipped if opts.shipped in modes else "deterministic"


def _predict(r: Resolved, opts: AuditOptions, progress: Progress | None):
    """(modes {name: (N, K) probabilities}, sampled mode or None, aleatoric, std, method dict)."""
    if r.probs is not None:
        return {"saved": r.probs}, None, None, None, dict(SAVED_METHOD)
    from ..model.predict import predict

    say(progress, f"predicting {len(r.audit.labels)} images (S = {opts.mc_samples if len(r.models) == 1 else len(r.models)})")
    p = predict(r.models, r.audit.images, mc_samples=opts.mc_samples, seed=opts.seed, progress=progress)
    return p.modes, p.sampled, p.aleatoric, p.std, asdict(p.info)


def compute(r: Resolved, opts: AuditOptions, progress: Progress | None) -> Audit:
    """Predict (unless probabilities are given) and compute every statistic, in every inference mode."""
    ds, names = r.audit, r.audit.class_names
    modes, sampled, aleatoric, std, method = _predict(r, opts, progress)
    say(progress, "computing uncertainty, calibration and label issues")
    stats = {name: mode_stats(ds.labels, p, names, aleatoric=aleatoric if name == sampled else None,
                              std=std if name == sampled else None, seed=opts.seed) for name, p in modes.items()}
    shipped = shipped_mode(modes, opts)
    audited_pred = modes[shipped].argmax(axis=1)
    if r.checker is not None:
        checked, probs, kind = r.checked, r.checker.probs, "cv"
        pos = {key: i for i, key in enumerate(zip(checked.source_split.tolist(), checked.source_index.tolist()))}
        audit_pos = np.array([pos[key] for key in zip(ds.source_split.tolist(), ds.source_index.tolist())], dtype=np.int64)
    else:
        checked, probs, kind, audit_pos = ds, modes[shipped], ("saved" if r.probs is not None else "audited_model"), np.arange(len(ds.labels))
    check = check_labels(checked.labels, probs, rule=opts.flag_rule, rank_by=opts.rank_by, seed=opts.seed, replicates=opts.bootstrap)
    predicted = np.full(len(checked.labels), -1, dtype=np.int64)
    predicted[audit_pos] = audited_pred
    flagged_pos = labels_rows(check, r.reviews)  # checked positions, most likely issue first
    cases = None
    if r.checker is not None:
        cases = assemble.cases_of(ds, audited_pred, probs[audit_pos], np.flatnonzero(np.isin(audit_pos, flagged_pos)), check.thresholds)
    info = assemble.checker_info(check.classes.count, check.classes.agree, names, kind=kind, checker=r.checker)
    labels = assemble.label_summary(check, checker=info, names=names, checked=checked, checked_sha256=checked.index_sha256(),
                                    reviews=r.reviews, cases=cases, audited_prediction=predicted, audit=ds, audit_pos=audit_pos,
                                    checker_probs=probs)
    has_images = r.probs is None or bool(opts.images)
    galleries = {}
    if has_images:
        galleries = assemble.galleries(stats, sampled, shipped, ds, labels.flagged, flagged_pos, probs[flagged_pos], checked.images)
    if r.models:
        say(progress, "checking the uncertainty estimates on shifted images")
    results = R.AuditResults(data=assemble.data_summary(ds), modes=stats, shipped=shipped, sampled=sampled,
                             n_passes=int(method.get("n_samples", 1)), labels=labels, galleries=galleries,
                             ood=ood_check(r, opts, modes, sampled, aleatoric), worth=epistemic_worth(modes, sampled, aleatoric, ds.labels))
    results = replace(results, baseline=against(root=Path(opts.output), name=r.name, version=r.version, split=ds.source_split,
                                                rows=ds.source_index, labels=ds.labels, probs=modes[shipped],
                                                model_metrics=results.metrics, prior_counts=_training_counts(r), seed=opts.seed))

    def write_predictions(path):
        from ..report.files import write_prediction_rows

        lead, unc = modes[shipped], stats[sampled or shipped]
        flagged = np.isin(audit_pos, flagged_pos)
        total = S.entropy(modes[sampled or shipped])
        ale = aleatoric if sampled else total
        return write_prediction_rows(
            path, split=ds.source_split, rows=ds.source_index, files=ds.source_files, labels=ds.labels, predicted=audited_pred,
            probs=lead, confidence=lead.max(axis=1), total=total, aleatoric=ale, epistemic=(total - ale) if unc.sampled else None,
            flagged=flagged, cases=cases if cases is not None else np.full(len(ds.labels), "", dtype=object),
            review=(r.reviews.verdict[audit_pos] if r.reviews is not None else np.full(len(ds.labels), "", dtype=object)))

    return Audit(results=results, method=method, model_name=r.name, version=r.version, model_info=r.model_info,
                 data_role=r.data_role, notes=r.notes, options=asdict(opts), has_images=has_images, command=opts.command,
                 dataset_info=r.dataset, card=load_card(opts), predictions=write_predictions)


def _training_counts(r: Resolved) -> np.ndarray | None:
    """Class counts of the labels the model trained on, when known: the source's train split, or, when reportgen held the
    audited samples out of one file, that file's counts less the audited ones."""
    d = r.dataset or {}
    splits = {s.get("name"): np.asarray(s["class_counts"]) for s in d.get("splits") or []}
    if "train" in splits:
        return splits["train"]
    audited = (d.get("audited") or {}).get("class_counts")
    if "all" in splits and audited is not None and str(r.data_role).startswith("held out"):
        return np.maximum(splits["all"] - np.asarray(audited), 0)
    return None


def labels_rows(check: L.LabelCheck, reviews) -> np.ndarray:
    """Checked positions of the rows flagged in the end (reviewed label_ok rows are not flagged again)."""
    rows = check.flagged["row"].astype(np.int64)
    return rows if reviews is None else rows[reviews.verdict[rows] != "label_ok"]


def run_audit(opts: AuditOptions, progress: Progress | None = None) -> Path:
    """`reportgen audit`: resolve inputs, compute every statistic, write the report folder atomically.

    Returns:
        The version folder `<output>/<name>/<version>/`.
    """
    from ..archive.index import write_index

    validate(opts)
    if opts.engine == "beam":
        from .beam import run_beam

        return run_beam(opts, progress)
    if not opts.predictions:
        from ..model._tf import load_quietly

        load_quietly()
    r = resolve_predictions(opts) if opts.predictions else resolve_models(opts, progress)
    final = version_dir(opts.output, r.name, r.version)
    refuse_existing(final, opts.force)
    folder = compute(r, opts, progress).write(final, force=opts.force, paper=opts.paper, progress=progress)
    write_index(opts.output)
    return folder


def audit(model_or_probs, images=None, labels=None, *, class_names: list[str] | None = None, mc_samples: int = 30,
          shipped: str = "deterministic", seed: int = 0, rank_by: str = "self_confidence", flag_rule: str = "reference",
          bootstrap: int | None = None, name: str | None = None, version: str | None = None, trust_model: bool = False,
          preprocess: str | None = None) -> Audit:
    """Audit in a notebook: the same numbers as `reportgen audit`, without touching the disk.

    Args:
        model_or_probs: a Keras model, a path to a .keras/.h5 file, a list of either (a deep
            ensemble), or saved probabilities (N, K) from any framework.
        images: (N, H, W[, C]) pixels, uint8 or floats in [0, 1]; optional with probabilities.
        labels: (N,) integer labels.
        class_names: K display names (default: the model's metadata, else "0".."K-1").
        shipped: the inference mode whose numbers lead for a dropout model ("deterministic" or "mc_dropout").
        preprocess: a network.PREPROCESSING name (default: the model's own scaling layers, its metadata, else "unit").
    Returns:
        An Audit; `Audit.metrics` are the headline numbers, `Audit.write(folder)` writes the report.
    """
    from .. import validate as V
    from ..data.datasets import as_images
    from ..model import network as M
    from .inputs import _trained_on

    if labels is None:
        raise ReportgenError("audit(): labels are required")
    opts = AuditOptions(mc_samples=mc_samples, shipped=shipped, seed=seed, rank_by=rank_by, flag_rule=flag_rule,
                        command="reportgen.audit()", cv=0, **({} if bootstrap is None else {"bootstrap": bootstrap}))
    validate(opts)
    if isinstance(model_or_probs, np.ndarray):
        y, probs = V.probabilities_and_labels(labels, model_or_probs, source="probabilities")
        x = as_images(images, "images") if images is not None else None
        if x is not None and len(x) != len(y):
            raise DataError(f"images: {len(x)} images for {len(y)} labels")
        prov = Provenance("arrays", "<in memory>", hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest(), int(len(y)))
        r = from_probabilities(probs, y, x, class_names, prov=prov, probs_sha=hashlib.sha256(np.ascontiguousarray(probs).tobytes()).hexdigest(),
                               name=name or "probabilities", version=version, path="<in memory>", data_name="arrays")
        r.dataset = describe_data(None, r.audit, role=r.data_role, trained=None, checked=None,
                                  preprocessing="none: the probabilities are used as given")
        return compute(r, replace(opts, images="<in memory>" if images is not None else None), None)
    from ..model._tf import load_quietly

    load_quietly()
    members = model_or_probs if isinstance(model_or_probs, (list, tuple)) else [model_or_probs]
    models = M.check_ensemble([M.load(m, trust=trust_model) if isinstance(m, (str, Path)) else M.from_keras(m) for m in members])
    if images is None:
        raise ReportgenError("audit(): images are required to audit a model")
    notes: list[str] = []
    x = as_images(images, "images", notes=notes)
    k = models[0].n_outputs
    y = V.labels(labels, source="labels", n=len(x), k=k, min_classes=2)
    prov = Provenance("arrays", "<in memory>", hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(), int(len(y)))
    ds = Dataset(x, y, [str(i) for i in range(k)], prov, "arrays")
    ds = M.align_classes(ds, models[0], names=list(class_names) if class_names else None, names_source="class_names")
    ds, policy = M.fit_images(ds, models[0])
    models = [M.prepare(m, ds, explicit=preprocess, seed=seed) for m in models]
    info = model_info(models)
    r = Resolved(audit=ds, name=name or models[0].name, version=version or info["sha256"][:VERSION_DIGITS], models=models,
                 model_info=info, data_role="given images (make sure the model did not train on them)", notes=notes)
    r.dataset = describe_data(None, ds, role=r.data_role, trained=_trained_on(models), checked=None,
                              preprocessing=M.describe_inputs(models, policy))
    return compute(r, opts, None)
