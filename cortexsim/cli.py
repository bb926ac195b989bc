"""The ``cortexsim`` command line."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .backend import available_backends
from .errors import ConfigurationError, CortexsimError

__all__ = ["main"]

_PACKAGES = ("numpy", "scipy", "array-api-compat", "array-api-strict", "h5py", "matplotlib", "scikit-learn", "cupy")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        if package == "cupy":
            for name in ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"):
                try:
                    return importlib.metadata.version(name)
                except importlib.metadata.PackageNotFoundError:
                    continue
        return "not installed"


def _gpu() -> str:
    if available_backends()["cupy"] is not None:
        return "none usable"
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name} ({props['totalGlobalMem'] / 2**30:.0f} GiB), CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"


def info() -> str:
    """Versions, backends and the GPU, as printed by ``cortexsim info``."""
    lines = [
        f"cortexsim {__version__}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"platform  {platform.platform()}",
        "packages:",
    ]
    lines += [f"  {name:<18} {_version(name)}" for name in _PACKAGES]
    lines.append("backends:")
    for name, reason in available_backends().items():
        lines.append(f"  {name:<18} {'available' if reason is None else 'unavailable: ' + reason}")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                lines.append(
                    f"blas      {pool.get('internal_api')} {pool.get('version')}, "
                    f"{pool.get('num_threads')} threads"
                )
    except ImportError:
        pass
    lines.append(f"gpu       {_gpu()}")
    return "\n".join(lines)


def _progress(quiet: bool) -> Any:
    """A tqdm bar per run: batches, with the last epoch's loss and accuracy."""
    if quiet:
        return None
    from tqdm import tqdm

    def attach(title: str, scheduler: Any) -> None:
        batches = scheduler.data.batches_per_epoch(scheduler.batch_size)
        # disable=None: no bar when the output is not a terminal (CI logs, pipes).
        bar = tqdm(total=batches * scheduler.epochs, desc=title, unit="batch", leave=True, disable=None)
        scheduler.attach("after_learning", lambda event: bar.update(1), name="progress bar")

        def epoch_end(event: Any) -> None:
            m = event.metrics
            shown = {"epoch": m["epoch"], "loss": f"{m.get('train_loss', float('nan')):.4f}"}
            for key, short in (("validation_accuracy", "val"), ("test_accuracy", "test")):
                if key in m:
                    shown[short] = f"{m[key]:.3f}"
            bar.set_postfix(shown)

        scheduler.attach("epoch_end", epoch_end, name="progress bar")
        scheduler.attach("run_end", lambda event: bar.close(), name="progress bar")

    return attach


def _finished(quiet: bool) -> Any:
    """A line per run as it ends on Dask, where the bars of the workers' runs cannot be shown."""
    if quiet:
        return None

    def say(entry: dict[str, Any], done: int, total: int) -> None:
        resumed = entry.get("resumed_at")
        where = "" if not resumed else f", resumed at epoch {resumed['epoch']} batch {resumed['batch']}"
        error = f": {entry['error']}" if entry.get("error") else ""
        print(f"[{done}/{total}] {entry['label']} seed {entry['seed']} {entry['status']}{where}{error}",
              file=sys.stderr, flush=True)

    return say


def _address(text: str) -> str:
    """A Dask scheduler's address (``--scheduler``), e.g. tcp://10.0.0.5:8786."""
    if not text.strip() or any(c.isspace() or c == "\x00" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a scheduler address, e.g. tcp://HOST:8786")
    return text


def _seeds(text: str) -> list[int]:
    """``--seeds 0,1,2``: comma-separated whole numbers >= 0, each once."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and part.isascii() for part in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated whole numbers >= 0, e.g. --seeds 0,1,2")
    seeds = [int(part) for part in parts]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is given twice")
    return seeds


def _positive(text: str) -> int:
    """A whole number >= 1 (``--workers``)."""
    if not (text.strip().isdigit() and text.strip().isascii()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return int(text)


def _path(text: str) -> str:
    """A file or folder name: any text the operating system can name a file with."""
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: a file name cannot contain a NUL character")
    return text


def _run(args: argparse.Namespace) -> int:
    from .study.batch_system import load_cluster
    from .study.plan import load_study
    from .study.runner import run_study

    plan = load_study(args.study, overrides=args.set)
    cluster = None if args.cluster is None else load_cluster(args.cluster)
    seeds = args.seeds
    out = Path(args.out) if args.out else plan.out
    try:
        index = run_study(plan, out, seeds=seeds, backend=args.backend, resume=args.resume,
                          overwrite=args.overwrite, data_dir=args.data_dir,
                          progress=_progress(args.quiet), workers=args.workers,
                          scheduler=args.scheduler, finished=_finished(args.quiet),
                          cluster=cluster)
    except KeyboardInterrupt:
        sets = "".join(f" --set {shlex.quote(a)}" for a in args.set)
        where = "" if args.scheduler is None else f" --scheduler {args.scheduler}"
        where += "" if args.cluster is None else f" --cluster {args.cluster}"
        print(f"\ninterrupted; the last checkpoint is kept. Continue with:\n"
              f"  cortexsim run {args.study}{sets} --out {out}{where} --resume", file=sys.stderr)
        if args.scheduler is not None:
            print("runs that had started go on on the workers until they end (Dask cannot stop a "
                  "running task): let them finish before you continue", file=sys.stderr)
        return 130
    failed = [r for r in index["runs"] if r.get("status") != "complete"]
    if plan.report:
        from .report.summary import write_report

        summary = write_report(out)
    if not args.quiet:
        print(f"\n{plan.name}: {len(index['runs']) - len(failed)} of {len(index['runs'])} runs complete in {out}")
        for run in index["runs"]:
            final = run.get("history") or [{}]
            accuracy = final[-1].get("test_accuracy")
            shown = "" if accuracy is None else f"  test accuracy {accuracy:.4f}"
            print(f"  {run['label']:<20} seed {run['seed']:<4} {run['status']}{shown}")
        print(f"report: {summary}" if plan.report else f"report: cortexsim report {out}")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from .report.summary import write_report

    path = write_report(args.run_dir)
    print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 when every file reads, 1 when one is damaged."""
    from .study.verify import verify_study

    checks = verify_study(args.run_dir, repair=not args.no_repair)
    width = max([len(c.label) for c in checks] + [5])
    for c in checks:
        print(f"{c.label:<{width}}  seed {c.seed:<4} {c.state:<12} {c.detail}")
    damaged = [c for c in checks if c.damaged]
    print(f"{args.run_dir}: {len(checks)} runs, "
          + (f"{len(damaged)} with damaged files" if damaged else "every file reads"))
    return 1 if damaged else 0


def _compare(args: argparse.Namespace) -> int:
    from .report.summary import compare_table

    print(compare_table(args.run_dirs))
    return 0


def _ledger(args: argparse.Namespace) -> int:
    from .study.ledger import write_ledger

    print(f"ledger: {write_ledger(args.studies, args.out, keep=not args.fresh)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .recording.nwb import export_nwb

    print(export_nwb(args.recording, args.nwb, overwrite=args.overwrite))
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data import fetch as data_fetch

    if args.action == "list":
        for row in data_fetch.list_datasets(args.data_dir):
            print("  ".join(str(v) for v in row))
    elif args.action == "verify":
        rows = data_fetch.verify(args.data_dir)
        for row in rows:
            print("  ".join(str(v) for v in row))
        # A dataset nobody fetched is not a fault; a corrupt file is.
        return 1 if any(r[-1] == "corrupt" for r in rows) else 0
    else:
        if not args.name:
            raise ConfigurationError("data fetch: name the dataset, e.g. cortexsim data fetch mnist")
        data_fetch.fetch(args.name, data_dir=args.data_dir)
    return 0


def _say_recoveries() -> None:
    """Print what cortexsim recovered from as one line each, ``cortexsim: warning: ...``."""
    import warnings

    from .errors import RecoveryWarning

    shown = warnings.showwarning
    if getattr(shown, "cortexsim", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, RecoveryWarning):
            print(f"cortexsim: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.cortexsim = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for a user mistake)."""
    parser = argparse.ArgumentParser(
        prog="cortexsim", description="Simulate hierarchical generative models of sensory cortex."
    )
    parser.add_argument("--version", action="version", version=f"cortexsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("info", help="print versions, available backends and the GPU")
    run = commands.add_parser("run", help="run every rule x seed of a study file")
    run.add_argument("study", type=_path, help="the study file (TOML)")
    run.add_argument("--out", type=_path, help="output folder (default: the study's out)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="replace a value of the study file, e.g. --set schedule.epochs=100 "
                          "--set data.name=fashion-mnist (repeatable)")
    run.add_argument("--seeds", type=_seeds, help="comma-separated seeds, replacing the study's")
    run.add_argument("--backend", choices=["numpy", "cupy"], help="replace the study's backend")
    run.add_argument("--resume", action="store_true", help="skip completed runs, continue killed ones")
    run.add_argument("--overwrite", action="store_true", help="replace runs already in the output folder")
    run.add_argument("--data-dir", type=_path, help="folder holding the datasets (default $CORTEXSIM_DATA)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    run.add_argument("--workers", type=_positive, default=1,
                     help="runs at a time, on a Dask LocalCluster when above 1 (cortexsim[dist])")
    run.add_argument("--scheduler", type=_address, metavar="ADDRESS",
                     help="send the runs to the running Dask scheduler at ADDRESS (tcp://HOST:8786) "
                          "instead of a LocalCluster; its workers must share the output folder")
    run.add_argument("--cluster", type=_path, metavar="FILE",
                     help="start the workers as SLURM or PBS jobs described by the [cluster] table of FILE "
                          "(cortexsim[cluster]); they must share the output folder")
    verify = commands.add_parser(
        "verify", help="check every file of a study folder, say each run's state, clear killed files' write flags")
    verify.add_argument("run_dir", type=_path)
    verify.add_argument("--no-repair", action="store_true", help="only read; leave killed files as they are")
    report = commands.add_parser("report", help="figures and a Markdown summary of a study's output")
    report.add_argument("run_dir", type=_path)
    compare = commands.add_parser("compare", help="rules-versus-backprop table across studies")
    compare.add_argument("run_dirs", type=_path, nargs="+")
    ledger = commands.add_parser(
        "ledger", help="the reproduction ledger: published numbers beside ours, from the runs")
    ledger.add_argument("--studies", type=_path, default="studies/papers",
                        help="folder of study files with [[claims]] (default studies/papers)")
    ledger.add_argument("--out", type=_path, default="docs/reproductions.md",
                        help="the Markdown file to write (default docs/reproductions.md)")
    ledger.add_argument("--fresh", action="store_true",
                        help="a study whose runs are not here says 'not run' instead of keeping its rows "
                             "of the ledger already at --out")
    export = commands.add_parser("export", help="write a recording in another format (NWB, cortexsim[nwb])")
    export.add_argument("recording", type=_path, help="the recording (RUN.h5)")
    export.add_argument("--nwb", type=_path, required=True, metavar="OUT.nwb", help="the NWB file to write")
    export.add_argument("--overwrite", action="store_true", help="replace OUT.nwb if it exists")
    data = commands.add_parser("data", help="where datasets live and whether they are intact")
    data.add_argument("action", choices=["list", "fetch", "verify"])
    data.add_argument("name", nargs="?", help="dataset to fetch (mnist, fashion-mnist)")
    data.add_argument("--data-dir", type=_path, help="folder holding the datasets (default $CORTEXSIM_DATA)")
    args = parser.parse_args(argv)
    _say_recoveries()
    handlers = {"run": _run, "verify": _verify, "report": _report, "compare": _compare, "ledger": _ledger, "data": _data,
                "export": _export}
    try:
        if args.command == "info":
            print(info())
            return 0
        if args.command in handlers:
            return handlers[args.command](args)
        parser.print_help()
        return 2
    except CortexsimError as exc:
        print(f"cortexsim: error: {exc}", file=sys.stderr)
        return 2
