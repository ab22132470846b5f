"""Compare two audited versions: metric deltas with direction, reliability diagrams, per-class changes, flagged sets.

Reads only what a version folder holds (summary.json, flagged.csv and the per-sample export), so versions audited
months apart, on another machine, compare without re-running anything. When both audits scored the same samples the
headline metrics are compared pair by pair (stats.paired: McNemar for accuracy, paired intervals for the rest), which
detects changes that two independent intervals would hide; otherwise each side's interval is combined as if the
samples were independent.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import metrics

from ..report import render
from ..report.folder import FLAGGED_FILE, HTML_FILE, check_component, read_summary
from ..errors import ReportgenError

COMPARE_HTML = "compare.html"
COMPARE_PDF = "compare.pdf"
COMPARE_JSON = "compare.json"
# A metric without an interval: a change smaller than this share of the old value counts as "same"
# (and a larger one is "changed", never better or worse: nothing measures its noise).
REL_TOLERANCE = 0.01
# ... and so does any change smaller than this in absolute terms (metrics near zero).
ABS_TOLERANCE = 1e-6
# Metrics whose direction decides the verdict line.
VERDICT_METRICS = ("accuracy", "calibration_error", "nll", "brier", "aurc")
# Bootstrap replicates of the paired calibration-error interval.
PAIRED_REPLICATES = 1000
# Flagged indices listed per set in the HTML/PDF (compare.json has all of them).
LIST_LIMIT = 60


@dataclass(frozen=True)
class Version:
    """One audited version as stored on disk.

    folder: the version folder; summary: its summary.json; flagged: (split, row) of each flagged.csv sample in rank order.
    """

    folder: Path
    summary: dict
    flagged: tuple[tuple[str, int], ...]

    @property
    def model(self) -> str:
        """The model name, checked as --name is (it may name an output folder)."""
        return str((self.summary.get("model") or {}).get("name") or self.folder.parent.name)

    @property
    def version(self) -> str:
        """The version, checked as --version is (it may name an output folder)."""
        return str((self.summary.get("model") or {}).get("version") or self.folder.name)

    @property
    def label(self) -> str:
        return f"{self.model} {self.version}"

    @property
    def metrics(self) -> dict:
        return self.summary.get("metrics") or {}


def _sample(row: dict) -> tuple[str, int]:
    """(split, row) of a flagged.csv row; archives from before splits were recorded name a row by 'index' alone."""
    if "row" in row:
        return str(row["split"]).lstrip("'"), int(row["row"])
    return "all", int(row["index"])


def load_version(folder: str | Path) -> Version:
    """Read a version folder's summary.json and flagged.csv.

    The model name and version recorded in summary.json are checked like --name / --version,
    because they name the comparison folder: a crafted summary cannot steer a path.

    Raises:
        ReportgenError: the folder, a file, or a needed field is missing, unreadable or unsafe (names the file).
    """
    d = Path(folder)
    if not d.is_dir():
        raise ReportgenError(f"{d}: no such version folder")
    summary = read_summary(d)
    ffile = d / FLAGGED_FILE
    try:
        with open(ffile, newline="", encoding="utf-8") as f:
            flagged = tuple(_sample(row) for row in csv.DictReader(f))
    except FileNotFoundError:
        raise ReportgenError(f"{ffile}: missing (not a reportgen version folder?)") from None
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ReportgenError(f"{ffile}: unreadable ({e.__class__.__name__}: expected 'split' and integer 'row' columns)") from e
    v = Version(d, summary, flagged)
    try:
        check_component(v.model, "model name")
        check_component(v.version, "version")
    except ReportgenError as e:
        raise ReportgenError(f"{d / 'summary.json'}: {e}") from None
    return v


# --------------------------------------------------------------------------- pure comparisons

def noise(key: str, old: Mapping, new: Mapping) -> float | None:
    """Half-width of a 95 % interval for the difference new - old, from each side's 95 % interval.

    sqrt(h_old^2 + h_new^2) with h the half-widths: exact for independent samples (normal
    approximation) and conservative when both audits scored the same samples. None when either
    side has no interval for `key`.
    """
    halves = []
    for side in (old, new):
        lo, hi = side.get(key + metrics.CI_LOW), side.get(key + metrics.CI_HIGH)
        if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or isinstance(lo, bool):
            return None
        halves.append((float(hi) - float(lo)) / 2)
    return math.sqrt(halves[0] ** 2 + halves[1] ** 2)


def change(key: str, old: float | None, new: float | None, noise: float | None = None, paired: Mapping | None = None) -> str:
    """'better' / 'worse' only beyond sampling noise; else 'same', 'changed' or 'n/a'.

    - 'n/a': not measured on a side;
    - with a paired test (stats.paired): better/worse when it calls the change, else 'same';
    - with a noise half-width: 'same' when |new - old| <= noise, else better/worse (or 'changed'
      for a metric with no better direction);
    - without one (a metric that carries no interval): 'same' within REL_TOLERANCE, else 'changed',
      never better/worse, because nothing says the difference exceeds its noise.
    """
    if old is None or new is None or isinstance(old, bool) or isinstance(new, bool):
        return "n/a"
    old, new = float(old), float(new)
    if math.isnan(old) or math.isnan(new):
        return "n/a"
    direction = metrics.better(key)
    if paired is not None and direction in ("higher", "lower"):
        if not paired["called"]:
            return "same"
        return "better" if (new > old) == (direction == "higher") else "worse"
    delta = abs(new - old)
    if direction == "closer_to_1":
        old, new = abs(old - 1.0), abs(new - 1.0)
    if noise is None:
        return "same" if delta <= max(ABS_TOLERANCE, REL_TOLERANCE * abs(old)) else "changed"
    if delta <= noise:
        return "same"
    if direction is None:
        return "changed"
    improved = new > old if direction == "higher" else new < old
    return "better" if improved else "worse"


def fmt_delta(key: str, delta: float | None) -> str:
    """A signed change: percentage points for percentages, counts for integers."""
    if delta is None:
        return "—"
    if metrics.is_percent(key):
        return f"{100 * delta:+.2f} pp".replace("-", "−")
    if float(delta).is_integer() and key.startswith("n_"):
        return f"{int(delta):+,}".replace("-", "−")
    return f"{delta:+.4f}".replace("-", "−")


def _delta(old, new) -> float | None:
    if old is None or new is None or isinstance(old, bool) or isinstance(new, bool):
        return None
    return float(new) - float(old)


def metric_deltas(old: Mapping, new: Mapping, paired: Mapping | None = None) -> list[dict]:
    """Every metric of either side (interval bounds left out): {key, name, old, new, delta, delta_text, noise,
    noise_text, direction, change, test}, in display order. paired: key -> stats.paired result for the metrics compared
    pair by pair (their interval is the paired one)."""
    names = metrics.names()
    keys = [k for k in names if (k in old or k in new) and metrics.base_key(k) == k]
    keys += sorted(k for k in {*old, *new} if k not in names)
    paired = paired or {}
    rows = []
    for k in keys:
        pr = paired.get(k)
        n = (max(abs(pr["ci"][1] - pr["delta"]), abs(pr["delta"] - pr["ci"][0])) if pr and pr["ci"] else None) if pr else noise(k, old, new)
        test = ("McNemar, paired" if k == "accuracy" else "paired") if pr else ("independent" if n is not None else "no interval")
        rows.append({"key": k, "name": names.get(k, k), "old": old.get(k), "new": new.get(k),
                     "delta": _delta(old.get(k), new.get(k)), "delta_text": fmt_delta(k, _delta(old.get(k), new.get(k))),
                     "noise": n, "noise_text": "no interval" if n is None else "±" + fmt_delta(k, n)[1:],
                     "direction": metrics.better(k), "change": change(k, old.get(k), new.get(k), n, pr), "test": test,
                     "p": pr.get("p") if pr else None})
    return rows


def read_per_sample(folder: Path) -> dict | None:
    """(split, row) -> (given, probabilities) of a version's per-sample export (predictions.csv.gz, or a sharded run's
    predictions/*.csv.gz); None when the folder has none."""
    files = [folder / "predictions.csv.gz"] if (folder / "predictions.csv.gz").is_file() else sorted((folder / "predictions").glob("*.csv.gz"))
    if not files:
        return None
    out = {}
    try:
        for f in files:
            with gzip.open(f, "rt", encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                cols = [i for i, h in enumerate(header) if h.startswith("p_")]
                for r in reader:
                    out[(r[0].lstrip("'"), int(r[1]))] = (int(r[3]), np.array([float(r[i]) for i in cols]))
    except (OSError, ValueError, IndexError, StopIteration) as e:
        raise ReportgenError(f"{files[0]}: unreadable per-sample export ({e.__class__.__name__})") from e
    return out


def paired_tests(old: dict, new: dict, *, seed: int = 0) -> dict:
    """The headline metrics compared pair by pair on the samples both exports hold (stats.paired)."""
    keys = sorted(set(old) & set(new))
    y = np.array([old[k][0] for k in keys])
    if not len(keys) or not np.array_equal(y, np.array([new[k][0] for k in keys])):
        return {}
    return paired_arrays(y, np.stack([old[k][1] for k in keys]), np.stack([new[k][1] for k in keys]), seed=seed)


def paired_arrays(y: np.ndarray, po: np.ndarray, pn: np.ndarray, *, seed: int = 0, keys=VERDICT_METRICS) -> dict:
    """`keys` (of VERDICT_METRICS) compared pair by pair: old probabilities `po` against new `pn` (N, K) on the same
    labels `y`; key -> stats.paired result, delta = new - old."""
    from ..stats import paired

    out = {}
    side = []
    for p in (po, pn):
        p = p / p.sum(axis=1, keepdims=True)
        pred = p.argmax(axis=1)
        rows = np.arange(len(y))
        side.append({"conf": p[rows, pred], "right": pred == y, "nll": -np.log(np.maximum(p[rows, y], 1e-12)),
                     "brier": np.sum(p * p, axis=1) - 2 * p[rows, y] + 1.0})
    a, b = side
    out["accuracy"] = paired.mcnemar(a["right"], b["right"])
    out["nll"] = paired.paired_mean(a["nll"], b["nll"])
    out["brier"] = paired.paired_mean(a["brier"], b["brier"])
    if "calibration_error" in keys:
        out["calibration_error"] = paired.paired_calibration_error(a["conf"], a["right"], b["conf"], b["right"],
                                                                   replicates=PAIRED_REPLICATES, seed=seed)
    out["aurc"] = paired.paired_aurc(a["conf"], a["right"], b["conf"], b["right"])
    return out


def per_class_changes(old: Sequence[Mapping], new: Sequence[Mapping]) -> list[dict]:
    """Per-class recall (judged against its Wilson intervals) and classwise ECE on both sides, matched by class name.

    Rows in new's order, then classes only in old. The ECE carries no interval, so its change is
    shown but never called better or worse.
    """
    o = {str(r["name"]): r for r in old}
    n = {str(r["name"]): r for r in new}
    names = [*n, *(k for k in o if k not in n)]
    rows = []
    for name in names:
        a, b = o.get(name, {}), n.get(name, {})
        row = {"name": name, "old_count": a.get("count"), "new_count": b.get("count")}
        for key, field, metric in (("accuracy", "accuracy", "accuracy"), ("ece", "classwise_ece", "classwise_ece")):
            row[f"old_{key}"], row[f"new_{key}"] = a.get(field), b.get(field)
            d = _delta(a.get(field), b.get(field))
            ci_a, ci_b = a.get(f"{field}_ci"), b.get(f"{field}_ci")
            n_half = (math.hypot((ci_a[1] - ci_a[0]) / 2, (ci_b[1] - ci_b[0]) / 2) if ci_a and ci_b else None)
            row[f"delta_{key}"] = d
            row[f"delta_{key}_text"] = fmt_delta(metric, d)
            row[f"change_{key}"] = change(metric, a.get(field), b.get(field), n_half)
        rows.append(row)
    return rows


def flagged_sets(old: Sequence[tuple[str, int]], new: Sequence[tuple[str, int]]) -> dict:
    """Flagged samples, named "split #row", compared: new (flagged only now), resolved (only before), still (both); sorted."""
    a, b = {(str(s), int(r)) for s, r in old}, {(str(s), int(r)) for s, r in new}
    name = lambda keys: [f"{s} #{r}" for s, r in sorted(keys)]  # noqa: E731
    out = {"new": name(b - a), "resolved": name(a - b), "still": name(a & b)}
    out["counts"] = {k: len(v) for k, v in out.items()}
    out["counts"].update(old=len(a), new_total=len(b))
    return out


def same_samples(old: Mapping, new: Mapping) -> tuple[bool, str]:
    """Whether both audits ran on the same samples (so sample indices and metrics are comparable), and why not."""
    da, db = old.get("data") or {}, new.get("data") or {}
    if not da.get("sha256") or da.get("sha256") != db.get("sha256"):
        return False, "the data files differ (sha256)"
    if da.get("count") != db.get("count"):
        return False, f"the audited sample counts differ ({da.get('count')} vs {db.get('count')})"
    if da.get("class_counts") != db.get("class_counts"):
        return False, "the audited samples' class counts differ"
    if da.get("index_sha256") and db.get("index_sha256"):
        # Both summaries record which source rows were audited: that settles it.
        same = da["index_sha256"] == db["index_sha256"]
        return same, "" if same else "different rows of the data file were audited"
    oa = (old.get("provenance") or {}).get("options") or {}
    ob = (new.get("provenance") or {}).get("options") or {}
    seeded = any("seeded" in str(d.get("role", "")) for d in (da, db)) or oa.get("audit_size") or ob.get("audit_size")
    if seeded and (oa.get("seed"), oa.get("audit_size")) != (ob.get("seed"), ob.get("audit_size")):
        return False, "the audited samples were drawn with different seeds or sizes"
    return True, ""


def verdict(deltas: Sequence[Mapping], *, old_label: str, new_label: str, comparable: bool = True, reason: str = "") -> dict:
    """The verdict line: {"word": better|worse|mixed|unchanged, "level", "text"}.

    A difference is called only when it exceeds its sampling noise (metric_deltas' change).
    Accuracy decides when it moved beyond its noise; otherwise the other VERDICT_METRICS
    (calibration and proper scores) decide: better or worse when they agree, mixed when they do not.
    """
    by_key = {d["key"]: d for d in deltas}
    acc = by_key.get("accuracy")
    acc_moved = bool(acc) and acc["change"] in ("better", "worse")
    others = [by_key[k] for k in VERDICT_METRICS if k != "accuracy" and k in by_key]
    better = [d for d in others if d["change"] == "better"]
    worse = [d for d in others if d["change"] == "worse"]

    def listed(items):
        return ", ".join(f"{metrics.short_name(d['key'])} {d['delta_text']} ({d['noise_text']})" for d in items)

    if acc_moved:
        word = acc["change"]
        text = f"{new_label} is {word} than {old_label}: accuracy {acc['delta_text']}, beyond sampling noise ({acc['noise_text']})"
        same_way = better if word == "better" else worse
        other_way = worse if word == "better" else better
        if same_way:
            text += f"; also {word} in {listed(same_way)}"
        if other_way:
            text += f"; but {'worse' if word == 'better' else 'better'} in {listed(other_way)}"
    else:
        word = "mixed" if better and worse else "better" if better else "worse" if worse else "unchanged"
        if word == "unchanged":
            text = (f"No difference between {new_label} and {old_label} exceeds its sampling noise in "
                    f"{', '.join(metrics.short_name(k) for k in VERDICT_METRICS if k in by_key)}")
        elif word == "mixed":
            text = f"Mixed: {new_label} is better than {old_label} in {listed(better)}, but worse in {listed(worse)}"
        else:
            text = f"{new_label} is {word} than {old_label} in {listed(better or worse)}"
        if acc and acc["change"] == "same" and acc["noise"] is not None and word != "unchanged":
            text += f"; the accuracy change ({acc['delta_text']}) is within sampling noise ({acc['noise_text']})"
    text += "."
    level = {"better": "good", "worse": "bad", "mixed": "warn", "unchanged": "info"}[word]
    if not comparable:
        text = f"Caution, not the same samples ({reason}): " + text
        level = "warn"
    return {"word": word, "level": level, "text": text}


# --------------------------------------------------------------------------- figure

def plot_reliability_overlay(old_bins: Sequence[Mapping], new_bins: Sequence[Mapping], *, labels: tuple[str, str], ax=None):
    """Both versions' reliability diagrams on one Axes: accuracy against mean confidence per non-empty bin.

    Args:
        old_bins, new_bins: summary.json calibration.bins ({lo, hi, count, accuracy, confidence}).
        labels: (old label, new label) for the legend.
    Returns:
        The Axes.
    """
    from ..report.figures import PALETTE, new_figure

    if ax is None:
        ax = new_figure(5.2, 4.2)[1][0, 0]
    ax.plot([0, 1], [0, 1], ls="--", color=PALETTE["grey"], lw=1, label="perfect calibration")
    for bins, label, colour, marker, style in ((old_bins, labels[0], PALETTE["blue"], "o", "-"),
                                                (new_bins, labels[1], PALETTE["vermillion"], "s", "--")):
        pts = [((b["confidence"] if b.get("confidence") is not None else (b["lo"] + b["hi"]) / 2), b["accuracy"])
               for b in bins if b.get("count") and b.get("accuracy") is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=marker, ls=style, ms=4, color=colour, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("accuracy in bin")
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    return ax


def _reliability_figure(old: Version, new: Version) -> dict:
    from ..report.figures import encode, new_figure

    fig, ax = new_figure(5.4, 4.4)
    ob = (old.summary.get("calibration") or {}).get("bins") or []
    nb = (new.summary.get("calibration") or {}).get("bins") or []
    plot_reliability_overlay(ob, nb, labels=(f"old: {old.label}", f"new: {new.label}"), ax=ax[0, 0])
    ax[0, 0].set_title("Reliability diagrams overlaid")
    a = encode(fig, key="reliability_overlay", title="Reliability diagrams of both versions",
               alt=(f"Accuracy against mean confidence per confidence bin for {old.label} (blue circles, solid line) and "
                    f"{new.label} (vermillion squares, dashed line); the grey diagonal is perfect calibration. "
                    f"Calibration error {metrics.fmt(old.metrics.get('calibration_error'))} for the old version, "
                    f"{metrics.fmt(new.metrics.get('calibration_error'))} for the new."))
    return {"key": a.key, "title": a.title, "alt": a.alt, "uri": a.uri, "note": a.note}


# --------------------------------------------------------------------------- context and files

def _side(v: Version, out: Path) -> dict:
    s = v.summary
    return {
        "label": v.label, "model": v.model, "version": v.version, "created_at": s.get("created_at"),
        "folder": str(v.folder), "report": os.path.relpath(v.folder / HTML_FILE, out).replace(os.sep, "/"),
        "model_sha256": (s.get("model") or {}).get("sha256"), "data": (s.get("data") or {}).get("name"),
        "data_sha256": (s.get("data") or {}).get("sha256"), "n_samples": v.metrics.get("n_samples"),
        "method": (s.get("method") or {}).get("description"), "n_flagged": len(v.flagged),
    }


def same_checked_labels(old: Mapping, new: Mapping) -> tuple[bool, str]:
    """Whether both audits checked the labels of the same samples (so their flags can be compared), and why not.

    With --cv the label check covers every labelled sample, not just the audited ones; summaries
    record a sha256 of the checked (split, row) pairs. Older summaries fall back to same_samples.
    """
    ca, cb = (old.get("label_issues") or {}).get("checked_sha256"), (new.get("label_issues") or {}).get("checked_sha256")
    if not ca or not cb:
        return same_samples(old, new)
    if (old.get("data") or {}).get("sha256") != (new.get("data") or {}).get("sha256"):
        return False, "the data files differ (sha256)"
    return (True, "") if ca == cb else (False, "the label checks covered different samples")


def build_context(old: Version, new: Version, *, out: Path, created_at: str | None = None) -> dict:
    """The plain-data context of compare.html / compare.pdf / compare.json."""
    from ..version import __version__

    comparable, reason = same_samples(old.summary, new.summary)
    paired = {}
    if comparable:
        po, pn = read_per_sample(old.folder), read_per_sample(new.folder)
        if po is not None and pn is not None:
            paired = paired_tests(po, pn)
    deltas = metric_deltas(old.metrics, new.metrics, paired)
    flags_ok, flags_reason = same_checked_labels(old.summary, new.summary)
    flagged = flagged_sets(old.flagged, new.flagged)
    return {
        "title": f"Comparison: {old.label} → {new.label}",
        "created_at": created_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "reportgen_version": __version__,
        "old": _side(old, out),
        "new": _side(new, out),
        "same_samples": comparable,
        "samples_note": reason,
        "flags_comparable": flags_ok,
        "flags_note": flags_reason,
        "verdict": verdict(deltas, old_label=old.label, new_label=new.label, comparable=comparable, reason=reason),
        "metrics": deltas,
        "per_class": per_class_changes(old.summary.get("per_class") or [], new.summary.get("per_class") or []),
        "flagged": flagged,
        "list_limit": LIST_LIMIT,
        "tolerance": REL_TOLERANCE,
        "verdict_metrics": list(VERDICT_METRICS),
        "paired": bool(paired),
    }


def default_output(old: Version, new: Version) -> Path:
    """`<NEW>/compare-<OLD version>/` (with the old model's name too when the models differ)."""
    tag = old.version if old.model == new.model else f"{old.model}-{old.version}"
    return new.folder / f"compare-{tag}"


def write(old_folder: str | Path, new_folder: str | Path, out: str | Path | None = None, *,
          force: bool = False, paper: str = "a4") -> Path:
    """Write compare.html, compare.pdf, compare.json and manifest.json for OLD → NEW.

    Args:
        out: the folder to create (default: default_output); never overwritten unless force.
    Returns:
        The output folder.
    Raises:
        ReportgenError: a version folder is unreadable, OLD and NEW are the same folder, or `out` exists without force.
    """
    from ..report.folder import staged_folder, write_manifest

    old, new = load_version(old_folder), load_version(new_folder)
    if old.folder.resolve() == new.folder.resolve():
        raise ReportgenError(f"{old.folder}: OLD and NEW are the same folder")
    final = Path(out) if out is not None else default_output(old, new)
    ctx = build_context(old, new, out=final)
    ctx["figures"] = {"reliability_overlay": _reliability_figure(old, new)}
    with staged_folder(final, force=force) as stage:
        (stage / COMPARE_HTML).write_text(render.render(COMPARE_HTML, ctx, paper=paper), encoding="utf-8")
        render.html_to_pdf(render.render(COMPARE_HTML, ctx, paper=paper, medium="print"), stage, stage / COMPARE_PDF)
        plain = {k: v for k, v in ctx.items() if k != "figures"}
        (stage / COMPARE_JSON).write_text(json.dumps(plain, indent=2) + "\n", encoding="utf-8")
        write_manifest(stage)
    return final
