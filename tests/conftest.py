"""Shared fixtures: the real MNIST test set, a small trained CNN, and one audit of it."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
# The recipe: train on 2,000 real test-set images, audit another 1,000.
N_TRAIN, N_AUDIT = 2000, 1000

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never try Keras' download; the offline fallback is exercised explicitly where needed.
os.environ.setdefault("REPORTGEN_OFFLINE", "1")


def read_idx(path: Path) -> np.ndarray:
    """Independent IDX reader (not reportgen's) for the real MNIST files."""
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def mnist():
    """(images (10000,28,28) uint8, labels (10000,) int) of the real MNIST test set."""
    if not MNIST_DIR.exists():
        pytest.skip(f"real MNIST not found at {MNIST_DIR}")
    x = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    y = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return x, y


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


def run_cli(args, **kw):
    from click.testing import CliRunner

    from reportgen.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


@pytest.fixture(scope="session")
def deterministic_audit(mnist_npz, archive):
    """`reportgen audit` training the default CNN 1 epoch on 2,000 images, S = 1, on 1,000 others."""
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--epochs", "1", "--mc-samples", "1", "--output", str(archive)])
    assert r.exit_code == 0, r.output
    folder = Path(r.stdout.strip().splitlines()[-1])
    models = sorted((archive / ".models").glob("*.keras"))
    assert len(models) == 1
    return folder, models[0]


@pytest.fixture(scope="session")
def mc_audit(deterministic_audit, mnist_npz, archive):
    """The same trained model audited with S = 30 MC dropout samples, under version 'mc30'."""
    _, model = deterministic_audit
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "mnist-cnn",
                 "--version", "mc30", "--mc-samples", "30", "--output", str(archive)])
    assert r.exit_code == 0, r.output
    return Path(r.stdout.strip().splitlines()[-1])
