"""The archive: every `<root>/<model>/<version>/` report folder, listed newest first, with an index page and trends."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from .. import metrics
from ..errors import ReportgenError
from ..report.folder import FLAGGED_FILE, HTML_FILE, MD_FILE, PDF_FILE, SUMMARY_FILE, is_safe_component, read_summary


INDEX_FILE = "index.html"
# Metrics shown per version in the archive index and `reportgen list`, in this order, with their column headers.
INDEX_METRICS = tuple(metrics.ARCHIVE_COLUMNS)
# Metrics drawn in each model's trend chart across versions.
TREND_METRICS = ("accuracy", "calibration_error")
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

    from ..report.figures import PALETTE, new_figure

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
    from ..report.figures import PALETTE, encode, new_figure

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
    from ..report.render import render

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
