"""The command line."""

import subprocess
import sys
from pathlib import Path

import pytest

import cortexsim
from cortexsim.cli import main


def test_info_prints_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"cortexsim {cortexsim.__version__}" in out
    assert "backends:" in out
    lines = out.splitlines()
    backend_lines = lines[lines.index("backends:") + 1 :]
    for name, reason in cortexsim.available_backends().items():
        line = next(l for l in backend_lines if l.strip().startswith(name + " "))
        assert ("available" if reason is None else "unavailable") in line.split()[1]
    assert "gpu" in out


def test_unknown_command_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code not in (0, None)
    assert "invalid choice" in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) != 0
    assert "usage" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert cortexsim.__version__ in capsys.readouterr().out


def test_python_dash_m():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "cortexsim", "info"], capture_output=True, text=True,
                            cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "backends:" in result.stdout


def test_data_list_and_verify(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CORTEXSIM_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "mnist" in out and "missing" in out
    assert main(["data", "verify"]) == 0  # missing datasets are not a fault
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    assert main(["data", "verify"]) == 1
    assert "corrupt" in capsys.readouterr().out
