"""`pip install .` (not editable) ships the templates inside the package."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_non_editable_install_finds_templates(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    assert (target / "reportgen" / "templates" / "report.html").is_file()
    code = "import reportgen.report.render as r; print(r.__file__); print(r.templates_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "reportgen" / "templates")
