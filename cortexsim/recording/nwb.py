"""Export a recording to Neurodata Without Borders (NWB 2), for the tools and
archives that read NWB (pynwb, MatNWB, NWB Widgets, DANDI). Needs the
optional extra ``cortexsim[nwb]``; docs/format.md ("NWB export") says what
goes where. The choices, and why nwbinspector accepts them:

* **Time.** NWB times are seconds; a recording's time is the global batch
  counter ``step``. The export's clock counts one second per training batch
  from ``session_start_time`` (the recording's ``created``): a row taken at
  batch 120 is at t = 120 s. Series sampled at a constant interval store
  ``starting_time`` and ``rate`` (1 / interval), others ``timestamps``
  (nwbinspector flags regular timestamps). A probe recorded inside the
  relaxation (``inference_every > 0``) gets one time point per batch and an
  axis of relaxation steps after it, ``(time, relaxation_step, sample,
  unit)``, NaN where a relaxation stopped early.
* **Containers.** One ``ProcessingModule`` per area holds that area's probes
  (activity, error, prediction, kl, alignment, and the weights and updates
  of its parameters); the module ``hierarchy`` holds the probes of the whole
  model (energy, metrics, overall alignment) and three tables: ``probes``
  (each probe's attributes, where it went and the recording's exact
  ``step`` / ``epoch`` / ``inference_step`` of every row), ``epoch_metrics``
  and ``settings``. A probe is a ``TimeSeries`` unless a row has an axis
  longer than time (30 epoch snapshots of a 784 x 240 weight matrix):
  nwbinspector takes the longest axis for time and calls such a TimeSeries
  CRITICAL, so that probe is a ``DynamicTable``, a row per time point
  (columns ``step``, ``epoch``, ``data``). The activity of area 0, the data
  clamped at the bottom, is the stimulus: ``/stimulus/presentation``, when
  the recording's configuration names the areas (a study's does). A
  recording holds no labels (only the dataset's name, in ``/config``), so
  the export has none.
* **Metadata.** The root attributes (rule, seed, backend, dtype, cortexsim
  version, created, status), the configuration (a study's model spec, rules,
  data, schedule and probes) and the environment are rows of the table
  ``settings``, one leaf each: key ``config.study.model.areas[1].size``,
  value as JSON text; :func:`nwb_settings` reads them back as one dictionary.
  A table, since ``lab_meta_data`` needs an NWB extension and ``scratch`` is
  not meant for sharing; leaves, since nwbinspector flags table cells that
  hold dictionaries. The file's own fields say the same in words
  (description, protocol: the rule's settings, keywords, session_id), and a
  ``Subject`` stands for the simulated model, which nwbinspector requires
  (CRITICAL): age P0D (the model is built when its run starts), sex "O"
  (other: a model has none, where "U" would say it is unknown), no species.
* **Identity.** ``identifier`` is a UUID derived from the run (its root
  attributes but status, its configuration and environment): exporting a
  recording twice gives the same identifier; two runs never share one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigurationError, CortexsimError, FormatError, StorageError
from .reader import Recording, open_recording

__all__ = ["export_nwb", "nwb_settings"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TOKEN = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_TABLES = ("probes", "epoch_metrics", "settings")


def _pynwb() -> Any:
    try:
        import pynwb
    except ImportError as exc:
        raise CortexsimError("NWB export needs pynwb: pip install 'cortexsim[nwb]'") from exc
    return pynwb


# -- settings: nested documents as one row per leaf ------------------------------------------


def _flatten(value: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(key, JSON text)`` of every leaf; keys as in ``--set`` and error messages."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, f"{key}.{k}" if _KEY.fullmatch(str(k)) else f"{key}[{json.dumps(str(k))}]")
    elif isinstance(value, (list, tuple)) and value:
        for i, v in enumerate(value):
            yield from _flatten(v, f"{key}[{i}]")
    else:
        yield key, json.dumps(value, default=str)


def nwb_settings(nwbfile: Any) -> dict[str, Any]:
    """The recording's root attributes, configuration and environment, read
    back from an exported file's ``settings`` table:
    ``{"attrs": {...}, "config": {...}, "environment": {...}}``.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        As read by ``pynwb.NWBHDF5IO(path).read()``.
    """
    from .nwb_probes import WHOLE_MODEL

    table = nwbfile.processing[WHOLE_MODEL]["settings"]
    root: dict[str, Any] = {}
    for key, text in zip(table["key"].data[:], table["value"].data[:]):
        key = key.decode() if isinstance(key, bytes) else str(key)
        head = _KEY.match(key).group()
        path: list[Any] = [head]
        for name, index, quoted in _TOKEN.findall(key[len(head):]):
            path.append(name or (int(index) if index else json.loads(quoted)))
        node: Any = root
        for part, following in zip(path[:-1], path[1:]):
            empty: Any = [] if isinstance(following, int) else {}
            if isinstance(node, list):
                if part == len(node):
                    node.append(empty)
                node = node[part]
            else:
                node = node.setdefault(part, empty)
        value = json.loads(text)
        node.append(value) if isinstance(node, list) else node.__setitem__(path[-1], value)
    return root


# -- the file's own fields ----------------------------------------------------------------------


def _start_time(recording: Recording) -> datetime.datetime:
    """The recording's ``created``; the file's modification time when it has none."""
    try:
        start = datetime.datetime.fromisoformat(str(recording.attrs["created"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        start = datetime.datetime.fromtimestamp(recording.path.stat().st_mtime, datetime.timezone.utc)
    return start if start.tzinfo else start.replace(tzinfo=datetime.timezone.utc)


def _identifier(recording: Recording) -> str:
    attrs = {k: v for k, v in recording.attrs.items() if k != "status"}
    text = json.dumps([attrs, recording.config, recording.environment], sort_keys=True, default=str)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "cortexsim-run:" + hashlib.sha256(text.encode()).hexdigest()))


def _fields(recording: Recording) -> dict[str, Any]:
    """The NWBFile's and the Subject's texts, from the recording's attributes and configuration."""
    attrs, config = recording.attrs, recording.config
    study = config.get("study") if isinstance(config.get("study"), dict) else {}
    rule, seed, label = attrs.get("rule", "unknown"), attrs.get("seed", "?"), config.get("label")
    run = f"rule {rule!r}" + (f" (label {label!r})" if label else "") + f", seed {seed}"
    if study.get("name"):
        run += f", of study {study['name']!r}"
    model = study.get("model") if isinstance(study.get("model"), dict) else {}
    areas = [a for a in model.get("areas", []) if isinstance(a, dict) and "name" in a]
    shape = " -> ".join(f"{a['name']} ({a.get('size', '?')} units, {a.get('activation', '?')})" for a in areas)
    chosen = [r for r in study.get("rules", []) if isinstance(r, dict) and r.get("label") == label]
    protocol = ", ".join(f"{k[len('rule.'):]}={v}" for k, v in _flatten(chosen[0], "rule")) if chosen \
        else f"rule={json.dumps(rule)}"
    if "schedule" in study:
        protocol += "; schedule: " + ", ".join(f"{k[len('s.'):]}={v}" for k, v in _flatten(study["schedule"], "s"))
    session = re.sub(r"[/\\\s]", "-", f"{label or rule}-seed{seed}")  # DANDI refuses slashes
    return {
        "session_description": f"cortexsim simulation: {run}; the run's status: {recording.status}",
        "experiment_description": study.get("description") or "A simulated hierarchical generative model "
                                  "of sensory cortex (cortexsim)",
        "session_id": session,
        "protocol": protocol,
        "keywords": ["cortexsim", "simulation", "hierarchical generative model", str(rule)],
        "source_script": f"cortexsim {__version__}: cortexsim export {recording.path.name}",
        "source_script_file_name": "cortexsim/recording/nwb.py",
        "stimulus_notes": "the activity of area 0: the first samples of each batch of the data, clamped "
                          "at the bottom of the hierarchy",
        "subject": {"subject_id": session, "age": "P0D", "sex": "O",
                    "description": "a simulated model: " + (shape or "its areas are not in the recording")},
        "bottom": areas[0]["name"] if areas else None,
    }


# -- the file -------------------------------------------------------------------------------------


def _build(recording: Recording) -> Any:
    pynwb = _pynwb()
    from hdmf.common import DynamicTable

    from .nwb_probes import WHOLE_MODEL, Series, container, module_of, probe_table

    fields = _fields(recording)
    subject, bottom = fields.pop("subject"), fields.pop("bottom")
    nwbfile = pynwb.NWBFile(identifier=_identifier(recording), session_start_time=_start_time(recording),
                            **fields)
    nwbfile.subject = pynwb.file.Subject(**subject)
    modules: dict[str, Any] = {}

    def module(name: str) -> Any:
        if name not in modules:
            what = "the whole model" if name == WHOLE_MODEL else f"area {name!r}"
            modules[name] = nwbfile.create_processing_module(name=name, description=f"cortexsim probes of {what}")
        return modules[name]

    series = {p.name: Series(p) for p in recording.probes.values() if p.n_rows}
    placed = {}
    for name, s in series.items():
        if s.probe.quantity == "activity" and s.probe.target == bottom:
            nwbfile.add_stimulus(container(s))
            placed[name] = f"stimulus/presentation/{name}"
            continue
        where = module(module_of(s.probe))
        if where.name == WHOLE_MODEL and name in _TABLES:
            raise FormatError(f"{recording.path}: probe {name!r} has the name of a table of the NWB export")
        where.add(container(s))
        placed[name] = f"processing/{where.name}/{name}"
    whole = module(WHOLE_MODEL)
    if recording.probes:
        whole.add(probe_table(recording, placed, series))
    metrics = recording.metrics
    if len(metrics.get("epoch", ())):
        table = DynamicTable(name="epoch_metrics", description="the metrics of each epoch (/metrics)",
                             id=list(range(len(metrics["epoch"]))))
        for name, values in metrics.items():
            about = "epoch number (1-based, as printed)" if name == "epoch" else f"the metric {name} of each epoch"
            table.add_column(name=name, description=about, data=values)
        whole.add(table)
    documents = {"attrs": recording.attrs, "config": recording.config, "environment": recording.environment}
    keys, values = zip(*(row for name, doc in documents.items() for row in _flatten(doc, name)))
    settings = DynamicTable(name="settings", id=list(range(len(keys))), description="the recording's root "
                            "attributes, configuration and environment, one leaf per row")
    settings.add_column(name="key", description="where the value sits: attrs., config. or environment., "
                        "then keys and [list indices]", data=list(keys))
    settings.add_column(name="value", description="the value, as JSON text", data=list(values))
    whole.add(settings)
    return nwbfile


def export_nwb(recording_path: str | os.PathLike[str], nwb_path: str | os.PathLike[str], *,
               overwrite: bool = False) -> Path:
    """Write the recording at ``recording_path`` as the NWB file ``nwb_path``
    (the mapping: this module's docstring and docs/format.md).

    Parameters
    ----------
    recording_path : path
        A recording (``.h5``; a ``.partial`` one exports the rows flushed so
        far, with the reader's RuntimeWarning). Missing, damaged or not a
        recording: ``FormatError`` naming it.
    nwb_path : path
        The NWB file to write (``.nwb``). It is written under a temporary
        name and renamed when complete, so a failed export leaves nothing.
    overwrite : bool
        Replace ``nwb_path`` if it exists (otherwise ``ConfigurationError``).

    Returns
    -------
    Path
        ``nwb_path``.
    """
    nwb_path = Path(nwb_path)
    pynwb = _pynwb()
    with open_recording(recording_path) as recording:
        if nwb_path.exists() and nwb_path.resolve() == recording.path.resolve():
            raise ConfigurationError(f"{nwb_path}: the recording itself; name another file for the NWB export")
        if nwb_path.exists() and not overwrite:
            raise ConfigurationError(f"{nwb_path} exists already: replace it with --overwrite "
                                     f"(overwrite=True), or name another file")
        nwbfile = _build(recording)
        temporary = nwb_path.with_name(nwb_path.name + ".partial.nwb")  # pynwb warns on other suffixes
        try:
            nwb_path.parent.mkdir(parents=True, exist_ok=True)
            with pynwb.NWBHDF5IO(str(temporary), "w") as io:
                io.write(nwbfile)  # reads the probes' rows from the recording, a buffer at a time
            os.replace(temporary, nwb_path)
        except OSError as exc:
            if isinstance(exc, FormatError):  # a damaged row of the recording, found while copying it
                raise
            raise StorageError(f"{nwb_path}: could not write ({exc.strerror or exc})") from None
        finally:
            temporary.unlink(missing_ok=True)
    return nwb_path
