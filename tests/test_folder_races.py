"""Two audits of the same version at once: one wins, the other fails in one line, nothing is lost.

report.folder.staged_folder writes each run into its own uuid-named staging folder and publishes it with one atomic
rename, which the operating system refuses when the version folder exists (with files) by then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reportgen.errors import OutputError
from reportgen.report.folder import MANIFEST, STAGING_PREFIX, staged_folder


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(STAGING_PREFIX)]


@pytest.mark.parametrize("winner", ["first", "second"])
def test_the_run_that_renames_second_fails_in_one_line_and_the_winner_is_intact(tmp_path, winner):
    final = tmp_path / "m" / "v"
    with contextlib.ExitStack() as outer:
        a = outer.enter_context(contextlib.ExitStack())
        b = outer.enter_context(contextlib.ExitStack())
        stage_a = a.enter_context(staged_folder(final, force=False))  # both start before either finishes
        stage_b = b.enter_context(staged_folder(final, force=False))
        (stage_a / "report.html").write_text("A")
        (stage_b / "report.html").write_text("B")
        (stage_b / "extra.txt").write_text("B only")
        first, second, won = (a, b, "A") if winner == "first" else (b, a, "B")
        first.close()  # publishes
        with pytest.raises(OutputError) as e:
            second.close()
    message = str(e.value)
    assert "\n" not in message and "already exists" in message and "--force" in message
    assert (final / "report.html").read_text() == won
    assert {p.name for p in final.iterdir()} == ({"report.html", "extra.txt"} if won == "B" else {"report.html"})
    assert not _leftovers(tmp_path)


def test_with_force_the_later_run_replaces_the_folder_whole(tmp_path):
    final = tmp_path / "m" / "v"
    with staged_folder(final, force=False) as stage:
        (stage / "old.txt").write_text("old")
    with staged_folder(final, force=True) as stage:
        (stage / "report.html").write_text("new")
    assert [p.name for p in final.iterdir()] == ["report.html"]
    assert not _leftovers(tmp_path)


def test_a_failing_run_leaves_no_folder_and_no_staging(tmp_path):
    final = tmp_path / "m" / "v"
    with pytest.raises(RuntimeError):
        with staged_folder(final, force=False) as stage:
            (stage / "half.html").write_text("half")
            raise RuntimeError("boom")
    assert not final.exists() and not (tmp_path / "m").exists()


def test_two_audit_processes_of_the_same_version_one_wins_one_fails_in_one_line(tmp_path):
    """Two real `reportgen audit` processes on the same saved probabilities, name and version, started together.
    Whichever loses (at the start check or at the final rename) exits non-zero with one line on stderr; the winner's
    folder is complete (every file in its manifest, with its sha256) and no staging folder is left."""
    rng = np.random.default_rng(0)
    n, k = 3000, 5
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "reportgen", "--quiet", "audit", "--predictions", str(tmp_path / "p.npy"), "--labels",
           str(tmp_path / "y.npy"), "--name", "m", "--version", "v1", "--output", str(out)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(r.wait(timeout=600), r.stdout.read(), r.stderr.read()) for r in runs]  # the timeout only guards a hang
    codes = sorted(code for code, _, _ in done)
    assert codes[0] == 0 and codes[1] != 0, done
    _, _, err = next(d for d in done if d[0] != 0)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "already exists" in lines[0] and "Traceback" not in err, err
    folder = out / "m" / "v1"
    files = json.loads((folder / MANIFEST).read_text())["files"]
    assert {"report.html", "report.pdf", "summary.json", "flagged.csv"} <= set(files)
    for name, entry in files.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert not _leftovers(out)
