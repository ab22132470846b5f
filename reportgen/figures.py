"""Figures for the report: `plot_*` draw on an Axes and return it; `encode` turns a figure into a data URI."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

# Okabe-Ito: distinguishable with the common forms of colour blindness.
PALETTE = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000", "grey": "#999999",
}
CORRECT, WRONG = PALETTE["blue"], PALETTE["vermillion"]
# At most this many points per scatter/strip so figures stay fast and light at any N.
MAX_POINTS = 4000
MAX_POINTS_PER_CLASS = 400
# Resolution of embedded PNGs: sharp in print at the sizes the templates use.
DPI = 100
SEED = 0  # fixed jitter/subsample seed so a rerun draws the same picture


@dataclass(frozen=True)
class FigureAsset:
    """One embedded figure: key, title, alt text, PNG data URI, optional caption note."""

    key: str
    title: str
    alt: str
    uri: str
    note: str = ""


# The one matplotlib style of every report figure. Labels are never parsed as mathtext: class names
# and model names come from user files, and "$...$" in them must print as written.
STYLE = {"text.parse_math": False}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(STYLE)
    return plt


def new_figure(w: float = 6.4, h: float = 3.6, ncols: int = 1, nrows: int = 1):
    """A figure and its axes (Agg backend)."""
    plt = _plt()
    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)


def encode(fig, *, key: str, title: str, alt: str, note: str = "") -> FigureAsset:
    """PNG-encode `fig` as a data URI and close it (always, even on error)."""
    plt = _plt()
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    finally:
        plt.close(fig)
    return FigureAsset(key, title, alt, uri, note)


def subsample(n: int, limit: int, seed: int = SEED) -> np.ndarray:
    """Sorted indices of at most `limit` of `n` items (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


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
        ax.scatter(x, confidence[idx], s=5, c=col, alpha=0.5, linewidths=0)
    ax.set_xticks(range(k))
    ax.set_xticklabels(class_names, rotation=0 if k <= 12 else 90)
    ax.set_xlabel("true class")
    ax.set_ylabel("confidence = max probability")
    ax.set_ylim(-0.02, 1.02)
    return ax


def plot_entropy_hist(entropy, correct, *, k: int, label: str = "predictive entropy (nats)", upper: float | None = None, ax=None):
    """Histograms of an entropy for correct vs wrong predictions (density, shared bins up to `upper`, default log K)."""
    if ax is None:
        ax = new_figure()[1][0, 0]
    top = upper if upper is not None else np.log(k)
    bins = np.linspace(0, max(top, 1e-6), 31)
    for mask, col, name in ((correct, CORRECT, "correct"), (~correct, WRONG, "wrong")):
        if mask.any():
            ax.hist(entropy[mask], bins=bins, density=True, alpha=0.6, color=col, label=f"{name} (n={int(mask.sum())})")
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return ax


def plot_aleatoric_epistemic(aleatoric, epistemic, correct, *, ax=None):
    """Scatter of aleatoric (expected entropy) vs epistemic (mutual information), coloured by correctness."""
    if ax is None:
        ax = new_figure()[1][0, 0]
    idx = subsample(len(aleatoric), MAX_POINTS)
    for mask, col, name in ((correct[idx], CORRECT, "correct"), (~correct[idx], WRONG, "wrong")):
        ax.scatter(aleatoric[idx][mask], epistemic[idx][mask], s=6, c=col, alpha=0.5, linewidths=0, label=name)
    ax.set_xlabel("aleatoric = E[H(p)] (nats)")
    ax.set_ylabel("epistemic = mutual information (nats)")
    ax.legend(frameon=False)
    return ax


def plot_reliability(bin_edges, bin_accuracy, bin_confidence, bin_count, *, ax=None, label="model", color=None):
    """Reliability diagram: accuracy per confidence bin against the diagonal (bin counts: plot_confidence_histogram)."""
    if ax is None:
        ax = new_figure(5.2, 4.2)[1][0, 0]
    centers = (bin_edges[:-1] + bin_edges[1:]) / 2
    width = bin_edges[1] - bin_edges[0]
    ok = np.asarray(bin_count) > 0
    ax.plot([0, 1], [0, 1], ls="--", color=PALETTE["grey"], lw=1, label="perfect calibration")
    ax.bar(centers[ok], np.asarray(bin_accuracy)[ok], width=width * 0.9, color=color or PALETTE["blue"], alpha=0.7, label=f"{label}: accuracy")
    ax.plot(np.asarray(bin_confidence)[ok], np.asarray(bin_accuracy)[ok], "o", ms=3, color=PALETTE["black"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (bin)")
    ax.set_ylabel("accuracy in bin")
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    return ax


def plot_confidence_histogram(bin_edges, bin_count, *, ax=None):
    """Samples per confidence bin (the reliability diagram's bins), integer ticks."""
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        ax = new_figure(5.2, 1.4)[1][0, 0]
    centers = (np.asarray(bin_edges[:-1]) + np.asarray(bin_edges[1:])) / 2
    ax.bar(centers, bin_count, width=(bin_edges[1] - bin_edges[0]) * 0.9, color=PALETTE["grey"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(1, int(np.max(bin_count))) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    ax.set_xlabel("confidence")
    ax.set_ylabel("samples")
    return ax


def plot_per_class_accuracy(per_class, overall=None, overall_ci=None, *, ax=None):
    """Recall per class with its 95 % Wilson interval as error bars; the overall accuracy and its interval as a band."""
    if ax is None:
        ax = new_figure(6.4, 3.0)[1][0, 0]
    rows = [r for r in per_class if r.get("accuracy") is not None]
    x = np.arange(len(rows))
    acc = np.array([100 * r["accuracy"] for r in rows])
    lo = np.array([100 * r["accuracy_ci"][0] for r in rows])
    hi = np.array([100 * r["accuracy_ci"][1] for r in rows])
    if overall_ci is not None:
        ax.axhspan(100 * overall_ci[0], 100 * overall_ci[1], color=PALETTE["sky"], alpha=0.25, lw=0,
                   label="all classes: 95 % interval")
    if overall is not None:
        ax.axhline(100 * overall, color=PALETTE["blue"], lw=1, ls="--", label="all classes")
    ax.errorbar(x, acc, yerr=[acc - lo, hi - acc], fmt="o", color=PALETTE["black"], ecolor=PALETTE["black"], capsize=3, ms=4,
                label="class recall, 95 % Wilson interval")
    ax.set_xticks(x)
    ax.set_xticklabels([str(r["name"]) for r in rows], rotation=0 if len(rows) <= 12 else 90)
    ax.set_xlabel("true class")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(max(0.0, float(lo.min()) - 3), min(100.5, float(hi.max()) + 1.5))
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    return ax


def plot_risk_coverage(coverage, risk, *, ax=None, label="model", color=None):
    """Risk (error rate among kept samples) against coverage, keeping the most confident first."""
    if ax is None:
        ax = new_figure(5.2, 3.6)[1][0, 0]
    ax.plot(coverage, risk, color=color or PALETTE["blue"], label=label)
    ax.set_xlabel("coverage (share of samples kept)")
    ax.set_ylabel("risk (error rate of kept samples)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    return ax


def plot_confusion(labels, predicted, class_names, *, ax=None):
    """Confusion matrix counts (rows: true class, columns: predicted class)."""
    if ax is None:
        ax = new_figure(5.0, 4.4)[1][0, 0]
    k = len(class_names)
    cm = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    ax.imshow(np.log1p(cm), cmap="Blues")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 3 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=90 if k > 12 else 0)
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return ax


def plot_matrix(matrix, class_names, *, xlabel: str, ylabel: str, fmt: str = "{:.2f}", ax=None):
    """Heatmap of a K x K matrix of values in [0, 1] with the values written in."""
    if ax is None:
        ax = new_figure(5.0, 4.4)[1][0, 0]
    k = len(class_names)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1e-9, float(np.max(matrix))))
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] > np.max(matrix) / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=90 if k > 12 else 0)
    ax.set_yticklabels(class_names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def plot_bars(values, class_names, *, ylabel: str, ax=None):
    """One bar per class."""
    if ax is None:
        ax = new_figure(6.0, 2.8)[1][0, 0]
    ax.bar(range(len(values)), values, color=PALETTE["blue"])
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(class_names, rotation=90 if len(values) > 12 else 0)
    ax.set_xlabel("given label")
    ax.set_ylabel(ylabel)
    return ax


def gallery(images, items, class_names, *, mean_probs=None, std_probs=None, ncols: int = 5):
    """A grid of images, each with a title and, when given, its probability bars (mean ± spread).

    Everything is drawn on ONE axes in cell coordinates (one image mosaic, one bar call), which
    is an order of magnitude faster than a subplot per image.

    Args:
        images: (N,H,W,C) uint8.
        items: list of (index, title) pairs, in display order.
        mean_probs, std_probs: (N,K) class probabilities and their spread across samples, or None.
    """
    n = len(items)
    ncols = min(ncols, max(1, n))
    nrows = int(np.ceil(n / ncols))
    h, w, c = images.shape[1:]
    k = len(class_names)
    bars = mean_probs is not None
    gap = 0.25 * w
    cell_w = w + gap
    bar_h = 0.7 * h if bars else 0.0
    title_h = 0.55 * h
    cell_h = title_h + h + (bar_h + 0.25 * h if bars else 0.1 * h)
    fig, axes = new_figure(1.6 * ncols, 1.6 * nrows * cell_h / (w + gap))
    ax = axes[0, 0]
    canvas = np.full((int(np.ceil(nrows * cell_h)), int(np.ceil(ncols * cell_w)), 3), 255, np.uint8)
    xs, ys, heights, errs, labels = [], [], [], [], []
    for t, (i, title) in enumerate(items):
        r, col = divmod(t, ncols)
        x0, y0 = int(col * cell_w), int(r * cell_h + title_h)
        img = images[i]
        rgb = np.repeat(255 - img, 3, axis=2) if c == 1 else img[..., :3]
        canvas[y0:y0 + h, x0:x0 + w] = rgb
        ax.text(x0 + w / 2, r * cell_h + title_h - 1, title, ha="center", va="bottom", fontsize=5.5)
        if bars:
            base = y0 + h + bar_h + 0.1 * h
            width = w / k
            for j in range(k):
                xs.append(x0 + (j + 0.5) * width)
                ys.append(base)
                heights.append(-bar_h * mean_probs[i, j])
                errs.append(0.0 if std_probs is None else bar_h * std_probs[i, j])
            labels.append((x0, base, width))
    ax.imshow(canvas, interpolation="nearest")
    if bars:
        from matplotlib.collections import LineCollection, PolyCollection

        def rects(x, bottom, height, width):
            return [[(a - width / 2, b), (a + width / 2, b), (a + width / 2, b + h), (a - width / 2, b + h)]
                    for a, b, h in zip(x, bottom, height)]

        # One collection per layer (background bands, bars, error bars) instead of a patch per bar.
        bands = rects([x0 + w / 2 for x0, _, _ in labels], [b for _, b, _ in labels], [-bar_h] * len(labels), w)
        ax.add_collection(PolyCollection(bands, facecolors="#eeeeee", linewidths=0))
        ax.add_collection(PolyCollection(rects(xs, ys, heights, w / k * 0.85), facecolors=PALETTE["blue"], linewidths=0))
        if std_probs is not None:
            tops = np.array(ys) + np.array(heights)
            segs = [[(x, t - e), (x, t + e)] for x, t, e in zip(xs, tops, errs) if e > 0]
            ax.add_collection(LineCollection(segs, colors=PALETTE["black"], linewidths=0.5))
        for t, (x0, base, width) in enumerate(labels):
            if t % ncols == 0 and k <= 10:  # class names under the first chart of each row only
                for j, name in enumerate(class_names):
                    ax.text(x0 + (j + 0.5) * width, base + 0.5, name[:2], ha="center", va="top", fontsize=3.5)
    ax.set_xlim(0, canvas.shape[1])
    ax.set_ylim(canvas.shape[0], 0)
    ax.axis("off")
    return fig


# Number of images in each gallery.
GALLERY_SIZE = 15


def report_figures(ds, result, *, has_images: bool = True) -> list[FigureAsset]:
    """Every figure of the audit report, in display order.

    Args:
        ds: the audited Dataset (images (N,H,W,C) uint8, labels (N,), class_names).
        result: a pipeline.AuditResult for the same samples.
        has_images: False when only saved probabilities were given (image galleries skipped).
    """
    st, names, k = result.stats, ds.class_names, ds.n_classes
    y = ds.labels
    src = ds.source_index  # image captions name the row in the source file
    n = len(y)
    sub_note = f"{min(n, MAX_POINTS_PER_CLASS * k):,} of {n:,} points drawn (random subsample)" if n > MAX_POINTS_PER_CLASS else ""
    out = []
    fig, ax = new_figure(7.0, 3.6)
    plot_confidence_by_class(st.confidence, y, names, correct=st.correct, ax=ax[0, 0])
    ax[0, 0].set_title("Confidence per true class (blue: correct, red: wrong)")
    out.append(encode(fig, key="confidence_by_class", title="Confidence per true class",
                      alt="Box and strip plot of the model's confidence (maximum probability) for each true class; wrong predictions in red.",
                      note=sub_note))
    if st.epistemic_measured:
        fig, ax = new_figure(10.5, 3.0, ncols=3)
        plot_entropy_hist(st.total, st.correct, k=k, label="total = H[E p] (nats)", ax=ax[0, 0])
        plot_entropy_hist(st.aleatoric, st.correct, k=k, label="aleatoric = E[H p] (nats)", ax=ax[0, 1])
        plot_entropy_hist(st.epistemic, st.correct, k=k, label="epistemic = mutual information (nats)",
                          upper=float(np.quantile(st.epistemic, 0.999)) if n else None, ax=ax[0, 2])
        ax[0, 0].set_title("Total")
        ax[0, 1].set_title("Aleatoric")
        ax[0, 2].set_title("Epistemic")
        alt = "Three histograms (total, aleatoric and epistemic uncertainty) for correct and wrong predictions."
    else:
        fig, ax = new_figure(6.4, 3.2)
        plot_entropy_hist(st.total, st.correct, k=k, ax=ax[0, 0])
        ax[0, 0].set_title("Predictive entropy, correct vs wrong")
        alt = "Histograms of predictive entropy for correct and wrong predictions."
    out.append(encode(fig, key="entropy_hist", title="Entropy for correct and wrong predictions", alt=alt))
    if st.epistemic_measured:
        fig, ax = new_figure(6.0, 4.0)
        plot_aleatoric_epistemic(st.aleatoric, st.epistemic, st.correct, ax=ax[0, 0])
        ax[0, 0].set_title("Aleatoric vs epistemic uncertainty")
        out.append(encode(fig, key="aleatoric_epistemic", title="Aleatoric vs epistemic uncertainty",
                          alt="Scatter plot of aleatoric against epistemic uncertainty per sample, coloured by correct or wrong.",
                          note=f"{min(n, MAX_POINTS):,} of {n:,} samples drawn" if n > MAX_POINTS else ""))
    cal = result.calibration
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.4, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    plot_reliability(cal.bin_edges, cal.bin_accuracy, cal.bin_confidence, cal.bin_count, ax=top)
    top.set_xlabel("")
    top.set_title(f"Reliability diagram ({cal.n_bins} equal-width bins)")
    plot_confidence_histogram(cal.bin_edges, cal.bin_count, ax=bottom)
    out.append(encode(fig, key="reliability", title="Reliability diagram, with the confidence histogram beneath",
                      alt="Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration; beneath it, "
                          "the number of samples in each bin."))
    m = result.metrics
    fig, ax = new_figure(6.4, 3.0)
    plot_per_class_accuracy(result.per_class, m.get("accuracy"), (m.get("accuracy_ci_low"), m.get("accuracy_ci_high")), ax=ax[0, 0])
    ax[0, 0].set_title("Recall per class with 95 % intervals")
    out.append(encode(fig, key="per_class_accuracy", title="Recall per class",
                      alt="Recall of each class as a point with its 95 % Wilson interval as an error bar, against the overall "
                          "accuracy (dashed line) and its 95 % interval (shaded band)."))
    sel = result.selective
    fig, ax = new_figure(5.4, 3.6)
    plot_risk_coverage(sel.coverage, sel.risk, ax=ax[0, 0])
    ax[0, 0].set_title(f"Risk-coverage curve (AURC {sel.aurc:.4f})")
    out.append(encode(fig, key="risk_coverage", title="Risk-coverage curve",
                      alt="Risk (error rate among kept samples) against coverage when abstaining on the least confident samples first."))
    fig, ax = new_figure(5.2, 4.6)
    plot_confusion(y, st.predicted, names, ax=ax[0, 0])
    ax[0, 0].set_title("Confusion matrix (counts)")
    out.append(encode(fig, key="confusion", title="Confusion matrix", alt="Confusion matrix of true against predicted classes, with counts."))
    lr = result.labels
    iss = lr.issues
    fig, ax = new_figure(5.2, 4.6)
    plot_matrix(iss.noise_matrix, names, xlabel="true label j (estimated)", ylabel="given label i", ax=ax[0, 0])
    ax[0, 0].set_title("Estimated noise matrix P(given = i | true = j)")
    out.append(encode(fig, key="noise_matrix", title="Estimated noise matrix",
                      alt="Heatmap of the estimated label noise matrix from confident learning; off-diagonal cells are estimated label-flip rates."))
    fig, ax = new_figure(6.0, 2.8)
    plot_bars(iss.per_class_issues, names, ylabel="flagged samples", ax=ax[0, 0])
    ax[0, 0].set_title("Flagged samples per given label")
    out.append(encode(fig, key="issues_per_class", title="Flagged samples per given label", alt="Bar chart of the number of flagged samples per given label."))
    if has_images:
        sp = result.sampled
        if st.epistemic_measured:
            for key, vals, what in (("gallery_aleatoric", st.aleatoric, "aleatoric"), ("gallery_epistemic", st.epistemic, "epistemic")):
                top = np.argsort(-vals, kind="stable")[:GALLERY_SIZE]
                items = [(int(i), f"#{src[i]} true {names[y[i]]} → {names[st.predicted[i]]}\n{what} {vals[i]:.2f}") for i in top]
                fig = gallery(ds.images, items, names, mean_probs=sp.mean_probs, std_probs=sp.std_probs)
                out.append(encode(fig, key=key, title=f"Most {what}-uncertain images",
                                  alt=f"The {len(items)} images with the highest {what} uncertainty, each with its true and predicted label and its mean class probabilities with their spread across samples."))
        else:
            top = np.argsort(-st.total, kind="stable")[:GALLERY_SIZE]
            items = [(int(i), f"#{src[i]} true {names[y[i]]} → {names[st.predicted[i]]}\nentropy {st.total[i]:.2f}") for i in top]
            fig = gallery(ds.images, items, names, mean_probs=sp.mean_probs)
            out.append(encode(fig, key="gallery_entropy", title="Highest-entropy images",
                              alt=f"The {len(items)} images with the highest predictive entropy, with true and predicted labels and class probabilities."))
        if len(iss.flagged):
            checked = lr.checked
            rows, splits = checked.source_index, checked.source_split
            items = [(int(i), f"{splits[i]} #{rows[i]} given {names[g]} → {names[s]}\np(given) {sc:.2f}")
                     for i, g, s, sc in zip(iss.flagged[:GALLERY_SIZE], iss.given[:GALLERY_SIZE], iss.suggested[:GALLERY_SIZE],
                                            iss.self_confidence[:GALLERY_SIZE])]
            fig = gallery(checked.images, items, names, mean_probs=lr.probs)
            out.append(encode(fig, key="gallery_flagged", title="Candidates for human review: given → suggested label",
                              alt=f"The {len(items)} top-ranked candidates, each with its given and suggested label, the checker's "
                                  "probability of the given label and its class probabilities."))
    return out
