"""Tests of fetch, verify and list_datasets with file:// mirrors; no network needed."""

import hashlib
import shutil
from pathlib import Path

import pytest

import cortexsim.data.fetch as fetch_mod
from cortexsim.data.fetch import fetch, list_datasets, verify
from cortexsim.data.idx import read_idx
from cortexsim.data.mnist import IDX_DATASETS
from cortexsim.errors import ConfigurationError, DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TOY = {f"file{i}.gz": f"content of file {i}\n".encode() for i in range(2)}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Make 'mnist' two tiny files with known digests, served from a file:// mirror."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, content in TOY.items():
        (mirror / name).write_bytes(content)
    spec = dict(IDX_DATASETS["mnist"])
    spec["sha256"] = {n: hashlib.sha256(c).hexdigest() for n, c in TOY.items()}
    monkeypatch.setitem(IDX_DATASETS, "mnist", spec)
    return mirror, tmp_path / "data"


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_round_trip_and_skip_present(toy):
    mirror, data = toy
    assert fetch("mnist", data, urls=[mirror.as_uri()]) == [(n, "fetched") for n in TOY]
    for name, content in TOY.items():
        assert (data / "mnist" / name).read_bytes() == content
    (mirror / "file0.gz").unlink()  # a present, valid file is not downloaded again
    assert fetch("mnist", data, urls=[mirror.as_uri()]) == [(n, "present") for n in TOY]
    assert [r[2] for r in verify(data, ["mnist"])] == ["ok", "ok"]


def test_corrupt_download_refused_and_removed(toy):
    mirror, data = toy
    (mirror / "file1.gz").write_bytes(b"tampered")
    with pytest.raises(DataError) as info:
        fetch("mnist", data, urls=[mirror.as_uri() + "/"])
    msg = str(info.value)
    assert "checksum mismatch" in msg and "file1.gz" in msg
    assert (mirror.as_uri() + "/file1.gz") in msg and str(data / "mnist") in msg
    assert not (data / "mnist" / "file1.gz").exists()
    assert (data / "mnist" / "file0.gz").exists()
    assert leftovers(data / "mnist") == []


def test_corrupt_local_file_is_replaced(toy):
    mirror, data = toy
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "file0.gz").write_bytes(b"garbage")
    assert verify(data, ["mnist"])[0][2] == "corrupt"
    assert dict(fetch("mnist", data, urls=[mirror.as_uri()]))["file0.gz"] == "fetched"
    assert (data / "mnist" / "file0.gz").read_bytes() == TOY["file0.gz"]


def test_unreachable_mirror_then_fallback(toy, tmp_path):
    mirror, data = toy
    dead = (tmp_path / "nowhere").as_uri()
    with pytest.raises(DataError) as info:
        fetch("mnist", data, urls=[dead])
    msg = str(info.value)
    assert dead + "/file0.gz" in msg and "by hand" in msg and str(data / "mnist") in msg
    assert leftovers(data / "mnist") == []
    assert fetch("mnist", data, urls=[dead, mirror.as_uri()])[0] == ("file0.gz", "fetched")


def test_unknown_and_builtin_names():
    with pytest.raises(ConfigurationError, match="did you mean 'mnist'"):
        fetch("mnsit")
    with pytest.raises(ConfigurationError, match="needs no download"):
        fetch("digits")


def test_verify_and_list(toy):
    mirror, data = toy
    rows = {r[0]: r for r in list_datasets(data)}
    assert set(rows) == {"digits", "shapes", "patches", "mnist", "fashion-mnist", "dsprites"}
    assert rows["mnist"][1:] == (str(data / "mnist"), "missing")
    assert rows["digits"][2] == "present"
    fetch("mnist", data, urls=[mirror.as_uri()])
    assert {r[0]: r[2] for r in list_datasets(data)}["mnist"] == "present"
    (data / "mnist" / "file1.gz").write_bytes(b"x")
    assert {r[0]: r[2] for r in list_datasets(data)}["mnist"] == "corrupt"
    statuses = {(r[0], Path(r[1]).name): r[2] for r in verify(data)}
    assert statuses[("mnist", "file1.gz")] == "corrupt"
    assert statuses[("dsprites", fetch_mod.dsprites.DSPRITES_FILE)] == "missing"
    assert sum(1 for k in statuses if k[0] == "fashion-mnist") == 4


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="real MNIST not present")
def test_real_mnist_over_file_url(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "mnist", mirror)
    data = tmp_path / "data"
    assert {s for _, s in fetch("mnist", data, urls=[mirror.as_uri()])} == {"fetched"}
    assert {r[2] for r in verify(data, ["mnist"])} == {"ok"}
    assert read_idx(data / "mnist" / "t10k-labels-idx1-ubyte.gz").shape == (10000,)
    bad = mirror / "t10k-labels-idx1-ubyte.gz"
    bad.chmod(0o644)
    bad.write_bytes(bad.read_bytes()[:-10])  # truncated download
    (data / "mnist" / bad.name).unlink()
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch("mnist", data, urls=[mirror.as_uri()])
    assert not (data / "mnist" / bad.name).exists() and leftovers(data / "mnist") == []
