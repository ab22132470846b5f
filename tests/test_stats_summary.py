"""reportgen.stats.summary: one mode's statistics from chunk sums (summarize), merged, then finished.

The chunking of the rows must not matter (counts exact, float results within 1e-12 relative), and the finished
numbers are checked against independent computations on the raw rows: numpy means, scipy's t interval, sklearn's
confusion matrix and roc_auc_score, sorted-sample selective risk, the rows of the display sample and galleries.
(The calibration error's interval is tested for coverage in test_stats_calibration_interval.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.errors import ReportgenError
from reportgen.stats import histogram as H
from reportgen.stats import resample
from reportgen.stats import summary as S
from reportgen.stats.merge import merge, merge_all

K = 6
NAMES = [f"class{c}" for c in range(K)]


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def data(n: int, seed: int = 0, sampled: bool = False):
    """(labels, probs, aleatoric, std) of a K=6 model; probabilities rounded to 3 decimals in a quarter of the rows
    (exact ties of confidence), a few rows one-hot (confidence exactly 1)."""
    rng = np.random.default_rng(seed)
    z = 2.5 * rng.standard_normal((4, n, K))
    samples = softmax(z + rng.standard_normal((n, K))[None] * 2)
    labels = np.minimum((rng.random(n)[:, None] > np.cumsum(samples.mean(axis=0), axis=1)).sum(axis=1), K - 1)
    probs = samples.mean(axis=0) if sampled else samples[0]
    r = rng.random(n) < 0.25
    probs[r] = np.round(probs[r], 3)
    probs[r] /= probs[r].sum(axis=1, keepdims=True)
    probs[:3] = np.eye(K)[[0, 1, 2]]
    if not sampled:
        return labels, probs, None, None
    ent = -np.sum(np.where(samples > 0, samples * np.log(np.where(samples > 0, samples, 1)), 0), axis=-1)
    return labels, probs, ent.mean(axis=0), samples.std(axis=0)


def chunked(labels, probs, aleatoric, std, edges, *, seed=0, order=None) -> S.ModeSums:
    cut = lambda x, a, b: None if x is None else x[a:b]  # noqa: E731
    spans = list(zip(edges, edges[1:]))
    if order is not None:
        spans = [spans[i] for i in order]
    return merge_all(S.summarize(S.Chunk(a, labels[a:b], probs[a:b], cut(aleatoric, a, b), cut(std, a, b)), seed=seed)
                     for a, b in spans)


def assert_same(a, b, path="stats"):
    """Equal structures: ints, bools, strings and None exactly; floats within 1e-12 relative (or both NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert type(a) is type(b), (path, a, b)
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (path, a, b)
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def as_plain(stats: S.ModeStats) -> dict:
    return {f: getattr(stats, f) for f in ("n", "sampled", "metrics", "per_class", "class_pairs", "confusion", "calibration",
                                           "temperature", "selective", "uncertainty", "display", "galleries")}


N = 3000


@pytest.fixture(scope="module", params=[False, True], ids=["one-pass", "sampled"])
def whole(request):
    d = data(N, seed=1, sampled=request.param)
    return d, as_plain(S.finish(chunked(*d, [0, N]), NAMES))


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, N), max_size=5), shuffle=st.randoms(use_true_random=False))
def test_any_chunking_finishes_to_the_same_statistics(whole, cuts, shuffle):
    """Chunks cut anywhere (empty ones too, as an empty shard), merged in any order: the same ModeStats."""
    d, want = whole
    edges = [0, *sorted(cuts), N]
    order = list(range(len(edges) - 1))
    shuffle.shuffle(order)
    assert_same(as_plain(S.finish(chunked(*d, edges, order=order), NAMES)), want)


def test_chunk_sums_merge_exactly_where_they_count():
    labels, probs, _, _ = data(2000, seed=2)
    a = chunked(labels, probs, None, None, [0, 2000])
    b = chunked(labels, probs, None, None, [0, 1, 777, 1024, 1025, 2000])
    for f in ("confusion", "tie_count", "tie_errors", "scores", "min_conf"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.bins.n, b.bins.n)
    np.testing.assert_array_equal(a.temperature.bins.n, b.temperature.bins.n)  # the halves are keyed by global row
    np.testing.assert_allclose(a.moments, b.moments, rtol=1e-12)
    np.testing.assert_allclose(a.temperature.nll, b.temperature.nll, rtol=1e-12)
    assert a.n == b.n == 2000


def test_summaries_of_different_seeds_or_classes_do_not_merge():
    labels, probs, _, _ = data(100, seed=3)
    a = S.summarize(S.Chunk(0, labels[:50], probs[:50]), seed=0)
    with pytest.raises(ReportgenError, match="different seed"):
        merge(a, S.summarize(S.Chunk(50, labels[50:], probs[50:]), seed=1))
    with pytest.raises(ReportgenError, match="different k"):
        merge(a, S.summarize(S.Chunk(50, labels[50:] % 4, probs[50:, :4] / probs[50:, :4].sum(1, keepdims=True)), seed=0))


def test_finished_numbers_equal_direct_computations_on_the_rows():
    from scipy.stats import norm, skew
    from sklearn.metrics import confusion_matrix, roc_auc_score

    labels, probs, _, _ = data(N, seed=4)
    st_ = S.finish(chunked(labels, probs, None, None, [0, 1000, N]), NAMES)
    m = st_.metrics
    rows = np.arange(N)
    pred = probs.argmax(axis=1)
    conf = probs[rows, pred]
    right = pred == labels
    nll = -np.log(np.maximum(probs[rows, labels], 1e-12))
    brier = np.sum((probs - np.eye(K)[labels]) ** 2, axis=1)
    ent = -np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1)), 0), axis=1)
    assert m["n_samples"] == N and m["accuracy"] == right.mean()
    for key, v in (("nll", nll), ("brier", brier), ("mean_confidence", conf), ("mean_entropy", ent), ("mean_aleatoric", ent)):
        assert m[key] == pytest.approx(v.mean(), rel=1e-12), key
        # Hall's skewness-corrected interval (intervals.mean_interval), from scipy's moments of the rows
        a, z, sd = skew(v) / math.sqrt(N), norm.ppf(0.975), v.std(ddof=1) / math.sqrt(N)
        g_inv = (lambda q: q - a / 6) if abs(a) < 1e-9 else (lambda q: (3 / a) * (np.cbrt(1 + a * (q - a / 6)) - 1))
        lo, hi = v.mean() - sd * g_inv(z), v.mean() - sd * g_inv(-z)
        assert (m[key + "_ci_low"], m[key + "_ci_high"]) == pytest.approx((lo, hi), rel=1e-9), key
    assert m["mean_epistemic"] is None and m.get("mean_epistemic_ci_low") is None
    np.testing.assert_array_equal(st_.confusion, confusion_matrix(labels, pred, labels=range(K)))
    # ECE over 15 equal-width bins of the confidence.
    b = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs(right[b == j].sum() - conf[b == j].sum()) for j in range(15)) / N
    assert m["ece"] == pytest.approx(ece, rel=1e-12)
    # The calibration error: in each bin the mean over ordered pairs i != j of d_i d_j, d = conf - right (an unbiased
    # estimate of the squared bin gap), weighted by the bin's share, square-rooted at 0 or above; its interval holds it.
    d = conf - right
    sq = sum((d[b == j].sum() ** 2 - (d[b == j] ** 2).sum()) / (N * max((b == j).sum() - 1, 1)) for j in range(15))
    assert m["calibration_error"] == pytest.approx(math.sqrt(max(sq, 0.0)), rel=1e-9, abs=1e-12)
    assert m["calibration_error_ci_low"] <= m["calibration_error"] <= m["calibration_error_ci_high"]
    # Selective prediction from the rows sorted by confidence (ties spread evenly: the tie-group expected errors).
    fine = H.bin_of(1 - conf)
    count, errors = H.counts(fine), H.counts(fine, ~right)
    q = np.arange(1, N + 1)
    assert m["aurc"] == pytest.approx(np.mean(H.expected_errors(count, errors, q) / q), rel=1e-12)
    for pct in S.COVERAGE_PERCENTS:
        kept = -(-pct * N // 100)
        assert m[f"acc_at_{pct}"] == pytest.approx(1 - H.expected_errors(count, errors, np.array([kept]))[0] / kept, rel=1e-12)
    # Error detection by confidence: AUROC of 1 - confidence for errors (bins merge values within 0.1 %: close to sklearn).
    assert st_.selective["error_auroc"]["auroc"] == pytest.approx(roc_auc_score(~right, 1 - conf), abs=2e-3)
    assert st_.uncertainty["error_auroc"]["total"]["auroc"] == pytest.approx(roc_auc_score(~right, ent), abs=2e-3)
    # Errors among the 5 % most uncertain (150 of 3000 by entropy).
    top = math.ceil(0.05 * N)
    assert st_.uncertainty["top_count"] == top and st_.uncertainty["n_errors"] == int((~right).sum())
    order = np.argsort(-ent, kind="stable")
    assert st_.uncertainty["errors_in_top"] == pytest.approx((~right)[order[:top]].sum(), abs=1.0)  # a tie at the cut
    # Per class.
    for c, row in enumerate(st_.per_class):
        mine = labels == c
        assert row["count"] == mine.sum() and row["accuracy"] == pytest.approx(right[mine].mean(), rel=1e-12)
        assert row["mean_confidence"] == pytest.approx(conf[mine].mean(), rel=1e-12)
        assert row["precision"] == pytest.approx((labels[pred == c] == c).mean(), rel=1e-12)


def test_certified_rule_is_a_true_statement_about_the_rows():
    """An accurate model (N = 20,000, ~1 % errors in its most confident half): the certified rule's reported numbers are
    those of "keep confidence >= threshold" on the rows."""
    rng = np.random.default_rng(5)
    n = 20_000
    u = rng.beta(0.5, 30, n)
    wrong = rng.random(n) < u
    labels = rng.integers(0, 2, n)
    probs = np.empty((n, 2))
    pred = np.where(wrong, 1 - labels, labels)
    probs[np.arange(n), pred] = 1 - u / 2
    probs[np.arange(n), 1 - pred] = u / 2
    st_ = S.finish(chunked(labels, probs, None, None, [0, 5000, n]), ["a", "b"])
    m, rule = st_.metrics, st_.selective["rule"]
    assert rule["certified"]
    keep = probs.max(axis=1) >= m["threshold_1pct"]
    assert rule["kept"] == keep.sum() and m["coverage_1pct"] == keep.mean()
    assert m["risk_1pct"] == pytest.approx(wrong[keep].mean(), rel=1e-12) and m["risk_bound_1pct"] < 0.01


def test_display_sample_and_galleries_are_the_right_rows(monkeypatch):
    labels, probs, aleatoric, std = data(500, seed=6, sampled=True)
    monkeypatch.setattr(S, "DISPLAY_ROWS", 120)
    st_ = S.finish(chunked(labels, probs, aleatoric, std, [0, 77, 300, 500]), NAMES)
    key = resample.row_uniform(np.arange(500), seed=0, stream=resample.DISPLAY_STREAM)
    chosen = np.sort(np.argsort(key, kind="stable")[:120])
    assert st_.display["position"] == chosen.tolist()
    pred = probs.argmax(axis=1)
    assert st_.display["predicted"] == pred[chosen].tolist() and st_.display["label"] == labels[chosen].tolist()
    assert st_.display["confidence"] == probs[chosen, pred[chosen]].tolist()
    total = -np.sum(probs * np.log(np.maximum(probs, 1e-300)), axis=1)
    assert np.allclose(st_.display["epistemic"], (total - aleatoric)[chosen], atol=1e-12)
    assert set(st_.galleries) == {"aleatoric", "epistemic"}
    for name, v in (("aleatoric", aleatoric), ("epistemic", total - aleatoric)):
        g = st_.galleries[name]
        want = np.lexsort([np.arange(500), -v])[:S.GALLERY_SIZE]
        assert [r["row"] for r in g] == want.tolist()
        assert [r["value"] for r in g] == pytest.approx(v[want].tolist(), rel=1e-12)
        assert g[0]["probs"] == probs[want[0]].tolist() and g[0]["std"] == std[want[0]].tolist()
    m = st_.metrics
    assert m["mean_epistemic"] == pytest.approx((total - aleatoric).mean(), rel=1e-9)
    assert m["mean_aleatoric"] == pytest.approx(aleatoric.mean(), rel=1e-12)
    assert st_.uncertainty["top_statistic"] == "aleatoric" and set(st_.uncertainty["error_auroc"]) == {
        "total", "aleatoric", "epistemic", "confidence"}


def test_entropy_hand_values():
    assert S.entropy(np.array([0.5, 0.5])) == pytest.approx(math.log(2), rel=1e-15)
    assert S.entropy(np.array([1.0, 0.0, 0.0])) == 0.0 and not math.copysign(1, S.entropy(np.array([1.0, 0.0]))) < 0
    np.testing.assert_allclose(S.entropy(np.full((2, 7), 1 / 7)), [math.log(7)] * 2, rtol=1e-14)


def test_held_out_temperature_scores_each_half_with_the_other_halfs_fit():
    """Recomputed from the rows: halves by the row hash of the seed, each half's grid NLL from softmax(log p / T), the
    grid point of its minimum applied to the other half; the held-out NLL and ECE are those of the scaled rows."""
    from reportgen.stats import calibration as C

    labels, probs, _, _ = data(1500, seed=7)
    probs = softmax(2 * np.log(np.maximum(probs, 1e-12)))  # over-confident: T well away from 1
    st_ = S.finish(chunked(labels, probs, None, None, [0, 700, 1500], seed=3), NAMES)
    a = resample.random_halves(0, 1500, seed=3)
    rows = np.arange(1500)
    grid = np.array([[-np.log(C.softmax_at(probs[h], t)[np.arange(h.sum()), labels[h]]).sum() for t in C.TEMPERATURES]
                     for h in (a, ~a)])
    i_a, i_b = int(np.argmin(grid[0])), int(np.argmin(grid[1]))
    assert st_.temperature["fitted_on_halves"] == pytest.approx([C.TEMPERATURES[i_a], C.TEMPERATURES[i_b]], rel=1e-12)
    scaled = np.empty_like(probs)
    scaled[~a] = C.softmax_at(probs[~a], C.TEMPERATURES[i_a])
    scaled[a] = C.softmax_at(probs[a], C.TEMPERATURES[i_b])
    assert st_.metrics["nll_temperature_scaled"] == pytest.approx(-np.log(scaled[rows, labels]).mean(), rel=1e-9)
    right = probs.argmax(axis=1) == labels
    assert st_.metrics["ece_temperature_scaled"] == pytest.approx(float(C.BinSums.of(scaled.max(axis=1), right).ece()), rel=1e-9)
    assert i_a != 60 and i_b != 60  # not the identity: the check has teeth
