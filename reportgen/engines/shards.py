"""Files on any Beam file system: .npy headers and row ranges, shard globs, staging folders, the chunks a run reads.

A chunk (ChunkSpec) names files and a row range, never the rows themselves, so the job graph stays small whatever N
is, and each chunk reads only its own bytes of a .npy file (its rows are a contiguous byte range after the header).
apache_beam is imported inside the functions.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

# Rows per chunk: a shard (or a predicted part) is read in row ranges of at most this many rows.
CHUNK_ROWS = 1 << 16
# Name prefix of a run's staging folder (under --temp_location, else under the archive root), removed after the run.
STAGING_PREFIX = ".beam-"


@dataclass(frozen=True)
class ChunkSpec:
    """Rows start:start+rows of the audit, as files to read: small enough for the job graph.

    key: a name for the chunk's own output files; probs: inference mode -> .npy of probabilities; offset: the first row
    of these rows inside the files; labels: .npy of given labels; aleatoric, std: .npy of the sampled mode's E_s H[p_s]
    and spread (runs that predict); source: .npz of the rows' split, source row and file (runs that predict); error: a
    one-line message when the rows could not be predicted.
    """

    key: str
    start: int
    rows: int
    probs: dict
    labels: str
    offset: int = 0
    aleatoric: str = ""
    std: str = ""
    source: str = ""
    error: str = ""
    sampled: str | None = None
    extra: dict = field(default_factory=dict)


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def open_read(path: str):
    from apache_beam.io.filesystems import CompressionTypes

    return _fs().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path: str):
    """A binary stream writing `path` on any Beam file system (local folders are created first)."""
    from apache_beam.io.filesystems import CompressionTypes

    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _fs().create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def join(base: str, *parts: str) -> str:
    return _fs().join(base, *parts)


def safe(key: str) -> str:
    """A key as a file name part."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key) or "chunk"


def npy_header(path: str) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran order, byte offset of the data) of a .npy file, from its header alone."""
    fmt = np.lib.format
    try:
        with open_read(path) as f:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            return shape, dtype, fortran, f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({str(e).splitlines()[0][:100]})") from e


def read_rows(path: str, start: int, rows: int) -> np.ndarray:
    """Rows start:start+rows of a C-order .npy file, reading only their bytes."""
    shape, dtype, fortran, offset = npy_header(path)
    if fortran or dtype.hasobject:
        raise DataError(f"{path}: a sharded run reads plain C-order numeric .npy arrays (np.save of a numeric array)")
    if start + rows > shape[0]:
        raise DataError(f"{path}: rows {start}:{start + rows} are beyond its {shape[0]} rows")
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    try:
        with open_read(path) as f:
            f.seek(offset + start * row_bytes)
            data = f.read(rows * row_bytes)
    except OSError as e:
        raise DataError(f"{path}: cannot read rows {start}:{start + rows} ({e.__class__.__name__})") from e
    if len(data) != rows * row_bytes:
        raise DataError(f"{path}: truncated (rows {start}:{start + rows} are not all there)")
    return np.frombuffer(data, dtype=dtype).reshape((rows, *shape[1:]))


def load(path: str) -> np.ndarray:
    """A whole .npy or .npz file from any Beam file system."""
    try:
        with open_read(path) as f:
            return np.load(io.BytesIO(f.read()), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable numpy file ({str(e).splitlines()[0][:100] or e.__class__.__name__})") from e


def write_npy(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    with open_write(path) as out:
        out.write(buf.getvalue())


def write_npz(path: str, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with open_write(path) as out:
        out.write(buf.getvalue())


def copy(src: str, dst: str) -> None:
    """Copy one file between any two Beam file systems."""
    with open_read(src) as a, open_write(dst) as b:
        shutil.copyfileobj(a, b, 1 << 20)


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex of a glob's file name whose groups capture what each wildcard matched."""
    out = ""
    for part in re.split(r"(\*|\?)", Path(pattern).name):
        out += "(.*)" if part == "*" else "(.)" if part == "?" else re.escape(part)
    return re.compile(out + r"\Z")


def match(pattern: str) -> dict[str, str]:
    """key -> path of the files matching a glob (key: the wildcards' matches joined by '/')."""
    if not any(c in Path(pattern).name for c in "*?"):
        raise DataError(f"{pattern}: a sharded run needs a glob with * in the file name, e.g. 'shards/probs-*.npy'")
    try:
        found = [m.path for m in _fs().match([pattern])[0].metadata_list]
    except Exception as e:  # noqa: BLE001 - every file system raises its own error type
        raise DataError(f"{pattern}: cannot list the shards ({str(e).splitlines()[0][:120]})") from e
    rx = _pattern_regex(pattern)
    out = {"/".join(m.groups()): path for path in found if (m := rx.match(Path(path).name))}
    if not out:
        raise DataError(f"{pattern}: no file matches")
    return out


def list_files(pattern: str) -> list[str]:
    """The paths matching a pattern on any Beam file system, sorted (none when nothing matches)."""
    return sorted(m.path for m in _fs().match([pattern])[0].metadata_list)


def natural(key: str) -> list:
    """Sort key putting shard 2 before shard 10 (digit runs compared as numbers)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key) if t]


def plan_saved(predictions: str, labels: str) -> tuple[list[ChunkSpec], int]:
    """The chunks of two globs of saved shards (matched by the part of the name the wildcards match, rows numbered across
    the shards in natural key order), each shard cut into row ranges of CHUNK_ROWS; and K. Only headers are read.

    Raises:
        DataError: no match, a shard without its partner, bad shapes, or shards with different K.
    """
    probs, labs = match(predictions), match(labels)
    lonely = sorted(set(probs) ^ set(labs))
    if lonely:
        side = predictions if lonely[0] in probs else labels
        raise DataError(f"{side}: shard {lonely[0]!r} has no partner in the other glob ({len(lonely)} unmatched)")
    chunks, start, k = [], 0, None
    for key in sorted(probs, key=natural):
        (shape, dtype, _, _), (lshape, _, _, _) = npy_header(probs[key]), npy_header(labs[key])
        if len(shape) != 2 or shape[1] < 2 or dtype.kind not in "fiu":
            raise DataError(f"{probs[key]}: probabilities must be a numeric (n, K >= 2) array; got shape {shape}, dtype {dtype}")
        if k is not None and shape[1] != k:
            raise DataError(f"{probs[key]}: {shape[1]} classes, but the shards before it have {k}")
        if len(lshape) != 1 or lshape[0] != shape[0]:
            raise DataError(f"{labs[key]}: {lshape} labels for {shape[0]} rows of {probs[key]}")
        k = shape[1]
        for offset in range(0, shape[0], CHUNK_ROWS):
            rows = min(CHUNK_ROWS, shape[0] - offset)
            chunks.append(ChunkSpec(f"{key}-{offset}" if shape[0] > CHUNK_ROWS else key, start, rows, {"saved": probs[key]},
                                    labs[key], offset=offset))
            start += rows
    if start < 2:
        raise DataError(f"{predictions}: {start} row(s); an audit needs at least 2")
    return chunks, int(k)


def concat_sha256(paths: list[str]) -> str:
    """sha256 of the shards as one .npy file: what np.save of their concatenation (in shard order) would write.

    So a sharded audit records the same data and model sha256 (and default version) as a local audit of the
    concatenated arrays. Shards whose dtypes or memory orders differ cannot be one file: then the sha256 of the
    shards' own sha256s, in order.
    """
    fmt = np.lib.format
    heads = [npy_header(p) for p in paths]
    if len({(h[0][1:], h[2], h[1].str) for h in heads}) == 1 and not heads[0][2]:
        header = io.BytesIO()
        fmt.write_array_header_1_0(header, {"shape": (sum(h[0][0] for h in heads), *heads[0][0][1:]), "fortran_order": False,
                                            "descr": fmt.dtype_to_descr(heads[0][1])})
        h = hashlib.sha256(header.getvalue())
        for p, head in zip(paths, heads):
            with open_read(p) as f:
                f.seek(head[3])
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()
    h = hashlib.sha256()
    for p in paths:
        inner = hashlib.sha256()
        with open_read(p) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                inner.update(block)
        h.update(inner.hexdigest().encode())
    return h.hexdigest()


def staging_location(output: str, beam_options: tuple[str, ...]) -> str:
    """Where the workers read and write a run's files: a new folder under --temp_location when the Beam options give one
    (a bucket every worker of a cluster can reach), else under the archive root (which the workers must then see)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    name = f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    temp = PipelineOptions(list(beam_options)).view_as(GoogleCloudOptions).temp_location
    return join(temp, name.lstrip(".")) if temp else str((Path(output) / name).resolve())


def remove(location: str) -> None:
    """Remove a staging folder on any Beam file system (best effort: a leftover temp object must not fail a report)."""
    if "://" not in location:
        shutil.rmtree(location, ignore_errors=True)
        return
    try:
        found = [m.path for m in _fs().match([join(location, "**")])[0].metadata_list]
        if found:
            _fs().delete(found)
    except Exception:  # noqa: BLE001
        pass


def local_copy(paths: list[str], local: Path) -> list[tuple[str, str]]:
    """(name in the report folder, local path) of per-chunk files; files on a remote file system are copied into `local`."""
    out = []
    for p in paths:
        sub, name = Path(p).parent.name, Path(p).name
        if "://" in p:
            target = local / sub / name
            target.parent.mkdir(parents=True, exist_ok=True)
            copy(p, str(target))
            out.append((f"{sub}/{name}", str(target)))
        else:
            out.append((f"{sub}/{name}", p))
    return out


def stem(pattern: str) -> str:
    """A glob's file stem without its wildcards and the separators around them ('probs-*.npy' -> 'probs')."""
    name = Path(pattern).name.split(".")[0]
    return re.sub(r"[*?\[\]]", "", name).strip("-_.")
