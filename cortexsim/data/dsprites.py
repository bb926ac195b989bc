"""DeepMind's dSprites file, checksum-verified and read without unpickling anything."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from cortexsim.data.mnist import ENV_VAR
from cortexsim.data.mnist import data_dir as _resolve_data_dir
from cortexsim.data.shapes import ShapesSample
from cortexsim.errors import ConfigurationError, DataError

__all__ = ["DSPRITES_FILE", "DSPRITES_FOLDER", "DSPRITES_URL", "DSPRITES_MD5", "file_md5",
           "load_dsprites"]

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_FOLDER = "dsprites"
DSPRITES_URL = (
    "https://github.com/deepmind/dsprites-dataset/raw/master/" + DSPRITES_FILE
)
# Only the md5 is published for this file (dsprites-dataset README and mirrors);
# no SHA-256 is known here, so md5 is what we can check it against. md5 guards
# against truncated or wrong downloads, not against deliberate tampering.
DSPRITES_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"

_KEYS = ("imgs", "latents_classes", "latents_values")


def file_md5(path: str | os.PathLike) -> str:
    """Return the hex md5 digest of a file, 32 lowercase hex characters."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _missing_message(path: Path) -> str:
    return (
        f"dsprites: file {DSPRITES_FILE} not found in {path.parent}\n"
        f"Download it from {DSPRITES_URL} and put it (name unchanged) in {path.parent}\n"
        f"To use another folder, set the environment variable {ENV_VAR} or pass the "
        f"data_dir argument; the file goes in its {DSPRITES_FOLDER}/ subfolder.\n"
        "For tests and quick experiments, cortexsim.data.shapes.load_shapes renders "
        "the same factor grid without any file."
    )


def _read(path: Path) -> dict[str, np.ndarray]:
    out = {}
    try:
        # allow_pickle=False: the file's ``metadata`` entry is a pickled dict and
        # unpickling runs arbitrary code, so only the plain arrays are read;
        # NpzFile decodes an entry only when its key is accessed.
        with np.load(path, allow_pickle=False) as npz:
            for key in _KEYS:
                if key not in npz.files:
                    raise DataError(f"{path}: no {key!r} array (has {', '.join(npz.files)})")
                out[key] = npz[key]
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable dSprites .npz file ({exc})") from exc
    imgs, classes, values = out["imgs"], out["latents_classes"], out["latents_values"]
    n = imgs.shape[0] if imgs.ndim else -1
    if imgs.shape[1:] != (64, 64) or classes.shape != (n, 6) or values.shape != (n, 6):
        raise DataError(
            f"{path}: unexpected array shapes imgs {imgs.shape}, latents_classes "
            f"{classes.shape}, latents_values {values.shape} (expected (N, 64, 64), (N, 6), (N, 6))"
        )
    return out


def load_dsprites(
    data_dir: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
    dtype=np.float32,
) -> ShapesSample:
    """Load the real dSprites images and factors after checking the file's md5.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Parent folder of ``dsprites/``; see :func:`cortexsim.data.mnist.data_dir`.
    n : int, optional
        Number of images drawn at random without replacement; None keeps all
        737,280 in file order. The whole file is decoded either way (about
        3 GB of uint8 images), and all of them as float32 take about 12 GB.
    seed : int, default 0
        Seed of the sample; the same (n, seed) gives the same images.
    dtype : numpy dtype, default numpy.float32
        Dtype of the images.

    Returns
    -------
    ShapesSample
        ``images`` (N, 4096) in {0, 1}, ``classes`` (N, 5) int64 and
        ``values`` (N, 5) float64, factors in the order of
        :data:`cortexsim.data.shapes.FACTOR_NAMES`; the file's constant
        ``color`` column is dropped. Values are the file's own (orientation
        includes 2 pi, unlike the generator).

    Raises
    ------
    DataError
        If the file is missing (the message names it, its folder and the
        download address), fails its md5, or holds unexpected arrays.
    """
    path = _resolve_data_dir(data_dir) / DSPRITES_FOLDER / DSPRITES_FILE
    if not path.is_file():
        raise DataError(_missing_message(path))
    actual = file_md5(path)
    if actual != DSPRITES_MD5.lower():
        raise DataError(
            f"{path}: checksum mismatch: expected md5 {DSPRITES_MD5}, got {actual}. "
            f"The file is corrupt or not the published one; delete it and download "
            f"it again from {DSPRITES_URL}"
        )
    arrays = _read(path)
    total = arrays["imgs"].shape[0]
    if n is None:
        index = np.arange(total)
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= total:
            raise ConfigurationError(
                f"load_dsprites: n must be a whole number in 1..{total}, got {n!r}"
            )
        index = np.random.default_rng(seed).choice(total, size=int(n), replace=False)
    images = arrays["imgs"][index].reshape(len(index), -1).astype(dtype, copy=False)
    classes = arrays["latents_classes"][index, 1:].astype(np.int64)
    values = arrays["latents_values"][index, 1:].astype(np.float64)
    return ShapesSample(images, classes, values)
