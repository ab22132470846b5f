"""The house reads top-down (cli -> pipeline -> stages -> ground): import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    return str(exe) if exe.exists() else shutil.which("lint-imports")


def test_import_linter_contracts_are_kept():
    """Runs the layers and acyclic-siblings contracts; a module importing one above it (or a cycle) fails here."""
    r = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_the_layers_contract_catches_an_upward_import(tmp_path):
    """The contract can fail: a copy of the package where a ground module imports the pipeline breaks it."""
    pkg = tmp_path / "reportgen"
    shutil.copytree(ROOT / "reportgen", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "metrics.py").write_text((pkg / "metrics.py").read_text() + "\nfrom .engines import local  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    r = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0
    assert "reportgen.metrics is not allowed to import reportgen.engines" in r.stdout
