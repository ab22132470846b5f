"""The audit as an Apache Beam pipeline (`--engine beam`): sharded saved probabilities, or a model on a data set.

`AuditTransform` is a reusable PTransform from a PCollection of chunks (shards.ChunkSpec: files and a row range, never
the rows) to the merged results of four passes. Each pass maps every chunk to mergeable pieces with the stats
functions the local engine uses and merges them in one CombineFn, a later pass reading the earlier results as side
inputs:

A. every statistic of every inference mode (stats.summary) and the label check's class sums (stats.labels pass 1);
B. the confident joint under the thresholds of A (pass 2);
C. per (given i, other j) the prune_counts[i, j] largest margins (pass 3, a keyed top-N);
D. the flags under the cut-offs of C, and each chunk's per-sample export file.

A chunk is read once per pass: A needs no global value, and B, C and D each need the one before them. With a model,
a pass 0 first predicts parts of whole prediction batches (one model load per worker, from a copy staged next to the
run's other files) and writes them as the chunks the passes read. apache_beam is imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .. import validate
from ..errors import DataError, ModelError, ReportgenError
from ..report import inputs as R
from ..report.folder import refuse_existing, version_dir
from ..stats import labels as L
from ..stats import summary as S
from ..stats.merge import merge
from . import assemble, shards
from .audit import Audit
from .inputs import SAVED_METHOD, model_info, resolve_models, say
from .options import AuditOptions, Progress, load_card

# How to get the optional dependency (the one-line error without it).
INSTALL_HINT = "pip install 'reportgen[beam]'"
# Folder of the per-chunk per-sample export files, in the staging folder and in the report folder (listed in manifest.json).
PREDICTIONS_DIR = "predictions"
# Rows per predicted part, rounded to a multiple of the prediction batch (at least one batch).
PREDICT_PART_ROWS = 4096
# Log level of the SDK worker processes unless a --beam-option sets one (their INFO lines drown reportgen's progress).
WORKER_LOG_LEVEL = "WARNING"
# BLAS threads of numpy inside a pass on a worker: a runner gives each worker process its own core, so OpenBLAS's extra
# threads only spin against the other workers (bench/README.md, beam_scale).
WORKER_BLAS_THREADS = 1


def require_beam():
    """The apache_beam module, or a one-line ReportgenError saying how to install it."""
    try:
        import apache_beam
        import threadpoolctl  # noqa: F401 - the workers' passes limit BLAS with it (_OnWorker)
    except ImportError as e:
        raise ReportgenError(f"--engine beam needs Apache Beam, which is not installed; install it with {INSTALL_HINT}") from e
    return apache_beam


@dataclass(frozen=True)
class Config:
    """What every pass needs: K, the options, the shipped and sampled modes, and where per-chunk files go."""

    k: int
    seed: int
    replicates: int
    rule: str
    rank_by: str
    shipped: str
    staging: str


@dataclass(frozen=True)
class Failed:
    """Chunks that could not be read: their one-line messages (the run then stops before writing anything)."""

    messages: tuple[str, ...]


def _merge(a, b):
    """merge.merge, except that a Failed piece wins (its messages add up)."""
    if isinstance(a, Failed) or isinstance(b, Failed):
        return Failed((a.messages if isinstance(a, Failed) else ()) + (b.messages if isinstance(b, Failed) else ()))
    return merge(a, b)


@dataclass(frozen=True)
class Records:
    """Flagged records (stats.labels.flagged_records) of some chunks; merged by concatenation."""

    records: np.ndarray

    def merge(self, other: "Records") -> "Records":
        return Records(np.concatenate([self.records, other.records]))


def read(spec: shards.ChunkSpec, cfg: Config):
    """(labels (n,), {mode: (n, K) float64 probabilities rows summing to 1}, aleatoric or None, std or None) of one chunk,
    exactly as the local engine holds them."""
    if spec.error:
        raise DataError(spec.error)
    y = validate.labels(shards.read_rows(spec.labels, spec.offset, spec.rows), source=spec.labels, n=spec.rows, k=cfg.k)
    modes = {name: validate.normalised(validate.probabilities(shards.read_rows(path, spec.offset, spec.rows), source=path))
             for name, path in spec.probs.items()}
    rows = lambda path: shards.read_rows(path, spec.offset, spec.rows) if path else None  # noqa: E731
    return y, modes, rows(spec.aleatoric), rows(spec.std)


def _guarded(fn):
    def run(spec, *args):
        if any(isinstance(a, Failed) for a in args):
            return Failed(())
        try:
            return fn(spec, *args)
        except DataError as e:
            return Failed((str(e),))
    return run


@dataclass(frozen=True)
class PassA:
    """Pass A of some chunks: each mode's stats.summary.ModeSums, and the label check's class sums (shipped mode)."""

    modes: dict
    classes: L.ClassSums


def pass_a(spec: shards.ChunkSpec, cfg: Config) -> PassA:
    y, modes, aleatoric, std = read(spec, cfg)
    sums = {name: S.summarize(S.Chunk(spec.start, y, p, aleatoric if name == spec.sampled else None,
                                      std if name == spec.sampled else None), seed=cfg.seed) for name, p in modes.items()}
    return PassA(sums, L.ClassSums.of(y, modes[cfg.shipped]))


def pass_b(spec: shards.ChunkSpec, cfg: Config, t: np.ndarray) -> L.JointSums:
    y, modes, _, _ = read(spec, cfg)
    return L.JointSums.of(spec.start, y, modes[cfg.shipped], t, seed=cfg.seed, replicates=cfg.replicates)


def pass_c(spec: shards.ChunkSpec, cfg: Config, limits: dict):
    y, modes, _, _ = read(spec, cfg)
    return L.margins(y, modes[cfg.shipped], limits)


def pass_d(spec: shards.ChunkSpec, cfg: Config, cut: np.ndarray) -> Records:
    """The chunk's flags as records, and its per-sample export written into the staging folder."""
    from ..report.files import write_prediction_rows

    y, modes, aleatoric, _ = read(spec, cfg)
    p = modes[cfg.shipped]
    mask = L.flags(y, p, cut)
    sampled = modes.get(spec.sampled) if spec.sampled else None
    total = S.entropy(sampled if sampled is not None else p)
    ale = aleatoric if sampled is not None else total
    split, rows, files = _source(spec)
    with shards.open_write(shards.join(cfg.staging, PREDICTIONS_DIR, f"predictions-{shards.safe(spec.key)}.csv.gz")) as out:
        write_prediction_rows(out, split=split, rows=rows, files=files, labels=y, predicted=p.argmax(axis=1), probs=p,
                              confidence=p.max(axis=1), total=total, aleatoric=ale, epistemic=None if sampled is None else total - ale,
                              flagged=mask, cases=np.full(len(y), "", dtype=object), review=np.full(len(y), "", dtype=object))
    return Records(L.flagged_records(spec.start, y, p, mask, rank_by=cfg.rank_by))


def _source(spec: shards.ChunkSpec):
    """(split, source row, file or None) of a chunk's rows: from pass 0's file, else "all" and the global row."""
    if not spec.source:
        return np.full(spec.rows, "all"), np.arange(spec.start, spec.start + spec.rows), None
    z = shards.load(spec.source)
    return z["split"], z["index"], (z["files"] if z["has_files"] else None)


def thresholds(a: PassA, cfg: Config):
    return a if isinstance(a, Failed) else L.thresholds(a.classes, rule=cfg.rule)


def estimates(b, a):
    if isinstance(b, Failed) or isinstance(a, Failed):
        return Failed(())
    est = L.estimates(b, a.classes.count)
    return est, L.prunable(est.prune_counts, a.classes.count)


def _limits(g):
    return g if isinstance(g, Failed) else g[1]


def cutoffs(c, g, cfg: Config):
    if isinstance(c, Failed) or isinstance(g, Failed):
        return Failed(())
    return L.cutoffs(c, cfg.k) if g[1] else np.full((cfg.k, cfg.k), np.inf)


@dataclass(frozen=True)
class _OnWorker:
    """A pass as Beam calls it: numpy's BLAS limited to WORKER_BLAS_THREADS for the call (a context, so an in-process
    runner leaves the driver's own BLAS as it was), and a chunk that cannot be read turned into a Failed piece."""

    fn: object

    def __call__(self, *args):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=WORKER_BLAS_THREADS, user_api="blas"):
            return _guarded(self.fn)(*args)


def _combine():
    import apache_beam as beam

    class Merge(beam.CombineFn):
        """The reduce step of every pass: `_merge` of the pieces of disjoint chunks."""

        def create_accumulator(self):
            return None

        def add_input(self, acc, piece):
            return piece if acc is None else _merge(acc, piece)

        def merge_accumulators(self, accs):
            out = None
            for a in accs:
                out = a if out is None else (out if a is None else _merge(out, a))
            return out

        def extract_output(self, acc):
            return acc if acc is not None else Failed(("no chunk was read",))

    return Merge()


def audit_transform(cfg: Config):
    """The reusable PTransform: a PCollection of shards.ChunkSpec -> {"a", "thresholds", "estimates", "cutoffs", "d"},
    one merged element each (the passes' merged pieces and their global values)."""
    import apache_beam as beam

    class AuditTransform(beam.PTransform):
        def expand(self, chunks):
            single = beam.pvalue.AsSingleton
            a = chunks | "A: statistics" >> beam.Map(_OnWorker(pass_a), cfg) | "merge A" >> beam.CombineGlobally(_combine())
            t = a | "thresholds" >> beam.Map(thresholds, cfg)
            b = (chunks | "B: confident joint" >> beam.Map(_OnWorker(pass_b), cfg, single(t))
                 | "merge B" >> beam.CombineGlobally(_combine()))
            g = b | "estimates" >> beam.Map(estimates, single(a))
            limits = g | "prune limits" >> beam.Map(_limits)
            c = (chunks | "C: keyed top-N margins" >> beam.Map(_OnWorker(pass_c), cfg, single(limits))
                 | "merge C" >> beam.CombineGlobally(_combine()))
            cut = c | "cut-offs" >> beam.Map(cutoffs, single(g), cfg)
            d = (chunks | "D: flags" >> beam.Map(_OnWorker(pass_d), cfg, single(cut)) | "merge D" >> beam.CombineGlobally(_combine()))
            return {"a": a, "thresholds": t, "estimates": g, "cutoffs": cut, "d": d}

    return AuditTransform()


# --------------------------------------------------------------------------- pass 0: predictions


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads and prepares the audited model(s) as the driver did: the files staged for the workers, their
    names, --trust-model, and per member its input scaling and logits-or-probabilities (decided in the driver); S; seed."""

    paths: tuple[str, ...]
    names: tuple[str, ...]
    trust: bool
    preprocessing: tuple[str, ...]
    preprocessing_why: tuple[str, ...]
    outputs_probs: tuple[bool, ...]
    mc_samples: int
    seed: int


@dataclass(frozen=True)
class PartSpec:
    """Rows start:start+rows of the audited images for pass 0: their first global batch index (so MC dropout draws the
    masks of one local run), and the staged files that hold their images (.npy, or .npz of image files) and labels,
    splits, source rows and files (.npz)."""

    key: str
    start: int
    rows: int
    first_batch: int
    images: str
    meta: str


def load_models(spec: ModelSpec) -> list:
    """The audited model(s), copied from the staging folder to this worker and prepared as the driver prepared them."""
    from ..model import network as M
    from ..model._tf import load_quietly

    load_quietly()
    local = Path(tempfile.mkdtemp(prefix="reportgen-model-"))
    out = []
    for i, (path, name, pre, why, probs) in enumerate(zip(spec.paths, spec.names, spec.preprocessing, spec.preprocessing_why,
                                                           spec.outputs_probs)):
        target = local / f"member-{i}{Path(path).suffix}"
        shards.copy(path, str(target))
        out.append(replace(M.load(target, trust=spec.trust, name=name), preprocessing=pre, preprocessing_why=why, outputs_probs=probs))
    return out


def _images(part: PartSpec):
    if part.images.endswith(".npy"):
        return shards.load(part.images)
    from ..data.images import ImageFiles

    z = shards.load(part.images)
    return ImageFiles(z["paths"], z["sizes"], z["grey"], tuple(int(v) for v in z["target"]))


def predict_part(part: PartSpec, models, spec: ModelSpec, staging: str) -> shards.ChunkSpec:
    """Pass 0 of one part: predict its images in every mode (the global batch index keys the MC masks), write the files
    its chunk is read from, return the chunk (with a one-line `error` when it could not be predicted)."""
    from ..model.predict import predict

    at = lambda what, ext="npy": shards.join(staging, "predicted", f"{what}-{shards.safe(part.key)}.{ext}")  # noqa: E731
    failed = lambda message: shards.ChunkSpec(part.key, part.start, part.rows, {}, "", error=message)  # noqa: E731
    if isinstance(models, str):  # the worker could not load the model (DoFn.setup): every part reports it
        return failed(models)
    try:
        meta = shards.load(part.meta)
        preds = predict(models, _images(part), mc_samples=spec.mc_samples, seed=spec.seed, first_batch=part.first_batch)
    except ReportgenError as e:
        return failed(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. TensorFlow running out of memory: one line, not the worker's traceback
        return failed(f"rows {part.start:,}-{part.start + part.rows - 1:,} could not be predicted on a worker "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'no message'})")
    probs = {}
    for name, p in preds.modes.items():
        probs[name] = at(f"probs-{name}")
        shards.write_npy(probs[name], p)
    shards.write_npy(at("labels"), np.asarray(meta["labels"], dtype=np.int64))
    if preds.sampled:
        shards.write_npy(at("aleatoric"), preds.aleatoric)
        shards.write_npy(at("std"), preds.std)
    shards.write_npz(at("source", "npz"), split=meta["split"], index=meta["index"], files=meta["files"], has_files=meta["has_files"])
    return shards.ChunkSpec(part.key, part.start, part.rows, probs, at("labels"), aleatoric=at("aleatoric") if preds.sampled else "",
                            std=at("std") if preds.sampled else "", source=at("source", "npz"), sampled=preds.sampled)


def _predict_fn(spec: ModelSpec, staging: str):
    import apache_beam as beam

    class Predict(beam.DoFn):
        """Pass 0: one model load per worker (setup), then one PartSpec -> its predicted chunk per element."""

        def setup(self):
            try:
                self.models = load_models(spec)
            except Exception as e:  # noqa: BLE001 - e.g. the staged model unreadable on the worker: one line per part
                first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                self.models = first if isinstance(e, ReportgenError) else f"{spec.paths[0]}: the worker cannot load the model ({first})"

        def process(self, part):
            yield predict_part(part, self.models, spec, staging)

    return Predict()


# --------------------------------------------------------------------------- running and finishing


RESULTS = ("a", "thresholds", "estimates", "d")


def _save(obj, path: str) -> None:
    with shards.open_write(path) as f:
        f.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def run_pipeline(cfg: Config, beam_options: tuple[str, ...], *, chunks: list | None = None, parts: list | None = None,
                 spec: ModelSpec | None = None) -> dict:
    """Run AuditTransform over `chunks` (or over the chunks pass 0 predicts from `parts`); its merged results."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = list(beam_options)
    if not any(o.startswith("--default_sdk_harness_log_level") for o in options):
        options.append(f"--default_sdk_harness_log_level={WORKER_LOG_LEVEL}")
    with beam.Pipeline(options=PipelineOptions(options)) as pipe:
        if parts is not None:
            src = (pipe | "image parts" >> beam.Create(parts) | "spread parts" >> beam.Reshuffle()
                   | "0: predict" >> beam.ParDo(_predict_fn(spec, cfg.staging)) | "spread chunks" >> beam.Reshuffle())
        else:
            src = pipe | "chunks" >> beam.Create(chunks) | "spread" >> beam.Reshuffle()
        out = src | "audit" >> audit_transform(cfg)
        for name in RESULTS:
            out[name] | f"save {name}" >> beam.Map(_save, shards.join(cfg.staging, f"{name}.pkl"))
    results = {}
    for name in RESULTS:
        with shards.open_read(shards.join(cfg.staging, f"{name}.pkl")) as f:
            results[name] = pickle.loads(f.read())
    failed = next((r for r in results.values() if isinstance(r, Failed) and r.messages), None)
    if failed is not None:
        more = f" (and {len(failed.messages) - 1} more chunks)" if len(failed.messages) > 1 else ""
        raise DataError(failed.messages[0] + more)
    return results


def finish(results: dict, cfg: Config, names: list[str], *, data: R.DataSummary, sampled: str | None, n_passes: int,
           dataset=None, chunks: list | None = None) -> R.AuditResults:
    """The AuditResults of a finished run: the stats finished from the merged sums, the label check named, the galleries
    (runs from images) with their pictures read here from the audited data set."""
    a, t, (est, _), d = results["a"], results["thresholds"], results["estimates"], results["d"]
    stats = {name: S.finish(s, names) for name, s in a.modes.items()}
    check = L.LabelCheck(cfg.rule, cfg.rank_by, a.classes, t, est, L.ranked(d.records))
    kind = "saved" if dataset is None else "audited_model"
    info = assemble.checker_info(a.classes.count, a.classes.agree, names, kind=kind)
    rows = check.flagged["row"].astype(np.int64)
    predicted = np.full(int(rows.max()) + 1 if len(rows) else 0, -1, dtype=np.int64)
    predicted[rows] = check.flagged["suggested"]  # the checked probabilities are the audited model's own
    labels = assemble.label_summary(check, checker=info, names=names, checked=dataset, audited_prediction=predicted,
                                    checked_sha256=data.index_sha256)
    galleries = {}
    if dataset is not None:
        probs = np.array([_row_probs(chunks, r, cfg.shipped) for r in rows[:R.FLAGGED_GALLERY_SIZE]]).reshape(-1, cfg.k)
        galleries = assemble.galleries(stats, sampled, cfg.shipped, dataset, labels.flagged, rows, probs, dataset.images)
    return R.AuditResults(data=data, modes=stats, shipped=cfg.shipped, sampled=sampled, n_passes=n_passes, labels=labels,
                          galleries=galleries, engine="beam")


def _row_probs(chunks: list, row: int, mode: str) -> np.ndarray:
    spec = next(c for c in chunks if c.start <= row < c.start + c.rows)
    return validate.normalised(shards.read_rows(spec.probs[mode], spec.offset + row - spec.start, 1))[0]


def _index_sha256(n: int) -> str:
    """data.Dataset.index_sha256 of rows 0..N-1 of one unsplit set, hashed in chunks."""
    h = hashlib.sha256()
    for i in range(0, n, 1 << 20):
        h.update(np.arange(i, min(n, i + (1 << 20)), dtype=np.int64).tobytes())
    return h.hexdigest()


def _plan_parts(ds, models, opts: AuditOptions, staging: str) -> tuple[list[PartSpec], ModelSpec, dict, str | None]:
    """Cut the resolved images into parts of whole prediction batches, stage their images and labels and the model files
    for the workers; (parts, ModelSpec, PredictInfo as a dict, the sampled mode or None)."""
    from ..data.images import ImageFiles
    from ..model.predict import plan

    n = len(ds.labels)
    batch, info, keyed = plan(models, ds.images, mc_samples=opts.mc_samples, seed=opts.seed)
    if not keyed:
        raise ModelError(f"{models[0].path}: its dropout cannot be split from the layers before it, so its MC samples are not "
                         "keyed on the batch and parts predicted apart would not draw one run's samples; audit it with "
                         "--engine local, or with --mc-samples 1")
    staged = []
    for i, m in enumerate(models):
        target = shards.join(staging, "model", f"member-{i}{Path(m.path).suffix}")
        shards.copy(m.path, target)
        staged.append(target)
    spec = ModelSpec(paths=tuple(staged), names=tuple(m.name for m in models), trust=opts.trust_model,
                     preprocessing=tuple(m.preprocessing for m in models), preprocessing_why=tuple(m.preprocessing_why for m in models),
                     outputs_probs=tuple(bool(m.outputs_probs) for m in models), mc_samples=opts.mc_samples, seed=opts.seed)
    rows = batch * max(1, round(PREDICT_PART_ROWS / batch))
    files = ds.source_files
    parts = []
    for i, start in enumerate(range(0, n, rows)):
        stop, key = min(n, start + rows), f"{i:05d}"
        at = lambda what, ext: shards.join(staging, "parts", f"{what}-{key}.{ext}")  # noqa: E731
        if isinstance(ds.images, ImageFiles):
            sub = ds.images.subset(np.arange(start, stop))
            shards.write_npz(at("images", "npz"), paths=sub.paths, sizes=sub.sizes, grey=sub.grey, target=np.array(sub.target))
            images = at("images", "npz")
        else:
            images = at("images", "npy")
            shards.write_npy(images, np.asarray(ds.images[start:stop]))
        shards.write_npz(at("meta", "npz"), labels=ds.labels[start:stop], split=np.asarray(ds.source_split[start:stop]).astype(str),
                         index=np.asarray(ds.source_index[start:stop], dtype=np.int64),
                         files=np.asarray(files[start:stop]).astype(str) if files is not None else np.zeros(0, dtype=str),
                         has_files=np.array(files is not None))
        parts.append(PartSpec(key, start, stop - start, start // batch, images, at("meta", "npz")))
    sampled = {"ensemble": "ensemble", "deterministic": None}.get(info.method, "mc_dropout")
    return parts, spec, asdict(info), sampled


def run_beam(opts: AuditOptions, progress: Progress | None) -> Path:
    """`reportgen audit --engine beam`: the same report folder as --engine local, the statistics computed on Beam."""
    from ..archive.index import write_index
    from ..data.datasets import load_class_names

    require_beam()
    local = Path(tempfile.mkdtemp(prefix="reportgen-beam-"))
    staging = None
    try:
        if opts.predictions:
            chunks, k = shards.plan_saved(opts.predictions, opts.labels)
            names = load_class_names(opts.class_names, k) if opts.class_names else [str(i) for i in range(k)]
            probs_sha = shards.concat_sha256(list(dict.fromkeys(c.probs["saved"] for c in chunks)))
            labels_sha = shards.concat_sha256(list(dict.fromkeys(c.labels for c in chunks)))
            n = sum(c.rows for c in chunks)
            name = opts.name or shards.stem(opts.predictions) or "predictions"
            version = opts.version or hashlib.sha256((probs_sha + labels_sha).encode()).hexdigest()[:12]
            final = version_dir(opts.output, name, version)
            refuse_existing(final, opts.force)
            staging = shards.staging_location(opts.output, opts.beam_options)
            cfg = Config(k, opts.seed, opts.bootstrap, opts.flag_rule, opts.rank_by, "saved", staging)
            say(progress, f"auditing {n:,} rows in {len(chunks)} chunk(s) on Apache Beam ({' '.join(opts.beam_options) or 'DirectRunner'})")
            results = run_pipeline(cfg, opts.beam_options, chunks=chunks)
            prov = {"source": "predictions", "path": opts.labels, "sha256": labels_sha, "count": int(n), "warning": None}
            counts = results["a"].modes["saved"].confusion.sum(axis=1).tolist()
            data = R.DataSummary(shards.stem(opts.labels) or "labels", names, counts, int(n), prov, _index_sha256(n))
            audit_results = finish(results, cfg, names, data=data, sampled=None, n_passes=1)
            info = {"path": opts.predictions, "sha256": probs_sha, "kind": "saved probabilities", "outputs_probs": True,
                    "metadata": {}, "chunks": len(chunks)}
            audit = dict(method=dict(SAVED_METHOD), model_name=name, version=version, model_info=info,
                         data_role="saved probabilities (assumed out-of-sample)", notes=[], has_images=False, dataset_info={})
        else:
            from ..model._tf import load_quietly

            load_quietly()
            r = resolve_models(opts, progress)
            final = version_dir(opts.output, r.name, r.version)
            refuse_existing(final, opts.force)
            staging = shards.staging_location(opts.output, opts.beam_options)
            parts, spec, method, sampled = _plan_parts(r.audit, r.models, opts, staging)
            modes = ("ensemble",) if sampled == "ensemble" else ("deterministic",) + ((sampled,) if sampled else ())
            shipped = "ensemble" if sampled == "ensemble" else (opts.shipped if opts.shipped in modes else "deterministic")
            cfg = Config(r.audit.n_classes, opts.seed, opts.bootstrap, opts.flag_rule, opts.rank_by, shipped, staging)
            say(progress, f"predicting and auditing {len(r.audit.labels):,} images in {len(parts)} part(s) (S = {method['n_samples']}) "
                          f"on Apache Beam ({' '.join(opts.beam_options) or 'DirectRunner'})")
            results = run_pipeline(cfg, opts.beam_options, parts=parts, spec=spec)
            chunks = [shards.ChunkSpec(p.key, p.start, p.rows, {m: shards.join(staging, "predicted", f"probs-{m}-{shards.safe(p.key)}.npy")
                                                                    for m in modes}, "", sampled=sampled) for p in parts]
            audit_results = finish(results, cfg, r.audit.class_names, data=assemble.data_summary(r.audit), sampled=sampled,
                                   n_passes=int(method["n_samples"]), dataset=r.audit, chunks=chunks)
            audit = dict(method=method, model_name=r.name, version=r.version, model_info=model_info(r.models), data_role=r.data_role,
                         notes=r.notes, has_images=True, dataset_info=r.dataset)
        files = shards.local_copy(shards.list_files(shards.join(staging, PREDICTIONS_DIR, "*")), local)
        audit_results = replace(audit_results, per_sample_files=tuple(files))
        folder = Audit(results=audit_results, options=asdict(opts), command=opts.command, card=load_card(opts), **audit).write(
            final, force=opts.force, paper=opts.paper, progress=progress)
    finally:
        if staging is not None:
            shards.remove(staging)
        shutil.rmtree(local, ignore_errors=True)
    write_index(opts.output)
    return folder
