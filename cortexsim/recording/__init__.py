"""The recording file format alone (docs/format.md): its schema, the writer
that streams rows into a versioned, crash-safe HDF5 file, and the reader that
opens it. It knows nothing of models or rules; the recorder that fills it
lives beside the simulator (``cortexsim.sim.recorder``)."""

from .reader import ProbeData, Recording, open_recording
from .schema import FORMAT, FORMAT_VERSION
from .writer import RecordingWriter, check_recording, partial_path, recorded_rows

__all__ = [
    "Recording",
    "ProbeData",
    "open_recording",
    "RecordingWriter",
    "partial_path",
    "recorded_rows",
    "check_recording",
    "FORMAT",
    "FORMAT_VERSION",
]
