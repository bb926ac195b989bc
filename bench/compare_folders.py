"""Compare two study folders dataset by dataset: are their recordings and final
weights bit-identical?

    python bench/compare_folders.py runs/before runs/after

Every HDF5 recording (``LABEL/seedS.h5``) is walked in both folders and each
dataset compared with ``numpy.array_equal`` (NaN equal to NaN); every
checkpoint (``LABEL/seedS.ckpt.npz``: final parameters, optimizer slots) array
by array; the stored run configuration as JSON. What is expected to differ
between two runs of the same study is left out and listed: the wall time of
each epoch (``/metrics/seconds``), the creation time and the environment
(versions, host). Prints one line per difference and a last line
``identical: N datasets`` or ``different: K of N datasets``; exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

EXPECTED_TO_DIFFER = ("metrics/seconds", "environment")
ATTRS_EXPECTED_TO_DIFFER = ("created", "cortexsim_version")


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _datasets(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset) and name not in EXPECTED_TO_DIFFER:
                value = item[()]
                if name == "config":  # JSON text: compare as data, not bytes
                    value = np.array(json.dumps(json.loads(value), sort_keys=True))
                found[name] = np.asarray(value)
        handle.visititems(visit)
        for key, value in handle.attrs.items():
            if key not in ATTRS_EXPECTED_TO_DIFFER:
                found[f"@{key}"] = np.asarray(value)
    return found


def _checkpoint(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    for epoch in meta.get("history", []):
        epoch.pop("seconds", None)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def compare(before: Path, after: Path) -> tuple[int, list[str]]:
    """Datasets compared and the differences, one line each."""
    differences: list[str] = []
    compared = 0
    files = sorted({p.relative_to(before) for p in before.rglob("*") if p.suffix in (".h5", ".npz")}
                   | {p.relative_to(after) for p in after.rglob("*") if p.suffix in (".h5", ".npz")})
    for relative in files:
        if "report" in relative.parts:
            continue
        a, b = before / relative, after / relative
        if not (a.exists() and b.exists()):
            differences.append(f"{relative}: only in {before if a.exists() else after}")
            continue
        read = _checkpoint if relative.suffix == ".npz" else _datasets
        left, right = read(a), read(b)
        for name in sorted(set(left) | set(right)):
            compared += 1
            if name not in left or name not in right:
                differences.append(f"{relative}:{name}: only in one folder")
            elif not _equal(left[name], right[name]):
                differences.append(f"{relative}:{name}: differs")
    return compared, differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not folder.is_dir():
            parser.error(f"{folder}: no such study folder")
    compared, differences = compare(args.before, args.after)
    for line in differences:
        print(line)
    print(f"left out as expected to differ: {', '.join(EXPECTED_TO_DIFFER + ATTRS_EXPECTED_TO_DIFFER)}")
    if differences:
        print(f"different: {len(differences)} of {compared} datasets")
        return 1
    print(f"identical: {compared} datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
