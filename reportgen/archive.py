"""The report archive on disk: `<root>/<model-name>/<version>/`, written atomically, with a manifest."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from . import metrics
from .data import sha256_file
from .errors import OutputError, ReportgenError

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


# --------------------------------------------------------------------------- the archive index

INDEX_FILE = "index.html"
# Metrics shown per version in the archive index and `reportgen list`, in this order, with their column headers.
INDEX_METRICS = tuple(metrics.ARCHIVE_COLUMNS)
# Metrics drawn in each model's trend chart across versions.
TREND_METRICS = ("accuracy", "ece")
# Prefix of the comparison folders `reportgen compare` writes inside the newer version.
COMPARE_PREFIX = "compare-"


def _created_key(created_at: str | None) -> _dt.datetime:
    """A sortable time for an ISO-8601 `created_at` (missing or malformed: the oldest possible)."""
    try:
        t = _dt.datetime.fromisoformat(str(created_at))
    except ValueError:
        return _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _number(value):
    """A metric value read from disk if it is a number, else None (a crafted summary cannot break the index)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _visible_dirs(folder: Path) -> list[Path]:
    """Subfolders whose names are safe components (skips .models, .staging-* and names that could steer a link)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and is_safe_component(p.name))
    except OSError:
        return []


def list_versions(root: str | Path) -> list[dict]:
    """Every `<model>/<version>/` under `root` with a summary.json, newest first.

    Returns:
        [{"model", "version", "path" (relative, posix), "created_at", "title", "data", "metrics" (INDEX_METRICS),
          "files" (report files present), "compares" ([{"name", "path"}]), "error" (None or why the summary is unreadable)}].
        A version whose summary.json cannot be read is still listed, with "error" set.
    """
    root = Path(root)
    out = []
    for model in _visible_dirs(root):
        for vdir in _visible_dirs(model):
            sfile = vdir / SUMMARY_FILE
            if not sfile.is_file():
                continue
            entry = {"model": model.name, "version": vdir.name, "path": f"{model.name}/{vdir.name}", "created_at": None,
                     "title": f"{model.name} {vdir.name}", "data": None, "metrics": {k: None for k in INDEX_METRICS},
                     "files": [], "compares": [], "error": None}
            try:
                s = read_summary(vdir)
                m = s["metrics"]
                entry.update(created_at=s.get("created_at"), title=str(s.get("title", entry["title"])),
                             data=str((s.get("data") or {}).get("name")), metrics={k: _number(m.get(k)) for k in INDEX_METRICS})
            except ReportgenError as e:
                entry["error"] = str(e).removeprefix(f"{vdir}{os.sep}")
            entry["files"] = [f for f in (HTML_FILE, PDF_FILE, MD_FILE, SUMMARY_FILE, FLAGGED_FILE) if (vdir / f).is_file()]
            entry["compares"] = [{"name": c.name[len(COMPARE_PREFIX):], "path": f"{entry['path']}/{c.name}/compare.html"}
                                 for c in _visible_dirs(vdir) if c.name.startswith(COMPARE_PREFIX) and (c / "compare.html").is_file()]
            out.append(entry)
    out.sort(key=lambda e: (_created_key(e["created_at"]), e["model"], e["version"]), reverse=True)
    return out


def plot_trend(versions: list[str], values: list[float | None], *, ylabel: str, ax=None, color: str | None = None):
    """One metric across a model's versions (oldest left); a version without the metric is a gap.

    Args:
        versions: N version labels in chronological order.
        values: N values (None: not measured).
    Returns:
        The Axes.
    """
    import numpy as np

    from .figures import PALETTE, new_figure

    if ax is None:
        ax = new_figure(4.0, 2.8)[1][0, 0]
    y = np.array([np.nan if v is None else float(v) for v in values])
    x = np.arange(len(versions))
    ax.plot(x, y, marker="o", color=color or PALETTE["blue"])
    ax.set_xticks(x)
    ax.set_xticklabels(versions, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("version (oldest → newest)")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", color=PALETTE["grey"], alpha=0.3)
    return ax


def _trend_figure(model: str, chronological: list[dict]) -> dict:
    """The trend chart of one model as {key, title, alt, uri, note}."""
    from .figures import PALETTE, encode, new_figure

    fmt, names = metrics.fmt, metrics.names()
    labels = [v["version"] for v in chronological]
    fig, axes = new_figure(8.0, 3.0, ncols=len(TREND_METRICS))
    colours = (PALETTE["blue"], PALETTE["vermillion"], PALETTE["green"])
    described = []
    for ax, key, colour in zip(axes[0], TREND_METRICS, colours):
        values = [v["metrics"].get(key) for v in chronological]
        scale = 100.0 if key == "accuracy" else 1.0
        label = metrics.ARCHIVE_COLUMNS.get(key, key)
        plot_trend(labels, [None if x is None else scale * x for x in values],
                   ylabel=f"{label} (%)" if key == "accuracy" else label, ax=ax, color=colour)
        ax.set_title(f"{model}: {names.get(key, key)}", fontsize=9)
        described.append(f"{names.get(key, key)}: " + ", ".join(f"{lab} {fmt(x, key)}" for lab, x in zip(labels, values)))
    fig.tight_layout()
    asset = encode(fig, key=f"trend-{model}", title=f"{model}: trend across {len(labels)} versions",
                   alt=f"Line charts of {model} across its versions, oldest first. " + "; ".join(described) + ".")
    return {"key": asset.key, "title": asset.title, "alt": asset.alt, "uri": asset.uri, "note": asset.note}


def index_context(root: str | Path) -> dict:
    """The plain-data context of the archive's index.html."""
    versions = list_versions(root)
    models: dict[str, list[dict]] = {}
    for v in versions:  # newest first, so models appear in order of their latest version
        models.setdefault(v["model"], []).append(v)
    groups = []
    for name, vs in models.items():
        chronological = [v for v in reversed(vs) if v["error"] is None]
        measured = [v for v in chronological if any(v["metrics"].get(k) is not None for k in TREND_METRICS)]
        groups.append({"name": name, "n_versions": len(vs), "latest": vs[0]["version"],
                       "trend": _trend_figure(name, measured) if len(measured) >= 2 else None})
    return {
        "title": "Report archive",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
        "models": groups,
        "index_metrics": list(INDEX_METRICS),
        "index_labels": metrics.ARCHIVE_COLUMNS,
        "metric_names": metrics.names(),
    }


def write_index(root: str | Path) -> Path:
    """Write `<root>/index.html`: every model/version, newest first, with links and per-model trend charts.

    Folders starting with '.' (.models, .staging-*) are skipped; a version with an unreadable
    summary.json is listed with the problem instead of failing. The file is replaced atomically.

    Returns:
        The path of index.html.
    """
    from .render import render

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    html = render(INDEX_FILE, index_context(root))
    out = root / INDEX_FILE
    tmp = root / f".{INDEX_FILE}.tmp-{os.getpid()}"
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
