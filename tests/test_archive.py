"""The archive on disk: manifests and verify, listing, the index page, and the list/verify commands (no TensorFlow)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import run_cli

from reportgen.report import folder as archive
from reportgen.archive import index
def fake_version(root: Path, model: str, version: str, created_at: str | None, accuracy: float, ece: float) -> Path:
    """A version folder with the files an audit writes (small), sealed by a manifest."""
    d = root / model / version
    d.mkdir(parents=True)
    summary = {"title": f"Audit of {model} {version}", "created_at": created_at, "data": {"name": "digits"},
               "metrics": {"accuracy": accuracy, "calibration_error": ece, "nll": 0.3, "aurc": 0.02, "mean_epistemic": None, "n_flagged": 4}}
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "report.html").write_text(f"<html><body>{model} {version}</body></html>")
    (d / "flagged.csv").write_text("rank,index\n1,5\n")
    archive.write_manifest(d)
    return d


@pytest.fixture()
def root(tmp_path) -> Path:
    r = tmp_path / "output"
    fake_version(r, "cnn", "v1", "2026-01-02T10:00:00+00:00", 0.90, 0.05)
    fake_version(r, "cnn", "v3", "2026-03-01T09:00:00+00:00", 0.95, 0.02)
    fake_version(r, "cnn", "v2", "2026-02-01T09:00:00+01:00", 0.93, 0.04)
    fake_version(r, "other", "a", "2026-02-15T00:00:00+00:00", 0.80, 0.10)
    (r / ".models").mkdir()
    (r / ".models" / "m.keras").write_text("x")
    fake_version(r / ".staging-cnn", "x", "half", "2026-12-31T00:00:00+00:00", 0.1, 0.1)
    return r


# --------------------------------------------------------------------------- manifest and verify

def test_verify_passes_then_names_each_changed_missing_or_extra_file(root):
    d = root / "cnn" / "v1"
    assert archive.verify(d) == []
    raw = bytearray((d / "summary.json").read_bytes())
    raw[10] ^= 1  # one byte
    (d / "summary.json").write_bytes(bytes(raw))
    (d / "flagged.csv").unlink()
    (d / "extra.txt").write_text("added later")
    problems = archive.verify(d)
    assert sorted(problems) == sorted([
        f"{d / 'summary.json'}: changed (sha256 differs from the manifest)",
        f"{d / 'flagged.csv'}: missing",
        f"{d / 'extra.txt'}: not in the manifest",
    ])


def test_manifest_records_sha256_and_size(root):
    import hashlib

    d = root / "cnn" / "v1"
    listed = json.loads((d / "manifest.json").read_text())["files"]
    assert set(listed) == {"summary.json", "report.html", "flagged.csv"}
    body = (d / "report.html").read_bytes()
    assert listed["report.html"] == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


def test_a_sealed_subfolder_is_verified_on_its_own(root):
    d = root / "cnn" / "v3"
    sub = d / "compare-v2"
    sub.mkdir()
    (sub / "compare.html").write_text("<html></html>")
    archive.write_manifest(sub)
    assert archive.verify(d) == []  # the comparison, added later, is not an unlisted file of v3
    # 'compare-v2/manifest.json' sorts before 'manifest.json': the outer folder must still be the unit.
    assert archive.sealed_units(root) == [root / "cnn" / "v1", root / "cnn" / "v2", d, root / "other" / "a"]
    (sub / "compare.html").write_text("<html>edited</html>")
    assert archive.verify(d) == [f"{sub / 'compare.html'}: changed (sha256 differs from the manifest)"]
    (sub / "manifest.json").unlink()  # without its own seal, its files are v3's unlisted files
    assert archive.verify(d) == [f"{sub / 'compare.html'}: not in the manifest"]


def test_unreadable_or_absent_manifest_is_an_error(root, tmp_path):
    from reportgen.errors import ReportgenError

    with pytest.raises(ReportgenError, match="no manifest"):
        archive.verify(tmp_path)
    (root / "cnn" / "v1" / "manifest.json").write_text("{not json")
    with pytest.raises(ReportgenError, match="unreadable manifest"):
        archive.verify(root / "cnn" / "v1")


def test_sealed_units_of_an_archive_skip_hidden_folders(root):
    assert archive.sealed_units(root) == [root / "cnn" / "v1", root / "cnn" / "v2", root / "cnn" / "v3", root / "other" / "a"]
    assert archive.sealed_units(root / "cnn" / "v2") == [root / "cnn" / "v2"]


# --------------------------------------------------------------------------- listing and index

def test_list_versions_newest_first_skipping_hidden_folders(root):
    vs = index.list_versions(root)
    # v2's 09:00+01:00 is 08:00 UTC on 1 Feb: still after v1, before other/a.
    assert [(v["model"], v["version"]) for v in vs] == [("cnn", "v3"), ("other", "a"), ("cnn", "v2"), ("cnn", "v1")]
    assert vs[0]["metrics"]["accuracy"] == 0.95 and vs[0]["path"] == "cnn/v3"
    assert vs[0]["files"] == ["report.html", "summary.json", "flagged.csv"]


def test_unreadable_summary_is_listed_with_the_problem(root):
    (root / "cnn" / "v2" / "summary.json").write_text("{broken")
    vs = {v["version"]: v for v in index.list_versions(root)}
    assert vs["v2"]["error"] == "summary.json: unreadable (JSONDecodeError)"
    assert vs["v2"]["created_at"] is None
    assert index.write_index(root).is_file()  # the index still renders


class _Index(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.links, self.imgs = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-version" in a:
            self.rows.append((a["data-model"], a["data-version"]))
        if tag == "a":
            self.links.append(a["href"])
        if tag == "img":
            self.imgs.append(a)


def test_index_lists_versions_newest_first_with_working_links_and_one_trend_per_multi_version_model(root):
    out = index.write_index(root)
    assert out == root / "index.html"
    p = _Index()
    p.feed(out.read_text())
    assert p.rows == [("cnn", "v3"), ("other", "a"), ("cnn", "v2"), ("cnn", "v1")]
    files = [h for h in p.links if not h.startswith("#")]
    assert "cnn/v3/report.html" in files
    assert all((root / h).is_file() for h in files), files
    assert len(p.imgs) == 1  # 'other' has one version: no trend chart
    img = p.imgs[0]
    assert img["src"].startswith("data:image/svg+xml;base64,")
    # The alt text carries the trend in words, oldest first.
    assert re.search(r"v1 90\.0 %, v2 93\.0 %, v3 95\.0 %", img["alt"]), img["alt"]
    assert ".staging" not in out.read_text() and ".models" not in out.read_text()
    assert not list(root.glob(".index.html.tmp-*"))


# --------------------------------------------------------------------------- commands

def test_list_command_table_and_json(root):
    r = run_cli(["list", "--output", str(root)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "CREATED", "ACCURACY", "CALIBRATION", "NLL", "AURC", "EPISTEMIC", "FLAGGED"]
    assert [ln.split()[:2] for ln in lines[2:]] == [["cnn", "v3"], ["other", "a"], ["cnn", "v2"], ["cnn", "v1"]]
    assert lines[2].split()[4:] == ["95.0", "%", "0.0200", "0.3000", "0.0200", "not", "measured", "4"]
    r = run_cli(["list", "--output", str(root), "--json"])
    assert json.loads(r.stdout) == index.list_versions(root)


def test_list_command_on_a_missing_root(tmp_path):
    r = run_cli(["list", "--output", str(tmp_path / "nope")])
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: {tmp_path / 'nope'}: no such archive folder"


def test_verify_command_passes_then_fails_naming_the_file(root):
    r = run_cli(["verify", str(root)])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("ok: ") == 4
    summary = root / "other" / "a" / "summary.json"
    summary.write_bytes(summary.read_bytes().replace(b"0.8", b"0.9", 1))
    r = run_cli(["verify", str(root / "other" / "a")])
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: verification failed: {summary}: changed (sha256 differs from the manifest)"
    r = run_cli(["verify", str(root)])
    assert r.exit_code == 1 and str(summary) in r.stderr and r.stdout.count("ok: ") == 3


def test_verify_command_without_any_manifest(tmp_path):
    r = run_cli(["verify", str(tmp_path)])
    assert r.exit_code == 1
    assert "no manifest.json here or below" in r.stderr


def test_archive_commands_help_without_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys, reportgen.cli\n"
        "from click.testing import CliRunner\n"
        "for cmd in ('list', 'verify', 'compare'):\n"
        "    r = CliRunner().invoke(reportgen.cli.cli, [cmd, '--help'])\n"
        "    assert r.exit_code == 0 and 'Example' in r.output, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'weasyprint') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- hostile archive contents


def test_index_never_links_a_folder_whose_name_fails_the_component_check(root):
    """A version folder named like a URL scheme (or any unsafe name) is neither listed nor linked."""
    evil = fake_version(root, "cnn", "v9", "2026-04-01T00:00:00+00:00", 0.99, 0.01)
    evil.rename(root / "cnn" / "javascript:alert(1)")
    (root / "javascript:alert(2)").mkdir()
    fake_version(root / "javascript:alert(2)", "x", "y", "2026-04-01T00:00:00+00:00", 0.9, 0.1)
    versions = index.list_versions(root)
    assert all(archive.is_safe_component(v["model"]) and archive.is_safe_component(v["version"]) for v in versions)
    html = index.write_index(root).read_text()
    links = re.findall(r'href="([^"]*)"', html)
    assert links and not any("javascript" in link or ":" in link for link in links), links
    assert "alert" not in html


def test_crafted_summary_values_cannot_break_the_index(root):
    s = root / "other" / "a" / "summary.json"
    s.write_text(json.dumps({"title": "<script>x</script>", "metrics": {"accuracy": "=1+1", "calibration_error": [1], "n_flagged": True}}))
    html = index.write_index(root).read_text()
    assert "<script>x" not in html and "=1+1" not in html
    other = next(v for v in index.list_versions(root) if v["model"] == "other")
    assert other["metrics"]["accuracy"] is None and other["metrics"]["calibration_error"] is None and other["metrics"]["n_flagged"] is None
