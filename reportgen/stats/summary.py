"""One inference mode's statistics, computed once: per chunk of rows into mergeable sums, then finished.

`summarize(chunk)` is a pure function of one chunk of rows (their labels and probabilities, and for sampled
predictions the mean entropy of the samples); `merge` adds the sums of disjoint chunks; `finish` turns the merged
sums into every number the report shows for the mode. The local engine calls these on chunks of one array, Beam's
CombineFn on shards, so the two engines compute each statistic with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import metrics as K
from . import calibration as C
from . import calibration_interval as CI
from . import classes, histogram as H, intervals, resample
from .merge import Smallest

# Coverages (percent of the most confident samples) at which selective accuracy is reported.
COVERAGE_PERCENTS = (80, 90, 95, 99)
# The error rate that selection with guaranteed risk certifies, and 1 - its confidence.
TARGET_RISK, RISK_DELTA = 0.01, 0.05
# Share of the samples called "most uncertain" when counting the errors among them.
TOP_FRACTION = 0.05
# Rows of the figures' display sample (the smallest row hashes) and pictures per uncertainty gallery.
DISPLAY_ROWS, GALLERY_SIZE = 20_000, 5
# Per-sample values whose means carry an interval from their power sums (intervals.mean_interval: skewness-corrected).
VALUES = ("nll", "brier", "confidence", "total", "aleatoric", "epistemic")
# Uncertainty scores kept as fine histograms (error detection, the most uncertain share).
SCORES = ("total", "aleatoric", "epistemic")


@dataclass(frozen=True)
class Chunk:
    """Rows start:start+n of an audit in one inference mode.

    labels: (n,) int64 given labels; probs: (n, K) float64, rows sum to 1; aleatoric: (n,) float64 E_s H[p_s] in
    nats over the stochastic samples (None: one pass per sample); std: (n, K) spread of p over the samples or None.
    """

    start: int
    labels: np.ndarray
    probs: np.ndarray
    aleatoric: np.ndarray | None = None
    std: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1) + 0.0


@dataclass(frozen=True)
class ModeSums:
    """Mergeable sums of one inference mode over some rows (see merge.merge for how fields combine).

    confusion: (K, K) given x predicted; by_class: (4, K) sums of confidence, total, aleatoric, epistemic by given
    label; moments: (len(VALUES), 3) sums, sums of squares and sums of cubes; bins: 15 equal-width BinSums; classwise: (K, 15);
    tie_*: the fine confidence histogram (histogram.py: count, errors, sum of confidences, smallest confidence);
    scores: (3, 2, H) counts and errors per fine bin of each uncertainty; temperature: calibration.TemperatureSums;
    display: the figures' rows; galleries: the most uncertain rows by score.
    """

    const_k: int
    const_sampled: bool
    const_seed: int
    n: int
    confusion: np.ndarray
    by_class: np.ndarray
    moments: np.ndarray
    bins: C.BinSums
    classwise: np.ndarray
    tie_count: np.ndarray
    tie_errors: np.ndarray
    tie_conf: np.ndarray
    min_conf: np.ndarray
    scores: np.ndarray
    temperature: C.TemperatureSums
    display: Smallest
    galleries: dict = field(default_factory=dict)


def _display_records(rows, y, predicted, correct, conf, values) -> np.ndarray:
    rec = np.zeros(len(rows), dtype=[("key", "f8"), ("position", "i8"), ("label", "i8"), ("predicted", "i8"), ("correct", "?"),
                                     ("confidence", "f8"), ("total", "f8"), ("aleatoric", "f8"), ("epistemic", "f8")])
    rec["key"] = resample.row_uniform(rows, seed=0, stream=resample.DISPLAY_STREAM)
    rec["position"], rec["label"], rec["predicted"], rec["correct"], rec["confidence"] = rows, y, predicted, correct, conf
    for name in SCORES:
        rec[name] = values[name]
    return rec


def _gallery(value: np.ndarray, rows, y, predicted, probs, std) -> Smallest:
    k = probs.shape[1]
    rec = np.zeros(len(rows), dtype=[("neg", "f8"), ("row", "i8"), ("label", "i8"), ("predicted", "i8"), ("probs", "f8", (k,)),
                                     ("std", "f8", (k,))])
    rec["neg"], rec["row"], rec["label"], rec["predicted"], rec["probs"] = -value, rows, y, predicted, probs
    if std is not None:
        rec["std"] = std
    return Smallest.of(rec, GALLERY_SIZE, ("neg", "row"))


def summarize(chunk: Chunk, *, seed: int = 0) -> ModeSums:
    """The mergeable sums of one chunk (rows chunk.start onwards)."""
    y, p = chunk.labels, chunk.probs
    n, k = p.shape
    rows = np.arange(chunk.start, chunk.start + n)
    predicted = p.argmax(axis=1).astype(np.int64)
    conf = p[np.arange(n), predicted]
    correct = predicted == y
    total = entropy(p)
    sampled = chunk.aleatoric is not None
    aleatoric = chunk.aleatoric if sampled else total
    values = {"nll": -np.log(np.maximum(p[np.arange(n), y], C.LOG_FLOOR)),
              "brier": np.sum(p * p, axis=1) - 2 * p[np.arange(n), y] + 1.0,
              "confidence": conf, "total": total, "aleatoric": aleatoric,
              "epistemic": total - aleatoric if sampled else np.zeros(n)}
    fine = H.bin_of(1.0 - conf)
    wrong = ~correct
    min_conf = np.full(H.n_bins(), np.inf)
    np.minimum.at(min_conf, fine, conf)
    scores = np.zeros((len(SCORES), 2, H.n_bins()), dtype=np.int64)
    for i, name in enumerate(SCORES):
        b = H.bin_of(values[name])
        scores[i] = H.counts(b), H.counts(b, wrong)
    by_class = np.stack([np.bincount(y, weights=values[v], minlength=k) for v in ("confidence", "total", "aleatoric", "epistemic")])
    ranked = ("aleatoric", "epistemic") if sampled else ("total",)
    return ModeSums(
        const_k=k, const_sampled=sampled, const_seed=seed, n=n,
        confusion=np.bincount(y * k + predicted, minlength=k * k).reshape(k, k).astype(np.int64),
        by_class=by_class,
        moments=np.array([[values[v].sum(), (values[v] ** 2).sum(), (values[v] ** 3).sum()] for v in VALUES]),
        bins=C.BinSums.of(conf, correct),
        classwise=C.classwise_gaps(p, y),
        tie_count=H.counts(fine), tie_errors=H.counts(fine, wrong), tie_conf=H.counts(fine, weights=conf), min_conf=min_conf,
        scores=scores,
        temperature=C.TemperatureSums.of(p, y, correct, resample.random_halves(chunk.start, n, seed=seed)),
        display=Smallest.of(_display_records(rows, y, predicted, correct, conf, values), DISPLAY_ROWS, ("key", "position")),
        galleries={name: _gallery(values[name], rows, y, predicted, p, chunk.std) for name in ranked},
    )


# --------------------------------------------------------------------------- finishing


@dataclass(frozen=True)
class ModeStats:
    """Every number of one inference mode (plain data, ready for the report and summary.json).

    metrics: metric key (metrics.METRICS) -> value, with <key>_ci_low / _ci_high where the metric has an interval;
    per_class: classes.per_class_rows; class_pairs: classes.recall_comparisons; confusion: K x K counts;
    calibration, temperature, selective, uncertainty: dicts described in `finish`; display: the figures' sample
    ({column: list}); galleries: score -> rows {row, label, predicted, value, probs, std}, most uncertain first.
    """

    n: int
    sampled: bool
    metrics: dict
    per_class: list
    class_pairs: list
    confusion: list
    calibration: dict
    temperature: dict
    selective: dict
    uncertainty: dict
    display: dict
    galleries: dict


def _put(metrics: dict, key: str, value, ci=None) -> None:
    """metrics[key] = value, and for a metric that carries an interval (metrics.BY_KEY) its _ci_low/_ci_high keys, None
    when the interval is unknown: every audit's summary.json has the same keys, so a gate on a bound never misses one."""
    metrics[key] = None if value is None else float(value)
    m = K.BY_KEY.get(key)
    if ci is not None or (m is not None and m.interval):
        lo, hi = (None, None) if ci is None or value is None or np.isnan(ci).any() else (float(ci[0]), float(ci[1]))
        metrics[key + "_ci_low"], metrics[key + "_ci_high"] = lo, hi


def _reliability(bins: C.BinSums) -> list[dict]:
    edges = np.linspace(0.0, 1.0, len(bins.n) + 1)
    acc, conf = bins.accuracy(), bins.mean_confidence()
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(bins.n[b]),
             "accuracy": None if np.isnan(acc[b]) else float(acc[b]), "confidence": None if np.isnan(conf[b]) else float(conf[b])}
            for b in range(len(bins.n))]


def _calibration(bins: C.BinSums) -> dict:
    """The plug-in ECE beside the calibration error with its interval and verdict (calibration_interval.assess)."""
    return {"ece": float(bins.ece()), **CI.assess(bins)}


def _temperature(t: C.TemperatureSums, n: int, nll_before: float, ece_before: float) -> dict:
    """T fitted on all rows (the one to recommend), and its effect held out: T fitted on each random half is applied to
    the other half (the grid point nearest its fit), so no sample is scored with a T fitted on it."""
    i_all, t_all = C.fit_temperature(t.nll.sum(axis=0))
    sizes = t.bins.n.sum(axis=-1)[:, 0]  # samples per half
    out = {"temperature": t_all, "grid_step": float(C.TEMPERATURES[1] / C.TEMPERATURES[0] - 1), "nll_before": nll_before,
           "ece_before": ece_before, "held_out": bool(sizes.all())}
    if sizes.all():
        (i_a, _), (i_b, _) = C.fit_temperature(t.nll[0]), C.fit_temperature(t.nll[1])
        pick = [(1, i_a), (0, i_b)]  # half B scored with A's T, half A with B's
        nll_after = sum(t.nll[h, i] for h, i in pick) / n
        scaled = C.BinSums(*(sum(getattr(t.bins, f)[h, i] for h, i in pick) for f in ("n", "conf", "conf_sq", "correct", "conf_correct")))
        out.update(fitted_on_halves=[float(C.TEMPERATURES[i_a]), float(C.TEMPERATURES[i_b])])
    else:  # one half is empty (tiny N): in-sample, and said so
        nll_after = t.nll[:, i_all].sum() / n
        scaled = C.BinSums(*(getattr(t.bins, f)[:, i_all].sum(axis=0) for f in ("n", "conf", "conf_sq", "correct", "conf_correct")))
    out.update(nll_after=float(nll_after), after=_calibration(scaled), reliability_after=_reliability(scaled))
    return out


def _top_errors(count: np.ndarray, errors: np.ndarray, top: int) -> float:
    """Expected errors among the `top` samples of highest score (bins ascending in score; ties spread evenly)."""
    return float(H.expected_errors(count[::-1], errors[::-1], np.array([top]))[0])


def finish(s: ModeSums, names: list[str]) -> ModeStats:
    """Every number of the mode from its merged sums."""
    n, k, sampled = s.n, s.const_k, s.const_sampled
    count, predicted, right = s.confusion.sum(axis=1), s.confusion.sum(axis=0), np.diag(s.confusion)
    n_correct = int(right.sum())
    m: dict = {}
    _put(m, "accuracy", n_correct / n, intervals.wilson(n_correct, n))
    m["n_samples"] = n
    keys = {"nll": "nll", "brier": "brier", "confidence": "mean_confidence", "total": "mean_entropy", "aleatoric": "mean_aleatoric",
            "epistemic": "mean_epistemic"}
    for (name, key), (total, total_sq, total_cu) in zip(keys.items(), s.moments):
        measured = sampled or name != "epistemic"
        _put(m, key, total / n if measured else None, intervals.mean_interval(n, total, total_sq, total_cu) if measured else None)
    cal = _calibration(s.bins)
    mass = C.equal_mass_bins(s.tie_count, s.tie_count - s.tie_errors, s.tie_conf)
    classwise = C.classwise_ece(s.classwise, n)
    cal.update(ece_equal_mass=float(mass.ece()), ce_debiased=C.debiased_l2(mass), mce=s.bins.mce(), mce_min_count=C.MCE_MIN_COUNT,
               classwise=[{"name": names[c], "ece": float(classwise[c])} for c in range(k)], bins=_reliability(s.bins),
               n_bins=C.N_BINS)
    m["ece"] = cal["ece"]
    _put(m, "calibration_error", cal["estimate"], cal["ci"])
    m.update(ece_equal_mass=cal["ece_equal_mass"], ce_debiased=cal["ce_debiased"], classwise_ece=float(classwise.mean()), mce=cal["mce"])
    temp = _temperature(s.temperature, n, m["nll"], cal["ece"])
    m.update(temperature=temp["temperature"], nll_temperature_scaled=temp["nll_after"], ece_temperature_scaled=temp["after"]["ece"])
    _put(m, "calibration_error_temperature_scaled", temp["after"]["estimate"], temp["after"]["ci"])
    # selective prediction
    tc, te = s.tie_count, s.tie_errors
    _put(m, "aurc", float(H.aurc(tc, te)), H.aurc_interval(tc, te))
    accuracy_at = {}
    for pct in COVERAGE_PERCENTS:
        acc, kept, wrong = H.accuracy_at(tc, te, pct)
        ci = intervals.wilson(kept - round(wrong), kept)
        _put(m, f"acc_at_{pct}", acc, ci)
        accuracy_at[str(pct)] = {"accuracy": acc, "kept": kept, "ci": [float(ci[0]), float(ci[1])]}
    rule = H.sgr(tc, te, s.min_conf, target=TARGET_RISK, delta=RISK_DELTA)
    ok = rule["certified"]
    m.update(threshold_1pct=rule["threshold"] if ok else None, risk_1pct=rule["risk"] if ok else None,
             risk_bound_1pct=rule["bound"] if ok else None)
    _put(m, "coverage_1pct", rule["coverage"] if rule["certified"] else None,
         intervals.wilson(rule["kept"], n) if rule["certified"] else None)
    coverage, risk = H.risk_coverage_curve(tc, te)
    selective = {"aurc": m["aurc"], "curve": {"coverage": coverage.tolist(), "risk": risk.tolist()}, "accuracy_at": accuracy_at,
                 "rule": rule, "error_auroc": H.auroc(te, tc - te)}
    # uncertainty: error detection by each score, and the errors among the most uncertain
    top = max(1, int(np.ceil(TOP_FRACTION * n)))
    which = "aleatoric" if sampled else "total"
    detect = {name: H.auroc(s.scores[i, 1], s.scores[i, 0] - s.scores[i, 1]) for i, name in enumerate(SCORES)
              if sampled or name == "total"}
    detect["confidence"] = selective["error_auroc"]
    uncertainty = {"error_auroc": detect, "top_fraction": TOP_FRACTION, "top_count": top, "top_statistic": which,
                   "errors_in_top": _top_errors(s.scores[SCORES.index(which), 0], s.scores[SCORES.index(which), 1], top),
                   "n_errors": n - n_correct}
    means = {key: [float(s.by_class[i, c] / count[c]) if count[c] and (sampled or key != "epistemic") else None for c in range(k)]
             for i, key in enumerate(("confidence", "total", "aleatoric", "epistemic"))}
    display = s.display.sorted()
    display = {f: display[f][np.argsort(display["position"], kind="stable")].tolist() for f in display.dtype.names if f != "key"}
    galleries = {name: [{"row": int(r["row"]), "label": int(r["label"]), "predicted": int(r["predicted"]), "value": float(-r["neg"]),
                         "probs": r["probs"].tolist(), "std": r["std"].tolist() if sampled else None} for r in g.sorted()]
                 for name, g in s.galleries.items()}
    return ModeStats(n=n, sampled=sampled, metrics=m, per_class=classes.per_class_rows(names, count, right, predicted, means, classwise),
                     class_pairs=classes.recall_comparisons(names, count, right), confusion=s.confusion.tolist(),
                     calibration=cal, temperature=temp, selective=selective, uncertainty=uncertainty, display=display, galleries=galleries)
