"""cortexsim: hierarchical generative models of sensory cortex.

A model is a stack of cortical areas (``HierarchySpec`` describes it,
``build`` puts it on a backend); a rule infers activities and proposes weight
updates; a ``Simulator`` holds one run (model, rule, optimizer, data, probes,
checkpoints) and its ``Scheduler`` runs the phase loop.
"""

__version__ = "0.1.0"  # first, so submodules can import it

from .backend import Backend, available_backends, get_backend
from .errors import (
    BackendError,
    ConfigurationError,
    CortexsimError,
    DataError,
    DivergenceError,
    FormatError,
)
from .model.hierarchy import Hierarchy, build
from .inference import Relaxation, State, feedforward
from .optim import SGD, Adam, Momentum, RMSprop, make_optimizer, make_schedule
from .model.priors import Prior
from .sim.probes import Probe
from .recording import Recording
from .sim.recorder import Recorder
from .recording import open_recording as open  # noqa: A001 - cortexsim.open(path), like h5py.File
from .rules import ELBO, Backprop, PredictiveCoding, make_rule
from .sim.recorded import run_recorded
from .sim.scheduler import Scheduler
from .sim.simulator import Simulator
from .model.spec import AreaSpec, HierarchySpec


__all__ = [
    "__version__",
    "AreaSpec",
    "HierarchySpec",
    "Prior",
    "Hierarchy",
    "build",
    "Backend",
    "get_backend",
    "available_backends",
    "Relaxation",
    "State",
    "feedforward",
    "Backprop",
    "PredictiveCoding",
    "ELBO",
    "make_rule",
    "SGD",
    "Momentum",
    "RMSprop",
    "make_schedule",
    "Adam",
    "make_optimizer",
    "Simulator",
    "Scheduler",
    "Probe",
    "Recorder",
    "Recording",
    "open",
    "run_recorded",
    "CortexsimError",
    "ConfigurationError",
    "BackendError",
    "DataError",
    "FormatError",
    "DivergenceError",
]
