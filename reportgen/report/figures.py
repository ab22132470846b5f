"""Figures for the report: `plot_*` draw on an Axes and return it; `encode` turns a figure into an SVG data URI.

Every figure is vector (SVG, in the HTML and the PDF alike), uses one shared style (STYLE) and the
Okabe-Ito palette, names its colours in its caption with the palette's names, and writes each
quantity in one notation: total uncertainty H(E[p]), aleatoric E[H(p)], epistemic I. Dense point
clouds are rasterised inside the SVG so files stay small.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

# Okabe-Ito: distinguishable with the common forms of colour blindness.
PALETTE = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000", "grey": "#999999",
}
CORRECT, WRONG = PALETTE["blue"], PALETTE["vermillion"]
# How captions name the two colours of correct and wrong predictions.
COLOURS = "blue: correct prediction, vermillion: wrong"
# One notation per quantity, in axes, tables and text alike.
NOTATION = {"total": "total H(E[p])", "aleatoric": "aleatoric E[H(p)]", "epistemic": "epistemic I = H(E[p]) − E[H(p)]"}
# At most this many points per scatter/strip so figures stay fast and light at any N.
MAX_POINTS = 4000
MAX_POINTS_PER_CLASS = 400
# Resolution of the raster parts inside the SVGs (image mosaics, rasterised point clouds).
DPI = 200
SEED = 0  # fixed jitter/subsample seed so a rerun draws the same picture
# Width of a full-width and of a half-width figure, inches (the PDF's text column is about 7.2 in).
FULL, HALF = 7.0, 3.45
# White margin around each figure's tight box (inches).
PAD_INCHES = 0.04
# The one matplotlib style of every report figure: type sizes that stay >= 7 pt when printed at the
# sizes above, text kept as text in the SVG, and labels never parsed as mathtext (class and model
# names come from user files; "$...$" in them must print as written).
STYLE = {
    "text.parse_math": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "reportgen",  # fixed clip-path ids: the same figure gives the same SVG bytes
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
}
# Colour order of lines and bars that do not choose their own.
CYCLE = ("blue", "vermillion", "green", "orange", "purple", "sky")
# Reliability-diagram bins with fewer samples are drawn pale and hatched: their accuracy is a handful of 0/1 outcomes.
RELIABLE_BIN = 30


@dataclass(frozen=True)
class FigureAsset:
    """One embedded figure: key, title, alt text, SVG data URI, a caption note that explains its encodings."""

    key: str
    title: str
    alt: str
    uri: str
    note: str = ""


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from cycler import cycler

    matplotlib.rcParams.update(STYLE)
    matplotlib.rcParams["axes.prop_cycle"] = cycler(color=[PALETTE[c] for c in CYCLE])
    return plt


def new_figure(w: float = FULL, h: float = 3.0, ncols: int = 1, nrows: int = 1):
    """A figure and its axes (Agg backend, the shared style)."""
    plt = _plt()
    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)


def _svg_uri(fig) -> str:
    """`fig` as an SVG data URI."""
    buf = io.BytesIO()
    # The tight box from the Agg renderer's text extents: bbox_inches="tight" would draw the whole SVG twice.
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(PAD_INCHES)
    fig.savefig(buf, format="svg", bbox_inches=box, metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def encode(fig, *, key: str, title: str, alt: str, note: str = "") -> FigureAsset:
    """SVG-encode `fig` as a data URI and close it (always, even on error)."""
    plt = _plt()
    try:
        uri = _svg_uri(fig)
    finally:
        plt.close(fig)
    return FigureAsset(key, title, alt, uri, note)


def subsample(n: int, limit: int, seed: int = SEED) -> np.ndarray:
    """Sorted indices of at most `limit` of `n` items (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, nbins=5))


def _tick_labels(names, k: int):
    return [str(n) for n in names], (0 if k <= 12 else 90)


# --------------------------------------------------------------------------- plots


def plot_confidence_by_class(confidence, labels, class_names, *, correct=None, ax=None):
    """Strip + box plot of confidence (max probability) per TRUE class, one column per class."""
    if ax is None:
        ax = new_figure()[1][0, 0]
    rng = np.random.default_rng(SEED)
    k = len(class_names)
    data = [confidence[labels == c] for c in range(k)]
    ax.boxplot([d if len(d) else [np.nan] for d in data], positions=range(k), widths=0.6, showfliers=False,
               medianprops={"color": PALETTE["black"]}, boxprops={"color": PALETTE["grey"]},
               whiskerprops={"color": PALETTE["grey"]}, capprops={"color": PALETTE["grey"]})
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        idx = idx[subsample(len(idx), MAX_POINTS_PER_CLASS)]
        x = c + rng.uniform(-0.25, 0.25, len(idx))
        col = CORRECT if correct is None else np.where(correct[idx], CORRECT, WRONG)
        ax.scatter(x, confidence[idx], s=4, c=col, alpha=0.5, linewidths=0, rasterized=True)
    names, rotation = _tick_labels(class_names, k)
    ax.set_xticks(range(k))
    ax.set_xticklabels(names, rotation=rotation)
    ax.set_xlabel("true class")
    ax.set_ylabel("confidence = max probability")
    ax.set_ylim(-0.02, 1.02)
    return ax


def plot_entropy_hist(entropy, correct, *, k: int, label: str = NOTATION["total"] + " (nats)", upper: float | None = None, ax=None,
                      counts: tuple[int, int] | None = None):
    """Histograms of an entropy for correct vs wrong predictions (density, shared bins up to `upper`, default log K).

    counts: (correct, wrong) over all samples for the legend when `entropy` is a sample of them (default: counted here).
    """
    if ax is None:
        ax = new_figure(HALF, 2.4)[1][0, 0]
    top = upper if upper is not None else np.log(k)
    bins = np.linspace(0, max(top, 1e-6), 31)
    for mask, col, name, total in ((correct, CORRECT, "correct", None if counts is None else counts[0]),
                                   (~correct, WRONG, "wrong", None if counts is None else counts[1])):
        if mask.any():
            shown = int(mask.sum()) if total is None else int(total)
            # stepfilled: one path per histogram instead of one per bar (the PDF draws every SVG node)
            ax.hist(entropy[mask], bins=bins, density=True, histtype="stepfilled", alpha=0.6, color=col,
                    label=f"{name} (n = {shown:,})")
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return ax


def plot_aleatoric_epistemic(aleatoric, epistemic, correct, *, ax=None):
    """Scatter of aleatoric E[H(p)] against epistemic I, coloured by correctness."""
    if ax is None:
        ax = new_figure(HALF, 2.8)[1][0, 0]
    idx = subsample(len(aleatoric), MAX_POINTS)
    for mask, col, name in ((correct[idx], CORRECT, "correct"), (~correct[idx], WRONG, "wrong")):
        ax.scatter(aleatoric[idx][mask], epistemic[idx][mask], s=5, c=col, alpha=0.5, linewidths=0, label=name, rasterized=True)
    ax.set_xlabel(NOTATION["aleatoric"] + " (nats)")
    ax.set_ylabel("epistemic I (nats)")
    ax.legend(frameon=False)
    return ax


def plot_reliability(bin_edges, bin_accuracy, bin_confidence, bin_count, *, ax=None, label="model", color=None):
    """Reliability diagram: accuracy per confidence bin against the diagonal, each bar labelled with its sample count;
    bins of fewer than RELIABLE_BIN samples are drawn hatched and pale (their accuracy is a handful of 0/1 outcomes)."""
    if ax is None:
        ax = new_figure(HALF, 3.0)[1][0, 0]
    edges = np.asarray(bin_edges)
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    count = np.asarray(bin_count)
    ok = count > 0
    few = ok & (count < RELIABLE_BIN)
    acc = np.asarray(bin_accuracy)
    ax.plot([0, 1], [0, 1], ls="--", color=PALETTE["grey"], lw=1, label="perfect calibration")
    ax.bar(centers[ok & ~few], acc[ok & ~few], width=width * 0.9, color=color or PALETTE["blue"], alpha=0.7,
           label=f"{label}: accuracy per bin")
    if few.any():
        ax.bar(centers[few], acc[few], width=width * 0.9, color=color or PALETTE["blue"], alpha=0.25, hatch="///",
               edgecolor=PALETTE["blue"], label=f"bins of < {RELIABLE_BIN} samples")
    ax.plot(np.asarray(bin_confidence)[ok], acc[ok], "o", ms=3, color=PALETTE["black"], label="mean confidence in bin")
    for x, y, c in zip(centers[ok], acc[ok], count[ok]):
        ax.text(x, min(y, 0.93) + 0.02, f"{c:,}", ha="center", va="bottom", fontsize=5.5, rotation=90)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy in bin")
    ax.legend(frameon=False, loc="upper left", fontsize=6)
    return ax


def plot_confidence_histogram(bin_edges, bin_count, *, ax=None):
    """Samples per confidence bin (the reliability diagram's bins), integer ticks."""
    if ax is None:
        ax = new_figure(HALF, 1.0)[1][0, 0]
    centers = (np.asarray(bin_edges[:-1]) + np.asarray(bin_edges[1:])) / 2
    ax.bar(centers, bin_count, width=(bin_edges[1] - bin_edges[0]) * 0.9, color=PALETTE["grey"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(1, int(np.max(bin_count))) * 1.15)
    _integer_ticks(ax.yaxis)
    ax.set_xlabel("confidence")
    ax.set_ylabel("samples")
    return ax


def plot_per_class_accuracy(per_class, overall=None, overall_ci=None, *, ax=None):
    """Recall per class with its 95 % Wilson interval as error bars; the overall accuracy and its interval as a band."""
    if ax is None:
        ax = new_figure(FULL, 2.3)[1][0, 0]
    rows = [r for r in per_class if r.get("accuracy") is not None]
    x = np.arange(len(rows))
    acc = np.array([100 * r["accuracy"] for r in rows])
    lo = np.array([100 * r["accuracy_ci"][0] for r in rows])
    hi = np.array([100 * r["accuracy_ci"][1] for r in rows])
    if overall_ci is not None and None not in overall_ci:
        ax.axhspan(100 * overall_ci[0], 100 * overall_ci[1], color=PALETTE["sky"], alpha=0.3, lw=0,
                   label="all classes, 95 % interval")
    if overall is not None:
        ax.axhline(100 * overall, color=PALETTE["blue"], lw=1, ls="--", label="all classes")
    ax.errorbar(x, acc, yerr=[acc - lo, hi - acc], fmt="o", color=PALETTE["black"], ecolor=PALETTE["black"], capsize=3, ms=4,
                label="recall of the class, 95 % Wilson interval")
    names, rotation = _tick_labels([r["name"] for r in rows], len(rows))
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=rotation)
    ax.set_xlabel("true class")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(max(0.0, float(lo.min()) - 3), min(100.5, float(hi.max()) + 1.5))
    ax.legend(frameon=False, loc="lower left", ncol=3)
    return ax


def plot_risk_coverage(coverage, risk, *, ax=None, label="model", color=None, point=None):
    """Risk (error rate among kept samples) against coverage, keeping the most confident first.

    point: (coverage, risk, certified bound) of the operating point to mark, or None.
    """
    if ax is None:
        ax = new_figure(HALF, 2.6)[1][0, 0]
    ax.plot(coverage, 100 * np.asarray(risk), color=color or PALETTE["blue"], label=label)
    ax.axhline(1.0, color=PALETTE["grey"], ls=":", lw=1, label="1 % error")
    if point is not None:
        c, r, b = point
        ax.errorbar([c], [100 * r], yerr=[[0], [100 * (b - r)]], fmt="D", ms=4, color=PALETTE["black"], capsize=3,
                    label=f"operating point: {100 * c:.1f} % kept")
    ax.set_xlabel("coverage (share of samples kept)")
    ax.set_ylabel("error of kept samples (%)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, loc="upper left")
    return ax


def plot_confusion(labels, predicted, class_names, *, ax=None):
    """Confusion matrix counts (rows: true class, columns: predicted class) of per-sample labels and predictions."""
    k = len(class_names)
    return plot_confusion_counts(np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k), class_names, ax=ax)


def plot_confusion_counts(confusion, class_names, *, ax=None):
    """Confusion matrix from its (K, K) counts (rows: true class, columns: predicted class)."""
    if ax is None:
        ax = new_figure(HALF, 3.2)[1][0, 0]
    k = len(class_names)
    cm = np.asarray(confusion, dtype=np.int64).reshape(k, k)
    ax.imshow(np.log1p(cm), cmap="Blues")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6.5 if k <= 10 else 5.5,
                            color="white" if np.log1p(cm[i, j]) > np.log1p(cm.max()) / 2 else "black")
    names, rotation = _tick_labels(class_names, k)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=rotation)
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return ax


def plot_noise_counts(counts, class_names, *, ax=None):
    """Estimated label flips as counts: given label i (rows) against estimated true label j (columns), diagonal dimmed.

    Args:
        counts: (K, K) estimated numbers of samples per (given, true) pair (the calibrated confident joint times N).
    """
    if ax is None:
        ax = new_figure(HALF, 3.2)[1][0, 0]
    k = len(class_names)
    c = np.rint(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    off = c.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    ax.imshow(np.ma.masked_invalid(off), cmap="Oranges", vmin=0, vmax=max(1.0, float(np.nanmax(off)) if k > 1 else 1.0))
    diag = np.full((k, k), np.nan)
    np.fill_diagonal(diag, 1.0)
    ax.imshow(np.ma.masked_invalid(diag), cmap="Greys", vmin=0, vmax=4)  # the kept labels in light grey
    if k <= 15:
        top = max(1, int(np.nanmax(off))) if k > 1 else 1
        for i in range(k):
            for j in range(k):
                if i != j and c[i, j]:
                    ax.text(j, i, str(c[i, j]), ha="center", va="center", fontsize=7 if k <= 10 else 6,
                            color="white" if c[i, j] > top * 0.6 else "black")
    names, rotation = _tick_labels(class_names, k)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=rotation)
    ax.set_yticklabels(names)
    ax.set_xlabel("estimated true label j")
    ax.set_ylabel("given label i")
    return ax


def plot_bars(values, class_names, *, ylabel: str, ax=None):
    """One bar per class; integer ticks (the values are counts)."""
    if ax is None:
        ax = new_figure(HALF, 2.2)[1][0, 0]
    ax.bar(range(len(values)), values, color=PALETTE["blue"])
    names, rotation = _tick_labels(class_names, len(values))
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(names, rotation=rotation)
    ax.set_ylim(0, max(1, int(np.max(values)) if len(values) else 1) * 1.15)
    _integer_ticks(ax.yaxis)
    ax.set_xlabel("given label")
    ax.set_ylabel(ylabel)
    return ax


# --------------------------------------------------------------------------- the report's figures


def _display(stats) -> SimpleNamespace:
    """The display sample of a stats.summary.ModeStats as arrays (position, label, predicted, correct, confidence, ...)."""
    d = {k: np.asarray(v) for k, v in stats.display.items()}
    d["correct"] = d["correct"].astype(bool)
    return SimpleNamespace(**d, n=len(d["position"]))


def report_figures(results) -> list[FigureAsset]:
    """Every figure of the audit report, in display order.

    Args:
        results: a report.inputs.AuditResults (the shipped mode's statistics lead; uncertainty figures use the
            sampled mode's display sample). The image galleries are galleries.py's.
    """
    lead, unc = results.lead, results.uncertainty
    names, k, n = results.data.class_names, results.data.n_classes, results.data.count
    disp = _display(unc)
    out = []
    m = lead.metrics
    n_wrong = int(unc.uncertainty["n_errors"])
    counts = (n - n_wrong, n_wrong)
    fig, ax = new_figure(FULL, 2.3)
    plot_per_class_accuracy(lead.per_class, m.get("accuracy"), (m.get("accuracy_ci_low"), m.get("accuracy_ci_high")), ax=ax[0, 0])
    out.append(encode(fig, key="per_class_accuracy", title="Recall per class with 95 % intervals",
                      alt="Recall of each class as a black point with its 95 % Wilson interval as an error bar, against the "
                          "overall accuracy (blue dashed line) and its 95 % interval (sky-blue band).",
                      note="black points and error bars: each class's recall and its 95 % Wilson interval; blue dashed line "
                           "and sky-blue band: the accuracy over all classes and its interval"))
    fig, ax = new_figure(HALF, 3.2)
    plot_confusion_counts(lead.confusion, names, ax=ax[0, 0])
    out.append(encode(fig, key="confusion", title="Confusion matrix",
                      alt="Confusion matrix of true against predicted classes, with the count in each cell.",
                      note="counts; darker blue: more samples"))
    sample = disp.n < n
    drawn = f"drawn from a random sample of {disp.n:,} of the {n:,} samples; " if sample else ""
    sub_note = (f"{min(disp.n, MAX_POINTS_PER_CLASS * k):,} of {n:,} points drawn (random subsample); "
                if disp.n > MAX_POINTS_PER_CLASS * k or sample else "")
    if sample:
        sub_note += f"boxes from a random sample of {disp.n:,}; "
    fig, ax = new_figure(FULL, 2.4)
    plot_confidence_by_class(disp.confidence, disp.label, names, correct=disp.correct, ax=ax[0, 0])
    out.append(encode(fig, key="confidence_by_class", title="Confidence per true class",
                      alt="Box and strip plot of the model's confidence (maximum probability) for each true class; correct "
                          "predictions in blue, wrong ones in vermillion.", note=sub_note + COLOURS))
    if unc.sampled:
        fig, ax = new_figure(FULL, 2.2, ncols=3)
        plot_entropy_hist(disp.total, disp.correct, k=k, label=NOTATION["total"] + " (nats)", ax=ax[0, 0], counts=counts)
        plot_entropy_hist(disp.aleatoric, disp.correct, k=k, label=NOTATION["aleatoric"] + " (nats)", ax=ax[0, 1], counts=counts)
        plot_entropy_hist(disp.epistemic, disp.correct, k=k, label="epistemic I (nats)",
                          upper=float(np.quantile(disp.epistemic, 0.999)) if disp.n else None, ax=ax[0, 2], counts=counts)
        alt = "Three histograms (total, aleatoric and epistemic uncertainty) for correct and wrong predictions."
    else:
        fig, ax = new_figure(HALF, 2.4)
        plot_entropy_hist(disp.total, disp.correct, k=k, ax=ax[0, 0], counts=counts)
        alt = "Histograms of the total uncertainty H(E[p]) for correct and wrong predictions."
    fig.tight_layout()
    out.append(encode(fig, key="entropy_hist", title="Uncertainty of correct and wrong predictions", alt=alt, note=drawn + COLOURS))
    if unc.sampled:
        fig, ax = new_figure(HALF, 2.8)
        plot_aleatoric_epistemic(disp.aleatoric, disp.epistemic, disp.correct, ax=ax[0, 0])
        out.append(encode(fig, key="aleatoric_epistemic", title="Aleatoric against epistemic uncertainty",
                          alt="Scatter plot of aleatoric against epistemic uncertainty per sample, correct in blue, wrong in vermillion.",
                          note=(f"{min(disp.n, MAX_POINTS):,} of {n:,} samples drawn; " if n > MAX_POINTS else "") + COLOURS))
    bins = lead.calibration["bins"]
    edges = np.array([b["lo"] for b in bins] + [bins[-1]["hi"]])
    acc = np.array([np.nan if b["accuracy"] is None else b["accuracy"] for b in bins])
    conf = np.array([np.nan if b["confidence"] is None else b["confidence"] for b in bins])
    count = np.array([b["count"] for b in bins])
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(HALF, 3.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    plot_reliability(edges, acc, conf, count, ax=top)
    top.set_xlabel("")
    plot_confidence_histogram(edges, count, ax=bottom)
    out.append(encode(fig, key="reliability", title="Reliability diagram, with the confidence histogram beneath",
                      alt="Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration, each bar "
                          "labelled with its number of samples; beneath it, the number of samples in each bin.",
                      note=f"{len(bins)} equal-width bins; blue bars: accuracy per bin (hatched: fewer than "
                           f"{RELIABLE_BIN} samples, too few to read), numbers: samples in the bin; black points: mean confidence "
                           "in the bin; grey dashes: perfect calibration; grey bars beneath: samples per bin"))
    sel = lead.selective
    rule = sel["rule"]
    fig, ax = new_figure(HALF, 2.6)
    plot_risk_coverage(np.asarray(sel["curve"]["coverage"]), np.asarray(sel["curve"]["risk"]), ax=ax[0, 0],
                       point=(rule["coverage"], rule["risk"], rule["bound"]) if rule["certified"] else None)
    out.append(encode(fig, key="risk_coverage", title="Risk-coverage curve",
                      alt="Error rate among kept samples against coverage when abstaining on the least confident samples first"
                          + ("; the certified operating point is marked." if rule["certified"] else "."),
                      note=f"AURC {sel['aurc']:.4f}; grey dotted line: 1 % error"
                           + ("; black diamond: the operating point certified for ≤ 1 % error, its whisker up to the certified bound"
                              if rule["certified"] else "; no threshold certifies 1 % error, so no operating point is marked")))
    li = results.labels
    fig, ax = new_figure(HALF, 3.2)
    plot_noise_counts(li.calibrated_joint * li.n_checked, names, ax=ax[0, 0])
    out.append(encode(fig, key="noise_matrix", title="Estimated label flips",
                      alt="Heatmap of the estimated number of samples per pair of given and true label; the diagonal (labels "
                          "kept) is light grey, off-diagonal counts in orange.",
                      note="numbers: estimated samples given label i whose true label is j (confident learning); "
                           "orange: more; light grey diagonal: labels estimated correct"))
    fig, ax = new_figure(HALF, 2.2)
    plot_bars(li.per_class_issues, names, ylabel="candidates", ax=ax[0, 0])
    out.append(encode(fig, key="issues_per_class", title="Candidates for review per given label",
                      alt="Bar chart of the number of candidates for human review per given label."))
    return out
