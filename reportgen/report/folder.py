"""The report archive on disk: `<root>/<model-name>/<version>/`, written atomically, with a manifest."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from ..data.datasets import sha256_file
from ..errors import OutputError, ReportgenError

# The files of a version folder.
HTML_FILE = "report.html"
PDF_FILE = "report.pdf"
MD_FILE = "report.md"
SUMMARY_FILE = "summary.json"
FLAGGED_FILE = "flagged.csv"
# Per-version file that lists the sha256 of every other file in the folder.
MANIFEST = "manifest.json"
# Names usable as one path component on every platform.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
# Prefix of the staging folders a run writes into before the final rename.
STAGING_PREFIX = ".staging-"


def is_safe_component(value) -> bool:
    """True when `value` is usable as one path component and as a relative link (no '/', '..', ':', spaces)."""
    return isinstance(value, str) and bool(_SAFE.match(value)) and value not in (".", "..")


def check_component(value: str, what: str) -> str:
    """Return `value` if it is a safe single path component, else raise naming `what`.

    Used for --name / --version and for every name or version read back from an archive
    (summary.json, folder names), so archive contents never steer a path or a link.
    """
    if not is_safe_component(value):
        raise ReportgenError(f"{what} {value!r}: use letters, digits, '.', '_', '+', '-' (max 128, not starting with a symbol)")
    return value


def read_summary(folder: str | Path) -> dict:
    """The summary.json of a version folder, checked to be a reportgen summary.

    Raises:
        ReportgenError: missing, unreadable, not JSON, or without a "metrics" object (one line naming the file).
    """
    sfile = Path(folder) / SUMMARY_FILE
    try:
        summary = json.loads(sfile.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportgenError(f"{sfile}: missing (not a reportgen version folder?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReportgenError(f"{sfile}: unreadable ({e.__class__.__name__})") from e
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise ReportgenError(f"{sfile}: no 'metrics' object (not a reportgen summary?)")
    return summary


def version_dir(root: str | Path, model_name: str, version: str) -> Path:
    """Where a model version's report lives."""
    return Path(root) / check_component(model_name, "model name") / check_component(version, "version")


def refuse_existing(final: Path, force: bool) -> None:
    """OutputError for an existing version folder without --force (checked before any slow work, and again at the end)."""
    if final.exists() and not force:
        raise OutputError(f"{final}: already exists; pass --force to overwrite it")


@contextlib.contextmanager
def staged_folder(final: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; rename it to `final` only if the block succeeds.

    The staging folder has a unique name (uuid). The final step is one atomic rename, which the operating system
    refuses when `final` exists (with files) by then: when another run created it meanwhile, this one fails with the
    one-line "already exists" error (unless `force`) and its staging folder goes, so neither run's report is lost.
    With `force` the existing folder is moved aside first and put back if the rename fails. On any failure (including
    Ctrl-C) the staging folder, and any parent this call created, are removed, so no half-written report is visible.
    """
    refuse_existing(final, force)
    created: list[Path] = []
    parent = final.parent
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = parent / f"{STAGING_PREFIX}{final.name}-{uuid.uuid4().hex}"
        stage.mkdir()
    except OSError as e:
        _remove_created(created)
        raise OutputError(f"{final.parent}: cannot write the report folder ({e.strerror or e})") from e
    try:
        yield stage
        try:
            os.rename(stage, final)  # atomic; fails when another run has written `final` meanwhile
        except OSError:
            if not final.exists():
                raise
            refuse_existing(final, force)
            old = parent / f"{STAGING_PREFIX}{final.name}-old-{uuid.uuid4().hex}"
            os.replace(final, old)
            try:
                os.rename(stage, final)
            except BaseException:
                os.replace(old, final)  # put the replaced version back
                raise
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    for d in created:  # deepest first
        with contextlib.suppress(OSError):
            d.rmdir()


def _shallow_first(paths) -> list[Path]:
    """Paths sorted by depth, then name, so an outer sealed folder is seen before the ones inside it."""
    return sorted(paths, key=lambda p: (len(p.parts), p))


def _sealed_below(folder: Path) -> list[Path]:
    """Topmost strict subfolders of `folder` that hold their own manifest (e.g. a compare-*/ report)."""
    out: list[Path] = []
    for mf in _shallow_first(folder.rglob(MANIFEST)):
        d = mf.parent
        if d != folder and not any(s in d.parents for s in out):
            out.append(d)
    return out


def _unit_files(folder: Path) -> list[Path]:
    """Files that `folder`'s own manifest covers: all below it except the manifest and nested sealed units."""
    nested = _sealed_below(folder)
    return [p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST and not any(n in p.parents for n in nested)]


def write_manifest(folder: Path) -> Path:
    """Write `manifest.json`: sha256 and size of every other file in `folder` (recursively).

    A subfolder with its own manifest.json (a comparison report written later) is a separate sealed
    unit: it is left out here and verified on its own.
    """
    files = {}
    for p in _unit_files(folder):
        files[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    out = folder / MANIFEST
    out.write_text(json.dumps({"algorithm": "sha256", "files": files}, indent=2) + "\n")
    return out


def verify(folder: str | Path) -> list[str]:
    """Re-check a folder against its manifest, and every sealed subfolder against its own.

    Returns:
        One line per problem, each naming the file (empty list: intact).
    Raises:
        ReportgenError: no manifest, or an unreadable one.
    """
    d = Path(folder)
    mf = d / MANIFEST
    if not mf.exists():
        raise ReportgenError(f"{mf}: no manifest (not a reportgen version folder?)")
    try:
        listed = json.loads(mf.read_text())["files"]
        if not isinstance(listed, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportgenError(f"{mf}: unreadable manifest ({e.__class__.__name__})") from e
    problems = []
    for rel, entry in listed.items():
        p = d / rel
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif not isinstance(entry, dict) or sha256_file(p) != entry.get("sha256"):
            problems.append(f"{p}: changed (sha256 differs from the manifest)")
    for p in _unit_files(d):
        if p.relative_to(d).as_posix() not in listed:
            problems.append(f"{p}: not in the manifest")
    for sub in _sealed_below(d):
        problems.extend(verify(sub))
    return problems


def sealed_units(root: str | Path) -> list[Path]:
    """Folders to verify under `root`: `root` itself if it has a manifest, else the topmost folders
    below it that have one (hidden folders such as .models and .staging-* skipped)."""
    root = Path(root)
    if (root / MANIFEST).exists():
        return [root]
    out: list[Path] = []
    for mf in _shallow_first(root.rglob(MANIFEST)):
        d = mf.parent
        rel = d.relative_to(root).parts
        if any(part.startswith(".") for part in rel) or any(s in d.parents for s in out):
            continue
        out.append(d)
    return sorted(out)
