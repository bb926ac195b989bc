"""Tests of dataset loading, checksum verification, one_hot and validation splits."""

import os
from pathlib import Path

import numpy as np
import pytest

import cortexsim.data.mnist as mnist
from cortexsim.data import DATASET_NAMES, Dataset, load, one_hot
from cortexsim.data.mnist import IDX_DATASETS, data_dir
from cortexsim.errors import ConfigurationError, DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FILES = list(IDX_DATASETS["mnist"]["sha256"])


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEXSIM_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("CORTEXSIM_DATA")
    assert data_dir() == tmp_path / "xdg" / "cortexsim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_dir() == Path.home() / ".cache" / "cortexsim"


def test_missing_files_message(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / FILES[0]).write_bytes(b"x")
    with pytest.raises(DataError) as info:
        load("mnist", data_dir=tmp_path)
    msg = str(info.value)
    assert FILES[0] not in msg
    for name in FILES[1:]:
        assert name in msg
    assert str(folder) in msg
    assert "CORTEXSIM_DATA" in msg and "data_dir" in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg


def test_missing_fashion_message_uses_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEXSIM_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        load("fashion-mnist")
    msg = str(info.value)
    assert str(tmp_path / "fashion-mnist") in msg
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in msg
    assert all(name in msg for name in FILES)


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes(b"not the real file")
    with pytest.raises(DataError) as info:
        load("mnist", data_dir=tmp_path)
    msg = str(info.value)
    assert "checksum mismatch" in msg
    assert "train-images-idx3-ubyte.gz" in msg
    assert IDX_DATASETS["mnist"]["sha256"]["train-images-idx3-ubyte.gz"] in msg
    assert mnist.sha256(folder / "train-images-idx3-ubyte.gz") in msg


def test_verification_is_cached_until_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    digest = mnist.sha256(path)
    calls = []
    monkeypatch.setattr(mnist, "sha256", lambda p: calls.append(p) or digest)
    mnist.verify_file(path, digest)
    mnist.verify_file(path, digest)
    assert len(calls) == 1
    path.write_bytes(b"abcd")
    os.utime(path, ns=(0, 12345))
    mnist.verify_file(path, digest)
    assert len(calls) == 2


def test_digits():
    ds = load("digits")
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_test.shape == (360, 64) and ds.y_test.shape == (360,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() == 1.0
    assert ds.image_shape == (8, 8) and ds.n_classes == 10
    assert set(np.unique(ds.y_test)) == set(range(10))
    again = load("digits")
    np.testing.assert_array_equal(ds.x_test, again.x_test)


def test_unknown_name_did_you_mean():
    with pytest.raises(ConfigurationError) as info:
        load("fashion_mnist")
    msg = str(info.value)
    assert "'fashion_mnist'" in msg
    assert all(name in msg for name in DATASET_NAMES)
    assert "did you mean 'fashion-mnist'" in msg


def test_one_hot():
    out = one_hot(np.array([2, 0, 1, 2]), 3)
    expected = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    assert one_hot([1], 2, dtype=np.float64).dtype == np.float64
    with pytest.raises(ConfigurationError):
        one_hot(np.array([0, 3]), 3)


def test_validation_split_deterministic_and_disjoint():
    ds = load("digits")
    n = ds.x_train.shape[0]
    # Labels replaced by row indices, so each held-out row can be traced back.
    tagged = Dataset("digits", ds.x_train, np.arange(n), ds.x_test, ds.y_test, 10, (8, 8))
    train_a, (xv_a, yv_a) = tagged.validation_split(0.25, seed=3)
    train_b, (xv_b, yv_b) = tagged.validation_split(0.25, seed=3)
    _, (_, yv_c) = tagged.validation_split(0.25, seed=4)
    np.testing.assert_array_equal(yv_a, yv_b)
    np.testing.assert_array_equal(train_a.y_train, train_b.y_train)
    assert not np.array_equal(yv_a, yv_c)
    assert len(yv_a) == round(0.25 * n)
    assert set(yv_a).isdisjoint(train_a.y_train)
    assert len(yv_a) + len(train_a.y_train) == n
    np.testing.assert_array_equal(xv_a, tagged.x_train[yv_a])
    assert train_a.x_test is ds.x_test
    with pytest.raises(ConfigurationError):
        ds.validation_split(1.0, seed=0)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="real MNIST not present")
def test_real_mnist():
    ds = load("mnist", data_dir=SHARED)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert ds.image_shape == (28, 28)


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="real Fashion-MNIST not present")
def test_real_fashion_mnist():
    ds = load("fashion-mnist", data_dir=SHARED)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
