"""Reader of the IDX array format used by the MNIST family of datasets."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from cortexsim.errors import DataError

__all__ = ["read_idx", "sha256", "IDX_DTYPES"]

#: IDX type code -> big-endian numpy dtype, as defined by the format.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _open(path: Path):
    # Sniff the gzip magic rather than trusting the suffix: mirrors sometimes
    # serve already-decompressed files under the ``.gz`` name.
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) into an array.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; gzip compression is detected from the content.

    Returns
    -------
    numpy.ndarray, shape (d0, d1, ..., dk)
        The stored array in native byte order, with the dimensions declared
        in the header (e.g. (60000, 28, 28) uint8 for MNIST train images).

    Raises
    ------
    DataError
        If the file is missing, has a bad magic number, is truncated, or its
        payload size does not match the declared dimensions.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise DataError(f"{path}: truncated IDX file (no 4-byte magic number)")
            zero, code, ndim = struct.unpack(">HBB", magic)
            if zero != 0 or code not in IDX_DTYPES:
                raise DataError(
                    f"{path}: bad IDX magic number 0x{magic.hex()} "
                    f"(expected 0x0000TTNN with type TT in "
                    f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            dtype = IDX_DTYPES[code]
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            payload = f.read(expected)
            if len(payload) < expected:
                raise DataError(
                    f"{path}: truncated IDX file: dims {dims} need {expected} data "
                    f"bytes, found {len(payload)}"
                )
            if f.read(1):
                raise DataError(
                    f"{path}: IDX size mismatch: more data than the {expected} bytes "
                    f"that dims {dims} declare"
                )
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # A cut-short download usually surfaces here, inside the decompressor.
        raise DataError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    arr = np.frombuffer(payload, dtype=dtype).reshape(dims)
    # Copy to native order so callers get a writable, fast array.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def sha256(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 digest of a file, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        File to hash.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
