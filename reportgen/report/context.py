"""The report context: plain data (numbers, strings, lists, dicts) that is written to summary.json as it is and
handed to the Jinja templates as it is."""

from __future__ import annotations

import functools
import platform
import socket
from importlib import metadata as _md
from typing import Mapping, Sequence

from .. import metrics
from . import card as model_card
from . import gates as G
from . import render
from .files import flagged_rows
from .conclusions import conclusions
from .findings import N_FINDINGS, VERDICT_RULES, findings, readings, verdicts

# Flagged samples listed in the report's table (all of them go to flagged.csv).
TABLE_ROWS = 10
# Packages whose versions are recorded in the provenance.
PACKAGES = ("reportgen", "tensorflow", "tensorflow-probability", "keras", "numpy", "scipy", "matplotlib", "jinja2", "weasyprint",
            "click")
# Report sections in reading order: (anchor id, title). The sidebar and the PDF's contents use it.
SECTIONS = (
    ("summary", "Executive summary"), ("conclusions", "Conclusions and recommended actions"), ("card", "Model card"),
    ("dataset", "Data set"), ("performance", "Performance"), ("uncertainty", "Uncertainty"), ("calibration", "Calibration"),
    ("selective", "Selective prediction"), ("label-issues", "Label issues"), ("appendix", "Appendix"),
)
# Options not shown in the effective configuration table (shown elsewhere, or describing the table itself).
HIDDEN_OPTIONS = ("command", "config_file", "option_sources")
# What each inference mode is, in the report's words.
MODE_NAMES = {
    "deterministic": "deterministic network",
    "mc_dropout": "MC-dropout average",
    "ensemble": "ensemble average",
    "saved": "saved probabilities",
}
# Template globals of the report (beside render's own).
_GLOBALS = {"SECTIONS": SECTIONS, "N_FINDINGS": N_FINDINGS, "MODE_NAMES": MODE_NAMES, "VERDICT_RULES": VERDICT_RULES}


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = _md.version(p)
        except _md.PackageNotFoundError:
            out[p] = "not installed"
    return out


def describe_results(data, *, role: str) -> dict:
    """The data set in plain words from a report.inputs.DataSummary alone (no images or splits known)."""
    prov = data.provenance
    return {
        "source": prov.get("source"), "path": prov.get("path"), "sha256": prov.get("sha256"),
        "input_format": "no images (saved probabilities)" if prov.get("source") == "predictions" else "not recorded",
        "preprocessing": "not recorded", "splits": [], "trained": None,
        "audited": {"count": int(data.count), "role": role, "class_counts": list(data.class_counts)},
        "checked": None, "subset_note": None, "summary": f"{int(data.count):,} audited samples of {data.name} ({role})",
    }


def _mode(name: str, stats, *, shipped: bool) -> dict:
    """One inference mode's numbers for the side-by-side table and its own calibration verdict and temperature."""
    return {"name": name, "title": MODE_NAMES.get(name, name), "shipped": shipped, "metrics": stats.metrics,
            "calibration": {k: v for k, v in stats.calibration.items() if k not in ("bins", "classwise")},
            "temperature": {k: v for k, v in stats.temperature.items() if k != "reliability_after"}}


def build_context(*, results, figures, method: dict, galleries: dict | None = None, model_name: str, version: str, model_info: dict,
                  data_role: str, notes: list[str], command: str, options: dict, reportgen_version: str,
                  created_at: str, config_file: str | None = None, option_sources: Mapping[str, str] | None = None,
                  gates: Sequence[str] = (), dataset_info: Mapping | None = None, card: dict | None = None) -> dict:
    """The plain-data context that every rendering uses (JSON-serialisable as it is).

    Args:
        results: the audit's report.inputs.AuditResults (either engine's); figures: figures.report_figures;
        galleries: galleries.report_galleries (none when the audit has no images).
        config_file, option_sources, gates: default to options["config_file"], ["option_sources"], ["fail_on"].
        dataset_info: the data set in plain words (engines.inputs.describe_data); card: a checked model card or None.
    """
    config_file = config_file if config_file is not None else options.get("config_file")
    option_sources = option_sources if option_sources is not None else options.get("option_sources")
    gates = tuple(gates) or tuple(options.get("fail_on") or ())
    data, lead, unc = results.data, results.lead, results.uncertainty
    prov = dict(data.provenance)
    ctx = render.plain({
        "title": f"Audit of {model_name} {version}",
        "created_at": created_at,
        "model": {"name": model_name, "version": version, **model_info},
        "data": {"name": data.name, **prov, "role": data_role, "n_classes": data.n_classes, "class_names": list(data.class_names),
                 "class_counts": list(data.class_counts), "index_sha256": data.index_sha256},
        "method": method,
        "shipped": results.shipped,
        "sampled": results.sampled,
        "modes": [_mode(name, s, shipped=name == results.shipped) for name, s in results.modes.items()],
        "metrics": results.metrics,
        "metric_names": metrics.names(),
        "headline": [key for key in metrics.HEADLINE if key in results.metrics],
        "per_class": lead.per_class,
        "class_pairs": lead.class_pairs,
        "calibration": lead.calibration,
        "temperature": lead.temperature,
        "selective": lead.selective,
        "uncertainty": unc.uncertainty,
        "ood": results.ood,
        "worth": results.worth,
        "baseline": results.baseline,
        "epistemic_measured": results.sampled is not None,
        "errors": {"confusion": lead.confusion, **{k: unc.uncertainty[k] for k in ("n_errors", "top_fraction", "top_count",
                                                                                      "errors_in_top", "top_statistic")}},
        "dataset": dict(dataset_info or describe_results(data, role=data_role)),
        "card": model_card.context(card),
        "label_issues": label_context(results),
        "figures": {f.key: {"title": f.title, "alt": f.alt, "uri": f.uri, "note": f.note} for f in figures},
        "galleries": galleries or {},
        "warnings": list(dict.fromkeys(w for w in [prov.get("warning"), *notes] if w)),
        "provenance": {
            "reportgen_version": reportgen_version, "command": command, "options": options, "engine": results.engine,
            "packages": package_versions(), "host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "configuration": configuration(options, config_file=config_file, sources=option_sources),
    })
    ctx["gates"] = G.results(gates, ctx["metrics"])
    ctx["acceptance"] = G.acceptance([*(options.get("accept") or ()), *ctx["card"]["acceptance"]], ctx["metrics"])
    ctx["findings"] = findings(ctx)
    ctx["verdicts"] = verdicts(ctx)
    ctx["readings"] = readings(ctx)
    ctx["conclusions"] = conclusions(ctx)
    return ctx


def _scope(checker: Mapping, n_checked: int, n_audited: int) -> str:
    """What this label check can and cannot tell, in plain words."""
    if checker.get("independent"):
        return (f"Every one of the {n_checked:,} labelled samples was checked by a model that never saw its label. A flag means "
                "the checker confidently disagrees with the given label: a candidate for human review, not a verdict. "
                "Among the audited samples, the audited model's own errors where the checker agrees with the label are "
                "counted apart as model errors.")
    if checker.get("kind") == "saved":
        return ("The flags come from the saved probabilities alone. They are evidence about labels only if those "
                "probabilities are out-of-sample (cross-validated) and from a model far more accurate than the label "
                "noise; label errors and the model's own errors cannot be told apart here.")
    return (f"No independent checker was run, so only the {n_audited:,} audited samples are checked, with the audited "
            "model's own probabilities. Its confident disagreements with a label mix label errors with its own "
            "mistakes, and cannot tell them apart; run with --cv K to check every label with independent checker models.")


def label_context(results) -> dict:
    """The label section's plain data: checker, estimate, flags, cases, reviews."""
    from ..stats.labels import CASES, RULES

    li, m = results.labels, results.metrics
    names = results.data.class_names
    independent = bool(li.checker.get("independent"))
    return {
        "rule": li.rule, "rule_description": RULES[li.rule], "rank_by": li.rank_by,
        "n_checked": int(li.n_checked), "checked_sha256": li.checked_sha256,
        "n_flagged": len(li.flagged), "n_estimated": int(li.n_estimated),
        "rate": m["label_error_rate"] if independent else m["disagreement_rate"],
        "rate_ci": [m["label_error_rate_ci_low"], m["label_error_rate_ci_high"]] if independent else None,
        "checker": li.checker,
        "scope": _scope(li.checker, li.n_checked, results.data.count),
        "cases": None if li.cases is None else {**li.cases, "descriptions": CASES}, "model_error_rows": li.model_error_rows,
        "reviews": {**li.reviews, "unreviewed_flags": m["n_unreviewed_flags"]},
        "per_class": [{"name": names[c], "count": int(li.per_class_issues[c])} for c in range(len(names))],
        "rows": flagged_rows(results, limit=TABLE_ROWS),
        "thresholds": li.thresholds,
    }


def configuration(options: Mapping, *, config_file: str | None = None, sources: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: every option's value and, when known, where it came from."""
    sources = sources or {}
    rows = [{"key": key, "value": render.plain(value), "source": sources.get(key)}
            for key, value in options.items() if key not in HIDDEN_OPTIONS]
    return {"file": str(config_file) if config_file else None, "options": rows}


@functools.cache
def _environment(markdown: bool):
    """The report's Jinja environment (HTML or Markdown), made once per process so report.html compiles once for
    both the screen and the print rendering (compiling it costs about 0.08 s here)."""
    return render.markdown_environment(_GLOBALS) if markdown else render.environment(_GLOBALS)


def render_html(context: dict, *, paper: str = "a4", medium: str = "screen") -> str:
    """report.html (or its print variant for WeasyPrint) from the context."""
    return render.render("report.html", context, paper=paper, medium=medium, env=_environment(False))


def render_markdown(context: dict) -> str:
    """report.md: a short GitHub-flavoured summary linking to report.html."""
    return render.render_markdown("report.md.j2", context, env=_environment(True))
