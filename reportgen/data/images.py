"""Labelled image files: a folder of class subfolders or a CSV manifest, decoded on demand in batches.

`ImageFiles` stands in for the (N, H, W, C) uint8 array of `Dataset.images`: it has `.shape`,
`.dtype` and `len()`, and integer, slice and index-array `[...]` return decoded uint8 arrays, so
code that indexes a few rows (galleries) or a training subset keeps working unchanged. The
prediction loop instead calls `batches()`, a `tf.data` pipeline that decodes in parallel and holds
only a few batches, so auditing 60,000 files never holds 60,000 decoded images.

Every file is opened once at load time (Pillow reads only its header) to check that it is an image,
to learn its size and whether it is grey, and to hash its bytes for the provenance. TensorFlow is
imported only when images are decoded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError

# File name endings looked for in class folders (case-insensitive); other files are skipped.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Pillow's names of the formats TensorFlow's decoder reads.
FORMATS = ("PNG", "JPEG", "BMP", "GIF")
# Subfolder names that mark a split layout; "val"/"validation" stand for the test split when "test" is absent.
TRAIN_FOLDER, TEST_FOLDERS = "train", ("test", "val", "validation")
# CSV manifest columns: required, and the optional split column.
CSV_PATH, CSV_LABEL, CSV_SPLIT = "path", "label", "split"
# Split values a manifest may use, and the split each stands for.
CSV_SPLITS = {"train": "train", "test": "test", "val": "test", "validation": "test"}
# Pillow modes that carry no colour (a palette image counts as grey when every palette entry is grey).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# ITU-R BT.601 luma weights: colour images decoded for a one-channel model (grey pixels stay exact).
LUMA = (0.299, 0.587, 0.114)
# Images per tf.data batch when decoding rows for `[...]`.
DECODE_BATCH = 256
# Batches decoded ahead of the consumer (bounds the memory of the stream).
PREFETCH = 2


class ImageFiles:
    """(N, H, W, C) uint8 images decoded from files on demand.

    paths: (N,) str absolute file paths.
    sizes: (N, 2) int64 (height, width) of each file as stored.
    grey: (N,) bool, True when the file has no colour.
    target: (H, W, C) every image is decoded to: C = 1 (colour -> BT.601 luma) or 3 (grey repeated;
        alpha dropped); an image of another size is resized to H x W (bilinear, antialiased).
    """

    def __init__(self, paths: np.ndarray, sizes: np.ndarray, grey: np.ndarray, target: tuple[int, int, int]):
        h, w, c = (int(v) for v in target)
        if c not in (1, 3):
            raise ValueError(f"ImageFiles: images decode to 1 or 3 channels, not {c}")
        self.paths = np.asarray(paths, dtype=str)
        self.sizes = np.asarray(sizes, dtype=np.int64).reshape(len(self.paths), 2)
        self.grey = np.asarray(grey, dtype=bool)
        self.target = (h, w, c)

    # ------------------------------------------------------------------ array-like
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.target)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files -> {self.target[0]}x{self.target[1]}x{self.target[2]} uint8)"

    def __getitem__(self, key) -> np.ndarray:
        """Decoded rows: an int gives (H, W, C); a slice, an index array or a boolean mask give (M, H, W, C)."""
        if isinstance(key, (int, np.integer)):
            return self._decode(np.arange(len(self))[[key]])[0]
        if isinstance(key, slice):
            return self._decode(np.arange(len(self))[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(f"ImageFiles rows: an int, a slice or a 1-D index array, not {key!r}")
        return self._decode(np.arange(len(self))[idx])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every image decoded (what training needs; prediction streams `batches()` instead)."""
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    # ------------------------------------------------------------------ lazy views
    def subset(self, index) -> "ImageFiles":
        """Rows `index` without decoding anything."""
        idx = np.asarray(index)
        return ImageFiles(self.paths[idx], self.sizes[idx], self.grey[idx], self.target)

    def with_target(self, height: int, width: int, channels: int) -> "ImageFiles":
        """The same files decoded to another size and channel count."""
        return ImageFiles(self.paths, self.sizes, self.grey, (height, width, channels))

    @staticmethod
    def concat(parts: list["ImageFiles"]) -> "ImageFiles":
        """Every row of `parts` in order (all decoded to the first part's target)."""
        return ImageFiles(np.concatenate([p.paths for p in parts]), np.concatenate([p.sizes for p in parts]),
                          np.concatenate([p.grey for p in parts]), parts[0].target)

    @property
    def n_resized(self) -> int:
        """How many files are stored at another size than the target."""
        return int(np.sum(np.any(self.sizes != np.array(self.target[:2]), axis=1)))

    @property
    def n_converted(self) -> int:
        """How many files change colour space when decoded (colour to grey, or grey repeated to RGB)."""
        return int(np.sum(~self.grey)) if self.target[2] == 1 else int(np.sum(self.grey))

    # ------------------------------------------------------------------ decoding
    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Decoded images in order, `size` at a time: (B, H, W, C) uint8 arrays from a tf.data pipeline.

        Raises:
            DataError: naming the file that cannot be decoded.
        """
        import tensorflow as tf

        if len(self) == 0:
            return
        decode = _decoder(self.target, resize=self.n_resized > 0, all_grey=bool(self.grey.all()))
        stream = (tf.data.Dataset.from_tensor_slices(self.paths)
                  .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                  .batch(size).prefetch(PREFETCH))
        it = iter(stream)
        start = 0
        while True:
            try:
                x = next(it)
            except StopIteration:
                return
            except tf.errors.OpError as e:
                raise self._decode_error(start, min(len(self), start + size), e) from None
            yield x.numpy()
            start += size

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, *self.target), np.uint8)
        return np.concatenate(list(self.subset(rows).batches(DECODE_BATCH)))

    def _decode_error(self, lo: int, hi: int, err) -> DataError:
        """The first file of rows lo..hi that TensorFlow's decoder refuses on its own (else the first of the batch)."""
        import tensorflow as tf

        for p in self.paths[lo:hi]:
            try:
                tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
            except tf.errors.OpError as e:
                return DataError(f"{p}: cannot decode image ({_tf_reason(e)})")
        return DataError(f"{self.paths[lo]}: cannot decode one of images {lo}-{hi - 1} of this set ({_tf_reason(err)})")


def _tf_reason(e) -> str:
    """TensorFlow's error message without its op-name prefix, on one line."""
    text = str(getattr(e, "message", "") or e)
    text = text.split("}}")[-1].strip() or e.__class__.__name__
    return " ".join(text.split())[:120]


def _decoder(target: tuple[int, int, int], *, resize: bool, all_grey: bool):
    """A tf.data map function: file path -> (H, W, C) uint8 image."""
    import tensorflow as tf

    h, w, c = target
    luma = tf.constant(LUMA, tf.float32)

    @tf.autograph.experimental.do_not_convert
    def decode(path):
        # channels=3 for every format: TensorFlow's BMP and GIF decoders refuse channels=1.
        x = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        x.set_shape([None, None, 3])
        if not resize and (c == 3 or all_grey):
            return x if c == 3 else x[..., :1]  # exact: grey files decode to three equal channels
        f = tf.cast(x, tf.float32)
        if resize:
            same = tf.reduce_all(tf.equal(tf.shape(f)[:2], [h, w]))
            f = tf.cond(same, lambda: f, lambda: tf.image.resize(f, (h, w), method="bilinear", antialias=True))
            f = tf.ensure_shape(f, [h, w, 3])
        if c == 1:
            # Luma of a grey pixel (r = g = b) is within 0.03 of it, so rounding keeps grey files exact.
            f = tf.reduce_sum(f * luma, axis=-1, keepdims=True)
        return tf.cast(tf.clip_by_value(tf.round(f), 0.0, 255.0), tf.uint8)

    return decode


def _reason(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
    return msg[:120]


# --------------------------------------------------------------------------- finding and checking files


@dataclass(frozen=True)
class FileSet:
    """Labelled image files as found on disk, before they become Datasets.

    kind: "folder" or "csv"; path: the folder or manifest.
    class_names: K names; label i is class_names[i].
    parts: split name ("train", "test" or "all") -> (ImageFiles, (N,) int64 labels), in file order.
    sha256: hash of every file's bytes and relative path (and of the manifest itself).
    notes: what the loader decided on the user's behalf (sizes, skipped files, val used as test).
    """

    kind: str
    path: Path
    class_names: list[str]
    parts: dict
    sha256: str
    notes: list[str] = field(default_factory=list)


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _subfolders(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _files_under(d: str) -> tuple[list[str], int]:
    """Absolute paths of the image files below folder `d` (recursively, sorted), and how many other files were skipped."""
    found, skipped = [], 0
    for root, dirs, files in os.walk(d):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if _is_image_name(f):
                found.append(os.path.join(root, f))
            elif not f.startswith("."):
                skipped += 1
    return found, skipped


def has_image_folders(d: Path) -> bool:
    """True when `d` has subfolders that could hold classes (or train/test splits of them)."""
    return bool(_subfolders(d))


def scan_folder(root: str | Path) -> FileSet:
    """A folder of class subfolders, or of train/ and test/ (or val/) subfolders that each hold class subfolders.

    Class names are the subfolder names in sorted order, the order Keras'
    `image_dataset_from_directory` gives them, so label i means the same class to both.

    Raises:
        DataError: no class folders, no images, a file that is not a readable image.
    """
    d = Path(root).resolve()
    subs = _subfolders(d)
    names = {p.name for p in subs}
    test_name = next((t for t in TEST_FOLDERS if t in names), None)
    notes = []
    if TRAIN_FOLDER in names and test_name and names <= {TRAIN_FOLDER, *TEST_FOLDERS}:
        layout = {"train": d / TRAIN_FOLDER, "test": d / test_name}
        if test_name != "test":
            notes.append(f"{root}: the {test_name}/ folder is used as the test split")
        for other in sorted(names - {TRAIN_FOLDER, test_name}):
            notes.append(f"{root}: the {other}/ folder is not used (the test split is {test_name}/)")
    else:
        layout = {"all": d}
    class_names = sorted({c.name for folder in layout.values() for c in _subfolders(folder)})
    if not class_names:
        raise DataError(f"{root}: no class subfolders (expected <class>/<image> files, optionally under train/ and test/)")
    index = {name: i for i, name in enumerate(class_names)}
    per_split, skipped = {}, 0
    for split, folder in layout.items():
        paths, labels = [], []
        for c in _subfolders(folder):
            files, skip = _files_under(str(c))
            skipped += skip
            paths += files
            labels += [index[c.name]] * len(files)
        if not paths:
            raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its class subfolders")
        per_split[split] = (paths, np.array(labels, dtype=np.int64), None)
    if skipped:
        notes.append(f"{root}: {skipped} file(s) without an image name ending ({', '.join(IMAGE_EXTENSIONS)}) were skipped")
    return _checked(Path(root), "folder", class_names, per_split, notes, base=str(d))


def scan_csv(path: str | Path) -> FileSet:
    """A CSV manifest with columns `path` and `label` (optionally `split`: train, test, val), paths relative to it.

    Labels that are all integers are class indices; otherwise they are class names, numbered in
    sorted order.

    Raises:
        DataError: missing columns, an empty cell, an unknown split, a row whose file is missing or not an image.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot read the manifest ({_reason(e)})") from e
    reader = csv.DictReader(io.StringIO(text))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if CSV_PATH not in cols or CSV_LABEL not in cols:
        raise DataError(f"{p}: a manifest needs columns '{CSV_PATH}' and '{CSV_LABEL}' (found {', '.join(cols) or 'none'})")
    reader.fieldnames = cols
    base = os.path.dirname(os.path.abspath(p))
    rows = []
    for line, row in enumerate(reader, start=2):
        file, label = (row.get(CSV_PATH) or "").strip(), (row.get(CSV_LABEL) or "").strip()
        split = ((row.get(CSV_SPLIT) or "").strip().lower() if CSV_SPLIT in cols else "") or "all"
        if not file or not label:
            raise DataError(f"{p}: line {line} has an empty '{CSV_PATH if not file else CSV_LABEL}' cell")
        if split != "all" and split not in CSV_SPLITS:
            raise DataError(f"{p}: line {line} has split '{split}'; use one of {', '.join(CSV_SPLITS)}")
        rows.append((line, os.path.normpath(os.path.join(base, file)), label, CSV_SPLITS.get(split, "all")))
    if not rows:
        raise DataError(f"{p}: the manifest lists no images")
    labels_text = [r[2] for r in rows]
    if all(re.fullmatch(r"\d+", t) for t in labels_text):
        values = [int(t) for t in labels_text]
        class_names = [str(i) for i in range(max(max(values) + 1, 2))]
    else:
        class_names = sorted(set(labels_text))
        pos = {name: i for i, name in enumerate(class_names)}
        values = [pos[t] for t in labels_text]
    splits_used = {r[3] for r in rows}
    if "all" in splits_used and len(splits_used) > 1:
        raise DataError(f"{p}: some rows have a split and some do not; give every row one")
    if len(splits_used) == 1:
        splits_used = {"all"}  # one split only: the whole set (reportgen holds part of it out when it trains)
    per_split = {}
    for split in sorted(splits_used):
        chosen = [i for i, r in enumerate(rows) if split == "all" or r[3] == split]
        per_split[split] = ([rows[i][1] for i in chosen], np.array([values[i] for i in chosen], dtype=np.int64),
                            [rows[i][0] for i in chosen])
    return _checked(p, "csv", class_names, per_split, [], base=base, manifest=text.encode())


def _checked(root: Path, kind: str, class_names: list[str], per_split: dict, notes: list[str], *, base: str,
             manifest: bytes = b"") -> FileSet:
    """Open every file once: check it is an image, learn its size and colour, hash its bytes; pick the common size.

    per_split: split -> (absolute paths, labels, manifest line of each row or None).
    """
    from concurrent.futures import ThreadPoolExecutor

    h = hashlib.sha256(manifest)
    info = {}
    pool = ThreadPoolExecutor(max_workers=SCAN_THREADS)
    try:
        for split, (paths, _, lines) in per_split.items():
            sizes = np.zeros((len(paths), 2), np.int64)
            grey = np.zeros(len(paths), bool)
            for i, got in enumerate(pool.map(_inspect, paths)):
                if isinstance(got, str):
                    where = f"{root}: line {lines[i]}: {paths[i]}" if lines else paths[i]
                    raise DataError(f"{where} {got}")
                digest, (hh, w), grey[i] = got
                sizes[i] = (hh, w)
                h.update(os.path.relpath(paths[i], base).encode() + b"\0" + digest)
            info[split] = (np.array(paths), sizes, grey)
    finally:
        pool.shutdown(cancel_futures=True)  # on an error, do not inspect the files still queued
    all_sizes = np.concatenate([s for _, s, _ in info.values()])
    all_grey = np.concatenate([g for _, _, g in info.values()])
    counts = Counter(map(tuple, all_sizes.tolist()))
    (th, tw), n_common = counts.most_common(1)[0]
    channels = 1 if all_grey.all() else 3
    n = len(all_sizes)
    if len(counts) > 1:
        notes.append(f"{root}: images come in {len(counts)} sizes; the most common, {th}×{tw} ({n_common:,} of {n:,}), "
                     "is the data set's size, and other images are resized to it unless a model asks for another")
    if channels == 3 and all_grey.any():
        notes.append(f"{root}: {int(all_grey.sum()):,} grey images among colour ones are decoded as RGB (grey repeated)")
    parts = {split: (ImageFiles(paths, sizes, grey, (th, tw, channels)), per_split[split][1])
             for split, (paths, sizes, grey) in info.items()}
    return FileSet(kind, root, class_names, parts, h.hexdigest(), notes)


# Threads that read and inspect files at load time (reading releases the GIL).
SCAN_THREADS = 4
# PNG signature, and the colour types of its IHDR chunk that carry no colour (grey, grey + alpha).
_PNG_SIGNATURE, _PNG_GREY_TYPES = b"\x89PNG\r\n\x1a\n", (0, 4)


def _inspect(path: str):
    """(sha256 digest, (height, width), grey) of one file, or the problem as the rest of a sentence."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    digest = hashlib.sha256(raw).digest()
    if raw[:8] == _PNG_SIGNATURE and raw[12:16] == b"IHDR" and len(raw) >= 26 and raw[25] != 3:
        # PNG without a palette: size and colour type sit at fixed offsets of the IHDR chunk.
        w, hh = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
        return digest, (hh, w), raw[25] in _PNG_GREY_TYPES
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            fmt, mode, (w, hh) = im.format, im.mode, im.size
            grey = mode in GREY_MODES or (mode == "P" and _grey_palette(im))
    except UnidentifiedImageError:
        return f"is not an image (not {', '.join(FORMATS[:-1])} or {FORMATS[-1]} data)"
    except (OSError, ValueError, SyntaxError) as e:
        return f"is not a readable image ({_reason(e)})"
    if fmt not in FORMATS:
        return f"is a {fmt} image; reportgen reads {', '.join(FORMATS)}"
    return digest, (hh, w), grey


def _grey_palette(im) -> bool:
    pal = im.getpalette() or []
    return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
