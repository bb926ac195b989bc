"""Tests of the dSprites loader on small stand-in files: checksum, no unpickling, messages."""

import numpy as np
import pytest

import cortexsim.data.dsprites as dsp
from cortexsim.data import load
from cortexsim.data.shapes import load_shapes
from cortexsim.errors import DataError

UNPICKLED = []


def _record():
    UNPICKLED.append(True)
    return {"title": "unpickled"}


class Trap:
    """Pickles to a call of _record, so unpickling it would leave a trace."""

    def __reduce__(self):
        return (_record, ())


def write_fake(tmp_path, n=24, imgs=None, **extra):
    """Write an npz laid out like the real file; return (data_dir, sample)."""
    sample = load_shapes(n=n, seed=5)
    folder = tmp_path / "dsprites"
    folder.mkdir(exist_ok=True)
    classes = np.concatenate([np.zeros((n, 1), np.int64), sample.classes], axis=1)
    values = np.concatenate([np.ones((n, 1)), sample.values], axis=1)
    if imgs is None:
        imgs = sample.images.reshape(n, 64, 64).astype(np.uint8)
    np.savez_compressed(
        folder / dsp.DSPRITES_FILE,
        imgs=imgs,
        latents_classes=classes,
        latents_values=values,
        **extra,
    )
    return tmp_path, sample


def trust(monkeypatch, data_dir):
    digest = dsp.file_md5(data_dir / "dsprites" / dsp.DSPRITES_FILE)
    monkeypatch.setattr(dsp, "DSPRITES_MD5", digest)


def test_round_trip_without_unpickling(tmp_path, monkeypatch):
    # The real file carries a pickled ``metadata`` entry; it must never be decoded.
    metadata = np.empty((), dtype=object)
    metadata[()] = Trap()
    data_dir, sample = write_fake(tmp_path, metadata=metadata)
    trust(monkeypatch, data_dir)
    UNPICKLED.clear()
    got = dsp.load_dsprites(data_dir)
    assert not UNPICKLED
    assert got.images.shape == (24, 4096) and got.images.dtype == np.float32
    np.testing.assert_array_equal(got.images, sample.images)
    np.testing.assert_array_equal(got.classes, sample.classes)  # colour column dropped
    np.testing.assert_array_equal(got.values, sample.values)


def test_sampling_is_seeded(tmp_path, monkeypatch):
    data_dir, sample = write_fake(tmp_path)
    trust(monkeypatch, data_dir)
    a = dsp.load_dsprites(data_dir, n=10, seed=1)
    b = dsp.load_dsprites(data_dir, n=10, seed=1, dtype=np.uint8)
    assert a.images.shape == (10, 4096) and b.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    rows = [int(np.flatnonzero((sample.classes == c).all(axis=1))[0]) for c in a.classes]
    np.testing.assert_array_equal(sample.images[rows], a.images)
    ds = load("dsprites", data_dir=data_dir, n=20)
    assert ds.x_train.shape == (16, 4096) and ds.n_classes == 3


def test_checksum_mismatch_refused(tmp_path):
    data_dir, _ = write_fake(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        dsp.load_dsprites(data_dir)
    assert dsp.DSPRITES_MD5 in str(info.value) and dsp.DSPRITES_URL in str(info.value)


def test_missing_file_message(tmp_path):
    with pytest.raises(DataError) as info:
        dsp.load_dsprites(tmp_path)
    msg = str(info.value)
    assert dsp.DSPRITES_FILE in msg
    assert str(tmp_path / "dsprites") in msg
    assert (
        "https://github.com/deepmind/dsprites-dataset/raw/master/"
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz" in msg
    )
    assert "CORTEXSIM_DATA" in msg


def test_object_array_refused(tmp_path, monkeypatch):
    imgs = np.empty(24, dtype=object)
    imgs[:] = [Trap() for _ in range(24)]
    data_dir, _ = write_fake(tmp_path, imgs=imgs)
    trust(monkeypatch, data_dir)
    UNPICKLED.clear()
    with pytest.raises(DataError, match="not a readable dSprites"):
        dsp.load_dsprites(data_dir)
    assert not UNPICKLED


def test_wrong_layout_refused(tmp_path, monkeypatch):
    data_dir, _ = write_fake(tmp_path, imgs=np.zeros((24, 32, 32), np.uint8))
    trust(monkeypatch, data_dir)
    with pytest.raises(DataError, match="unexpected array shapes"):
        dsp.load_dsprites(data_dir)
