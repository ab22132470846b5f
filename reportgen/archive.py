"""The report archive on disk: `<root>/<model-name>/<version>/`, written atomically, with a manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from .errors import OutputError, ReportgenError

# Per-version file that lists the sha256 of every other file in the folder.
MANIFEST = "manifest.json"
# Names usable as one path component on every platform.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
# Prefix of the staging folders a run writes into before the final rename.
STAGING_PREFIX = ".staging-"


def check_component(value: str, what: str) -> str:
    """Return `value` if it is a safe single path component, else raise naming `what`."""
    if not _SAFE.match(value or "") or value in (".", ".."):
        raise ReportgenError(f"{what} {value!r}: use letters, digits, '.', '_', '+', '-' (max 128, not starting with a symbol)")
    return value


def version_dir(root: str | Path, model_name: str, version: str) -> Path:
    """Where a model version's report lives."""
    return Path(root) / check_component(model_name, "model name") / check_component(version, "version")


@contextlib.contextmanager
def staged_folder(final: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; rename it to `final` only if the block succeeds.

    On any failure (including Ctrl-C) the staging folder, and any parent this call created,
    are removed, so no half-written report is ever visible.
    """
    if final.exists() and not force:
        raise OutputError(f"{final}: already exists; pass --force to overwrite it")
    created: list[Path] = []
    parent = final.parent
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = parent / f"{STAGING_PREFIX}{final.name}-{os.getpid()}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
    except OSError as e:
        _remove_created(created)
        raise OutputError(f"{final.parent}: cannot write the report folder ({e.strerror or e})") from e
    try:
        yield stage
        old = None
        if final.exists():
            old = parent / f"{STAGING_PREFIX}{final.name}-old-{os.getpid()}"
            os.replace(final, old)
        os.replace(stage, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    for d in created:  # deepest first
        with contextlib.suppress(OSError):
            d.rmdir()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> Path:
    """Write `manifest.json`: sha256 and size of every other file in `folder` (recursively)."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(folder).as_posix()] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
    out = folder / MANIFEST
    out.write_text(json.dumps({"algorithm": "sha256", "files": files}, indent=2) + "\n")
    return out


def verify(folder: str | Path) -> list[str]:
    """Re-check a version folder against its manifest; return the problems (empty = intact)."""
    d = Path(folder)
    mf = d / MANIFEST
    if not mf.exists():
        raise ReportgenError(f"{mf}: no manifest (not a reportgen version folder?)")
    try:
        listed = json.loads(mf.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportgenError(f"{mf}: unreadable manifest ({e.__class__.__name__})") from e
    problems = []
    for rel, entry in listed.items():
        p = d / rel
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif file_sha256(p) != entry.get("sha256"):
            problems.append(f"{p}: changed (sha256 differs from the manifest)")
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != MANIFEST and p.relative_to(d).as_posix() not in listed:
            problems.append(f"{p}: not in the manifest")
    return problems
