"""The report as people see it: escaping, findings, Markdown, the PDF's pages and contents, the HTML in Chromium,
and WeasyPrint's URL fetcher (data: URIs and files in the report folder only)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reportgen.report import findings as findings
from reportgen import metrics
from reportgen.report import render as render
from reportgen.report import context as report
from reportgen.archive import screenshots as screenshots
PDFTOOLS = shutil.which("pdftoppm") and shutil.which("pdftotext") and shutil.which("pdfinfo")
needs_poppler = pytest.mark.skipif(not PDFTOOLS, reason="poppler-utils (pdftoppm, pdftotext, pdfinfo) not installed")
needs_chromium = pytest.mark.skipif(screenshots.chromium() is None, reason="chromium not installed")
XSS = "<script>alert(1)</script>"


def pdf_text(pdf: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(["pdftotext", "-layout", *pages, str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def pdf_pages(pdf: Path) -> tuple[int, tuple[float, float]]:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    w, h = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups()
    return int(re.search(r"Pages:\s+(\d+)", info).group(1)), (float(w), float(h))


def context_from_summary(folder: Path) -> dict:
    """A rendering context from summary.json (no figures or galleries): enough to re-render the text of a report."""
    ctx = json.loads((folder / "summary.json").read_text())
    return {**ctx, "figures": {}, "galleries": {}, "metric_names": metrics.names()}


# --------------------------------------------------------------------------- escaping


def write_pdf(ctx: dict, folder: Path, *, paper: str = "a4") -> Path:
    """report.pdf of a context, as the report folder's writer makes it."""
    return render.html_to_pdf(report.render_html(ctx, paper=paper, medium="print"), folder, folder / "report.pdf")


@pytest.fixture(scope="module")
def hostile_context():
    """A context built by report.build_context from a small real audit (the local engine) whose user strings carry HTML."""
    from reportgen.data.datasets import Dataset, Provenance
    from reportgen.engines.inputs import Resolved
    from reportgen.engines.local import compute
    from reportgen.engines.options import AuditOptions

    rng = np.random.default_rng(0)
    n, k = 240, 3
    labels = np.repeat(np.arange(k), n // k)
    logits = rng.normal(size=(n, k)) + 3.0 * np.eye(k)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = [XSS, "cat & dog", '"quoted"']
    ds = Dataset(np.zeros((n, 1, 1, 1), np.uint8), labels, names,
                 Provenance("predictions", "/data/<b>bold</b>.npy", "ab" * 32, n, warning="<img src=x onerror=alert(2)>"), "set<i>")
    r = Resolved(audit=ds, name="m", version="v1", probs=probs, data_role="held out")
    results = compute(r, AuditOptions(cv=0), None).results
    return report.build_context(
        results=results, figures=[], method={"method": "saved_probabilities", "n_samples": 1, "description": "saved <u>probs</u>"},
        model_name="<b>model</b>", version="v1", model_info={"path": "/m/<x>.npy", "sha256": "cd" * 32, "kind": "saved probabilities"},
        data_role="held out", notes=["note with <iframe src=//evil>"], command=f"reportgen audit --name '{XSS}'",
        options={"seed": 0, "name": XSS, "command": "x"}, reportgen_version="0.1.0", created_at="2026-01-01T00:00:00+00:00",
        config_file="/tmp/<cfg>.toml", option_sources={"seed": "commandline", "name": "default_map"}, gates=["accuracy<0.99"],
    )


def test_html_escapes_every_user_string(hostile_context):
    html = report.render_html(hostile_context)
    for raw in (XSS, "<b>model</b>", "<img src=x", "<iframe", "<b>bold</b>", "<u>probs</u>", "<cfg>", "set<i>"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;model&lt;/b&gt;" in html
    assert "cat &amp; dog" in html
    # The class names reach the per-class table, the findings and the flagged table.
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    assert "<script" not in html.lower()


def test_markdown_escapes_every_user_string(hostile_context):
    md = report.render_markdown(hostile_context)
    for raw in (XSS, "<b>", "<img", "<iframe"):
        assert raw not in md, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "Model **&lt;b&gt;model&lt;/b&gt;**" in md
    assert "**Calibration:**" in md  # the template's own markup survives


@needs_poppler
def test_pdf_shows_hostile_strings_as_text(hostile_context, tmp_path):
    pdf = write_pdf(hostile_context, tmp_path)
    text = " ".join(pdf_text(pdf).split())
    assert XSS in text and "<b>model</b>" in text


def test_md_escape():
    assert render.md_escape("a|b") == "a\\|b"
    assert render.md_escape("**x** _y_ `z` [l](u)") == "\\*\\*x\\*\\* \\_y\\_ \\`z\\` \\[l\\](u)"
    assert render.md_escape("<b>&") == "&lt;b&gt;&amp;"
    assert render.md_escape("two\nlines") == "two lines"
    assert render.md_escape(None) == ""


# --------------------------------------------------------------------------- findings and verdicts


def fake_context(**metrics) -> dict:
    from reportgen.stats.classes import recall_comparisons

    m = {"accuracy": 0.95, "accuracy_ci_low": 0.936, "accuracy_ci_high": 0.962, "n_samples": 1000, "mean_confidence": 0.99,
         "calibration_error": 0.08, "calibration_error_ci_low": 0.06, "calibration_error_ci_high": 0.10, "temperature": 1.6,
         "nll": 0.3, "mean_entropy": 0.2, "mean_epistemic": None}
    m.update(metrics)
    verdict = "miscalibrated" if m["calibration_error_ci_low"] > 0 else "consistent"
    per_class = [{"name": "cat", "count": 100, "correct": 80, "accuracy": 0.80, "accuracy_ci": [0.711, 0.867]},
                 {"name": "dog", "count": 100, "correct": 99, "accuracy": 0.99, "accuracy_ci": [0.946, 0.998]},
                 {"name": "eel", "count": 100, "correct": 96, "accuracy": 0.96, "accuracy_ci": [0.901, 0.984]}]
    pairs = recall_comparisons(["cat", "dog", "eel"], [100, 100, 100], [80, 99, 96])
    rule = {"certified": True, "threshold": 0.97, "kept": 900, "errors": 5, "coverage": 0.9, "risk": 0.0056, "bound": 0.009,
            "tests": 10, "target": 0.01, "delta": 0.05}
    li = {"n_flagged": 2, "n_estimated": 1, "n_checked": 1000, "rate": 0.001, "checker": {"independent": False, "kind": "audited_model"}}
    return {"metrics": m, "shipped": "deterministic", "per_class": per_class, "class_pairs": pairs, "label_issues": li,
            "epistemic_measured": False, "method": {"n_samples": 1}, "calibration": {"verdict": verdict},
            "temperature": {"nll_after": 0.25, "after": {"verdict": "consistent"}}, "selective": {"rule": rule}, "gates": []}


def test_findings_rank_by_score_and_name_the_numbers():
    found = findings.findings(fake_context())
    # calibration 0.4 + 10*0.08 -> 1.0; epistemic not measured 0.35; labels 0.3 + 0.02 (always kept); performance 4*0.05 = 0.2.
    assert [f["topic"] for f in found] == ["calibration", "epistemic", "label_issues", "performance"]
    assert found[0]["text"].startswith("The deterministic network: calibration error 0.080 (0.060–0.100)")
    assert "miscalibrated, over-confident on average (mean confidence 0.990 vs accuracy 0.950)" in found[0]["text"]
    assert "T = 1.60 > 1 softens" in found[0]["text"] and "scaling calibrates it" in found[0]["text"]
    assert found[3]["text"].startswith("Accuracy is 95.0 % (93.6–96.2) on 1,000 audited samples. The weakest class is ‘cat’")
    assert found[0]["level"] == "warn"
    everything = findings.findings(fake_context(), limit=None)
    assert [f["topic"] for f in everything][4:] == ["selective"]


def test_findings_when_no_threshold_can_be_certified():
    ctx = fake_context(calibration_error_ci_low=0.0)
    ctx["selective"]["rule"]["certified"] = False
    found = findings.findings(ctx, limit=None)
    assert any(f["topic"] == "selective" and f["text"].startswith("No confidence threshold can be certified") for f in found)
    assert next(f for f in found if f["topic"] == "calibration")["level"] == "good"


def test_verdict_badges():
    ctx = fake_context(calibration_error_ci_low=0.0)
    ctx["gates"] = [{"expr": "accuracy<0.99", "failed": True}, {"expr": "calibration_error>0.1", "failed": False}]
    v = {b["label"]: b for b in findings.verdicts(ctx)}
    assert (v["Calibration"]["level"], v["Calibration"]["text"]) == ("good", "consistent with calibration (calibration error 0.080 (0.000–0.100))")
    assert v["Labels"] == {"label": "Labels", "text": "2 candidates for review, no independent checker", "level": "warn"}
    assert v["Abstention"] == {"label": "Abstention", "text": "≤ 1.0 % error certified at 90.0 % coverage", "level": "good"}
    assert (v["CI gates"]["level"], v["CI gates"]["text"]) == ("bad", "1 of 2 failed")
    assert "Accuracy" not in v and "Epistemic uncertainty" not in v  # no rule behind such a badge


def test_every_badge_on_the_cover_has_its_rule_in_the_methods(mc_audit):
    html = (mc_audit / "report.html").read_text()
    cover = html[html.index('<div class="verdicts"'):html.index("</div>", html.index('<div class="verdicts"'))]
    labels = re.findall(r'<span class="badge [a-z]+"[^>]*>(?:<span[^>]*>[^<]*</span>)?\s*([^:<]+):', cover)
    assert {"Calibration", "Abstention", "Labels"} <= set(labels), labels
    rules = html[html.index('<ul class="verdict-rules">'):html.index("</ul>", html.index('<ul class="verdict-rules">'))]
    for label in labels:
        assert f"<strong>{label}</strong>: " in rules, label


def test_gate_outcomes_are_in_the_context(hostile_context):
    (g,) = hostile_context["gates"]
    assert g["expr"] == "accuracy<0.99"
    assert g["failed"] is (hostile_context["metrics"]["accuracy"] < 0.99)


def test_effective_configuration_names_its_sources(hostile_context):
    cfg = hostile_context["configuration"]
    assert cfg["file"] == "/tmp/<cfg>.toml"
    assert cfg["options"] == [{"key": "seed", "value": 0, "source": "commandline"}, {"key": "name", "value": XSS, "source": "default_map"}]
    html = report.render_html(hostile_context)
    assert "<td>command line</td>" in html and "<td>configuration file</td>" in html


# --------------------------------------------------------------------------- the real report (session audit, S = 30)


def test_report_md_matches_summary(mc_audit):
    md = (mc_audit / "report.md").read_text()
    s = json.loads((mc_audit / "summary.json").read_text())
    m = s["metrics"]
    assert f"| Accuracy | accuracy | {metrics.fmt_with_interval(m, 'accuracy')} |" in md
    assert f"| {metrics.names()['calibration_error']} | calibration\\_error | {metrics.fmt_with_interval(m, 'calibration_error')} |" in md
    numbered = re.findall(r"^(\d)\. ", md, flags=re.M)
    assert numbered == [str(i + 1) for i in range(len(s["findings"]))] and len(s["findings"]) in (3, 4)
    assert "[report.html](report.html)" in md


def test_html_has_sidebar_alt_text_and_real_tables(mc_audit):
    html = (mc_audit / "report.html").read_text()
    nav = re.search(r'<nav class="sidebar".*?</nav>', html, flags=re.S).group(0)
    assert re.findall(r'href="#([\w-]+)"', nav) == [sid for sid, _ in report.SECTIONS]
    for sid, _ in report.SECTIONS:
        assert re.search(rf'<section id="{sid}"( class="[^"]+")?>', html), sid
    imgs = re.findall(r"<img [^>]*>", html)
    assert len(imgs) >= 8
    assert all(re.search(r'alt="[^"]{20,}"', tag) for tag in imgs)
    assert all(re.search(r'src="data:image/(svg\+xml|png);base64,', tag) for tag in imgs)  # self-contained
    assert html.count("<th scope=\"col\"") >= 20
    assert "<link" not in html and "http://" not in html and "https://" not in html


@needs_poppler
def test_pdf_contents_page_numbers_point_at_the_sections(mc_audit):
    pdf = mc_audit / "report.pdf"
    n, (w, h) = pdf_pages(pdf)
    assert (w, h) == pytest.approx((595.3, 841.9), abs=0.5)  # A4
    cover = pdf_text(pdf, 1)
    entries = re.findall(r"^\s*\d+\. (.+?) ?\.{3,}\s*(\d+)\s*$", cover, flags=re.M)
    assert [t for t, _ in entries] == [title for _, title in report.SECTIONS]
    pages = [int(p) for _, p in entries]
    assert pages == sorted(pages) and pages[0] == 1 and pages[-1] <= n  # the summary starts under the contents
    for title, page in entries:
        text = pdf_text(pdf, int(page))
        header = text.strip().splitlines()[0]
        if int(page) > 1:  # no running header on the cover page; elsewhere: the first section that starts on the page
            assert header.split()[:2] == ["Audit", "of"] and header.rstrip().endswith(tuple(t for _, t in report.SECTIONS)), header
        assert re.search(rf"^\s*{re.escape(title)}\s*$", text, flags=re.M), title  # the heading itself
        assert f"Page {page} of {n}" in text


@needs_poppler
def test_letter_paper(mc_audit, tmp_path):
    ctx = context_from_summary(mc_audit)
    pdf = write_pdf(ctx, tmp_path, paper="letter")
    _, size = pdf_pages(pdf)
    assert size == pytest.approx((612, 792), abs=0.5)


@needs_poppler
@needs_chromium
def test_screenshots_of_the_newest_report(mc_audit, tmp_path):
    from PIL import Image

    root = tmp_path / "archive"
    shutil.copytree(mc_audit, root / "m" / "v")
    out = screenshots.screenshots(root, tmp_path / "docs")
    assert [p.name for p in out] == ["report-page1.png", "report-page2.png", "report-html.png"]
    page = Image.open(out[0])
    assert page.height / page.width == pytest.approx(2 ** 0.5, abs=0.01)  # an A4 page
    shot = Image.open(out[2]).convert("RGB")
    assert shot.size == (1280, 900)
    assert shot.getpixel((100, 880)) == (0xF4, 0xF6, 0xF8)  # the navigation sidebar, on screen
    assert shot.getpixel((1200, 880)) == (0xFF, 0xFF, 0xFF)  # the page beside it
    colours = {shot.getpixel((x, y)) for x in range(240, 1280, 7) for y in range(0, 900, 7)}
    assert len(colours) > 20  # text, badges and figures drew


# --------------------------------------------------------------------------- WeasyPrint's URL fetcher


@pytest.fixture()
def folders(tmp_path):
    inside, outside = tmp_path / "report", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    png = _tiny_png()
    (inside / "in.png").write_bytes(png)
    (outside / "out.png").write_bytes(png)
    return inside, outside


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 114, 178)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x.png",
    "https://example.com/x.png",
    "ftp://example.com/x.png",
    "file://otherhost/etc/hostname",
])
def test_fetcher_refuses_the_network(folders, url):
    inside, _ = folders
    with pytest.raises(ValueError, match="refuses"):
        render._data_only_fetcher(inside).fetch(url)


def test_fetcher_refuses_files_outside_the_folder(folders):
    inside, outside = folders
    f = render._data_only_fetcher(inside)
    for url in ((outside / "out.png").as_uri(), "FILE://" + str(outside / "out.png"), (inside / ".." / "elsewhere" / "out.png").as_uri(),
                "file:///etc/hostname"):
        with pytest.raises(ValueError, match="outside the report folder"):
            f.fetch(url)
    (inside / "link.png").symlink_to(outside / "out.png")
    with pytest.raises(ValueError, match="outside the report folder"):
        f.fetch((inside / "link.png").as_uri())


def test_fetcher_serves_data_uris_and_files_inside(folders):
    inside, _ = folders
    f = render._data_only_fetcher(inside)
    r = f.fetch((inside / "in.png").as_uri())
    try:
        assert r.read() == (inside / "in.png").read_bytes()
    finally:
        r.close()
    assert f.fetch("data:text/plain;base64,aGk=").read() == b"hi"


@pytest.mark.skipif(not shutil.which("pdfimages"), reason="poppler-utils (pdfimages) not installed")
def test_pdf_embeds_only_the_image_inside_the_folder(folders):
    inside, outside = folders
    html = (f'<html><body><img src="in.png"><img src="{(outside / "out.png").as_uri()}"><img src="../elsewhere/out.png">'
            '<img src="http://127.0.0.1:9/x.png"></body></html>')
    pdf = render.html_to_pdf(html, inside, inside / "t.pdf")
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = [ln for ln in listing.splitlines()[2:] if ln.strip()]
    assert len(rows) == 1


# --------------------------------------------------------------------------- spreadsheet formulas and mathtext


@pytest.mark.parametrize("cell, safe", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("cat", "cat"), ("a=b", "a=b"), (-0.5, -0.5), (3, 3),
])
def test_csv_cells_cannot_start_a_formula(cell, safe):
    assert render.csv_cell(cell) == safe


def test_flagged_csv_of_a_real_audit_neutralises_formula_class_names(tmp_path):
    """Saved probabilities with class names that a spreadsheet would run; flagged.csv keeps them inert."""
    import csv as _csv

    from conftest import run_cli

    rng = np.random.default_rng(3)
    n, k = 300, 3
    y = np.repeat(np.arange(k), n // k)
    logits = rng.normal(size=(n, k)) + 4.0 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = y.copy()
    given[:20] = (y[:20] + 1) % k  # label errors, so something is flagged
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", given)
    names = ["=cmd|' /C calc'!A0", "+SUM(1)", "@x"]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    r = run_cli(["audit", "--quiet", "--predictions", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--class-names", str(tmp_path / "names.txt"), "--output", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    rows = list(_csv.DictReader(open(Path(r.stdout.strip()) / "flagged.csv", encoding="utf-8")))
    assert rows
    for row in rows:
        assert row["given"] in {"'" + n for n in names} and row["suggested"] in {"'" + n for n in names}


def test_figures_print_dollar_signs_in_class_names_as_written():
    """'$...$' in a user's class name is text, not mathtext (an unbalanced one used to crash savefig)."""
    from reportgen.report import figures as figures
    names = ["$\\invalid{", "$x$", "c"]
    fig, ax = figures.new_figure()
    figures.plot_bars([1, 2, 3], names, ylabel="flagged samples", ax=ax[0, 0])
    asset = figures.encode(fig, key="t", title="t", alt="t")
    assert asset.uri.startswith("data:image/")
    labels = [t.get_text() for t in ax[0, 0].get_xticklabels()]
    assert labels == names and not any(t.get_parse_math() for t in ax[0, 0].get_xticklabels())


# --------------------------------------------------------------------------- a report that passes review (issue 10)


def page_ink(pdf: Path, tmp_path: Path) -> list[float]:
    """Per page: how far down the text area the lowest ink reaches (0 = empty, 1 = to the bottom margin)."""
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "30", "-gray", "-png", str(pdf), str(tmp_path / "ink")], check=True)
    out = []
    for png in sorted(tmp_path.glob("ink-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        a = np.asarray(Image.open(png).convert("L"))
        h = a.shape[0]
        top, bottom = int(0.075 * h), int(0.93 * h)  # inside the running header and the page-number footer
        rows = np.flatnonzero((a[top:bottom] < 160).any(axis=1))
        out.append(0.0 if not len(rows) else (rows[-1] + 1) / (bottom - top))
    return out


# The audits whose PDFs the layout tests check: the model audit with S = 30 (no checker) and the default audit, which
# trains the model and checks every label with the cross-validated checker.
LAID_OUT = ["mc_audit", "deterministic_audit"]


def _folder(request, name: str) -> Path:
    got = request.getfixturevalue(name)
    return got[0] if isinstance(got, tuple) else got


@needs_poppler
@pytest.mark.parametrize("audit", LAID_OUT)
def test_report_is_at_most_ten_pages_each_at_least_two_thirds_full(audit, request, tmp_path):
    """Sections flow on (no forced break before any), so every page but the last is at least two-thirds full."""
    pdf = _folder(request, audit) / "report.pdf"
    n, _ = pdf_pages(pdf)
    assert n <= 10, n
    ink = page_ink(pdf, tmp_path)
    assert len(ink) == n
    short = [(page, round(fill, 2)) for page, fill in enumerate(ink[:-1], 1) if fill < 2 / 3]
    assert not short, short


def _boxes(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


def _laid_out(folder: Path):
    """The pages WeasyPrint lays out from the exact HTML report.pdf came from."""
    from conftest import PRINT_HTML

    return render._weasyprint().HTML(string=PRINT_HTML[folder], base_url=str(folder.resolve()) + "/",
                                     url_fetcher=render._data_only_fetcher(folder)).render().pages


def _text(box) -> str:
    return "".join(getattr(b, "text", "") or "" for b in _boxes(box) if type(b).__name__ == "TextBox")


@pytest.mark.parametrize("audit", LAID_OUT)
def test_nothing_on_any_page_crosses_its_margins(audit, request):
    """WeasyPrint lays out the exact HTML report.pdf came from; every box (table, caption, line of text, image) must end
    inside the page's content area, where a clipped table or an overlong word would cross the right margin."""
    folder = _folder(request, audit)
    pages = _laid_out(folder)
    assert len(pages) == pdf_pages(folder / "report.pdf")[0]
    crossing = []
    for number, page in enumerate(pages, 1):
        pb = page._page_box
        left, top = pb.content_box_x(), pb.content_box_y()
        right, bottom = left + pb.width, top + pb.height
        body = [b for b in pb.children if type(b).__name__ != "MarginBox"]  # not the running header and footer
        for box in (b for root in body for b in _boxes(root)):
            if getattr(box, "width", None) is None:
                continue
            x0, y0 = box.border_box_x(), box.border_box_y()
            x1, y1 = x0 + box.border_width(), y0 + box.border_height()
            if x1 > right + 0.5 or y1 > bottom + 0.5 or x0 < left - 0.5:
                crossing.append((number, type(box).__name__, getattr(box, "element_tag", ""),
                                 round(max(x1 - right, y1 - bottom, left - x0), 1), (getattr(box, "text", "") or "")[:30]))
    assert not crossing, crossing[:10]


@needs_poppler
@pytest.mark.parametrize("audit", LAID_OUT)
def test_running_headers_name_the_section_each_page_starts_in(audit, request):
    """The header of a page (read from the PDF's text) names the section its first line belongs to: the section whose
    title opens the page, else the last one begun on an earlier page (section titles located by laying the report out
    again); page 1 has none."""
    folder = _folder(request, audit)
    pdf = folder / "report.pdf"
    titles = {title for _, title in report.SECTIONS}
    begun = [[t for t in (_text(b) for b in _boxes(page._page_box) if type(b).__name__ == "BlockBox" and b.element_tag == "h2")
              if t in titles]
             for page in _laid_out(folder)]
    assert [t for page in begun for t in page] == [title for _, title in report.SECTIONS]
    title = json.loads((folder / "summary.json").read_text())["title"]
    current = None
    for page, here in enumerate(begun, 1):
        lines = [ln.strip() for ln in pdf_text(pdf, page).splitlines() if ln.strip()]
        if page > 1:
            header, first = re.split(r"\s{2,}", lines[0]), lines[1]
            expected = here[0] if here and first == here[0] else current
            assert header == [title, expected], (page, lines[:3])
        current = here[-1] if here else current


@needs_poppler
def test_every_card_field_is_in_the_pdf_and_missing_ones_are_named(mc_audit, tmp_path):
    from reportgen.report import card as C
    f = tmp_path / "card.toml"
    f.write_text("""
owners = [{name = "Vision team", contact = "vision@example.org"}]
intended_use = "Sorting scanned digits before manual entry"
intended_users = ["back-office clerks"]
out_of_scope = ["handwritten letters", "any decision about a person"]
limitations = "Trained on 2,000 digits only"
ethical_considerations = "Errors fall on whoever wrote the digit"
tradeoffs = "Abstaining below the threshold costs manual work"
license = "Apache-2.0"
references = ["https://example.org/model-v3"]
""")
    ctx = context_from_summary(mc_audit)
    ctx["card"] = C.context(C.load(f))
    text = " ".join(pdf_text(write_pdf(ctx, tmp_path)).split())
    for value in ("Vision team", "vision@example.org", "Sorting scanned digits before manual entry", "back-office clerks",
                  "handwritten letters", "any decision about a person", "Trained on 2,000 digits only",
                  "Errors fall on whoever wrote the digit", "Abstaining below the threshold costs manual work", "Apache-2.0",
                  "https://example.org/model-v3"):
        assert value in text, value
    assert "not provided" not in text
    partial = C.context(C.from_table({"intended_use": "digits"}, "inline"))
    assert partial["missing"] == ["Owners and contact", "Intended users", "Out-of-scope uses", "Known limitations",
                                  "Ethical considerations", "Trade-offs", "Licence", "References"]


def test_a_report_without_a_card_names_every_missing_field(mc_audit):
    html = (mc_audit / "report.html").read_text()
    section = html[html.index('<section id="card">'):html.index("</section>", html.index('<section id="card">'))]
    from reportgen.report.card import FIELDS

    assert "No model card was given" in section
    for name in FIELDS.values():
        assert name in section  # each missing field named once, in one sentence (not a table of "not provided")
    assert ">not provided<" not in section


def test_bad_card_files_fail_before_any_work(tmp_path):
    from conftest import run_cli

    cases = {"unknown.toml": ('colour = "red"\n', "unknown card field(s) colour"),
             "types.toml": ("limitations = 3\n", "card field 'limitations' must be a string or a list of strings"),
             "broken.toml": ("owners = [\n", "not valid TOML")}
    for name, (body, message) in cases.items():
        (tmp_path / name).write_text(body)
        r = run_cli(["audit", "--card", str(tmp_path / name), "--output", str(tmp_path / "out")])
        assert r.exit_code == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "out").exists()


def test_html_figures_are_svg(mc_audit):
    html = (mc_audit / "report.html").read_text()
    srcs = re.findall(r'<figure id="fig-[^"]+"[^>]*>\s*<img src="([^"]{0,40})', html)
    assert len(srcs) >= 8
    assert all(s.startswith("data:image/svg+xml;base64,") for s in srcs), srcs
    # the galleries are not plots: one small PNG per image, its labels as text
    thumbs = re.findall(r'<div class="cell"><img src="data:image/png;base64,', html)
    assert len(thumbs) >= 30


def test_model_card_json_follows_the_model_card_toolkit_fields(mc_audit):
    import jsonschema

    schema = json.loads((Path(__file__).parent / "model_card.schema.json").read_text())
    mc = json.loads((mc_audit / "model_card.json").read_text())
    jsonschema.validate(mc, schema)
    s = json.loads((mc_audit / "summary.json").read_text())
    perf = {p["type"]: p for p in mc["quantitative_analysis"]["performance_metrics"] if p["slice"] == "all audited samples"}
    acc = perf["Accuracy"]
    assert acc["value"] == s["metrics"]["accuracy"]
    assert (acc["confidence_interval"]["lower_bound"], acc["confidence_interval"]["upper_bound"]) == (
        s["metrics"]["accuracy_ci_low"], s["metrics"]["accuracy_ci_high"])
    assert "confidence_interval" not in perf["Evaluated samples"]
    assert mc["model_details"]["name"] == "mnist-cnn" and mc["model_details"]["version"]["name"] == "mc30"


def test_predictions_export_recomputes_accuracy_and_ece(mc_audit):
    """The README's recipe: accuracy and the 15-bin ECE from predictions.csv.gz alone."""
    import csv as _csv
    import gzip

    s = json.loads((mc_audit / "summary.json").read_text())
    with gzip.open(mc_audit / "predictions.csv.gz", "rt") as f:
        rows = list(_csv.DictReader(f))
    k = s["data"]["n_classes"]
    assert len(rows) == s["metrics"]["n_samples"]
    y = np.array([int(r["given"]) for r in rows])
    p = np.array([[float(r[f"p_{c}"]) for c in range(k)] for r in rows])
    assert np.mean(p.argmax(1) == y) == pytest.approx(s["metrics"]["accuracy"], abs=1e-12)
    conf, right = p.max(1), p.argmax(1) == y
    b = np.clip(np.floor(conf * 15), 0, 14).astype(int)
    ece = sum(abs(right[b == i].mean() - conf[b == i].mean()) * np.mean(b == i) for i in range(15) if np.any(b == i))
    assert ece == pytest.approx(s["metrics"]["ece"], abs=1e-4)  # TFP's ECE is computed in float32
    assert sum(int(r["flagged"]) for r in rows) <= s["metrics"]["n_flagged"]
    assert np.mean([float(r["epistemic"]) for r in rows]) == pytest.approx(s["metrics"]["mean_epistemic"], rel=1e-5)


def test_report_md_has_a_title_the_label_finding_and_the_manifest(mc_audit):
    md = (mc_audit / "report.md").read_text()
    assert md.startswith("# Audit of mnist-cnn mc30\n")
    s = json.loads((mc_audit / "summary.json").read_text())
    label = next(f["text"] for f in s["findings"] if f["topic"] == "label_issues")
    assert render.md_escape(label) in md
    assert "[manifest.json](manifest.json)" in md
    assert not re.search(r"^\s*[-*] [-*] ", md, flags=re.M)  # no doubled bullets
