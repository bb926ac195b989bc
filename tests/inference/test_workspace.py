"""The relaxation's scratch memory: a caller's workspace or the hierarchy's own."""

import numpy as np
import pytest

from conftest import build64, put, random_data, to_np
from cortexsim import HierarchySpec, Relaxation, get_backend
from cortexsim.inference import Workspace, relax_discriminative, relax_generative
from cortexsim.model.losses import get_loss

SPEC = HierarchySpec.from_sizes([6, 5, 4, 3])


def test_given_workspace_holds_the_state_and_equals_the_default(backend_name):
    h = build64(SPEC, backend_name, seed=0)
    x, y = random_data(np.random.default_rng(0), 5, 6, 3, "mse")
    x, y = put(h, x), put(h, y)
    settings = Relaxation(steps=4, step_size=0.1)
    default = relax_discriminative(h, x, y, get_loss("mse"), settings)
    mu = [to_np(h, m) for m in default.mu]
    workspace = Workspace(h.backend)
    own = relax_discriminative(h, x, y, get_loss("mse"), settings, workspace=workspace)
    assert len(workspace) > 0 and own.mu[1] is workspace.array("pc.mu", 1, (5, 5))
    assert own.mu[1] is not default.mu[1] and default.mu[1] is Workspace.of(h).array("pc.mu", 1, (5, 5))
    for a, b in zip(mu, own.mu):
        np.testing.assert_array_equal(a, to_np(h, b))
    # the same workspace is reused, not grown, on the next batch of that shape
    count = len(workspace)
    relax_discriminative(h, x, y, get_loss("mse"), settings, workspace=workspace)
    relax_generative(h, x, settings, workspace=workspace)
    grown = len(workspace)
    relax_generative(h, x, settings, workspace=workspace)
    assert grown > count and len(workspace) == grown


def test_inference_leaves_the_areas_alone():
    h = build64(SPEC, "numpy", seed=0)
    x = put(h, np.random.default_rng(1).normal(size=(4, 6)))
    state = relax_generative(h, x, Relaxation(steps=2))
    assert state.eps[0] is not None
    assert not any(hasattr(area, "mu") or hasattr(area, "eps") for area in h.areas)


def test_workspace_of_another_dtype_is_refused():
    h = build64(SPEC, "numpy", seed=0)
    x = put(h, np.zeros((2, 6)))
    with pytest.raises(ValueError, match="workspace"):
        relax_generative(h, x, Relaxation(steps=1), workspace=Workspace(get_backend("numpy", "float32")))
