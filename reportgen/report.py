"""Report context (plain data) and its renderings: report.html, report.pdf, summary.json, flagged.csv."""

from __future__ import annotations

import csv
import json
import math
import platform
import socket
from dataclasses import asdict
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import numpy as np

HTML_FILE = "report.html"
PDF_FILE = "report.pdf"
SUMMARY_FILE = "summary.json"
FLAGGED_FILE = "flagged.csv"
# Flagged samples listed in the report's table (all of them go to flagged.csv).
TABLE_ROWS = 30
# Packages whose versions are recorded in the provenance.
PACKAGES = ("reportgen", "tensorflow", "tensorflow-probability", "keras", "numpy", "matplotlib", "jinja2", "weasyprint", "click")
CONFIDENCE_NOTE = (
    "The original TFP example plots the maximum probability and calls it aleatoric uncertainty; "
    "it is the model's confidence, and a high value means low uncertainty, so this report calls it "
    "confidence and measures uncertainty with entropies instead."
)
# Extra display names for the metrics pipeline adds to uncertainty.METRIC_NAMES.
EXTRA_METRIC_NAMES = {
    "n_flagged": "Samples flagged as possible label errors",
    "n_issues_estimated": "Estimated label errors (confident learning)",
    "label_error_rate": "Estimated label-error rate",
}
# Metrics shown as percentages.
PERCENT_KEYS = {"accuracy", "acc_at_80", "acc_at_90", "acc_at_95", "acc_at_99", "coverage_1pct", "label_error_rate"}
# Headline metrics on the first page, in order.
HEADLINE = ("accuracy", "n_samples", "mean_confidence", "ece", "nll", "brier", "aurc", "mean_aleatoric", "mean_epistemic", "n_flagged", "label_error_rate")


def metric_names() -> dict[str, str]:
    """Display name of every metric key."""
    from .uncertainty import METRIC_NAMES

    return {**METRIC_NAMES, **EXTRA_METRIC_NAMES}


def fmt(value: Any, key: str = "") -> str:
    """The one way a metric value is displayed (HTML, PDF and tests use it)."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if key in PERCENT_KEYS:
        return f"{100 * v:.2f} %"
    return f"{v:.4f}"


def _plain(x: Any) -> Any:
    """numpy -> JSON-ready Python values (NaN -> None), recursively."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(x, Path):
        return str(x)
    return x


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = _md.version(p)
        except _md.PackageNotFoundError:
            out[p] = "not installed"
    return out


def build_context(*, audit, result, figures, method: dict, model_name: str, version: str, model_info: dict,
                  data_role: str, notes: list[str], command: str, options: dict, reportgen_version: str,
                  created_at: str) -> dict:
    """The plain-data context that every rendering uses (JSON-serialisable as it is)."""
    names = metric_names()
    m = _plain(result.metrics)
    iss, tri, st = result.issues, result.triage, result.stats
    cats = list(tri.category)
    k = audit.n_classes
    flagged_rows = [
        {
            "index": int(i), "given": audit.class_names[audit.labels[i]], "suggested": audit.class_names[s],
            "self_confidence": float(sc), "score": float(score), "category": str(c),
        }
        for i, s, sc, score, c in list(zip(iss.flagged, iss.suggested, iss.self_confidence, iss.score, cats))[:TABLE_ROWS]
    ]
    cal = result.calibration
    bins = [
        {"lo": float(cal.bin_edges[b]), "hi": float(cal.bin_edges[b + 1]), "count": int(cal.bin_count[b]),
         "accuracy": _plain(cal.bin_accuracy[b]), "confidence": _plain(cal.bin_confidence[b])}
        for b in range(cal.n_bins)
    ]
    prov = asdict(audit.provenance)
    warnings = list(dict.fromkeys(w for w in [prov.get("warning"), *notes] if w))
    return _plain({
        "title": f"Audit of {model_name} {version}",
        "created_at": created_at,
        "model": {"name": model_name, "version": version, **model_info},
        "data": {"name": audit.name, **prov, "role": data_role, "n_classes": k, "class_names": list(audit.class_names),
                 "class_counts": np.bincount(audit.labels, minlength=k).tolist()},
        "method": method,
        "metrics": m,
        "metric_names": names,
        "headline": [key for key in HEADLINE if key in m],
        "per_class": result.per_class,
        "calibration": {"ece": cal.ece, "mce": cal.mce, "brier": cal.brier, "nll": cal.nll, "n_bins": cal.n_bins, "bins": bins},
        "temperature": asdict(result.temperature),
        "selective": {"aurc": result.selective.aurc, "accuracy_at": result.selective.accuracy_at,
                      "threshold_1pct": result.selective.threshold_1pct, "coverage_1pct": result.selective.coverage_1pct},
        "epistemic_measured": bool(st.epistemic_measured),
        "reading": list(result.reading),
        "label_issues": {
            "rank_by": iss.rank_by, "n_flagged": int(len(iss.flagged)), "n_estimated": int(iss.n_issues_estimated),
            "rate": float(iss.n_issues_estimated / max(1, len(audit.labels))),
            "per_class": [{"name": audit.class_names[c], "count": int(iss.per_class_issues[c])} for c in range(k)],
            "triage_rule": tri.rule,
            "triage_counts": {c: cats.count(c) for c in ("likely_mislabelled", "ambiguous", "model_unsure")},
            "rows": flagged_rows,
            "thresholds": iss.thresholds,
        },
        "figures": {f.key: {"title": f.title, "alt": f.alt, "uri": f.uri, "note": f.note} for f in figures},
        "warnings": warnings,
        "confidence_note": CONFIDENCE_NOTE,
        "provenance": {
            "reportgen_version": reportgen_version, "command": command, "options": options,
            "packages": package_versions(), "host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(),
        },
    })


def summary_of(context: dict) -> dict:
    """summary.json: the context without embedded figures."""
    return {k: v for k, v in context.items() if k not in ("figures", "metric_names")}


def flagged_rows(audit, result) -> list[dict]:
    """One CSV row per flagged sample, most likely issue first."""
    iss, tri = result.issues, result.triage
    names = audit.class_names
    return [
        {"rank": r + 1, "index": int(i), "given": names[audit.labels[i]], "suggested": names[s],
         "self_confidence": f"{sc:.6f}", "score": f"{score:.6f}", "category": str(c)}
        for r, (i, s, sc, score, c) in enumerate(zip(iss.flagged, iss.suggested, iss.self_confidence, iss.score, tri.category))
    ]


def templates_dir() -> Path:
    """The Jinja templates: shipped as the `reportgen.templates` package, or the checkout's templates/."""
    try:
        from importlib.resources import files

        d = Path(str(files("reportgen.templates")))
        if (d / "report.html").is_file():
            return d
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "templates"


def environment():
    """The Jinja environment over the packaged templates (autoescaping on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["tojson_value"] = lambda v: json.dumps(v)
    return env


def render_html(context: dict, *, paper: str = "a4", medium: str = "screen") -> str:
    """report.html (or its print variant for WeasyPrint) from the context."""
    return environment().get_template("report.html").render(ctx=context, paper=paper, medium=medium)


def _data_only_fetcher(folder: Path):
    """A WeasyPrint URL fetcher serving data: URIs and files inside `folder`, nothing else."""
    from urllib.parse import unquote, urlparse

    from weasyprint.urls import URLFetcher

    root = folder.resolve()

    class _Fetcher(URLFetcher):
        def fetch(self, url, headers=None):
            if url.startswith("file:"):
                p = Path(unquote(urlparse(url).path)).resolve()
                if root not in p.parents:
                    raise ValueError(f"reportgen refuses to read {p} (outside the report folder)")
            return super().fetch(url, headers)

    return _Fetcher(allowed_protocols={"data", "file"}, fail_on_errors=False)


def write_pdf(context: dict, folder: Path, *, paper: str = "a4") -> Path:
    """report.pdf through WeasyPrint, from the print variant of the same templates."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    html = render_html(context, paper=paper, medium="print")
    out = folder / PDF_FILE
    weasyprint.HTML(string=html, base_url=str(folder.resolve()) + "/", url_fetcher=_data_only_fetcher(folder)).write_pdf(out)
    return out


def write_all(folder: Path, context: dict, *, flagged_rows: list[dict], paper: str = "a4") -> None:
    """Write report.html, report.pdf, summary.json and flagged.csv into `folder`."""
    (folder / HTML_FILE).write_text(render_html(context, paper=paper), encoding="utf-8")
    write_pdf(context, folder, paper=paper)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary_of(context), indent=2) + "\n", encoding="utf-8")
    with open(folder / FLAGGED_FILE, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["rank", "index", "given", "suggested", "self_confidence", "score", "category"])
        w.writeheader()
        w.writerows(flagged_rows)
    from .archive import write_manifest

    write_manifest(folder)
