"""Report context (plain data) and its renderings: report.html, report.pdf, report.md, summary.json, flagged.csv."""

from __future__ import annotations

import csv
import html as _html
import json
import math
import platform
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict
from importlib import metadata as _md
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ReportgenError

HTML_FILE = "report.html"
PDF_FILE = "report.pdf"
MD_FILE = "report.md"
SUMMARY_FILE = "summary.json"
FLAGGED_FILE = "flagged.csv"
# Columns of flagged.csv, in order (compare.py reads "index").
FLAGGED_COLUMNS = ("rank", "index", "given", "suggested", "self_confidence", "score", "category")
# Flagged samples listed in the report's table (all of them go to flagged.csv).
TABLE_ROWS = 30
# Findings shown in the executive summary (the most important first).
N_FINDINGS = 3
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
# Which way a metric is better: "higher", "lower" or "closer_to_1". Metrics absent here describe the
# data or the method (sample count, entropies, flagged labels) and are neither better nor worse.
DIRECTION = {
    "accuracy": "higher", "acc_at_80": "higher", "acc_at_90": "higher", "acc_at_95": "higher", "acc_at_99": "higher",
    "coverage_1pct": "higher",
    "ece": "lower", "mce": "lower", "brier": "lower", "nll": "lower", "aurc": "lower",
    "ece_temperature_scaled": "lower", "nll_temperature_scaled": "lower",
    "temperature": "closer_to_1",
}
# Report sections in reading order: (anchor id, title). The sidebar and the PDF's contents use it.
SECTIONS = (
    ("summary", "Executive summary"), ("provenance", "Provenance"), ("performance", "Performance"),
    ("uncertainty", "Uncertainty"), ("calibration", "Calibration"), ("selective", "Selective prediction"),
    ("label-issues", "Label issues"), ("methods", "Methods"),
)
# Badge levels -> a symbol, so a verdict never relies on colour alone.
LEVEL_SYMBOL = {"good": "✓", "warn": "!", "bad": "✗", "info": "•"}
# Estimated label-error rate below which the label-noise badge is good / a warning; bad above.
LABEL_RATE_LEVELS = ((0.01, "good"), (0.05, "warn"), (math.inf, "bad"))
# Accuracy at or above which the performance finding reads as good; below the second, bad.
ACCURACY_LEVELS = (0.98, 0.90)
# Coverage at 1 % error at or above which selective prediction reads as good; below the second, bad.
COVERAGE_LEVELS = (0.90, 0.50)
# Options not shown in the effective configuration table (shown elsewhere, or describing the table itself).
HIDDEN_OPTIONS = ("command", "config_file", "option_sources")
# Headless Chromium flags: no network side-channels, no first-run work, a throwaway profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
# Seconds before an external renderer (pdftoppm, chromium) is given up on.
RENDER_TIMEOUT = 120


def metric_names() -> dict[str, str]:
    """Display name of every metric key."""
    from .uncertainty import METRIC_NAMES

    return {**METRIC_NAMES, **EXTRA_METRIC_NAMES}


def fmt(value: Any, key: str = "") -> str:
    """The one way a metric value is displayed (HTML, PDF, Markdown and tests use it)."""
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


def show(value: Any) -> str:
    """A configuration value as text: None -> '—', lists joined, booleans yes/no."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


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


# --------------------------------------------------------------------------- findings and verdicts

def _num(d: Mapping, key: str) -> float | None:
    v = d.get(key)
    if v is None or isinstance(v, bool):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _ece_word(ece: float) -> str:
    from .uncertainty import ECE_WORDS

    return next(w for limit, w in ECE_WORDS if ece < limit)


def _calibration_side(ece: float, conf: float, acc: float) -> str:
    """'over-confident', 'under-confident' or 'mixed' (the same rule as uncertainty.reading)."""
    if abs(conf - acc) < ece / 2:
        return "mixed"
    return "over-confident" if conf > acc else "under-confident"


def _finding_performance(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    acc, n = _num(m, "accuracy"), m.get("n_samples")
    if acc is None:
        return None
    rows = [r for r in ctx.get("per_class", []) if r.get("count") and r.get("accuracy") is not None]
    text = f"Accuracy is {fmt(acc, 'accuracy')} on {fmt(n)} audited samples"
    gap = 0.0
    if len(rows) > 1:
        worst = min(rows, key=lambda r: (r["accuracy"], str(r["name"])))
        best = max(rows, key=lambda r: (r["accuracy"], str(r["name"])))
        gap = max(0.0, acc - worst["accuracy"])
        wrong = round((1 - worst["accuracy"]) * worst["count"])
        text += (f"; the weakest class is ‘{worst['name']}’ at {_pct(worst['accuracy'])} ({wrong} of {worst['count']} wrong), "
                 f"the strongest ‘{best['name']}’ at {_pct(best['accuracy'])}")
    good, bad = ACCURACY_LEVELS
    level = "good" if acc >= good and gap < 0.05 else "bad" if acc < bad else "warn"
    return {"topic": "performance", "level": level, "score": min(1.0, 4 * (1 - acc) + 2 * gap), "text": text + "."}


def _finding_calibration(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    ece, conf, acc = _num(m, "ece"), _num(m, "mean_confidence"), _num(m, "accuracy")
    if ece is None or conf is None or acc is None:
        return None
    word = _ece_word(ece)
    if word == "well calibrated":
        text = f"The model is well calibrated (ECE {ece:.3f}): its confidence can be read as the chance of being right"
        level = "good"
    else:
        side = _calibration_side(ece, conf, acc)
        what = "miscalibrated, over-confident in some bins and under-confident in others" if side == "mixed" else side
        text = f"The model is {word} {what} (ECE {ece:.3f}; mean confidence {conf:.3f} vs accuracy {acc:.3f})"
        level = "warn" if word == "slightly" else "bad"
        t, after = _num(m, "temperature"), _num(m, "ece_temperature_scaled")
        if t is not None and after is not None:
            text += f"; temperature scaling with T = {t:.2f} brings the held-out ECE to {after:.3f}"
    return {"topic": "calibration", "level": level, "score": min(1.0, 10 * ece), "text": text + "."}


def _finding_label_issues(ctx: Mapping) -> dict | None:
    li = ctx.get("label_issues")
    if not li:
        return None
    n_flagged, n_est, rate = int(li.get("n_flagged", 0)), int(li.get("n_estimated", 0)), float(li.get("rate", 0.0))
    level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
    if n_flagged == 0:
        return {"topic": "label_issues", "level": "good", "score": 0.05,
                "text": "Confident learning finds no likely label error among the audited samples."}
    text = (f"Confident learning estimates {n_est:,} label errors ({fmt(rate, 'label_error_rate')} of the audited samples) "
            f"and flags {n_flagged:,} samples for review")
    likely = (li.get("triage_counts") or {}).get("likely_mislabelled", 0)
    if likely:
        text += f", {likely} of them likely mislabelled"
    rows = li.get("rows") or []
    if rows:
        r = rows[0]
        text += f"; the top one, sample #{r['index']}, is labelled ‘{r['given']}’ but looks like ‘{r['suggested']}’"
    return {"topic": "label_issues", "level": level, "score": min(1.0, 20 * rate), "text": text + "."}


def _finding_selective(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    if "coverage_1pct" not in m:
        return None
    cov, thr = _num(m, "coverage_1pct"), _num(m, "threshold_1pct")
    if cov is None or thr is None:
        return {"topic": "selective", "level": "bad", "score": 0.5,
                "text": "No confidence threshold brings the error rate down to 1 %: even the most confident predictions need review."}
    good, bad = COVERAGE_LEVELS
    level = "good" if cov >= good else "bad" if cov < bad else "warn"
    text = (f"Answering only when confidence is at least {thr:.3f} keeps the error rate at or below 1 % "
            f"and covers {_pct(cov)} of the samples; the rest would need a human decision.")
    return {"topic": "selective", "level": level, "score": 0.6 * (1 - cov), "text": text}


def _finding_epistemic(ctx: Mapping) -> dict | None:
    m = ctx.get("metrics", {})
    if not ctx.get("epistemic_measured"):
        return {"topic": "epistemic", "level": "warn", "score": 0.35,
                "text": ("Epistemic (model) uncertainty was not measured: one deterministic pass per sample. "
                         "Rerun with --mc-samples 30 (MC dropout) or an ensemble to separate model from data uncertainty.")}
    epi, total = _num(m, "mean_epistemic"), _num(m, "mean_entropy")
    if epi is None or not total:
        return None
    share = epi / total
    s = (ctx.get("method") or {}).get("n_samples", "?")
    tail = ("most of the uncertainty lies in the data itself, which more training will not remove" if share < 0.2
            else "more (or more varied) training data should reduce it")
    return {"topic": "epistemic", "level": "info" if share < 0.2 else "warn", "score": 0.2 + 0.5 * share,
            "text": f"Epistemic uncertainty (S = {s}) is {share:.0%} of the predictive entropy ({epi:.3f} nats): {tail}."}


def _finding_confusion(ctx: Mapping) -> dict | None:
    for sentence in ctx.get("reading", []):
        if sentence.startswith("Errors concentrate"):
            return {"topic": "confusion", "level": "warn", "score": 0.45, "text": sentence}
    return None


_FINDERS = (_finding_performance, _finding_calibration, _finding_label_issues, _finding_selective,
            _finding_epistemic, _finding_confusion)


def findings(ctx: Mapping, *, limit: int | None = N_FINDINGS) -> list[dict]:
    """The most important findings as generated sentences, most important first.

    Each candidate (performance, calibration, label issues, selective prediction, epistemic
    uncertainty, concentrated confusion) gets a score in [0, 1] from its own numbers (see the
    methods appendix); ties keep that order.

    Args:
        ctx: a report context or a summary.json (plain data).
        limit: how many to return (None: all candidates).
    Returns:
        [{"topic", "level" (good|warn|bad|info), "score", "text"}].
    """
    found = [f for fn in _FINDERS if (f := fn(ctx)) is not None]
    found.sort(key=lambda f: -f["score"])  # stable: equal scores keep the candidate order
    return found if limit is None else found[:limit]


def verdicts(ctx: Mapping) -> list[dict]:
    """Cover badges: [{"label", "text", "level"}]; each text carries the verdict in words."""
    m = ctx.get("metrics", {})
    out = []
    acc = _num(m, "accuracy")
    if acc is not None:
        out.append({"label": "Accuracy", "text": fmt(acc, "accuracy"), "level": "info"})
    ece = _num(m, "ece")
    if ece is not None:
        word = _ece_word(ece)
        level = "good" if word == "well calibrated" else "warn" if word == "slightly" else "bad"
        out.append({"label": "Calibration", "text": f"{word if level == 'good' else word + ' miscalibrated'} (ECE {ece:.3f})", "level": level})
    if ctx.get("epistemic_measured"):
        s = (ctx.get("method") or {}).get("n_samples", "?")
        out.append({"label": "Epistemic uncertainty", "text": f"measured (S = {s})", "level": "good"})
    else:
        out.append({"label": "Epistemic uncertainty", "text": "not measured", "level": "warn"})
    li = ctx.get("label_issues")
    if li:
        rate = float(li.get("rate", 0.0))
        level = next(lv for limit, lv in LABEL_RATE_LEVELS if rate < limit)
        out.append({"label": "Label issues", "text": f"{li.get('n_estimated', 0):,} estimated ({fmt(rate, 'label_error_rate')})", "level": level})
    g = ctx.get("gates") or []
    if g:
        failed = sum(1 for x in g if x["failed"])
        out.append({"label": "CI gates", "text": f"{failed} of {len(g)} failed" if failed else f"all {len(g)} passed",
                    "level": "bad" if failed else "good"})
    return out


def gate_results(exprs: Sequence[str], metrics: Mapping) -> list[dict]:
    """[{"expr", "failed", "message"}] for the --fail-on expressions on these metrics."""
    from . import gates as G

    out = []
    for g in G.parse_all(exprs):
        msg = G.check(g, metrics)
        out.append({"expr": g.expr, "failed": msg is not None, "message": msg or f"gate {g.expr!r} passed"})
    return out


# --------------------------------------------------------------------------- context

def build_context(*, audit, result, figures, method: dict, model_name: str, version: str, model_info: dict,
                  data_role: str, notes: list[str], command: str, options: dict, reportgen_version: str,
                  created_at: str, config_file: str | None = None, option_sources: Mapping[str, str] | None = None,
                  gates: Sequence[str] = ()) -> dict:
    """The plain-data context that every rendering uses (JSON-serialisable as it is).

    Args:
        config_file: the configuration file the options' defaults came from, if any
            (default: options["config_file"]).
        option_sources: option name -> where its value came from ("commandline", "environment",
            "default_map" (the configuration file), "default") (default: options["option_sources"]).
        gates: --fail-on expressions; their pass/fail is recorded in the context (and summary.json)
            (default: options["fail_on"]).
    """
    config_file = config_file if config_file is not None else options.get("config_file")
    option_sources = option_sources if option_sources is not None else options.get("option_sources")
    gates = tuple(gates) or tuple(options.get("fail_on") or ())
    names = metric_names()
    m = _plain(result.metrics)
    iss, tri, st = result.issues, result.triage, result.stats
    cats = list(tri.category)
    k = audit.n_classes
    flagged_table = [
        {**row, "self_confidence": float(row["self_confidence"]), "score": float(row["score"])}
        for row in flagged_rows(audit, result, limit=TABLE_ROWS)
    ]
    cal = result.calibration
    bins = [
        {"lo": float(cal.bin_edges[b]), "hi": float(cal.bin_edges[b + 1]), "count": int(cal.bin_count[b]),
         "accuracy": _plain(cal.bin_accuracy[b]), "confidence": _plain(cal.bin_confidence[b])}
        for b in range(cal.n_bins)
    ]
    prov = asdict(audit.provenance)
    warnings = list(dict.fromkeys(w for w in [prov.get("warning"), *notes] if w))
    ctx = _plain({
        "title": f"Audit of {model_name} {version}",
        "created_at": created_at,
        "model": {"name": model_name, "version": version, **model_info},
        "data": {"name": audit.name, **prov, "role": data_role, "n_classes": k, "class_names": list(audit.class_names),
                 "class_counts": np.bincount(audit.labels, minlength=k).tolist(), "index_sha256": audit.index_sha256()},
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
            "rate": m["label_error_rate"],
            "per_class": [{"name": audit.class_names[c], "count": int(iss.per_class_issues[c])} for c in range(k)],
            "triage_rule": tri.rule,
            "triage_counts": {c: cats.count(c) for c in ("likely_mislabelled", "ambiguous", "model_unsure")},
            "rows": flagged_table,
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
        "configuration": configuration(options, config_file=config_file, sources=option_sources),
    })
    ctx["gates"] = gate_results(gates, ctx["metrics"])
    ctx["findings"] = findings(ctx)
    ctx["verdicts"] = verdicts(ctx)
    return ctx


def configuration(options: Mapping, *, config_file: str | None = None, sources: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: every option's value and, when known, where it came from."""
    sources = sources or {}
    rows = [{"key": key, "value": _plain(value), "source": sources.get(key)}
            for key, value in options.items() if key not in HIDDEN_OPTIONS]
    return {"file": str(config_file) if config_file else None, "options": rows}


def summary_of(context: dict) -> dict:
    """summary.json: the context without embedded figures."""
    return {k: v for k, v in context.items() if k not in ("figures", "metric_names")}


def flagged_rows(audit, result, *, limit: int | None = None) -> list[dict]:
    """One CSV row per flagged sample (the first `limit`), most likely issue first; `index` is the row in the source file."""
    iss, tri = result.issues, result.triage
    names = audit.class_names
    src = audit.source_index
    top = slice(0, limit)
    return [
        {"rank": r + 1, "index": int(src[i]), "given": names[audit.labels[i]], "suggested": names[s],
         "self_confidence": f"{sc:.6f}", "score": f"{score:.6f}", "category": str(c)}
        for r, (i, s, sc, score, c) in enumerate(zip(iss.flagged[top], iss.suggested[top], iss.self_confidence[top],
                                                     iss.score[top], tri.category[top]))
    ]


# --------------------------------------------------------------------------- rendering

def templates_dir() -> Path:
    """The Jinja templates: installed inside the package, or the checkout's top-level templates/."""
    here = Path(__file__).resolve().parent
    for d in (here / "templates", here.parent / "templates"):
        if (d / "report.html").is_file():
            return d
    raise FileNotFoundError(f"reportgen templates not found beside {here}")


def _globals() -> dict:
    return {"SECTIONS": SECTIONS, "DIRECTION": DIRECTION, "LEVEL_SYMBOL": LEVEL_SYMBOL, "N_FINDINGS": N_FINDINGS}


def environment():
    """The Jinja environment for HTML over the packaged templates (autoescaping on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["show"] = show
    env.filters["tojson_value"] = lambda v: json.dumps(v)
    env.globals.update(_globals())
    return env


# Characters with a meaning in GitHub-flavoured Markdown inline text and tables.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def md_escape(value: Any) -> str:
    """Text safe inside GitHub Markdown (also inside a table cell): no markup, no HTML, one line."""
    text = "" if value is None else str(value)
    text = _html.escape(text, quote=False)  # & < > become entities: no raw HTML gets through
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def markdown_environment():
    """The Jinja environment for report.md: every {{ value }} passes through md_escape."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=False,
        finalize=md_escape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["show"] = show
    env.globals.update(_globals())
    return env


def render(template: str, context: dict, *, paper: str = "a4", medium: str = "screen") -> str:
    """Render one HTML template (report.html, compare.html, index.html) with `ctx=context`."""
    return environment().get_template(template).render(ctx=context, paper=paper, medium=medium)


def render_html(context: dict, *, paper: str = "a4", medium: str = "screen") -> str:
    """report.html (or its print variant for WeasyPrint) from the context."""
    return render("report.html", context, paper=paper, medium=medium)


def render_markdown(context: dict) -> str:
    """report.md: a short GitHub-flavoured summary linking to report.html."""
    return markdown_environment().get_template("report.md.j2").render(ctx=context)


def _data_only_fetcher(folder: Path):
    """A WeasyPrint URL fetcher serving data: URIs and files inside `folder`, nothing else."""
    from urllib.parse import unquote, urlparse

    from weasyprint.urls import URLFetcher

    root = folder.resolve()

    class _Fetcher(URLFetcher):
        def fetch(self, url, headers=None):
            parts = urlparse(url)
            scheme = parts.scheme.lower()
            if scheme == "file":
                if parts.netloc not in ("", "localhost"):
                    raise ValueError(f"reportgen refuses to fetch {url} (a file on another host)")
                p = Path(unquote(parts.path)).resolve()
                if root not in p.parents:
                    raise ValueError(f"reportgen refuses to read {p} (outside the report folder)")
            elif scheme != "data":
                raise ValueError(f"reportgen refuses to fetch {url} (only data: URIs and files in the report folder)")
            return super().fetch(url, headers)

    return _Fetcher(allowed_protocols={"data", "file"}, fail_on_errors=False)


def html_to_pdf(html: str, folder: Path, out: Path) -> Path:
    """Write `html` as a PDF at `out` with WeasyPrint, fetching only data: URIs and files in `folder`."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    weasyprint.HTML(string=html, base_url=str(folder.resolve()) + "/", url_fetcher=_data_only_fetcher(folder)).write_pdf(out)
    return out


def write_pdf(context: dict, folder: Path, *, paper: str = "a4") -> Path:
    """report.pdf through WeasyPrint, from the print variant of the same templates."""
    return html_to_pdf(render_html(context, paper=paper, medium="print"), folder, folder / PDF_FILE)


def write_all(folder: Path, context: dict, *, flagged_rows: list[dict], paper: str = "a4") -> None:
    """Write report.html, report.pdf, report.md, summary.json, flagged.csv and manifest.json into `folder`."""
    (folder / HTML_FILE).write_text(render_html(context, paper=paper), encoding="utf-8")
    write_pdf(context, folder, paper=paper)
    (folder / MD_FILE).write_text(render_markdown(context), encoding="utf-8")
    (folder / SUMMARY_FILE).write_text(json.dumps(summary_of(context), indent=2) + "\n", encoding="utf-8")
    with open(folder / FLAGGED_FILE, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(FLAGGED_COLUMNS))
        w.writeheader()
        w.writerows(flagged_rows)
    from .archive import write_manifest

    write_manifest(folder)


# --------------------------------------------------------------------------- pictures of reports

def pdf_to_pngs(pdf: Path, prefix: Path, *, dpi: int = 60, first: int | None = None, last: int | None = None) -> list[Path]:
    """Render PDF pages to `<prefix>-<n>.png` with pdftoppm (poppler-utils); return them in page order.

    Raises:
        ReportgenError: pdftoppm is not installed or fails.
    """
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise ReportgenError("pdftoppm not found: install poppler-utils (apt-get install poppler-utils)")
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([exe, "-r", str(dpi), "-png", *pages, str(pdf), str(prefix)], capture_output=True, text=True,
                       timeout=RENDER_TIMEOUT)
    if r.returncode != 0:
        raise ReportgenError(f"{pdf}: pdftoppm failed ({(r.stderr.strip().splitlines() or ['no message'])[0]})")
    found = prefix.parent.glob(f"{prefix.name}-*.png")
    return sorted(found, key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def chromium() -> str | None:
    """The headless-capable Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def html_screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 900) -> Path:
    """Screenshot `html` (its first `height` pixels) with headless Chromium and a throwaway profile.

    Raises:
        ReportgenError: Chromium is not installed or writes no screenshot.
    """
    exe = chromium()
    if exe is None:
        raise ReportgenError("chromium not found: install it (apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reportgen-chromium-") as profile:
        r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                            f"--screenshot={png.resolve()}", html.resolve().as_uri()],
                           capture_output=True, text=True, timeout=RENDER_TIMEOUT)
    if r.returncode != 0 or not png.exists():
        raise ReportgenError(f"{html}: chromium wrote no screenshot ({(r.stderr.strip().splitlines() or ['no message'])[-1]})")
    return png


def screenshots(root: str | Path, docs: str | Path, *, pages: int = 2, dpi: int = 80) -> list[Path]:
    """Pictures of the newest report under `root` for the README: PDF pages 1..pages and the HTML.

    Writes `docs/report-page<n>.png` and `docs/report-html.png`.

    Raises:
        ReportgenError: no report under root, or a renderer is missing.
    """
    from .archive import list_versions

    versions = [v for v in list_versions(root) if (Path(root) / v["path"] / PDF_FILE).exists()]
    if not versions:
        raise ReportgenError(f"{root}: no report found; run `make run` first")
    folder = Path(root) / versions[0]["path"]
    docs = Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(prefix="reportgen-pages-") as tmp:
        for n, png in enumerate(pdf_to_pngs(folder / PDF_FILE, Path(tmp) / "page", dpi=dpi, last=pages), start=1):
            out.append(Path(shutil.copyfile(png, docs / f"report-page{n}.png")))
    out.append(html_screenshot(folder / HTML_FILE, docs / "report-html.png"))
    return out
