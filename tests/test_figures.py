"""Work done in forked children (figures.parallel_encoding, render.in_child): the same output as in this process, and failures lose nothing."""

from __future__ import annotations

import base64
import functools
import os
import shutil

import numpy as np
import pytest

from reportgen.report import figures as F
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="parallel encoding forks")


def drawn(seed: int):
    fig, ax = F.new_figure(F.HALF, 2.0)
    rng = np.random.default_rng(seed)
    ax[0, 0].scatter(rng.random(500), rng.random(500), s=3, rasterized=True)
    ax[0, 0].set_title(f"figure {seed}")
    return fig


def svg(asset) -> bytes:
    return base64.b64decode(asset.uri.split(",", 1)[1])


def test_children_write_the_same_svgs_in_the_same_order():
    serial = [F.encode(drawn(s), key=f"k{s}", title="t", alt="a") for s in range(5)]
    with F.parallel_encoding() as finish:
        pending = [F.encode(drawn(s), key=f"k{s}", title="t", alt="a") for s in range(5)]
        assert any(a.uri.startswith(F.PENDING) for a in pending)  # the children really did the work
        done = finish(pending)
    assert [a.key for a in done] == [a.key for a in serial]
    assert [svg(a) for a in done] == [svg(a) for a in serial]
    assert b"figure 3" in svg(done[3]) and b"figure 3" not in svg(done[2])


def test_a_failing_child_is_replaced_by_encoding_in_the_parent(monkeypatch):
    real = F._svg_uri
    parent = os.getpid()

    def fails_in_children(fig):
        if os.getpid() != parent:
            os._exit(3)
        return real(fig)

    monkeypatch.setattr(F, "_svg_uri", fails_in_children)
    expected = svg(F.encode(drawn(1), key="k", title="t", alt="a"))
    with F.parallel_encoding() as finish:
        (asset,) = finish([F.encode(drawn(1), key="k", title="t", alt="a")])
    assert svg(asset) == expected


def test_an_error_inside_the_block_reaps_every_child():
    with pytest.raises(RuntimeError, match="drawing failed"):
        with F.parallel_encoding():
            F.encode(drawn(0), key="k", title="t", alt="a")
            raise RuntimeError("drawing failed")
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left behind, finished or not
    assert F._pending is None and not F._plt().get_fignums()


def test_in_child_runs_the_work_in_another_process_and_says_whether_it_worked(tmp_path):
    from reportgen.report import render as render
    done = render.in_child(lambda: (tmp_path / "pid").write_text(str(os.getpid())))
    assert done() is True and int((tmp_path / "pid").read_text()) != os.getpid()

    def fails():
        raise ValueError("no")

    assert render.in_child(fails)() is False


# --- render.Worker: the helper an audit forks before it imports TensorFlow -------------------


def _pid_plus(n):
    return os.getpid() + n


def _raises(message):
    raise ValueError(message)


def test_worker_runs_jobs_in_another_process_and_keeps_serving_after_an_error():
    from reportgen.report import render as render
    with render.Worker.start(lambda: _raises("a warm-up that fails leaves a cold worker")) as worker:
        pid = worker.call(_pid_plus, 0)
        assert pid != os.getpid()
        assert worker.call(_pid_plus, 5) == pid + 5  # the same process serves every job
        with pytest.raises(render.WorkerFailed, match="ValueError: bad input"):
            worker.call(_raises, "bad input")
        assert worker.call(_pid_plus, 1) == pid + 1
        with pytest.raises(render.WorkerFailed, match="cannot send"):
            worker.call(lambda: 1)  # a lambda does not pickle: the caller does the work itself
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # closed and reaped


def _unpicklable():
    return lambda: None


def test_a_worker_that_dies_mid_job_or_answers_unpicklably_fails_the_call():
    from reportgen.report import render as render
    with render.Worker.start(lambda: None) as worker:
        with pytest.raises(render.WorkerFailed, match="cannot send the result"):
            worker.call(_unpicklable)
        assert worker.call(_pid_plus, 0) != os.getpid()  # still serving
        with pytest.raises(render.WorkerFailed, match="exited"):
            worker.call(os._exit, 3)  # the worker ends in the middle of the job
        with pytest.raises(render.WorkerFailed):
            worker.call(_pid_plus, 0)


def test_a_dead_worker_fails_every_call_and_spawn_says_so(tmp_path):
    import signal

    from reportgen.report import render as render
    worker = render.Worker.start(lambda: None)
    pid = worker.call(_pid_plus, 0)
    assert worker.spawn(functools.partial(_pid_plus, 0))() is True
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(render.WorkerFailed):
        worker.call(_pid_plus, 0)
    # spawn falls back to a forked child, as write_all does without a worker
    assert worker.spawn(functools.partial((tmp_path / "pdf").write_text, "written"))() is True
    assert (tmp_path / "pdf").read_text() == "written"
    assert worker.spawn(functools.partial(_raises, "no"))() is False
    worker.close()
    worker.close()


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")
def test_an_audit_through_the_worker_writes_the_same_report(tmp_path, mnist):
    """A fresh process (no TensorFlow yet) draws the figures and the PDF in its worker; this one, with
    TensorFlow loaded, draws them itself: the figures, numbers and PDF text must not differ. The local
    engine's process never imports Apache Beam."""
    import json
    import re
    import subprocess
    import sys

    from reportgen.engines import local as pipeline
    from reportgen.model._tf import load_quietly

    images, labels = mnist[0][:300], mnist[1][:300]
    probs = np.random.default_rng(0).dirichlet(np.ones(10) * 0.3, size=300)
    for name, a in (("probs", probs), ("labels", labels), ("images", images)):
        np.save(tmp_path / f"{name}.npy", a)
    options = dict(predictions=str(tmp_path / "probs.npy"), labels=str(tmp_path / "labels.npy"), images=str(tmp_path / "images.npy"),
                   name="m", version="v", bootstrap=200)
    script = f"""
import os, sys
assert "tensorflow" not in sys.modules
from reportgen.report import figures as figures
from reportgen.engines import local as pipeline
from reportgen.report import context as report
where = {{}}
for mod, name in ((figures, "encoded_report_figures"), (report, "write_pdf")):
    def logged(*a, _f=getattr(mod, name), _n=name, **k):
        with open({str(tmp_path / "pids")!r}, "a") as f:
            f.write(f"{{_n}} {{os.getpid()}}\\n")
        return _f(*a, **k)
    logged.__module__, logged.__qualname__ = mod.__name__, name
    setattr(mod, name, logged)
print(os.getpid())
pipeline.run_audit(pipeline.AuditOptions(output={str(tmp_path / "worker")!r}, **{options!r}))
assert "apache_beam" not in sys.modules  # the local engine never loads the beam extra
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    parent = int(r.stdout.split()[0])
    ran = dict(line.split() for line in (tmp_path / "pids").read_text().splitlines())
    assert set(ran) == {"encoded_report_figures", "write_pdf"} and parent not in {int(p) for p in ran.values()}

    load_quietly()  # TensorFlow loaded here: no worker, as in a notebook
    pipeline.run_audit(pipeline.AuditOptions(output=str(tmp_path / "here"), **options))
    a, b = tmp_path / "worker" / "m" / "v", tmp_path / "here" / "m" / "v"

    def figures_of(folder):
        return re.findall(r'src="(data:image/svg\+xml;base64,[^"]*)"', (folder / "report.html").read_text())

    assert len(figures_of(a)) >= 8 and figures_of(a) == figures_of(b)

    def summary(folder):
        s = json.loads((folder / "summary.json").read_text())
        s.pop("created_at", None)
        return s["metrics"], s.get("labels")

    assert summary(a) == summary(b)

    def pdf_text(folder):
        text = subprocess.run(["pdftotext", str(folder / "report.pdf"), "-"], capture_output=True, text=True, check=True).stdout
        return re.sub(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", "<time>", text)

    assert "Calibration" in pdf_text(a) and pdf_text(a) == pdf_text(b)


def test_an_interrupt_while_waiting_kills_the_busy_worker_at_once():
    import signal
    import time

    from reportgen.report import render as render
    def interrupt(*_):
        raise KeyboardInterrupt

    worker = render.Worker.start(lambda: None)
    pid = worker.call(_pid_plus, 0)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.alarm(1)
        with pytest.raises(KeyboardInterrupt):
            worker.call(time.sleep, 60)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    start = time.monotonic()
    worker.close()
    assert time.monotonic() - start < 10  # not the job's 60 s
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
