"""Work done in forked children (figures.parallel_encoding, render.in_child): the same output as in this process, and failures lose nothing."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

from reportgen import figures as F

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
    from reportgen import render

    done = render.in_child(lambda: (tmp_path / "pid").write_text(str(os.getpid())))
    assert done() is True and int((tmp_path / "pid").read_text()) != os.getpid()

    def fails():
        raise ValueError("no")

    assert render.in_child(fails)() is False
