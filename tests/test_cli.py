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


# -- any arguments: an exit status, never a traceback -------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TEXT = st.text(max_size=12)
RUN_OPTIONS = st.lists(st.one_of(
    st.tuples(st.just("--seeds"), TEXT), st.tuples(st.just("--workers"), TEXT),
    st.tuples(st.just("--set"), TEXT), st.tuples(st.just("--backend"), TEXT),
    st.tuples(st.just("--data-dir"), TEXT), st.tuples(st.just("--cluster"), TEXT), st.tuples(st.sampled_from(["--resume", "--overwrite", "--bogus"])),
), max_size=4)


@st.composite
def argv(draw, garbage):
    command = draw(st.sampled_from(
        ["run", "report", "verify", "compare", "data", "ledger", "export", "nonsense"]))
    if command == "run":  # never a runnable study: nothing trains here
        study = draw(st.sampled_from([garbage, "no/such/study.toml", draw(TEXT)]))
        options = [part for option in draw(RUN_OPTIONS) for part in option]
        return ["run", study, "--quiet", *options]
    if command in ("report", "verify", "compare"):
        return [command, *draw(st.lists(TEXT, max_size=2))]
    if command == "data":  # not fetch: that downloads
        return ["data", draw(st.sampled_from(["list", "verify", "fetchh", ""])), *draw(st.lists(TEXT, max_size=1))]
    if command == "export":  # never a recording, so nothing is written (and never --overwrite)
        return ["export", draw(st.sampled_from([garbage, draw(TEXT)])), *draw(st.sampled_from(
            [[], ["--nwb"], ["--nwb", draw(TEXT)]]))]
    if command == "ledger":  # never the project's own studies or docs
        return ["ledger", "--studies", "no/such/folder", "--out", draw(TEXT)]
    return [command, *draw(st.lists(TEXT, max_size=2))]


@pytest.fixture(scope="module")
def garbage_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "garbage.toml"
    path.write_bytes(b"[study\nname = \xff\xfe")
    return str(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_arguments_end_in_an_exit_status_not_a_traceback(data, garbage_study, capsys):
    args = data.draw(argv(garbage_study))
    try:
        code = main(args)
    except SystemExit as stop:  # argparse: usage errors are status 2
        code = stop.code
    assert code in (0, 1, 2), (args, code)
    err = capsys.readouterr().err
    assert "Traceback" not in err, (args, err)
    if code == 2 and args[0] in ("run", "report", "verify", "compare", "ledger", "export"):
        assert err.strip(), args  # a user mistake is said


@pytest.mark.parametrize("args", [["run", "\x00"], ["run", "studies/quickstart.toml", "--out", "a\x00b"],
                                  ["report", "\x00"], ["verify", "x\x00"], ["data", "list", "--data-dir", "\x00"],
                                  ["export", "run.h5", "--nwb", "a\x00.nwb"]])
def test_a_file_name_with_a_nul_character_is_a_usage_error(args, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert "NUL character" in capsys.readouterr().err


def test_the_library_names_a_nul_character_in_a_file_name_too():
    from cortexsim.errors import ConfigurationError
    from cortexsim.study.plan import load_study

    with pytest.raises(ConfigurationError, match="not a valid file name"):
        load_study("study\x00.toml")
