"""Recordings: probes streamed to a versioned, crash-safe HDF5 file
(docs/format.md), and the reader that opens them."""

from .reader import ProbeData, Recording, open_recording
from .recorder import Recorder
from .schema import FORMAT, FORMAT_VERSION
from .writer import RecordingWriter, partial_path

__all__ = [
    "Recorder",
    "Recording",
    "ProbeData",
    "open_recording",
    "RecordingWriter",
    "partial_path",
    "FORMAT",
    "FORMAT_VERSION",
]
