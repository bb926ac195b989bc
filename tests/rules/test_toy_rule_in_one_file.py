"""A new learning rule in one file: sign-symmetric feedback, defined, registered
and tested here without touching any module of the package.

Sign-symmetric feedback (Liao, Leibo & Poggio 2016, "How important is
weight symmetry in backpropagation?", AAAI) sends the error down through the
*signs* of the forward weights instead of the weights themselves::

    g_L = -dloss/da_L
    g_l = (g_{l+1} @ sign(W_ff_{l+1})^T) * f_l'(a_l)        l = L-1 .. 1

and updates every recognition weight with the local product
``dW_ff_l = -(1/B) h_{l-1}^T g_l`` (``rules.local.hebbian_gradients``). It is
not the gradient of anything, so its check is an independent NumPy
implementation rather than finite differences; with ``sign(W)`` replaced by
``W`` that implementation must give backprop's gradients, and where every
weight is +-1 (``sign(W) == W``) the rule must *be* backprop.

The end-to-end test runs the rule beside backprop in a study file, reads its
recording and writes the study's report: everything a built-in rule gets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import build64, grads_to_np, np_act, np_forward, put, random_data, rel_err, to_np

import cortexsim as cs
from cortexsim import Backprop, HierarchySpec
from cortexsim.inference import State, Sweep, feedforward
from cortexsim.model.hierarchy import Hierarchy
from cortexsim.model.losses import get_loss
from cortexsim.report.summary import write_report
from cortexsim.rules import RULES, Capabilities, Gradients, Rule, hebbian_gradients, register
from cortexsim.rules.backprop import hidden_error, output_error
from cortexsim.study.plan import load_study
from cortexsim.study.runner import run_study

NAME = "sign_symmetric"

# A rerun of this file in the same interpreter (importlib.reload, a notebook,
# pytest's own re-import) defines a new class object; ``register`` refuses a
# different class under a taken name, so drop the entry an earlier import of
# this very module left behind. A rule of that name from anywhere else is
# still refused.
_stale = RULES.get(NAME)
if _stale is not None and (_stale.__module__, _stale.__qualname__) == (__name__, "SignSymmetric"):
    del RULES[NAME]


@register(NAME)
class SignSymmetric(Rule):
    """Backprop with ``sign(W_ff^T)`` carrying the error down (Liao et al. 2016).

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"``.
    """

    name = NAME

    def __init__(self, loss: str = "mse") -> None:
        self.loss = get_loss(loss, "rule.loss")

    @property
    def capabilities(self) -> Capabilities:
        """Supervised; one feedforward sweep; updates recognition weights."""
        return Capabilities(supervised=True, inference="sweep", setting="discriminative")

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Every recognition weight and bias."""
        return [(a.name, p) for a in hierarchy.areas[1:] for p in ("W_ff", "b_ff")]

    def _backward(self, hierarchy: Hierarchy, sweep: Sweep, y: Any) -> tuple[list[Any], Any]:
        xp = hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        errors: list[Any] = [None] * (top + 1)
        errors[top], value = output_error(hierarchy, sweep, y, self.loss, "ss")
        for l in range(top - 1, 0, -1):
            feedback = xp.matrix_transpose(xp.sign(areas[l + 1].W_ff))
            errors[l] = hidden_error(hierarchy, sweep, l, errors[l + 1], feedback, "ss")
        return errors, value

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """The feedforward sweep and the sign-symmetric error pass (no
        relaxation for ``observe`` to see)."""
        sweep = feedforward(hierarchy, x)
        errors, loss_value = self._backward(hierarchy, sweep, y)
        return State(
            mode="feedforward", sweep=sweep, mu=sweep.h, target=y, loss=loss_value,
            presynaptic=[None] + sweep.h[:-1], errors=errors, producer=self,
        )

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of the recognition weights; on another rule's
        state the error pass runs again from its sweep and target."""
        if state.producer is self:
            errors = state.errors
        else:
            errors, _ = self._backward(hierarchy, state.sweep, state.target)
        return hebbian_gradients(hierarchy, [None] + state.sweep.h[:-1], errors, tag="ss")

    def __repr__(self) -> str:
        return f"SignSymmetric(loss={self.loss.name!r})"


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The rule is in ``RULES`` while this module's tests run (again, if an
    earlier pass of the module removed it), and leaves the registry as it
    found it afterwards, so no other test sees a rule of its own."""
    if RULES.get(NAME) is not SignSymmetric:
        register(NAME)(SignSymmetric)
    yield
    if RULES.get(NAME) is SignSymmetric:
        del RULES[NAME]


# -- an independent NumPy reference --------------------------------------------


def np_act_prime(name: str, a: np.ndarray) -> np.ndarray:
    """f'(a), written out independently of cortexsim."""
    if name == "linear":
        return np.ones_like(a)
    if name == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-a))
        return s * (1.0 - s)
    if name == "relu":
        return (a > 0).astype(a.dtype)
    raise ValueError(name)


def np_error_pass(params, names, acts, x, y, loss, feedback):
    """Errors and Hebbian descent directions of an error pass whose feedback
    matrix for the projection into area ``l`` is ``feedback(W_ff_l)^T``."""
    pre, act = np_forward(params, names, acts, x)
    top = len(names) - 1
    if loss == "mse":
        g = (y - act[top]) * np_act_prime(acts[top], pre[top])
    else:
        z = pre[top] - pre[top].max(axis=1, keepdims=True)
        g = y - np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    errors = {top: g}
    for l in range(top - 1, 0, -1):
        carried = errors[l + 1] @ feedback(params[(names[l + 1], "W_ff")]).T
        errors[l] = carried * np_act_prime(acts[l], pre[l])
    batch = x.shape[0]
    grads = {}
    for l in range(1, top + 1):
        grads[(names[l], "W_ff")] = -(act[l - 1].T @ errors[l]) / batch
        grads[(names[l], "b_ff")] = -errors[l].sum(axis=0) / batch
    return grads


def random_problem(spec, loss, seed=0, batch=9, scale=0.7):
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(spec.areas)):
        name, below, size = spec.areas[l].name, spec.sizes[l - 1], spec.sizes[l]
        params[(name, "W_ff")] = rng.normal(0.0, scale, size=(below, size))
        params[(name, "b_ff")] = rng.normal(0.0, 0.3, size=size)
    x, y = random_data(rng, batch, spec.sizes[0], spec.sizes[-1], loss)
    return params, x, y


def rule_grads(h, rule, x, y):
    state = rule.infer(h, put(h, x), put(h, y))
    return state, grads_to_np(h, rule.gradients(h, state))


LOSSES = [("mse", "linear"), ("mse", "sigmoid"), ("cross_entropy", "linear")]


@pytest.mark.parametrize("loss,top", LOSSES)
@pytest.mark.parametrize("hidden", ["linear", "tanh", "sigmoid", "relu"])
def test_gradients_match_a_numpy_sign_symmetric_pass(backend_name, hidden, loss, top):
    spec = HierarchySpec.from_sizes([7, 6, 5, 4], activation=hidden, output_activation=top)
    names, acts = [a.name for a in spec.areas], [a.activation for a in spec.areas]
    h = build64(spec, backend_name)
    params, x, y = random_problem(spec, loss)
    h.load_parameters(params)
    rule = SignSymmetric(loss)
    state, got = rule_grads(h, rule, x, y)
    assert set(got) == set(rule.learned_parameters(h))
    assert isinstance(state, State) and state.producer is rule

    want = np_error_pass(params, names, acts, x, y, loss, feedback=np.sign)
    for key in want:
        assert np.abs(want[key]).max() > 1e-8, key  # a vacuous check would pass anything
        assert rel_err(got[key], want[key]) <= 1e-12, (key, rel_err(got[key], want[key]))

    # The reference is backprop once sign(W) is replaced by W ...
    bp_state, bp = rule_grads(h, Backprop(loss), x, y)
    assert float(to_np(h, state.loss)) == float(to_np(h, bp_state.loss))  # the same forward pass
    exact = np_error_pass(params, names, acts, x, y, loss, feedback=lambda w: w)
    for key in bp:
        assert rel_err(exact[key], bp[key]) <= 1e-12, (key, rel_err(exact[key], bp[key]))
    # ... and the signs make a difference below the top area, not in it.
    top_name = names[-1]
    for key in bp:
        if key[0] == top_name:
            assert rel_err(got[key], bp[key]) <= 1e-12, key
        else:
            assert rel_err(got[key], bp[key]) > 1e-3, key


@pytest.mark.parametrize("loss,top", LOSSES)
def test_with_unit_magnitude_weights_it_is_backprop(backend_name, loss, top):
    """Where every weight is +-1, sign(W) == W: the rule must give backprop's
    update, on its own state and on backprop's (the alignment probe's case)."""
    spec = HierarchySpec.from_sizes([7, 6, 5, 4], activation="tanh", output_activation=top)
    h = build64(spec, backend_name)
    params, x, y = random_problem(spec, loss, seed=3)
    for key in list(params):
        if key[1] == "W_ff":
            params[key] = np.sign(params[key])
    h.load_parameters(params)
    x = 0.2 * x  # keep tanh out of saturation, so the hidden errors are not ~0
    rule, bp_rule = SignSymmetric(loss), Backprop(loss)
    _, mine = rule_grads(h, rule, x, y)
    bp_state, bp = rule_grads(h, bp_rule, x, y)
    on_bp_state = grads_to_np(h, rule.gradients(h, bp_state))
    for key in bp:
        assert np.abs(bp[key]).max() > 1e-8, key
        assert rel_err(mine[key], bp[key]) <= 1e-12, (key, rel_err(mine[key], bp[key]))
        assert rel_err(on_bp_state[key], bp[key]) <= 1e-12, key


def test_the_registry_builds_it_by_name():
    assert RULES[NAME] is SignSymmetric
    rule = cs.make_rule(NAME, loss="cross_entropy")
    assert isinstance(rule, SignSymmetric) and rule.loss.name == "cross_entropy"
    assert rule.supervised and not rule.capabilities.relaxes


# -- end to end: a study file, its recording, its report -------------------------

STUDY = f"""
[study]
name = "toy_rule"
seeds = [0]

[model]
[[model.areas]]
name = "pixels"
size = 64
[[model.areas]]
name = "hidden"
size = 16
activation = "tanh"
[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"
validation = 0.1
limit = 300

[schedule]
epochs = 2
batch_size = 30

[optimizer]
name = "adam"
lr = 0.01

[[rules]]
rule = "{NAME}"
label = "sign_sym"

[[rules]]
rule = "backprop"

[[probes]]
quantity = "alignment"
target = "all"

[[probes]]
quantity = "update"
target = "hidden.W_ff"
every = 5

[[probes]]
quantity = "activity"
target = "hidden"
every_unit = "epoch"
samples = 4
"""


def test_a_study_runs_records_and_reports_the_one_file_rule(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    plan = load_study(path)
    assert [(r.label, r.rule) for r in plan.rules] == [("sign_sym", NAME), ("backprop", "backprop")]
    out = tmp_path / "out"
    index = run_study(plan, out)
    assert [(r["label"], r["status"]) for r in index["runs"]] == [
        ("sign_sym", "complete"), ("backprop", "complete"),
    ], [r.get("error") for r in index["runs"]]

    batches = 2 * math.ceil(300 / 30)
    with cs.open(out / "sign_sym" / "seed0.h5") as rec:
        assert rec.status == "complete"
        assert rec.config["label"] == "sign_sym"
        assert {"all.alignment", "hidden.W_ff.update", "hidden.activity"} <= set(rec.probes)
        alignment = rec["all.alignment"].to_numpy()
        update = rec["hidden.W_ff.update"].to_numpy()
        activity = rec["hidden.activity"].to_numpy()
        assert alignment.shape == (batches, 2)
        assert update.shape == (batches // 5, 64, 16)
        assert activity.shape == (2, 4, 16)
        for name, values in (("alignment", alignment), ("update", update), ("activity", activity)):
            assert np.all(np.isfinite(values)), name
        assert np.all(np.abs(activity) <= 1.0)  # tanh
        assert np.abs(update).max() > 0.0
        cosine, angle = alignment[:, 0], alignment[:, 1]
        np.testing.assert_allclose(angle, np.degrees(np.arccos(cosine)), atol=1e-3)
        # Sign-symmetric feedback points the hidden update within 90 degrees
        # of backprop's; the top area's update is backprop's own.
        assert cosine.mean() > 0.0, cosine
        assert len(rec.metrics["validation_accuracy"]) == 2
        assert np.all(np.isfinite(rec.metrics["train_loss"]))

    summary = write_report(out)
    text = summary.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| sign_sym | sign_symmetric |")]
    assert len(rows) == 2, text  # the accuracy table and the table of runs
    assert "complete" in rows[1]
    assert (summary.parent / "alignment.png").is_file()
