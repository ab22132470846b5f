"""Figures: drawn in the audit's own process (no forked children), the same bytes on a rerun, every encoding explained;
and an audit of saved probabilities imports neither TensorFlow nor Apache Beam."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np

from reportgen.report import figures as F


def svg(asset) -> str:
    return base64.b64decode(asset.uri.split(",", 1)[1]).decode("utf-8")


def bins(counts, accuracy):
    edges = np.linspace(0, 1, len(counts) + 1)
    return edges, np.asarray(accuracy, float), (edges[:-1] + edges[1:]) / 2, np.asarray(counts)


def test_reliability_bars_carry_their_sample_counts_and_small_bins_are_hatched():
    """The reviewer's case: bins of one or two samples were drawn as full bars with no counts."""
    edges, acc, conf, count = bins([0, 0, 2, 1, 0, 40, 900], [0, 0, 1.0, 0.0, 0, 0.7, 0.95])
    fig, ax = F.new_figure(F.HALF, 3.0)
    F.plot_reliability(edges, acc, conf, count, ax=ax[0, 0])
    texts = [t.get_text() for t in ax[0, 0].texts]
    assert texts == ["2", "1", "40", "900"]
    hatched = [p for p in ax[0, 0].patches if p.get_hatch()]
    assert len(hatched) == 2  # the bins of 2 and 1 samples, below RELIABLE_BIN
    asset = F.encode(fig, key="r", title="t", alt="a")
    assert ">900<" in svg(asset) or "900" in svg(asset)


def test_risk_coverage_marks_the_certified_operating_point():
    cov = np.linspace(0.01, 1, 100)
    risk = 0.02 * cov ** 2
    fig, ax = F.new_figure(F.HALF, 2.6)
    F.plot_risk_coverage(cov, risk, ax=ax[0, 0], point=(0.713, 0.0056, 0.0098))
    labels = ax[0, 0].get_legend_handles_labels()[1]
    assert "operating point: 71.3 % kept" in labels
    fig2, ax2 = F.new_figure(F.HALF, 2.6)
    F.plot_risk_coverage(cov, risk, ax=ax2[0, 0])
    assert not any("operating point" in x for x in ax2[0, 0].get_legend_handles_labels()[1])
    for f in (fig, fig2):
        F._plt().close(f)


def test_a_figure_gives_the_same_svg_bytes_when_drawn_again():
    def draw():
        fig, ax = F.new_figure(F.HALF, 2.0)
        rng = np.random.default_rng(1)
        ax[0, 0].scatter(rng.random(500), rng.random(500), s=3, rasterized=True)
        return F.encode(fig, key="k", title="t", alt="a")

    assert draw().uri == draw().uri


def test_an_audit_of_saved_probabilities_never_imports_tensorflow_or_beam_and_never_forks(mnist, tmp_path):
    """Issue: the statistics imported TensorFlow for an entropy, and rendering hid its cost in forked children. The
    whole audit of saved probabilities (with images for the galleries) runs in one process without either."""
    images, labels = mnist[0][:300], mnist[1][:300]
    probs = np.random.default_rng(0).dirichlet(np.ones(10) * 0.3, size=300)
    for name, a in (("probs", probs), ("labels", labels), ("images", images)):
        np.save(tmp_path / f"{name}.npy", a)
    script = f"""
import os, sys
def no_fork(*a, **k):
    raise AssertionError("reportgen forked a child")
os.fork = no_fork
from reportgen.engines.local import run_audit
from reportgen.engines.options import AuditOptions
folder = run_audit(AuditOptions(predictions={str(tmp_path / 'probs.npy')!r}, labels={str(tmp_path / 'labels.npy')!r},
                                images={str(tmp_path / 'images.npy')!r}, output={str(tmp_path / 'out')!r}, name="m", version="v"))
print(folder)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_probability", "keras", "apache_beam")))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    folder, loaded = r.stdout.strip().splitlines()[-2:]
    assert loaded == "[]"
    summary = json.loads(open(f"{folder}/summary.json").read())
    assert summary["metrics"]["n_samples"] == 300 and 'id="fig-gallery_flagged"' in open(f"{folder}/report.html").read()
