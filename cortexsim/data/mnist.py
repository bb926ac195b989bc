"""MNIST and Fashion-MNIST from the standard IDX ``.gz`` files, checksum-verified."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cortexsim.data.idx import read_idx, sha256
from cortexsim.errors import DataError

__all__ = ["IDX_DATASETS", "ENV_VAR", "data_dir", "verify_file", "load_idx_dataset"]

ENV_VAR = "CORTEXSIM_DATA"

_SPLITS = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Per dataset: subfolder, canonical download address, file name -> SHA-256.
IDX_DATASETS: dict[str, dict] = {
    "mnist": {
        "folder": "mnist",
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "sha256": {
            _SPLITS["train_images"]: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            _SPLITS["train_labels"]: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            _SPLITS["test_images"]: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            _SPLITS["test_labels"]: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    },
    "fashion-mnist": {
        "folder": "fashion-mnist",
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "sha256": {
            _SPLITS["train_images"]: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            _SPLITS["train_labels"]: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            _SPLITS["test_images"]: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            _SPLITS["test_labels"]: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    },
}

# (resolved path, size, mtime_ns) -> digest that matched. Keyed on size and
# mtime so a file replaced on disk is hashed again, while repeat loads of an
# unchanged 26 MB file skip the hash.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds the dataset subfolders.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Explicit folder; wins over everything else.

    Returns
    -------
    pathlib.Path
        ``data_dir`` if given, else ``$CORTEXSIM_DATA`` if set and non-empty,
        else ``$XDG_CACHE_HOME/cortexsim`` or ``~/.cache/cortexsim``.
    """
    if data_dir is not None:
        chosen = Path(data_dir)
    elif os.environ.get(ENV_VAR):
        chosen = Path(os.environ[ENV_VAR])
    elif os.environ.get("XDG_CACHE_HOME"):
        chosen = Path(os.environ["XDG_CACHE_HOME"]) / "cortexsim"
    else:
        chosen = Path("~/.cache/cortexsim")
    return chosen.expanduser().absolute()


# Loaders take a ``data_dir`` argument that shadows the function of that name.
_resolve_data_dir = data_dir


def verify_file(path: str | os.PathLike, expected: str) -> None:
    """Check a file's SHA-256 against the published digest, caching success.

    Parameters
    ----------
    path : str or os.PathLike
        File to check.
    expected : str
        Published hex SHA-256 digest.

    Raises
    ------
    DataError
        If the digest differs; the message names the file and both digests.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == expected:
        return
    actual = sha256(path)
    if actual != expected.lower():
        raise DataError(
            f"{path}: checksum mismatch: expected sha256 {expected}, got {actual}. "
            "The file is corrupt or not the published one; delete it and download it again."
        )
    _VERIFIED[key] = expected


def _missing_message(name: str, folder: Path, missing: list[str]) -> str:
    spec = IDX_DATASETS[name]
    listed = "\n".join(f"  - {m}" for m in missing)
    return (
        f"dataset {name!r}: {len(missing)} of {len(spec['sha256'])} files missing from "
        f"{folder}:\n{listed}\n"
        f"Download them from {spec['url']} and put them (still gzip-compressed, names "
        f"unchanged) in {folder}\n"
        f"To use another folder, set the environment variable {ENV_VAR} or pass the "
        f"data_dir argument; the files go in its {spec['folder']}/ subfolder."
    )


def load_idx_dataset(
    name: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the four verified IDX arrays of MNIST or Fashion-MNIST.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Which dataset.
    data_dir : str or os.PathLike, optional
        Parent folder of the dataset subfolder; see :func:`data_dir`.

    Returns
    -------
    x_train : numpy.ndarray, shape (60000, 28, 28), uint8
    y_train : numpy.ndarray, shape (60000,), uint8
    x_test : numpy.ndarray, shape (10000, 28, 28), uint8
    y_test : numpy.ndarray, shape (10000,), uint8

    Raises
    ------
    DataError
        If files are missing (the message lists them, the folder and where to
        download them), fail their checksum, or are malformed.
    """
    spec = IDX_DATASETS[name]
    folder = _resolve_data_dir(data_dir) / spec["folder"]
    missing = [f for f in spec["sha256"] if not (folder / f).is_file()]
    if missing:
        raise DataError(_missing_message(name, folder, missing))
    arrays = []
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        path = folder / _SPLITS[key]
        verify_file(path, spec["sha256"][_SPLITS[key]])
        arrays.append(read_idx(path))
    x_train, y_train, x_test, y_test = arrays
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"dataset {name!r} in {folder}: {split} images {x.shape} do not "
                f"match labels {y.shape}"
            )
    return x_train, y_train, x_test, y_test
