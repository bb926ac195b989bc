"""Tests of the IDX reader and file hashing."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from cortexsim.data.idx import read_idx, sha256
from cortexsim.errors import DataError

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = CODES[arr.dtype.type]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes, compress: bool):
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", list(CODES))
def test_round_trip(tmp_path, compress, dtype):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if np.dtype(dtype).kind == "u":
        arr = np.arange(24, dtype=dtype).reshape(2, 3, 4) * 10
    path = write(tmp_path / "a.idx", idx_bytes(arr), compress)
    out = read_idx(path)
    assert out.shape == (2, 3, 4)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # the result must be writable


def test_one_dimensional_labels(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    path = write(tmp_path / "labels-idx1-ubyte.gz", idx_bytes(labels), True)
    np.testing.assert_array_equal(read_idx(path), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_bad_magic_names_file(tmp_path, compress):
    data = bytearray(idx_bytes(np.zeros((2, 2), np.uint8)))
    data[2] = 0x42  # unknown type code
    path = write(tmp_path / "bad.idx", bytes(data), compress)
    with pytest.raises(DataError, match="bad.idx.*magic"):
        read_idx(path)
    data = bytearray(idx_bytes(np.zeros((2, 2), np.uint8)))
    data[0] = 1  # leading bytes must be zero
    path = write(tmp_path / "bad2.idx", bytes(data), compress)
    with pytest.raises(DataError, match="bad2.idx.*magic"):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("keep", [0, 3, 6, 20])
def test_truncated_names_file(tmp_path, compress, keep):
    data = idx_bytes(np.arange(16, dtype=np.uint8).reshape(4, 4))
    path = write(tmp_path / "short.idx", data[:keep], compress)
    with pytest.raises(DataError, match="short.idx.*truncated"):
        read_idx(path)


def test_truncated_gzip_stream_names_file(tmp_path):
    data = idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 50), dtype=np.uint8))
    whole = gzip.compress(data)
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut.gz"):
        read_idx(path)


def test_extra_bytes_is_size_mismatch(tmp_path):
    data = idx_bytes(np.zeros((2, 2), np.uint8)) + b"\x00"
    path = write(tmp_path / "long.idx", data, False)
    with pytest.raises(DataError, match="long.idx.*size mismatch"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")


def test_sha256_matches_hashlib(tmp_path):
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)  # spans several chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256(path) == hashlib.sha256(data).hexdigest()
