"""End to end on real MNIST: train 1 epoch on 2,000 images, audit 1,000 others, check the report."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import N_AUDIT, N_TRAIN, run_cli

from reportgen.metrics import fmt_with_interval

FILES = {"report.html", "report.pdf", "report.md", "summary.json", "flagged.csv", "review.csv", "model_card.json",
         "predictions.csv.gz", "manifest.json"}


def load_summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_report_folder_holds_every_file(deterministic_audit):
    folder, _ = deterministic_audit
    assert {p.name for p in folder.iterdir()} == FILES
    # Version = first 12 hex digits of the model file's sha256.
    s = load_summary(folder)
    assert folder.name == s["model"]["sha256"][:12]
    assert s["data"]["count"] == N_AUDIT and s["metrics"]["n_samples"] == N_AUDIT
    assert s["model"]["metadata"]["train_count"] + s["model"]["metadata"]["validation_count"] == N_TRAIN


def test_accuracy_and_mean_entropy_recomputed_with_numpy(deterministic_audit, mnist):
    """Predict the 1,000 audited images with Keras directly; numpy accuracy/entropy equal summary.json."""
    import keras

    folder, model_path = deterministic_audit
    x, y = mnist
    xa, ya = x[N_TRAIN:N_TRAIN + N_AUDIT], y[N_TRAIN:N_TRAIN + N_AUDIT]
    model = keras.saving.load_model(model_path, compile=False)
    logits = np.asarray(model.predict(xa[..., None].astype(np.float32) / 255.0, verbose=0), np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    acc = float(np.mean(p.argmax(1) == ya))
    ent = float(np.mean(-np.sum(p * np.log(np.clip(p, 1e-300, None)), axis=1)))
    m = load_summary(folder)["metrics"]
    assert m["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert m["mean_entropy"] == pytest.approx(ent, abs=1e-5)
    assert m["mean_confidence"] == pytest.approx(float(p.max(1).mean()), abs=1e-5)
    assert 0.5 < acc < 1.0  # one epoch on 2,000 digits learns, but is not perfect


def test_deterministic_run_says_epistemic_not_measured(deterministic_audit):
    folder, _ = deterministic_audit
    s = load_summary(folder)
    assert s["metrics"]["mean_epistemic"] is None
    assert s["epistemic_measured"] is False
    assert "Epistemic uncertainty was not measured" in (folder / "report.html").read_text()


def test_flagged_csv_matches_summary(deterministic_audit):
    folder, _ = deterministic_audit
    rows = list(csv.DictReader(open(folder / "flagged.csv")))
    s = load_summary(folder)
    assert len(rows) == s["metrics"]["n_flagged"]
    assert all(r["given"] != r["suggested"] for r in rows)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))


def test_second_run_reuses_model_and_refuses_to_overwrite(deterministic_audit, mnist_npz, archive):
    folder, model_path = deterministic_audit
    before = model_path.stat().st_mtime_ns
    html_before = (folder / "report.html").read_bytes()
    r = run_cli(["audit", "--data", str(mnist_npz), "--epochs", "1", "--checker-epochs", "1", "--mc-samples", "1", "--output", str(archive)])
    assert r.exit_code != 0
    assert "reusing the default model" in r.stderr
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert "Traceback" not in r.output
    assert model_path.stat().st_mtime_ns == before  # not retrained
    assert (folder / "report.html").read_bytes() == html_before  # not touched
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--epochs", "1", "--checker-epochs", "1", "--mc-samples", "1", "--output", str(archive), "--force"])
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip()) == folder
    assert {p.name for p in folder.iterdir()} == FILES
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".staging")]


class _Metrics(HTMLParser):
    """Collects (data-key, data-value, text) of every metric cell."""

    def __init__(self):
        super().__init__()
        self.cells, self._open = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-key" in a:
            self._open = [a["data-key"], a["data-value"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if self._open is not None and tag == "td":
            self.cells.append(tuple(self._open))
            self._open = None


def test_html_numbers_equal_summary(mc_audit):
    s = load_summary(mc_audit)["metrics"]
    parser = _Metrics()
    parser.feed((mc_audit / "report.html").read_text())
    assert len(parser.cells) >= 15
    seen = set()
    for key, value, text in parser.cells:
        assert json.loads(value) == s[key], key
        assert text.strip() == fmt_with_interval(s, key), key
        seen.add(key)
    assert {"accuracy", "ece", "mean_epistemic", "aurc", "n_flagged"} <= seen


def test_mc_summary_decomposes_uncertainty(mc_audit, deterministic_audit):
    m = load_summary(mc_audit)["metrics"]
    assert m["mean_entropy"] == pytest.approx(m["mean_aleatoric"] + m["mean_epistemic"], abs=1e-6)
    assert m["mean_epistemic"] > 0
    s = load_summary(mc_audit)
    assert s["method"]["method"] == "mc_dropout" and s["method"]["n_samples"] == 30
    # MC averaging changes accuracy only a little relative to the deterministic pass.
    det = load_summary(deterministic_audit[0])["metrics"]
    assert abs(m["accuracy"] - det["accuracy"]) < 0.05


def test_a_dropout_model_is_measured_deterministic_and_mc_side_by_side(mc_audit):
    """The reviewer's case: the audit measured only the MC-dropout average and recommended its temperature, while the
    network that ships runs deterministically. Both modes are measured, each with its own verdict and temperature; the
    headline numbers and any temperature recommended are the deterministic network's (the default --shipped)."""
    s = load_summary(mc_audit)
    modes = {m["name"]: m for m in s["modes"]}
    assert set(modes) == {"deterministic", "mc_dropout"} and s["shipped"] == "deterministic" and s["sampled"] == "mc_dropout"
    det, mc = modes["deterministic"], modes["mc_dropout"]
    assert det["shipped"] and not mc["shipped"]
    for key in ("accuracy", "nll", "calibration_error", "temperature", "aurc"):
        assert s["metrics"][key] == det["metrics"][key], key
    assert det["metrics"]["nll"] != mc["metrics"]["nll"] and det["metrics"]["temperature"] != mc["metrics"]["temperature"]
    for mode in (det, mc):
        assert mode["calibration"]["verdict"] in ("consistent", "miscalibrated")
        assert mode["temperature"]["after"]["verdict"] in ("consistent", "miscalibrated")
    for action in s["conclusions"]:
        if action["topic"] == "calibration":
            assert "the deterministic network (the mode that ships)" in action["action"]
            assert f"T = {det['metrics']['temperature']:.2f}" in action["action"] or "richer method" in action["action"]
    html = (mc_audit / "report.html").read_text()
    assert "MC-dropout average" in html and "deterministic network (ships)" in html
    # The uncertainty split is the MC mode's and adds up.
    m = s["metrics"]
    assert m["mean_entropy"] == pytest.approx(mc["metrics"]["mean_entropy"]) and m["mean_epistemic"] == mc["metrics"]["mean_epistemic"]


@pytest.mark.skipif(not shutil.which("pdftoppm") or not shutil.which("pdfinfo"), reason="poppler-utils (pdftoppm) not installed")
def test_pdf_renders_every_page(mc_audit, tmp_path):
    info = subprocess.run(["pdfinfo", str(mc_audit / "report.pdf")], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 5
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(mc_audit / "report.pdf"), str(tmp_path / "page")], check=True)
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert len(pngs) == pages
    assert all(p.stat().st_size > 1000 for p in pngs)
    text = subprocess.run(["pdftotext", str(mc_audit / "report.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Page 2 of" in text and "Executive summary" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _page_requests(html: Path, tmp: Path) -> tuple[list[str], Path]:
    """Open `html` in headless Chromium; return URLs of the requests the PAGE made, and a screenshot."""
    shot = tmp / "shot.png"
    log = tmp / "net.json"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", f"--log-net-log={log}", "--window-size=1280,1600",
         f"--screenshot={shot}", html.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    d = json.loads(log.read_text())
    types = {v: k for k, v in d["constants"]["logEventTypes"].items()}
    urls = []
    for e in d["events"]:
        p = e.get("params", {})
        # Chromium's own background jobs carry initiator 'not an origin'; the page's requests do not.
        if types[e["type"]] == "URL_REQUEST_START_JOB" and "url" in p and p.get("initiator") != "not an origin":
            urls.append(p["url"])
    return urls, shot


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_renders_in_chromium_without_network(mc_audit, tmp_path):
    # The detector must see a request when a page makes one, or the check below proves nothing.
    probe = tmp_path / "probe.html"
    probe.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    urls, _ = _page_requests(probe, tmp_path / "a")
    assert any(u.startswith("http://127.0.0.1:9/") for u in urls)
    urls, shot = _page_requests(mc_audit / "report.html", tmp_path / "b")
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []
    assert shot.stat().st_size > 20_000


def test_import_and_help_do_not_import_tensorflow():
    code = (
        "import sys, reportgen, reportgen.cli\n"
        "from click.testing import CliRunner\n"
        "for args in (['--help'], ['audit', '--help'], ['train', '--help']):\n"
        "    r = CliRunner().invoke(reportgen.cli.cli, args)\n"
        "    assert r.exit_code == 0 and 'Example' in r.output, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tensorflow_probability') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_uncertainty_estimates_are_judged_on_shifted_images(mc_audit):
    """The OOD section: rotated and noised copies of the audited digits, predicted with the same MC dropout; the epistemic
    estimate must tell them from the audited images clearly better than chance, and the report says so with intervals."""
    s = load_summary(mc_audit)
    ood = s["ood"]
    assert ood["mode"] == "mc_dropout" and [x["name"] for x in ood["sets"]] == ["rotated", "noisy"]
    for x in ood["sets"]:
        epi = x["auroc"]["epistemic"]
        assert epi["n_positive"] == x["n"] == 1000 and epi["n_negative"] == 1000
        assert epi["ci"][0] <= epi["auroc"] <= epi["ci"][1]
        assert set(x["epistemic_vs"]) == {"total", "confidence"}
    assert ood["sets"][1]["auroc"]["epistemic"]["ci"][0] > 0.5  # noise is a clear shift for a digit CNN
    reading = " ".join(s["readings"]["uncertainty"])
    assert "Out of distribution: on the audited images rotated by 90 degrees" in reading
    assert ("earns its place" in reading) != ("adds nothing measurable" in reading)
    assert s["worth"]["mode"] == "mc_dropout" and -1 <= s["worth"]["spearman_aleatoric"] <= 1
