"""The audit of sharded saved predictions, or of a model on images, as an Apache Beam pipeline (`--engine beam`).

The same statistics as the local engine, built from mergeable pieces so that no worker holds more than
one shard plus summaries whose size does not grow with N. Four passes over the shards, each a map over
shards and one merge (`_merge` inside a CombineFn), later passes reading the earlier results as side inputs:

0. (a model on images only) the driver resolves the inputs exactly as the local engine (held-out rows, class
   alignment, image fitting, preprocessing) and cuts the audited rows into parts of whole prediction batches;
   a DoFn loads the model once per worker (setup) and predicts each part with the global batch index, so the
   MC dropout masks are those of one local run, then writes the part's mean probabilities, E_s H[p_s] and
   spread as a shard that the passes below read like saved probabilities;
1. per-sample statistics of each shard reduced to sums: counts, the confusion matrix, calibration bins,
   entropy and score sums, classwise gaps, the calibrated-model null (intervals.null_sums), the Poisson
   bootstrap (intervals.bootstrap_sums, bootstrap_histogram), a confidence histogram (0.1 % of
   1 - confidence) per random half, the per-class sums of the confident-learning thresholds, and keyed
   bounded selections: the temperature fit's rows, the figures' display sample, the most uncertain 5 %, the
   galleries' top rows;
2. with the thresholds and temperatures: the confident joint, the held-out temperature-scaled sums and
   null, and the distinct samples of the few histogram bins that an equal-mass or coverage cut falls in or
   that may hold a 1 %-error threshold (so those statistics are exact);
3. with the prune counts: per (given i, other j) the prune_counts[i, j] largest margins p_j - p_i (a
   keyed top-N), whose smallest is the cut-off; and the cross-fitted 1 % rule counted on the other half;
4. with the cut-offs: the flags of each shard, written as per-shard files beside the per-sample export.

What the report reads is then the local engine's reduced.ReducedAudit, so the report, archive, gates and
`compare` are unchanged. Exact (up to float summation order, ~1e-15 relative) except the AURC and its
bootstrap interval, which come from confidence histograms (RESOLUTION). The galleries' few pictures are read
by row in the driver, which holds the resolved data set (image files stay on disk; arrays are in memory there,
as in the local engine, and are written to the staging folder part by part for the workers).

apache_beam is imported only inside the functions that build and run the pipeline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import pickle
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..stats import intervals

from ..stats import labels as LI

from ..report import inputs as R

from ..stats import uncertainty as U

from .. import validate
from ..errors import DataError, ModelError, ReportgenError

# How to get the optional dependency (the one-line error without it).
INSTALL_HINT = "pip install 'reportgen[beam]'"
# Per-sample files of a sharded run, one per input shard, under the version folder (listed in manifest.json).
FLAGGED_DIR, PREDICTIONS_DIR = "flagged", "predictions"
# Staging subfolders of a run from images: pass 0's predicted shards, and the driver's image arrays for it.
PREDICTED_DIR, IMAGES_DIR = "predicted", "images"
# Rows per predicted shard, rounded to a multiple of the prediction batch (at least one batch).
PREDICT_SHARD_ROWS = 4096
# Name prefix of a run's staging folder (under --temp_location, else under the archive root), removed after the run.
STAGING_PREFIX = ".beam-"
# What a sharded run computes from a confidence histogram instead of sorted confidences, and how finely.
RESOLUTION = {
    "confidence_histogram": "1 - confidence binned by its float64 exponent and 10 mantissa bits (0.1 % relative)",
    "from_histogram": ["aurc (within aurc_bound)", "the risk-coverage curve's points"],
    "exact_from_detail": ["acc_at_80/90/95/99", "threshold_1pct", "coverage_1pct and risk_1pct", "ece_equal_mass",
                          "ece_debiased: the histogram bins these cut or may hold the threshold are read sample by sample"],
    "bootstrap_aurc": "per-replicate histograms with 4 mantissa bits (6 % of 1 - confidence); the interval's ends within aurc_ci_bound",
    "cl_thresholds": "per-class mean self-confidence as sum / count (the local engine's numpy mean may differ in the last bit)",
    "entropy": "numpy's -sum p log p (the local engine uses TFP's Categorical entropy; they agree to ~1e-15)",
}
# Log level of the SDK worker processes unless a --beam-option sets one (their INFO lines drown reportgen's progress).
WORKER_LOG_LEVEL = "WARNING"
# Columns of the per-shard flagged files (class indices; names in summary.json data.class_names).
_CSV_COLUMNS = ("row", "given", "suggested", "p_given", "score")
# BLAS threads of numpy inside a pass on a worker. A runner gives each worker process its own core (DirectRunner's
# direct_num_workers, Dataflow's process per vCPU), so OpenBLAS's extra threads only spin against the other workers:
# at 1,000,000 rows in 10 shards, one thread each took 2 workers from 63 to 56 s and left 1 worker at 92 s; at 10,000,000
# rows 2 workers went from 548 to 363-406 s (bench/README.md, beam_scale).
WORKER_BLAS_THREADS = 1


def require_beam():
    """The apache_beam module, or a one-line ReportgenError saying how to install it."""
    try:
        import apache_beam
        import threadpoolctl  # noqa: F401 - the workers' passes limit BLAS with it (_OnWorker)
    except ImportError as e:
        raise ReportgenError(f"--engine beam needs Apache Beam, which is not installed; install it with {INSTALL_HINT}") from e
    return apache_beam


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """One pair of shard files: key (the part of the name the wildcards matched), paths, first global row, rows.

    A shard that pass 0 predicted from images also has the files of its per-row aleatoric uncertainty and probability
    spread over the S samples (.npy), and of the rows' source split, row and file (.npz); `error` is pass 0's one-line
    message when it could not predict them.
    """

    key: str
    probs: str
    labels: str
    start: int
    rows: int
    aleatoric: str = ""
    std: str = ""
    source: str = ""
    error: str = ""


@dataclass(frozen=True)
class ImagePart:
    """Rows start:start+rows of the audited images, for pass 0 to predict: their first global batch index (so MC dropout
    draws the masks of one local run), the images (a .npy path, or images.ImageFiles decoded by the worker), and per row
    the given label and the source split, row and file (files None for arrays)."""

    key: str
    start: int
    rows: int
    first_batch: int
    images: object
    labels: np.ndarray
    split: np.ndarray
    index: np.ndarray
    files: np.ndarray | None


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads and prepares the audited model(s) exactly as the driver did: the files, --trust-model, and per
    member its name, input scaling and logits-or-probabilities (decided in the driver on the audited images); S; seed."""

    paths: tuple[str, ...]
    names: tuple[str, ...]
    trust: bool
    preprocessing: tuple[str, ...]
    preprocessing_why: tuple[str, ...]
    outputs_probs: tuple[bool, ...]
    mc_samples: int
    seed: int


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex of a glob's file name whose groups capture what each wildcard matched."""
    out = ""
    for part in re.split(r"(\*|\?)", Path(pattern).name):
        out += "(.*)" if part == "*" else "(.)" if part == "?" else re.escape(part)
    return re.compile(out + r"\Z")


def _match(pattern: str) -> dict[str, str]:
    """key -> path of the files matching a glob (key: the wildcards' matches joined by '/')."""
    from apache_beam.io.filesystems import FileSystems

    if not any(c in Path(pattern).name for c in "*?"):
        raise DataError(f"{pattern}: a sharded run needs a glob with * in the file name, e.g. 'shards/probs-*.npy'")
    try:
        found = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    except Exception as e:  # noqa: BLE001 - every file system raises its own error type
        raise DataError(f"{pattern}: cannot list the shards ({str(e).splitlines()[0][:120]})") from e
    rx = _pattern_regex(pattern)
    out = {}
    for path in found:
        m = rx.match(Path(path).name)
        if m:
            out["/".join(m.groups())] = path
    if not out:
        raise DataError(f"{pattern}: no file matches")
    return out


def _open(path: str):
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _create(path: str):
    """A binary stream writing `path` on any Beam file system (local folders are created first)."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _join(base: str, *parts: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(base, *parts)


def _npy_header(path: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a .npy file from its header alone."""
    fmt = np.lib.format
    try:
        with _open(path) as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({str(e).splitlines()[0][:100]})") from e
    return shape, dtype


def _load(path: str) -> np.ndarray:
    try:
        with _open(path) as f:
            return np.load(io.BytesIO(f.read()), allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a readable .npy file ({str(e).splitlines()[0][:100]})") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e.__class__.__name__})") from e


def plan_shards(predictions: str, labels: str) -> list[Shard]:
    """The shard pairs of two globs, matched by the part of the file name the wildcards match, in natural key order.

    Rows are numbered across the shards in that order (the local engine on the shards concatenated in the
    same order sees the same rows). Only the .npy headers are read.

    Raises:
        DataError: no match, a shard without its partner, bad shapes, or shards with different K.
    """
    probs, labs = _match(predictions), _match(labels)
    lonely = sorted(set(probs) ^ set(labs))
    if lonely:
        side = predictions if lonely[0] in probs else labels
        raise DataError(f"{side}: shard {lonely[0]!r} has no partner in the other glob ({len(lonely)} unmatched)")
    shards, start, k = [], 0, None
    for key in sorted(probs, key=_natural):
        (shape, dtype), (lshape, _) = _npy_header(probs[key]), _npy_header(labs[key])
        if len(shape) != 2 or shape[1] < 2 or dtype.kind not in "fiu":
            raise DataError(f"{probs[key]}: probabilities must be a numeric (n, K >= 2) array; got shape {shape}, dtype {dtype}")
        if k is not None and shape[1] != k:
            raise DataError(f"{probs[key]}: {shape[1]} classes, but the shards before it have {k}")
        if len(lshape) != 1 or lshape[0] != shape[0]:
            raise DataError(f"{labs[key]}: {lshape} labels for {shape[0]} rows of {probs[key]}")
        k = shape[1]
        shards.append(Shard(key, probs[key], labs[key], start, int(shape[0])))
        start += int(shape[0])
    if start < 2:
        raise DataError(f"{predictions}: {start} row(s); an audit needs at least 2")
    return shards


def _natural(key: str) -> list:
    """Sort key putting shard 2 before shard 10 (digit runs compared as numbers)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key) if t]


def _concat_sha256(paths: list[str]) -> str:
    """sha256 of the shards as one .npy file: what np.save of their concatenation (in shard order) would write.

    So a sharded audit records the same data and model sha256 (and default version) as a local audit of the
    concatenated arrays, and `compare` treats the two as the same samples. Shards whose dtypes or memory orders
    differ cannot be one file: then the sha256 of the shards' own sha256s, in order.
    """
    fmt = np.lib.format
    heads = []
    for p in paths:
        with _open(p) as f:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            heads.append((shape, fortran, dtype, f.tell()))
    if len({(h[0][1:], h[1], h[2].str) for h in heads}) == 1 and not heads[0][1]:
        shape = (sum(h[0][0] for h in heads), *heads[0][0][1:])
        header = io.BytesIO()
        fmt.write_array_header_1_0(header, {"shape": shape, "fortran_order": False, "descr": fmt.dtype_to_descr(heads[0][2])})
        h = hashlib.sha256(header.getvalue())
        for p, head in zip(paths, heads):
            with _open(p) as f:
                f.seek(head[3])
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()
    h = hashlib.sha256()
    for p in paths:
        inner = hashlib.sha256()
        with _open(p) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                inner.update(block)
        h.update(inner.hexdigest().encode())
    return h.hexdigest()


def _index_sha256(n: int) -> str:
    """data.Dataset.index_sha256 of rows 0..N-1 of one unsplit set, hashed in chunks."""
    h = hashlib.sha256()
    for i in range(0, n, 1 << 20):
        h.update(np.arange(i, min(n, i + (1 << 20)), dtype=np.int64).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- mergeable pieces


@dataclass(frozen=True)
class Config:
    """What every pass needs: K, N, the options, and where per-sample files go."""

    k: int
    n: int
    seed: int
    replicates: int
    rule: str
    rank_by: str
    top_count: int
    staging: str
    n_passes: int = 1  # S of predictions made by pass 0 (1: deterministic, or saved probabilities)


@dataclass(frozen=True)
class Failed:
    """A shard that could not be read: its one-line messages (the run then stops before writing anything)."""

    messages: tuple[str, ...]

    def merge(self, other) -> "Failed":
        return Failed(self.messages + (other.messages if isinstance(other, Failed) else ()))


@dataclass(frozen=True)
class Smallest:
    """At most `limit` records with the smallest `order` (fields of a structured array, lexicographic); merge keeps
    the smallest of both, so the result is the global selection whatever the sharding."""

    limit: int
    order: tuple[str, ...]
    records: np.ndarray

    @classmethod
    def of(cls, records: np.ndarray, limit: int, order: tuple[str, ...]) -> "Smallest":
        keep = np.lexsort([records[f] for f in reversed(order)])[:limit]
        return cls(limit, order, records[keep])

    def merge(self, other: "Smallest") -> "Smallest":
        return Smallest.of(np.concatenate([self.records, other.records]), self.limit, self.order)


@dataclass(frozen=True)
class Largest:
    """Per key (i, j), the at most n[key] largest values (the keyed top-N of pruning by noise rate)."""

    limits: dict
    values: dict

    def merge(self, other: "Largest") -> "Largest":
        out = dict(self.values)
        for key, v in other.values.items():
            out[key] = _top(np.concatenate([out[key], v]) if key in out else v, self.limits[key])
        return Largest(self.limits, out)


def _top(v: np.ndarray, n: int) -> np.ndarray:
    return v if len(v) <= n else np.partition(v, len(v) - n)[len(v) - n:]


def _merge(a, b):
    """Two pieces of the same pass over disjoint shards, merged field by field (arrays add, min_* take the minimum)."""
    if isinstance(a, Failed) or isinstance(b, Failed):
        return (a if isinstance(a, Failed) else Failed(())).merge(b)
    if hasattr(a, "merge"):
        return a.merge(b)
    out = {}
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name.startswith("min_"):
            out[f.name] = np.minimum(x, y)
        elif hasattr(x, "merge"):
            out[f.name] = x.merge(y)
        elif isinstance(x, dict):
            out[f.name] = {key: x[key].merge(y[key]) if hasattr(x[key], "merge") else x[key] + y[key] for key in x}
        else:
            out[f.name] = x + y
    return type(a)(**out)


@dataclass(frozen=True)
class Sums1:
    """Pass 1 of some shards: everything that needs no global value."""

    n: int
    confusion: np.ndarray  # (K, K) int64 given x predicted
    sums: dict  # name -> float64 sum over rows (confidence, total, nll, brier)
    class_sums: dict  # name -> (K,) float64 sums by given label (confidence, total, self_confidence)
    bins: object  # uncertainty.CalibrationBins (15 equal-width)
    classwise: np.ndarray  # (K, 15) float64 intervals.classwise_gaps
    null: object  # intervals.NullSums
    boot: object  # intervals.BootstrapSums
    boot_hist: object  # intervals.BootstrapHistogram
    hist: np.ndarray  # (3, H) int64: count, errors, count of half A; per fine confidence bin
    hist_errors_a: np.ndarray  # (H,) int64 errors in half A
    hist_sum_confidence: np.ndarray  # (H,) float64
    min_confidence: np.ndarray  # (3, H) float64 smallest confidence per bin: all, half A, half B (inf: empty)
    fit: object  # _FitSelection: the temperature fit's rows, half A / half B (field "set"); all rows derived from both
    display: object  # Smallest: the figures' display sample
    uncertain: object  # Smallest: the top_count most uncertain rows (by aleatoric when measured, else total)
    gallery: dict  # "aleatoric" and "epistemic" (S > 1) or "total" -> Smallest: the galleries' rows (runs from images only)


@dataclass(frozen=True)
class Globals1:
    """What pass 2 needs from pass 1."""

    thresholds: np.ndarray  # (K,) confident-learning thresholds
    t_shown: float
    t_apply_a: float  # temperature applied to half A (fitted on B)
    t_apply_b: float
    crossfit_split: bool  # both halves non-empty
    detail_bins: np.ndarray  # fine confidence bins whose distinct samples pass 2 collects (Distinct)
    notes: tuple[str, ...]  # what stays histogram-based beyond RESOLUTION's list (too many candidate bins)


@dataclass(frozen=True)
class Distinct:
    """Distinct (bin, conf, ok, half) samples of some fine confidence bins with their counts; merge adds the counts."""

    records: np.ndarray

    @classmethod
    def of(cls, records: np.ndarray) -> "Distinct":
        keys = records[["bin", "conf", "ok", "half"]]
        uniq, inv = np.unique(keys, return_inverse=True)
        out = np.zeros(len(uniq), dtype=DISTINCT_DTYPE)
        for f in ("bin", "conf", "ok", "half"):
            out[f] = uniq[f]
        out["count"] = np.bincount(inv.ravel(), weights=records["count"], minlength=len(uniq)).astype(np.int64)
        return cls(out)

    def merge(self, other: "Distinct") -> "Distinct":
        return Distinct.of(np.concatenate([self.records, other.records]))

    def by_bin(self, half: bool | None = None) -> dict[int, np.ndarray]:
        """bin -> (conf, ok, count) of its distinct samples, of one half (None: both)."""
        r = self.records if half is None else self.records[self.records["half"] == half]
        out = {}
        for b in np.unique(r["bin"]):
            x = r[r["bin"] == b]
            d = np.zeros(len(x), dtype=[("conf", "f8"), ("ok", "?"), ("count", "i8")])
            d["conf"], d["ok"], d["count"] = x["conf"], x["ok"], x["count"]
            out[int(b)] = d
        return out


# Fields of Distinct's records.
DISTINCT_DTYPE = [("bin", "i8"), ("conf", "f8"), ("ok", "?"), ("half", "?"), ("count", "i8")]
# Candidate bins of one 1 %-threshold beyond which its exact search gives up (the threshold then comes from the histogram).
MAX_THRESHOLD_BINS = 2048


@dataclass(frozen=True)
class Sums2:
    confident_joint: np.ndarray
    scaled_sums: dict  # nll
    scaled_bins: object
    scaled_null: object
    detail: object  # Distinct samples of Globals1.detail_bins


@dataclass(frozen=True)
class Globals2:
    """What passes 3 and 4 need: the confident-learning estimates and the halves' exact 1 % thresholds."""

    calibrated: np.ndarray
    noise: np.ndarray
    prune: np.ndarray
    class_count: np.ndarray  # (K,) samples per given label (so later passes need not take all of pass 1 as a side input)
    cf_thresholds: tuple | None  # (t chosen on half A, t chosen on half B), None when a half has none


@dataclass(frozen=True)
class Sums3:
    margins: object  # Largest
    crossfit: np.ndarray  # (2,) int64 kept, errors on the other halves


@dataclass(frozen=True)
class Sums4:
    per_class_issues: np.ndarray


def _read(shard: Shard, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, K) float64 exactly as the local engine holds them, labels (n,) int64) of one shard."""
    if shard.error:
        raise DataError(shard.error)
    if shard.aleatoric:  # pass 0's mean over the S samples: the local engine's SampledPredictions.mean_probs as they are
        return _load(shard.probs), _load(shard.labels)
    raw = validate.probabilities(_load(shard.probs), source=shard.probs)
    y = validate.labels(_load(shard.labels), source=shard.labels, n=len(raw), k=cfg.k).astype(np.int64)
    # The local engine normalises once on reading and once more when it accumulates the single pass.
    p = validate.normalised(validate.probabilities(validate.normalised(raw), source=shard.probs))
    return p, y


def _entropy(p: np.ndarray) -> np.ndarray:
    """-sum p log p in nats (0 log 0 = 0), the formula of TFP's Categorical(probs=p).entropy(), without TensorFlow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1) + 0.0


def _per_sample(p: np.ndarray, y: np.ndarray):
    rows = np.arange(len(y))
    predicted = p.argmax(axis=1).astype(np.int64)
    confidence = p[rows, predicted]
    return predicted, confidence, predicted == y, _entropy(p)


def _split_uncertainty(shard: Shard, total: np.ndarray, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """(aleatoric, epistemic) (n,) float64 of a shard: E_s H[p_s] from pass 0 and total - aleatoric when S > 1; for saved
    probabilities or one pass, the total and zeros (as uncertainty.per_sample)."""
    aleatoric = _load(shard.aleatoric) if shard.aleatoric else total
    return aleatoric, (total - aleatoric if cfg.n_passes > 1 else np.zeros(len(total)))


def _fit_records(start: int, p: np.ndarray, y: np.ndarray, seed: int, half: np.ndarray) -> np.ndarray:
    k = p.shape[1]
    rows = np.arange(start, start + len(y))
    rec = np.zeros(len(y), dtype=[("set", "i1"), ("key", "f8"), ("row", "i8"), ("y", "i8"), ("z", "f8", (k,))])
    rec["key"] = intervals.row_uniform(rows, seed=seed, stream=intervals.FIT_STREAM)
    rec["row"], rec["y"] = rows, y
    rec["z"] = np.log(np.clip(p, U.LOG_FLOOR, 1.0))
    parts = []
    for s, mask in ((1, half), (2, ~half)):
        sub = Smallest.of(rec[mask], U.TEMPERATURE_FIT_ROWS, ("key", "row")).records.copy()
        sub["set"] = s
        parts.append(sub)
    return np.concatenate(parts)


class _FitSelection(Smallest):
    """Two Smallest selections (half A, half B) in one record array, told apart by the field "set" (1, 2).

    The selection of all rows is not carried: the halves partition the rows, so it is the smallest of the two
    selections together (`all_rows`), and each piece is a third smaller.
    """

    def merge(self, other):
        r = np.concatenate([self.records, other.records])
        return _FitSelection(self.limit, self.order, np.concatenate(
            [Smallest.of(r[r["set"] == s], self.limit, self.order).records for s in (1, 2)]))

    def all_rows(self) -> np.ndarray:
        return Smallest.of(self.records, self.limit, self.order).records


def pass1(shard: Shard, cfg: Config):
    """Sums1 of one shard (Failed when it cannot be read)."""
    try:
        p, y = _read(shard, cfg)
    except DataError as e:
        return Failed((str(e),))
    k, n, start = cfg.k, len(y), shard.start
    predicted, confidence, correct, total = _per_sample(p, y)
    aleatoric, epistemic = _split_uncertainty(shard, total, cfg)
    measured = cfg.n_passes > 1
    rows = np.arange(start, start + n)
    nll_i, brier_i = U.sample_scores(p, y)
    self_conf = LI.self_confidence(y, p)
    half = intervals.random_halves(start, n, seed=cfg.seed)
    fine = intervals.confidence_bins(confidence)
    h = intervals.n_confidence_bins()
    wrong = ~correct
    hist = np.stack([np.bincount(fine, minlength=h), np.bincount(fine[wrong], minlength=h), np.bincount(fine[half], minlength=h)])
    min_conf = np.full((3, h), np.inf)
    for s, mask in ((0, np.ones(n, bool)), (1, half), (2, ~half)):
        np.minimum.at(min_conf[s], fine[mask], confidence[mask])
    disp = np.zeros(n, dtype=[("key", "f8"), ("position", "i8"), ("label", "i8"), ("predicted", "i8"), ("correct", "?"),
                              ("confidence", "f8"), ("total", "f8"), ("aleatoric", "f8"), ("epistemic", "f8")])
    disp["key"], disp["position"], disp["label"], disp["predicted"] = R.display_key(rows), rows, y, predicted
    disp["correct"], disp["confidence"], disp["total"] = correct, confidence, total
    disp["aleatoric"], disp["epistemic"] = aleatoric, epistemic
    unc = np.zeros(n, dtype=[("neg", "f8"), ("row", "i8"), ("wrong", "?")])
    unc["neg"], unc["row"], unc["wrong"] = -(aleatoric if measured else total), rows, wrong
    values = {"nll": nll_i, "brier": brier_i, "mean_confidence": confidence, "mean_entropy": total, "mean_aleatoric": aleatoric}
    if measured:
        values["mean_epistemic"] = epistemic
    by_class = lambda v: np.bincount(y, weights=v, minlength=k)  # noqa: E731
    return Sums1(
        n=n,
        confusion=np.bincount(y * k + predicted, minlength=k * k).reshape(k, k).astype(np.int64),
        sums={"confidence": float(confidence.sum()), "total": float(total.sum()), "nll": float(nll_i.sum()),
              "brier": float(brier_i.sum()), "aleatoric": float(aleatoric.sum()), "epistemic": float(epistemic.sum())},
        class_sums={"confidence": by_class(confidence), "total": by_class(total), "self_confidence": by_class(self_conf),
                    "aleatoric": by_class(aleatoric), "epistemic": by_class(epistemic)},
        bins=U.top_label_bins(p, y),
        classwise=intervals.classwise_gaps(p, y),
        null=intervals.null_sums(start, confidence, seed=cfg.seed),
        boot=intervals.bootstrap_sums(start, confidence, correct, values, replicates=cfg.replicates, seed=cfg.seed),
        boot_hist=intervals.bootstrap_histogram(start, confidence, correct, replicates=cfg.replicates, seed=cfg.seed),
        hist=hist.astype(np.int64),
        hist_errors_a=np.bincount(fine[wrong & half], minlength=h).astype(np.int64),
        hist_sum_confidence=np.bincount(fine, weights=confidence, minlength=h),
        min_confidence=min_conf,
        fit=_FitSelection(U.TEMPERATURE_FIT_ROWS, ("key", "row"), _fit_records(start, p, y, cfg.seed, half)),
        display=Smallest.of(disp, R.DISPLAY_ROWS, ("key", "position")),
        uncertain=Smallest.of(unc, cfg.top_count, ("neg", "row")),
        gallery=({name: _ranked(v, rows) for name, v in ((("aleatoric", aleatoric), ("epistemic", epistemic)) if measured
                                                          else (("total", total),))} if shard.aleatoric else {}),
    )


def _ranked(values: np.ndarray, rows: np.ndarray) -> Smallest:
    """The UNCERTAINTY_GALLERY_SIZE rows of largest value, ties by row (the local engine's stable descending sort)."""
    rec = np.zeros(len(rows), dtype=[("neg", "f8"), ("row", "i8")])
    rec["neg"], rec["row"] = -values, rows
    return Smallest.of(rec, R.UNCERTAINTY_GALLERY_SIZE, ("neg", "row"))


def _fit(records: np.ndarray) -> float:
    rec = np.sort(records, order="row")  # the local engine fits on its rows in ascending order
    return U.fit_temperature(rec["z"], rec["y"])


def _half_hists(s: Sums1):
    """((count, errors, min confidence) of half A, the same of half B) from pass 1's histograms."""
    a = (s.hist[2], s.hist_errors_a, s.min_confidence[1])
    b = (s.hist[0] - s.hist[2], s.hist[1] - s.hist_errors_a, s.min_confidence[2])
    return a, b


def _detail_bins(s: Sums1, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Fine bins whose samples make the histogram-based statistics exact: those the equal-mass cuts and the coverage
    cuts fall inside, and the candidate bins of the 1 % thresholds (of all rows and of each half)."""
    count, errors = s.hist[0], s.hist[1]
    end = np.cumsum(count)
    need = set()
    cuts = [*intervals.equal_mass_cut_positions(n), *(-(-pct * n // 100) - 1 for pct in U.COVERAGE_PERCENTS)]
    for pos in cuts:
        j = int(np.searchsorted(end, pos, side="right"))
        if j < len(end):
            need.add(j)
    notes = []
    for what, (c, e, _) in (("threshold_1pct", (count, errors, None)), *zip(("half A's 1 % threshold", "half B's 1 % threshold"),
                                                                             _half_hists(s))):
        cand = U.threshold_candidates(c, e)
        if len(cand) > MAX_THRESHOLD_BINS:
            notes.append(f"{what} from the histogram: {len(cand)} candidate bins")
        else:
            need.update(int(b) for b in cand)
    return np.array(sorted(need), dtype=np.int64), tuple(notes)


def globals1(s: Sums1, cfg: Config):
    """Thresholds, temperatures and the bins to detail from the merged pass 1."""
    if isinstance(s, Failed):
        return s
    fit = s.fit.records
    t_shown = _fit(s.fit.all_rows())
    split = bool(s.hist[2].sum() and (s.hist[0] - s.hist[2]).sum())
    if split:
        t_a, t_b = _fit(fit[fit["set"] == 1]), _fit(fit[fit["set"] == 2])  # fitted on half A, on half B
    else:
        t_a = t_b = t_shown
    bins, notes = _detail_bins(s, s.n)
    return Globals1(thresholds=LI.thresholds_from_sums(s.class_sums["self_confidence"], s.confusion.sum(axis=1), rule=cfg.rule),
                    t_shown=t_shown, t_apply_a=t_b, t_apply_b=t_a, crossfit_split=split, detail_bins=bins, notes=notes)


def pass2(shard: Shard, cfg: Config, g: Globals1):
    """Sums2 of one shard: confident joint, held-out temperature scaling, the samples of the detailed bins."""
    if isinstance(g, Failed):
        return Failed(())
    p, y = _read(shard, cfg)
    n = len(y)
    half = intervals.random_halves(shard.start, n, seed=cfg.seed)
    scaled = np.empty_like(p)
    z = np.log(np.clip(p, U.LOG_FLOOR, 1.0))
    for mask, t in ((half, g.t_apply_a), (~half, g.t_apply_b)):
        scaled[mask] = U.softmax_at(z[mask], t)
    predicted = scaled.argmax(axis=1)
    s_conf = scaled[np.arange(n), predicted]
    _, confidence, correct, _ = _per_sample(p, y)
    fine = intervals.confidence_bins(confidence)
    keep = np.isin(fine, g.detail_bins)
    rec = np.zeros(int(keep.sum()), dtype=DISTINCT_DTYPE)
    rec["bin"], rec["conf"], rec["ok"], rec["half"], rec["count"] = fine[keep], confidence[keep], correct[keep], half[keep], 1
    return Sums2(
        confident_joint=LI.confident_counts(y, p, g.thresholds),
        scaled_sums={"nll": float(-np.log(np.maximum(scaled[np.arange(n), y], U.LOG_FLOOR)).sum())},
        scaled_bins=U.top_label_bins(scaled, y),
        scaled_null=intervals.null_sums(shard.start, s_conf, seed=cfg.seed + 1),
        detail=Distinct.of(rec),
    )


def globals2(s2: Sums2, s1: Sums1, g1: Globals1):
    """Globals2 from the merged confident joint and the halves' detailed bins."""
    if isinstance(s2, Failed) or isinstance(s1, Failed):
        return Failed(())
    class_count = s1.confusion.sum(axis=1)
    calibrated, noise, prune = LI.estimates(s2.confident_joint, class_count)
    cf = None
    if g1.crossfit_split:
        (ca, ea, ma), (cb, eb, mb) = _half_hists(s1)
        th_a = U.threshold_from_histogram(ca, ea, ma, detail=s2.detail.by_bin(True))
        th_b = U.threshold_from_histogram(cb, eb, mb, detail=s2.detail.by_bin(False))
        cf = None if th_a is None or th_b is None else (th_a, th_b)
    return Globals2(calibrated, noise, prune, class_count, cf)


def _prunable(prune: np.ndarray, class_count: np.ndarray):
    """(i, j) pairs whose cut-off is needed: prune_counts > 0 below the class size, classes above MIN_KEPT_PER_CLASS."""
    k = len(class_count)
    return [(i, j) for i in range(k) if class_count[i] > LI.MIN_KEPT_PER_CLASS
            for j in np.flatnonzero(prune[i]) if j != i and prune[i, j] < class_count[i]]


def pass3(shard: Shard, cfg: Config, g2):
    """Sums3 of one shard: per (i, j) the prune_counts[i, j] largest margins p_j - p_i among its rows given i (a keyed
    top-N), and the cross-fitted 1 % rule's kept and wrong samples (each half scored with the other half's threshold)."""
    if isinstance(g2, Failed):
        return Failed(())
    p, y = _read(shard, cfg)
    prune, class_count = g2.prune, g2.class_count
    limits = {(i, int(j)): int(prune[i, j]) for i, j in _prunable(prune, class_count)}
    margins = Largest(limits, {key: _top(LI.prune_margins(y, p, *key), n) for key, n in limits.items()})
    kept = errors = 0
    if g2.cf_thresholds is not None:
        _, confidence, correct, _ = _per_sample(p, y)
        half = intervals.random_halves(shard.start, len(y), seed=cfg.seed)
        th_a, th_b = g2.cf_thresholds
        for mask, t in ((~half, th_a), (half, th_b)):
            keep = mask & (confidence >= t)
            kept, errors = kept + int(keep.sum()), errors + int((keep & ~correct).sum())
    return Sums3(margins, np.array([kept, errors], dtype=np.int64))


def globals3(s3: Sums3, g2):
    """(K, K) cut-offs: the prune_counts[i, j]-th largest margin, -inf where the whole class goes."""
    if isinstance(s3, Failed) or isinstance(g2, Failed):
        return Failed(())
    k = len(g2.class_count)
    cut = np.full((k, k), -np.inf)
    m = s3.margins
    for (i, j), v in m.values.items():
        cut[i, j] = np.partition(v, len(v) - m.limits[(i, j)])[len(v) - m.limits[(i, j)]]
    return cut


def pass4(shard: Shard, cfg: Config, g2, cutoffs):
    """Sums4 of one shard; writes its flagged rows (CSV and .npy) and its per-sample export into the staging folder."""
    if isinstance(cutoffs, Failed):
        return Failed(())
    from ..report import context as report
    p, y = _read(shard, cfg)
    n = len(y)
    class_count = g2.class_count
    mask = LI.flag_by_cutoffs(y, p, g2.prune, cutoffs, class_count)
    f = np.flatnonzero(mask)
    rec = np.zeros(len(f), dtype=[("row", "i8"), ("given", "i8"), ("suggested", "i8"), ("p_given", "f8"), ("score", "f8")])
    rec["row"], rec["given"] = shard.start + f, y[f]
    rec["suggested"] = p[f].argmax(axis=1)
    rec["p_given"] = LI.self_confidence(y[f], p[f])
    rec["score"] = LI.RANKERS[cfg.rank_by](y[f], p[f])
    name = _safe(shard.key)
    _write_npy(_join(cfg.staging, "records", f"flagged-{name}.npy"), rec)
    split, source_rows, files = _source(shard)
    text = io.StringIO(newline="")
    w = csv.writer(text)
    numbers = (rec["given"].tolist(), rec["suggested"].tolist(), [f"{v:.9g}" for v in rec["p_given"]],
               [f"{v:.9g}" for v in rec["score"]])
    if shard.source and files is not None:  # rows of image files: named as the local flagged.csv names them
        w.writerow(("split", _CSV_COLUMNS[0], "file", *_CSV_COLUMNS[1:]))
        w.writerows(zip(split[f].tolist(), source_rows[f].tolist(), files[f].tolist(), *numbers))
    elif shard.source:  # rows of an array data set
        w.writerow(("split", *_CSV_COLUMNS))
        w.writerows(zip(split[f].tolist(), source_rows[f].tolist(), *numbers))
    else:
        w.writerow(_CSV_COLUMNS)
        w.writerows(zip(rec["row"].tolist(), *numbers))
    with _create(_join(cfg.staging, FLAGGED_DIR, f"flagged-{name}.csv")) as out:
        out.write(text.getvalue().encode("utf-8"))
    predicted, confidence, _, total = _per_sample(p, y)
    aleatoric, epistemic = _split_uncertainty(shard, total, cfg)
    with _create(_join(cfg.staging, PREDICTIONS_DIR, f"predictions-{name}.csv.gz")) as out:
        report.write_prediction_rows(out, split=split, rows=source_rows, files=files, labels=y, predicted=predicted, probs=p,
                                     confidence=confidence, total=total, aleatoric=aleatoric,
                                     epistemic=epistemic if cfg.n_passes > 1 else None, flagged=mask,
                                     cases=np.full(n, "", dtype=object), review=np.full(n, "", dtype=object))
    return Sums4(np.bincount(y[f], minlength=cfg.k).astype(np.int64))


def _source(shard: Shard) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(split, source row, file or None) of each row of a shard: from pass 0's file, else "all" and the global row."""
    if not shard.source:
        return np.full(shard.rows, "all"), np.arange(shard.start, shard.start + shard.rows), None
    z = _load(shard.source)
    return z["split"], z["index"], (z["files"] if z["has_files"] else None)


def _safe(key: str) -> str:
    """A shard key as a file name part."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key) or "shard"


# --------------------------------------------------------------------------- pass 0: predictions


def _predicted_shard(part: ImagePart, staging: str) -> Shard:
    """The Shard pass 0 writes for an ImagePart (its files under the staging folder's PREDICTED_DIR)."""
    at = lambda what, ext="npy": _join(staging, PREDICTED_DIR, f"{what}-{_safe(part.key)}.{ext}")  # noqa: E731
    return Shard(part.key, at("probs"), at("labels"), part.start, part.rows, aleatoric=at("aleatoric"), std=at("std"),
                 source=at("source", "npz"))


def _write_npy(path: str, array: np.ndarray) -> None:
    """np.save of `array` into any Beam file system."""
    buf = io.BytesIO()
    np.save(buf, array)
    with _create(path) as out:
        out.write(buf.getvalue())


def _write_npz(path: str, **arrays) -> None:
    """np.savez of `arrays` into any Beam file system."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with _create(path) as out:
        out.write(buf.getvalue())


def load_models(spec: ModelSpec) -> list:
    """The audited model(s), loaded and prepared as the driver prepared them (once per worker, in DoFn.setup)."""
    from dataclasses import replace

    from ..model import network as M
    from ..model._tf import load_quietly

    load_quietly()
    return [replace(M.load(path, trust=spec.trust, name=name), preprocessing=pre, preprocessing_why=why, outputs_probs=probs)
            for path, name, pre, why, probs in zip(spec.paths, spec.names, spec.preprocessing, spec.preprocessing_why,
                                                   spec.outputs_probs)]


def predict_part(part: ImagePart, models: list, spec: ModelSpec, staging: str) -> Shard:
    """Pass 0 of one part: predict its images (S samples, the global batch index), write the Shard's files, return it.

    What is written is what the local engine's SampleAccumulator holds for these rows: the mean probabilities (float64),
    E_s H[p_s] (TFP's entropy, as there) and the std over the samples; plus the given labels and the rows' source names.
    A part that cannot be decoded or predicted gives a Shard with its one-line `error` (pass 1 reports it).
    """
    from ..model import predict
    shard = _predicted_shard(part, staging)
    failed = lambda message: Shard(shard.key, shard.probs, shard.labels, shard.start, shard.rows, error=message)  # noqa: E731
    if isinstance(models, str):  # the worker could not load the model (DoFn.setup): every part reports it
        return failed(models)
    try:
        images = _load(part.images) if isinstance(part.images, str) else part.images
        sampled, _ = predict.predict(models, images, mc_samples=spec.mc_samples, seed=spec.seed, first_batch=part.first_batch)
    except ReportgenError as e:
        return failed(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. TensorFlow running out of memory: one line, not the worker's traceback
        return failed(f"rows {part.start:,}-{part.start + part.rows - 1:,} could not be predicted on a worker "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'no message'})")
    _write_npy(shard.probs, sampled.mean_probs)
    _write_npy(shard.labels, np.asarray(part.labels, dtype=np.int64))
    _write_npy(shard.aleatoric, sampled.expected_entropy.astype(np.float64))
    _write_npy(shard.std, sampled.std_probs)
    files = part.files if part.files is not None else np.zeros(0, dtype=str)
    _write_npz(shard.source, split=np.asarray(part.split).astype(str), index=np.asarray(part.index, dtype=np.int64),
               files=np.asarray(files).astype(str), has_files=np.array(part.files is not None))
    return shard


def _predict_fn(spec: ModelSpec, staging: str):
    import apache_beam as beam

    class Predict(beam.DoFn):
        """Pass 0: one model load per worker (setup), then one ImagePart -> its predicted Shard per element."""

        def setup(self):
            try:
                self.models = load_models(spec)
            except Exception as e:  # noqa: BLE001 - e.g. the model file not at this path on the worker: one line per part
                first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                self.models = first if isinstance(e, ReportgenError) else f"{spec.paths[0]}: the worker cannot load the model ({first})"

        def process(self, part):
            yield predict_part(part, self.models, spec, staging)

    return Predict()


# --------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class _OnWorker:
    """A pass as Beam calls it: `fn` with numpy's BLAS limited to WORKER_BLAS_THREADS for the call (a context, so an
    in-process runner leaves the driver's own BLAS as it was)."""

    fn: object

    def __call__(self, *args):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=WORKER_BLAS_THREADS, user_api="blas"):
            return self.fn(*args)


def _combine_fn():
    import apache_beam as beam

    class Merge(beam.CombineFn):
        """Merges the pieces of one pass (`_merge`): the reduce step of every pass."""

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
            return acc if acc is not None else Failed(("no shard was read",))

    return Merge()


def _save(obj, path: str) -> None:
    with _create(path) as f:
        f.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def run_pipeline(shards: list[Shard], cfg: Config, beam_options: tuple[str, ...], *, parts: list[ImagePart] | None = None,
                 spec: ModelSpec | None = None) -> None:
    """Run the four passes; their merged results are pickled into cfg.staging (read back by `reduce_sharded`).

    With `parts` and `spec`, pass 0 first predicts the parts' images (one model load per worker) into the shards that
    passes 1-4 read; `shards` is then ignored.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    single = beam.pvalue.AsSingleton
    options = list(beam_options)
    if not any(o.startswith("--default_sdk_harness_log_level") for o in options):
        options.append(f"--default_sdk_harness_log_level={WORKER_LOG_LEVEL}")
    with beam.Pipeline(options=PipelineOptions(options)) as pipe:
        if parts is not None:
            src = (pipe | "image parts" >> beam.Create(parts) | "spread parts" >> beam.Reshuffle()
                   | "pass 0: predict" >> beam.ParDo(_predict_fn(spec, cfg.staging)) | "spread" >> beam.Reshuffle())
        else:
            src = pipe | "shards" >> beam.Create(shards) | "spread" >> beam.Reshuffle()
        s1 = src | "pass 1: sums" >> beam.Map(_OnWorker(pass1), cfg) | "merge 1" >> beam.CombineGlobally(_combine_fn())
        g1 = s1 | "thresholds, temperatures" >> beam.Map(globals1, cfg)
        s2 = (src | "pass 2: confident joint, scaling" >> beam.Map(_OnWorker(pass2), cfg, single(g1))
              | "merge 2" >> beam.CombineGlobally(_combine_fn()))
        g2 = s2 | "prune counts, 1 % thresholds" >> beam.Map(globals2, single(s1), single(g1))
        s3 = (src | "pass 3: keyed top-N margins" >> beam.Map(_OnWorker(pass3), cfg, single(g2))
              | "merge 3" >> beam.CombineGlobally(_combine_fn()))
        g3 = s3 | "cut-offs" >> beam.Map(globals3, single(g2))
        s4 = (src | "pass 4: flags" >> beam.Map(_OnWorker(pass4), cfg, single(g2), single(g3))
              | "merge 4" >> beam.CombineGlobally(_combine_fn()))
        for name, pc in (("sums1", s1), ("globals1", g1), ("sums2", s2), ("globals2", g2), ("sums3", s3), ("sums4", s4)):
            pc | f"save {name}" >> beam.Map(_save, _join(cfg.staging, f"{name}.pkl"))


# --------------------------------------------------------------------------- reduce


@dataclass(frozen=True)
class ShardedInputs:
    """What the report says about a sharded input besides the numbers."""

    name: str
    version: str
    model_info: dict
    dataset_info: dict
    data_role: str
    provenance: dict
    data_name: str


def _load_result(staging: str, name: str):
    with _open(_join(staging, f"{name}.pkl")) as f:
        return pickle.loads(f.read())


def _local_files(staging: str, local: Path) -> list[tuple[str, str]]:
    """(name in the report folder, local path) of the per-sample files; copied into `local` from a remote staging folder."""
    from apache_beam.io.filesystems import FileSystems

    out = []
    for sub in (FLAGGED_DIR, PREDICTIONS_DIR):
        for m in sorted(FileSystems.match([_join(staging, sub, "*")])[0].metadata_list, key=lambda m: m.path):
            name = Path(m.path).name
            if "://" in staging:
                target = local / sub / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with _open(m.path) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                out.append((f"{sub}/{name}", str(target)))
            else:
                out.append((f"{sub}/{name}", m.path))
    return out


def reduce_sharded(staging: str, local: Path, shards: list[Shard], cfg: Config, class_names: list[str], *, data_name: str,
                   provenance: dict, dataset=None) -> R.ReducedAudit:
    """The ReducedAudit of a finished run, from the merged pieces pickled in `staging` (per-sample files copied to `local`
    when the staging folder is not a local one).

    dataset: the audited data.Dataset of a run from images (pass 0): it names the rows (split, source row, file) as the
    local engine does and gives the galleries' few pictures; None for saved probabilities.
    """
    s1, g1, s2, g2, s3, s4 = (_load_result(staging, x) for x in ("sums1", "globals1", "sums2", "globals2", "sums3", "sums4"))
    if isinstance(s1, Failed):
        msgs = sorted(set(s1.messages))
        more = f" (and {len(msgs) - 1} more shard problem(s))" if len(msgs) > 1 else ""
        raise DataError(msgs[0] + more)
    n, k, names = s1.n, cfg.k, class_names
    measured = cfg.n_passes > 1
    class_count = s1.confusion.sum(axis=1)
    correct_by_class = np.diag(s1.confusion).copy()
    n_correct = int(correct_by_class.sum())
    # --- calibration
    bins = s1.bins
    count, errors = s1.hist[0], s1.hist[1]
    detail = s2.detail.by_bin()
    em = intervals.equal_mass_from_histogram(count, count - errors, s1.hist_sum_confidence, detail=detail)
    observed = float(np.abs(bins.sum_correct - bins.sum_confidence).sum() / n)
    cal = U.CalibrationStats(
        ece=bins.ece(), ece_debiased=intervals.debiased_from_sums(*em), ece_equal_mass=intervals.equal_mass_from_sums(*em),
        mce=bins.mce(), brier=s1.sums["brier"] / n, nll=s1.sums["nll"] / n, n_bins=bins.n_bins,
        bin_edges=np.linspace(0.0, 1.0, bins.n_bins + 1), bin_count=bins.count, bin_accuracy=bins.accuracy(),
        bin_confidence=bins.confidence(), classwise=np.abs(s1.classwise).sum(axis=1) / n,
        floor=intervals.calibration_test(observed, s1.null.eces()))
    sb = s2.scaled_bins
    temp = U.TemperatureScaling(
        temperature=g1.t_shown, nll_before=cal.nll, nll_after=s2.scaled_sums["nll"] / n, ece_before=cal.ece, ece_after=sb.ece(),
        floor_after=intervals.calibration_test(float(np.abs(sb.sum_correct - sb.sum_confidence).sum() / n), s2.scaled_null.eces()),
        method=U.temperature_method(n, cfg.seed, g1.crossfit_split))
    cf = None
    if g2.cf_thresholds is not None:
        cf = U.crossfit_result(list(g2.cf_thresholds), int(s3.crossfit[0]), int(s3.crossfit[1]), n, cfg.seed)
    sel = U.selective_from_histogram(count, errors, s1.min_confidence[0], cf, detail=detail)
    means = {"accuracy": n_correct / n, "mean_confidence": s1.sums["confidence"] / n, "mean_entropy": s1.sums["total"] / n,
             "mean_aleatoric": s1.sums["aleatoric"] / n, "mean_epistemic": s1.sums["epistemic"] / n if measured else None}
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = {key: [float(s1.class_sums[key][c] / class_count[c]) if class_count[c] else None for c in range(k)]
              for key in ("confidence", "aleatoric", "epistemic")}
    per_class = U.per_class_rows(names, class_count, correct_by_class, s1.confusion.sum(axis=0),
                                 {"confidence": cm["confidence"], "aleatoric": cm["aleatoric"],
                                  "epistemic": cm["epistemic"] if measured else [None] * k}, cal.classwise)
    metrics = U.summary_metrics(means, n, cfg.n_passes, cal, temp, sel)
    boot = {name: intervals.percentile_interval(m) for name, m in s1.boot.means().items()}
    boot["ece"] = intervals.percentile_interval(s1.boot.ece())
    boot["aurc"] = intervals.percentile_interval(s1.boot_hist.aurc())
    metrics.update(U.interval_metrics_from(n_correct, n, sel, boot, measured))
    # --- labels
    calibrated = g2.calibrated
    records = []
    for s in shards:
        records.append(_load(_join(staging, "records", f"flagged-{_safe(s.key)}.npy")))
    rec = np.concatenate(records) if records else np.zeros(0)
    rec = rec[np.lexsort((rec["row"], rec["score"]))]  # score ascending, ties by row (the local stable sort)
    m = len(rec)
    n_est = int(np.rint((1.0 - np.trace(calibrated)) * n))
    from ..data.reviews import no_reviews

    rv = no_reviews(0)
    checker = LI.checker_info(class_count, correct_by_class, names, kind="saved" if dataset is None else "audited_model")
    metrics.update(LI.label_metrics_from(n_checked=n, n_flagged=m, n_estimated=n_est, checker=checker, cases=None,
                                         review_counts=rv.counts(), n_unreviewed_flags=m))
    pos = rec["row"].astype(np.int64)
    if dataset is None:
        index_sha, split, row, file = _index_sha256(n), np.full(m, "all").astype(str), pos, np.full(m, "", dtype=object)
    else:
        files = dataset.source_files
        index_sha, split, row = dataset.index_sha256(), np.asarray(dataset.source_split[pos]).astype(str), dataset.source_index[pos]
        file = np.full(m, "", dtype=object) if files is None else np.asarray(files[pos]).astype(str)
    flagged = R.FlaggedSamples(split=split, row=np.asarray(row, dtype=np.int64), file=file,
                               given=rec["given"], suggested=rec["suggested"], self_confidence=rec["p_given"], score=rec["score"],
                               audited_prediction=rec["suggested"].copy(), review=np.full(m, "").astype(str))
    labels = R.LabelSummary(rule=cfg.rule, rank_by=cfg.rank_by, n_checked=n, checked_sha256=index_sha, thresholds=g1.thresholds,
                            calibrated_joint=calibrated, per_class_issues=s4.per_class_issues, n_issues_estimated=n_est,
                            checker=checker, cases=None, model_error_rows=[], reviews={**rv.counts(), "source": rv.source},
                            n_unreviewed_flags=m, flagged=flagged, reviewed=[])
    # --- figures' sample and facts
    d = np.sort(s1.display.records, order="position")
    display = R.DisplaySample(d["position"], d["label"], d["predicted"], d["correct"], d["confidence"], d["total"], d["aleatoric"],
                              d["epistemic"])
    errors_facts = U.error_facts_from(s1.confusion, n - n_correct, int(s1.uncertain.records["wrong"].sum()), measured)
    data = R.DataSummary(data_name, list(names), class_count.tolist(), int(n), provenance, index_sha)
    galleries = {} if dataset is None else _galleries(s1, rec, shards, dataset, measured)
    files = _local_files(staging, local)
    return R.ReducedAudit(data=data, metrics=metrics, calibration=cal, temperature=temp, selective=sel, per_class=per_class,
                          errors=errors_facts, epistemic_measured=measured, n_passes=cfg.n_passes, labels=labels, display=display,
                          galleries=galleries,
                          engine="beam", per_sample_files=tuple(files),
                          resolution={**RESOLUTION, "aurc_bound": intervals.aurc_histogram_bound(count, errors),
                                      "aurc_ci_bound": _bootstrap_aurc_bound(s1.boot_hist),
                                      "also_from_histogram": list(g1.notes)})


def _bootstrap_aurc_bound(h) -> float:
    """Largest |replicate AURC - its histogram's AURC| over the bootstrap replicates (intervals.aurc_histogram_bound of
    each): the percentile interval's ends, order statistics of the replicates, move by no more."""
    cols = np.flatnonzero(h.count.sum(axis=0))  # empty bins add nothing to a bound
    count, errors = h.count[:, cols], h.errors[:, cols]
    return max((intervals.aurc_histogram_bound(c, e) for c, e in zip(count, errors)), default=0.0)


def _galleries(s1: Sums1, flagged: np.ndarray, shards: list[Shard], ds, measured: bool) -> dict:
    """The report's galleries of a run from images, as pipeline.reduce_local cuts them: the top rows by aleatoric and
    epistemic uncertainty (by total without S > 1 samples) and the first flagged rows, with their pictures read from
    the audited data set by row and their probabilities from pass 0's shards."""
    cache: dict = {}

    def shard_rows(row: int) -> tuple[np.ndarray, np.ndarray]:
        s = next(x for x in shards if x.start <= row < x.start + x.rows)
        if s.key not in cache:
            cache[s.key] = (_load(s.probs), _load(s.std))
        p, std = cache[s.key]
        return p[row - s.start], std[row - s.start]

    out: dict[str, list] = {}
    ranked = (("gallery_aleatoric", "aleatoric"), ("gallery_epistemic", "epistemic")) if measured else (("gallery_entropy", "total"),)
    for key, name in ranked:
        top = np.sort(s1.gallery[name].records, order=["neg", "row"])
        pictures = np.asarray(ds.images[top["row"]])
        items = []
        for i, v, pic in zip(top["row"].tolist(), (-top["neg"]).tolist(), pictures):
            p, std = shard_rows(i)
            items.append(R.GalleryItem(str(ds.source_split[i]), int(ds.source_index[i]), int(ds.labels[i]), int(p.argmax()), float(v),
                                       p, std if measured else None, pic))
        out[key] = items
    top = flagged[:R.FLAGGED_GALLERY_SIZE]
    if len(top):
        pictures = np.asarray(ds.images[top["row"]])
        out["gallery_flagged"] = [
            R.GalleryItem(str(ds.source_split[i]), int(ds.source_index[i]), int(g), int(sg), float(pg), shard_rows(i)[0], None, pic)
            for i, g, sg, pg, pic in zip(top["row"].tolist(), top["given"], top["suggested"], top["p_given"], pictures)]
    return out


def prepare(predictions: str, labels: str, *, class_names: list[str] | None, name: str | None,
            version: str | None) -> tuple[list[Shard], ShardedInputs, list[str]]:
    """Match and check the shards (headers only) and hash them: everything known before the pipeline runs.

    Returns:
        (shards, ShardedInputs, K class names).
    Raises:
        ReportgenError: Apache Beam missing; DataError: bad shards or class names (one line).
    """
    require_beam()
    shards = plan_shards(predictions, labels)
    k = int(_npy_header(shards[0].probs)[0][1])
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{len(names)} class names for the {k} classes of {shards[0].probs}")
    probs_sha = _concat_sha256([s.probs for s in shards])
    labels_sha = _concat_sha256([s.labels for s in shards])
    n = sum(s.rows for s in shards)
    sha = hashlib.sha256((probs_sha + labels_sha).encode()).hexdigest()
    info = ShardedInputs(
        name=name or _stem(predictions) or "predictions", version=version or sha[:12],
        model_info={"path": predictions, "sha256": probs_sha, "kind": "saved probabilities", "outputs_probs": True,
                    "metadata": {}, "shards": len(shards)},
        dataset_info={}, data_role="saved probabilities (assumed out-of-sample)",
        provenance={"source": "predictions", "path": labels, "sha256": labels_sha, "count": int(n), "warning": None},
        data_name=_stem(labels) or "labels")
    return shards, info, names


def staging_location(output: str, beam_options: tuple[str, ...]) -> str:
    """Where the workers write their pieces: under --temp_location when the Beam options give one (a bucket every worker
    of a cluster can reach), else a folder under the archive root (which the workers must then see at the same path)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    temp = PipelineOptions(list(beam_options)).view_as(GoogleCloudOptions).temp_location
    return _join(temp, name.lstrip(".")) if temp else str((Path(output) / name).resolve())


@contextmanager
def _staging(output: str, beam_options: tuple[str, ...]):
    """(staging location, local folder) of one run; if the run fails, both are removed, and the archive root too when
    the run created it and it is left empty."""
    root = Path(output)
    created = not root.exists()
    folders = (staging_location(output, beam_options), root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-files")
    try:
        yield folders
    except BaseException:
        remove_staging(folders, created_root=root if created else None)
        raise


def run(shards: list[Shard], info: ShardedInputs, class_names: list[str], *, output: str, seed: int, replicates: int, rule: str,
        rank_by: str, beam_options: tuple[str, ...], progress=None) -> tuple[R.ReducedAudit, tuple[str, Path]]:
    """Run the pipeline and reduce its result.

    Returns:
        (the ReducedAudit, (staging location, local folder) holding its per-sample files: `remove_staging` them once the
        report is written).
    Raises:
        DataError: a shard's contents are invalid (one line; the staging folders are removed).
    """
    n = sum(s.rows for s in shards)
    with _staging(output, beam_options) as (staging, local):
        cfg = Config(k=len(class_names), n=int(n), seed=seed, replicates=replicates, rule=rule, rank_by=rank_by,
                     top_count=U.top_count_of(n), staging=staging)
        if progress:
            progress(f"auditing {n:,} rows in {len(shards)} shard(s) on Apache Beam ({' '.join(beam_options) or 'DirectRunner'})")
        run_pipeline(shards, cfg, beam_options)
        reduced = reduce_sharded(staging, local, shards, cfg, class_names, data_name=info.data_name, provenance=info.provenance)
        return reduced, (staging, local)


def run_models(ds, models: list, *, output: str, mc_samples: int, seed: int, replicates: int, rule: str, rank_by: str,
               beam_options: tuple[str, ...], trust: bool = False, progress=None) -> tuple[R.ReducedAudit, dict, tuple[str, Path]]:
    """Predict the resolved images in pass 0 of the pipeline (parts of whole prediction batches), then audit them.

    Args:
        ds: the audited data.Dataset, resolved as the local engine resolves it (pipeline._resolve_models).
        models: its prepared model.LoadedModels (preprocessing and outputs decided), whose files the workers load.
    Returns:
        (the ReducedAudit, the method (predict.PredictInfo as a dict), the staging folders: `remove_staging` them once the
        report is written).
    Raises:
        DataError: an image part cannot be predicted (one line; the staging folders are removed).
    """
    from ..model import predict
    from ..data.images import ImageFiles

    n = len(ds.labels)
    batch, pinfo, keyed = predict.plan(models, ds.images, mc_samples=mc_samples, seed=seed)
    if not keyed:
        raise ModelError(f"{models[0].path}: its dropout cannot be split from the layers before it, so its MC samples are not "
                         "keyed on the batch and parts predicted apart would not draw one run's samples; audit it with "
                         "--engine local, or with --mc-samples 1")
    rows = batch * max(1, round(PREDICT_SHARD_ROWS / batch))
    spec = ModelSpec(paths=tuple(m.path for m in models), names=tuple(m.name for m in models), trust=trust,
                     preprocessing=tuple(m.preprocessing for m in models), preprocessing_why=tuple(m.preprocessing_why for m in models),
                     outputs_probs=tuple(bool(m.outputs_probs) for m in models), mc_samples=mc_samples, seed=seed)
    with _staging(output, beam_options) as (staging, local):
        parts = []
        files = ds.source_files
        for i, start in enumerate(range(0, n, rows)):
            stop = min(n, start + rows)
            key = f"{i:05d}"
            if isinstance(ds.images, ImageFiles):
                images = ds.images.subset(np.arange(start, stop))
            else:
                images = _join(staging, IMAGES_DIR, f"images-{key}.npy")
                _write_npy(images, np.asarray(ds.images[start:stop]))
            parts.append(ImagePart(key, start, stop - start, start // batch, images, ds.labels[start:stop],
                                   ds.source_split[start:stop], ds.source_index[start:stop], None if files is None else files[start:stop]))
        cfg = Config(k=ds.n_classes, n=int(n), seed=seed, replicates=replicates, rule=rule, rank_by=rank_by,
                     top_count=U.top_count_of(n), staging=staging, n_passes=pinfo.n_samples)
        if progress:
            progress(f"predicting and auditing {n:,} images in {len(parts)} part(s) of {rows:,} (S = {pinfo.n_samples}) on Apache Beam "
                     f"({' '.join(beam_options) or 'DirectRunner'})")
        run_pipeline([], cfg, beam_options, parts=parts, spec=spec)
        shards = [_predicted_shard(p, staging) for p in parts]
        reduced = reduce_sharded(staging, local, shards, cfg, list(ds.class_names), data_name=ds.name,
                                 provenance=asdict(ds.provenance), dataset=ds)
        return reduced, asdict(pinfo), (staging, local)


def remove_staging(staging: tuple[str, Path], *, created_root: Path | None = None) -> None:
    """Remove a run's staging folders (and the archive root when the run created it and it is left empty)."""
    from apache_beam.io.filesystems import FileSystems

    remote, local = staging
    shutil.rmtree(local, ignore_errors=True)
    if "://" in remote:
        try:
            found = [m.path for m in FileSystems.match([_join(remote, "**")])[0].metadata_list]
            if found:
                FileSystems.delete(found)
        except Exception:  # noqa: BLE001 - best effort: a leftover temp object must not fail a written report
            pass
    else:
        shutil.rmtree(remote, ignore_errors=True)
    if created_root is not None:
        try:
            created_root.rmdir()
        except OSError:
            pass


def _stem(pattern: str) -> str:
    """A glob's file stem without its wildcards and the separators around them ('probs-*.npy' -> 'probs')."""
    stem = Path(pattern).name.split(".")[0]
    return re.sub(r"[*?\[\]]", "", stem).strip("-_.")

