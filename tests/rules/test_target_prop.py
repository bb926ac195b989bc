"""Target propagation (TP, DTP, DDTP-linear): exact inverses give exact
preimages, every update is the gradient of the local loss it claims to
descend, inverse training lowers the reconstruction loss and turns the
hidden updates towards backprop's, and each rule trains a net on digits."""

import numpy as np
import pytest
from conftest import (
    build64,
    central_difference,
    cosine,
    grads_to_np,
    np_act,
    np_forward,
    np_total_loss,
    put,
    random_data,
    rel_err,
    spec_info,
    to_np,
)

from cortexsim import (
    SGD,
    Adam,
    Backprop,
    ConfigurationError,
    HierarchySpec,
    PredictiveCoding,
    Scheduler,
)
from cortexsim.data import load
from cortexsim.rules.ddtp import DDTPLinear
from cortexsim.rules.target_prop import DifferenceTargetProp, TargetProp

RULES = {
    "tp": lambda **kw: TargetProp(**kw),
    "dtp": lambda **kw: DifferenceTargetProp(**kw),
    "tp_last_hidden": lambda **kw: TargetProp(first_target="last_hidden", **kw),
    "dtp_last_hidden": lambda **kw: DifferenceTargetProp(first_target="last_hidden", **kw),
    "ddtp": lambda **kw: DDTPLinear(**kw),
}


def random_params(spec, rng, scale=0.6):
    names, _ = spec_info(spec)
    params = {}
    for l in range(1, len(names)):
        below, size = spec.sizes[l - 1], spec.sizes[l]
        params[(names[l], "W_ff")] = rng.normal(0.0, scale, size=(below, size))
        params[(names[l], "b_ff")] = rng.normal(0.0, 0.3, size=size)
        params[(names[l], "W_fb")] = rng.normal(0.0, scale, size=(size, below))
        params[(names[l], "b_fb")] = rng.normal(0.0, 0.3, size=below)
    return params


def set_direct(h, rule, Q):
    """Overwrite DDTP's Q_l (host arrays, index = area)."""
    rule.direct_feedback(h)
    for l, q in enumerate(Q):
        if q is not None:
            h.areas[l].Q_fb = put(h, q)


# -- an independent NumPy reference of the rules ---------------------------------


def np_top(loss, a_top, h_top, y, step):
    """(t_L, -dloss_b/dh_L) per sample."""
    if loss == "mse":
        minus_grad = y - h_top
    else:
        z = np.exp(a_top - a_top.max(axis=1, keepdims=True))
        minus_grad = y - z / z.sum(axis=1, keepdims=True)
    return h_top + step * minus_grad, minus_grad


def np_targets(kind, spec, params, x, y, loss, step, Q=None):
    names, acts = spec_info(spec)
    L = len(names) - 1
    a, h = np_forward(params, names, acts, x)
    t = [None] * (L + 1)
    t[L], minus_grad = np_top(loss, a[L], h[L], y, step)
    if kind == "ddtp":
        for l in range(1, L):
            t[l] = h[l] + (t[L] - h[L]) @ Q[l]
        return a, h, t

    def g(k, v):
        return np_act(acts[k - 1], v @ params[(names[k], "W_fb")] + params[(names[k], "b_fb")])

    start = L - 1
    if kind.endswith("last_hidden"):
        fprime = np.ones_like(a[L]) if acts[L] == "linear" else None
        assert fprime is not None  # the tests use a linear top
        t[start] = h[start] + step * (minus_grad * fprime) @ params[(names[L], "W_ff")].T
        start -= 1
    for l in range(start, 0, -1):
        t[l] = g(l + 1, t[l + 1])
        if kind.startswith("dtp"):
            t[l] += h[l] - g(l + 1, h[l + 1])
    return a, h, t


# -- exact inverses: exact preimages ---------------------------------------------


def linear_invertible(h, rng, n):
    """Well-conditioned square weights and their exact inverses (host)."""
    names = [a.name for a in h.areas]
    params = {}
    for l in range(1, len(names)):
        W = np.eye(n) + 0.4 * rng.normal(size=(n, n)) / np.sqrt(n)
        b = rng.normal(0.0, 0.5, size=n)
        params[(names[l], "W_ff")], params[(names[l], "b_ff")] = W, b
        inv = np.linalg.inv(W)
        params[(names[l], "W_fb")], params[(names[l], "b_fb")] = inv, -b @ inv
    h.load_parameters(params)
    return params


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("kind", ["tp", "dtp", "tp_last_hidden", "dtp_last_hidden", "ddtp"])
def test_exact_inverses_give_exact_preimages(backend_name, kind, loss):
    n, L, step = 4, 3, 0.33
    spec = HierarchySpec.from_sizes([n] * (L + 1), activation="linear", output_activation="linear")
    h = build64(spec, backend_name, seed=0)
    rng = np.random.default_rng(1)
    params = linear_invertible(h, rng, n)
    names = [a.name for a in h.areas]
    W = [None] + [params[(names[l], "W_ff")] for l in range(1, L + 1)]
    b = [None] + [params[(names[l], "b_ff")] for l in range(1, L + 1)]
    rule = RULES[kind](loss=loss, top_step=step)
    if kind == "ddtp":  # Q_l inverts the linear map h_l -> h_L
        Q = [None] * (L + 1)
        for l in range(1, L):
            M = np.eye(n)
            for k in range(l + 1, L + 1):
                M = M @ W[k]
            Q[l] = np.linalg.inv(M)
        set_direct(h, rule, Q)
    x, y = random_data(rng, 6, n, n, loss)
    state = rule.infer(h, put(h, x), put(h, y))
    assert state.mode == "target"

    # by hand: the top target, then exact preimages through each layer
    out = x
    for l in range(1, L + 1):
        out = out @ W[l] + b[l]
    t_top, minus_grad = np_top(loss, out, out, y, step)
    expected = [None] * (L + 1)
    expected[L] = t_top
    for l in range(L - 1, 0, -1):
        expected[l] = (expected[l + 1] - b[l + 1]) @ np.linalg.inv(W[l + 1])
    if kind.endswith("last_hidden"):  # Lee et al.: a gradient step on h_{L-1} instead
        h_below = (out - b[L]) @ np.linalg.inv(W[L])
        expected[L - 1] = h_below + step * minus_grad @ W[L].T
        for l in range(L - 2, 0, -1):
            expected[l] = (expected[l + 1] - b[l + 1]) @ np.linalg.inv(W[l + 1])
    for l in range(1, L + 1):
        np.testing.assert_allclose(to_np(h, state.mu[l]), expected[l], rtol=0, atol=1e-10)
    np.testing.assert_allclose(to_np(h, state.mu[0]), x, rtol=0, atol=0)

    # the difference reconstruction g(f(h)) - h vanishes, with and without noise
    for noise in (0.0, 0.36) if kind != "ddtp" else (0.36,):
        losses = rule.reconstruction_losses(h, state, noise=noise)
        assert len(losses) == (L - 2 if kind.endswith("last_hidden") else L - 1)
        for value in losses.values():
            assert abs(float(to_np(h, value))) < 1e-20

    # the forward updates descend 0.5 |h_l - t_l|^2 (linear: e_l = t_l - h_l)
    grads = grads_to_np(h, rule.gradients(h, state))
    _, act = np_forward(params, names, ["linear"] * (L + 1), x)
    for l in range(1, L):
        e = expected[l] - act[l]
        np.testing.assert_allclose(
            grads[(names[l], "W_ff")], -act[l - 1].T @ e / len(x), rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(
            grads[(names[l], "b_ff")], -e.sum(0) / len(x), rtol=1e-9, atol=1e-12
        )


# -- every update is the gradient of the loss it claims to descend ---------------


def draw_noise(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size=s) for s in shapes]


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("kind", ["tp", "dtp", "dtp_last_hidden", "ddtp"])
def test_updates_are_gradients_of_the_local_losses(backend_name, kind, loss):
    spec = HierarchySpec.from_sizes([5, 4, 6, 3], activation="tanh", output_activation="linear")
    names, acts = spec_info(spec)
    L = 3
    h = build64(spec, backend_name, seed=0)
    rng = np.random.default_rng(3)
    params = random_params(spec, rng)
    h.load_parameters(params)
    noise, step, B = 0.3, 0.5, 7
    rule = RULES[kind](loss=loss, top_step=step, noise=noise)
    Q = [None] * (L + 1)
    if kind == "ddtp":
        Q = [None] + [rng.normal(0.0, 0.5, size=(3, spec.sizes[l])) for l in (1, 2)] + [None]
        set_direct(h, rule, Q)
    x, y = random_data(rng, B, 5, 3, loss)
    state = rule.infer(h, put(h, x), put(h, y))
    _, act, t = np_targets(kind, spec, params, x, y, loss, step, Q)
    for l in range(1, L + 1):
        assert rel_err(to_np(h, state.mu[l]), t[l]) <= 1e-12, l
    assert float(to_np(h, state.loss)) == pytest.approx(
        np_total_loss(spec, params, x, y, loss), rel=1e-12
    )

    # the noise the feedback training will draw, replayed on the host
    rule._rng = np.random.default_rng(11)
    hidden = [l for l in range(1, L)]
    inverted = [k for k in range(2, L + 1) if not (kind.endswith("last_hidden") and k == L)]
    shapes = (
        [(B, spec.sizes[l]) for l in hidden]
        if kind == "ddtp"
        else [(B, spec.sizes[k - 1]) for k in inverted]
    )
    eps = draw_noise(11, shapes)
    grads = grads_to_np(h, rule.gradients(h, state))
    assert set(grads) == set(rule.learned_parameters(h))

    host = {k: v.copy() for k, v in params.items()}
    # hidden areas: 0.5 |f(h_{l-1} W + b) - t_l|^2 with the target held fixed
    for l in hidden:

        def local(p, l=l):
            out = np_act(acts[l], act[l - 1] @ p[(names[l], "W_ff")] + p[(names[l], "b_ff")])
            return float(np.mean(0.5 * np.sum((out - t[l]) ** 2, axis=1)))

        for p in ("W_ff", "b_ff"):
            numeric = central_difference(local, host, (names[l], p), h=1e-5)
            assert np.abs(numeric).max() > 1e-6
            assert rel_err(grads[(names[l], p)], numeric) <= 1e-6, (l, p)
    # the top area: the loss itself
    for p in ("W_ff", "b_ff"):
        numeric = central_difference(
            lambda q: np_total_loss(spec, q, x, y, loss), host, (names[L], p), h=1e-5
        )
        assert rel_err(grads[(names[L], p)], numeric) <= 1e-6, p

    if kind == "ddtp":  # the difference reconstruction loss of Q_l
        for i, l in enumerate(hidden):
            corrupted = act[l] + noise * eps[i]
            for k in range(l + 1, L + 1):
                corrupted = np_act(
                    acts[k], corrupted @ params[(names[k], "W_ff")] + params[(names[k], "b_ff")]
                )

            def drl(p, l=l, i=i, up=corrupted):
                rec = act[l] + (up - act[L]) @ p["Q"]
                return (
                    float(np.mean(0.5 * np.sum((rec - act[l] - noise * eps[i]) ** 2, axis=1)))
                    / noise**2
                )

            numeric = central_difference(drl, {"Q": Q[l].copy()}, "Q", h=1e-6)
            assert rel_err(grads[(names[l], "Q_fb")], numeric) <= 1e-6, l
        return
    for i, k in enumerate(inverted):  # the inverse as a decoder of corrupted activities
        l = k - 1
        corrupted = act[l] + noise * eps[i]
        up = np_act(acts[k], corrupted @ params[(names[k], "W_ff")] + params[(names[k], "b_ff")])

        def rec_loss(p, k=k, l=l, up=up, corrupted=corrupted):
            rec = np_act(acts[l], up @ p[(names[k], "W_fb")] + p[(names[k], "b_fb")])
            return float(np.mean(0.5 * np.sum((rec - corrupted) ** 2, axis=1)))

        for p in ("W_fb", "b_fb"):
            numeric = central_difference(rec_loss, host, (names[k], p), h=1e-5)
            assert np.abs(numeric).max() > 1e-6
            assert rel_err(grads[(names[k], p)], numeric) <= 1e-6, (k, p)


def test_backprop_recomputes_on_a_target_state(backend_name):
    """Backprop.gradients on a TP state is backprop's own update, not TP's:
    what alignment probes compare against."""
    spec = HierarchySpec.from_sizes([5, 4, 6, 3])
    h = build64(spec, backend_name, seed=0)
    h.load_parameters(random_params(spec, np.random.default_rng(2)))
    x, y = random_data(np.random.default_rng(2), 6, 5, 3, "cross_entropy")
    bp = Backprop("cross_entropy")
    own = grads_to_np(h, bp.gradients(h, bp.infer(h, put(h, x), put(h, y))))
    state = DifferenceTargetProp("cross_entropy").infer(h, put(h, x), put(h, y))
    other = grads_to_np(h, bp.gradients(h, state))
    for key in own:
        np.testing.assert_allclose(other[key], own[key], rtol=1e-12, atol=1e-14)


# -- learning the inverses -----------------------------------------------------------

SMALL = [10, 16, 16, 16, 4]


def mean_reconstruction(h, rule_class, state):
    """Reconstruction loss over areas on noise fixed by a fresh seed."""
    probe = rule_class(loss="cross_entropy", seed=99)
    return float(sum(to_np(h, v) for v in probe.reconstruction_losses(h, state).values()))


@pytest.mark.parametrize(
    "rule_class,lr,ratio", [(DifferenceTargetProp, 0.05, 0.5), (DDTPLinear, 0.01, 0.8)]
)
def test_inverse_training_lowers_the_reconstruction_loss(backend_name, rule_class, lr, ratio):
    spec = HierarchySpec.from_sizes(SMALL, activation="tanh", output_activation="linear")
    h = build64(spec, backend_name, seed=0)
    rule = rule_class(loss="cross_entropy", seed=0)
    rng = np.random.default_rng(5)
    x_eval, y_eval = random_data(rng, 128, SMALL[0], SMALL[-1], "cross_entropy")
    evaluation = rule.infer(h, put(h, x_eval), put(h, y_eval))
    before = mean_reconstruction(h, rule_class, evaluation)
    feedback = [k for k in rule.learned_parameters(h) if k[1] not in ("W_ff", "b_ff")]
    sgd = SGD(lr)
    for _ in range(200):
        x, y = random_data(rng, 32, SMALL[0], SMALL[-1], "cross_entropy")
        grads = rule.gradients(h, rule.infer(h, put(h, x), put(h, y)))
        sgd.step(h, {k: grads[k] for k in feedback})
    evaluation = rule.infer(h, put(h, x_eval), put(h, y_eval))
    after = mean_reconstruction(h, rule_class, evaluation)
    # measured (numpy): DTP 12.0 -> 3.2, DDTP 35.4 -> 18.8; DDTP cannot reach 0:
    # a 4-unit output recovers at most 4 of each area's 16 perturbed directions
    assert after < ratio * before, (before, after)


# -- alignment with backprop --------------------------------------------------------

ALIGN = [64, 64, 64, 10]


def hidden_alignment(h, rule, x, y):
    state = rule.infer(h, put(h, x), put(h, y))
    mine = grads_to_np(h, rule.gradients(h, state))
    ref = grads_to_np(h, Backprop("cross_entropy").gradients(h, state))
    return [cosine(mine[(a.name, "W_ff")], ref[(a.name, "W_ff")]) for a in h.areas[1:-1]]


def train_inverses(h, rule, steps=300, seed=10):
    rng = np.random.default_rng(seed)
    feedback = [k for k in rule.learned_parameters(h) if k[1] not in ("W_ff", "b_ff")]
    adam = Adam(3e-3)
    for _ in range(steps):
        x, y = random_data(rng, 64, ALIGN[0], ALIGN[-1], "cross_entropy")
        grads = rule.gradients(h, rule.infer(h, put(h, x), put(h, y)))
        adam.step(h, {k: grads[k] for k in feedback})


# measured on seed 0 (numpy): before |cos| < 0.09, after DTP [0.71, 0.76], DDTP [0.86, 0.94];
# seeds 0-3 gave DTP 0.68-0.78 and DDTP 0.83-0.94.
@pytest.mark.parametrize("rule_class,bound", [(DifferenceTargetProp, 0.6), (DDTPLinear, 0.75)])
def test_hidden_updates_align_with_backprop_after_inverse_training(backend_name, rule_class, bound):
    spec = HierarchySpec.from_sizes(ALIGN, activation="tanh", output_activation="linear")
    h = build64(spec, backend_name, seed=0)
    rule = rule_class(loss="cross_entropy", seed=0)
    x, y = random_data(np.random.default_rng(20), 256, ALIGN[0], ALIGN[-1], "cross_entropy")
    before = hidden_alignment(h, rule, x, y)
    assert max(abs(c) for c in before) < 0.2, before  # untrained inverses: chance
    train_inverses(h, rule)
    after = hidden_alignment(h, rule, x, y)
    assert min(after) > bound, after


def test_ddtp_aligns_better_than_dtp():
    """Meulemans et al. 2020: direct feedback trained with the DRL improves on DTP."""
    spec = HierarchySpec.from_sizes(ALIGN, activation="tanh", output_activation="linear")
    x, y = random_data(np.random.default_rng(20), 256, ALIGN[0], ALIGN[-1], "cross_entropy")
    means = {}
    for rule_class in (DifferenceTargetProp, DDTPLinear):
        h = build64(spec, "numpy", seed=0)
        rule = rule_class(loss="cross_entropy", seed=0)
        train_inverses(h, rule)
        means[rule_class] = np.mean(hidden_alignment(h, rule, x, y))
    assert means[DDTPLinear] > means[DifferenceTargetProp] + 0.05, means


# -- training on digits -----------------------------------------------------------------


def train_digits(backend_name, rule, lr, batch_size, epochs):
    data = load("digits")
    spec = HierarchySpec.from_sizes([64, 64, 64, 10], activation="tanh", output_activation="linear")
    h = build64(spec, backend_name, seed=0)
    scheduler = Scheduler(
        h,
        rule,
        Adam(lr),
        data.x_train,
        data.y_train,
        batch_size=batch_size,
        epochs=epochs,
        seed=0,
        x_test=data.x_test,
        y_test=data.y_test,
    )
    return [m["test_accuracy"] for m in scheduler.run()]


# Measured (numpy and strict agree): DTP 0.956, DDTP 0.950 after 5 epochs; TP
# with Lee et al.'s first target (top_step 1, noise 0.1) 0.939. Backprop reaches
# 0.961 and training only the top area 0.847 on the same schedule.
DIGITS = {
    "dtp": (lambda: DifferenceTargetProp("cross_entropy"), 0.92),
    "ddtp": (lambda: DDTPLinear("cross_entropy"), 0.92),
    "tp": (
        lambda: TargetProp("cross_entropy", top_step=1.0, noise=0.1, first_target="last_hidden"),
        0.90,
    ),
}


@pytest.mark.parametrize("case", sorted(DIGITS))
def test_trains_digits(backend_name, case):
    make, bound = DIGITS[case]
    accuracy = train_digits(backend_name, make(), 3e-3, 32, 5)
    assert accuracy[-1] >= bound, accuracy


def test_plain_tp_through_the_output_inverse_fails_where_dtp_trains():
    """Lee et al.'s point: a 10-unit output cannot be inverted onto 64 units,
    and without the difference correction the targets are useless (measured
    0.14 against 0.96 for DTP)."""
    tp = train_digits("numpy", TargetProp("cross_entropy"), 3e-3, 32, 5)
    assert tp[-1] < 0.5, tp


# -- settings --------------------------------------------------------------------------


def test_learned_parameters():
    spec = HierarchySpec.from_sizes([5, 4, 6, 3])
    h = build64(spec, "numpy")
    ff = [(f"area{l}", p) for l in (1, 2, 3) for p in ("W_ff", "b_ff")]
    fb = lambda areas: [(f"area{l}", p) for l in areas for p in ("W_fb", "b_fb")]
    assert TargetProp().learned_parameters(h) == ff + fb((2, 3))
    assert DifferenceTargetProp().learned_parameters(h) == ff + fb((2, 3))
    assert TargetProp(first_target="last_hidden").learned_parameters(h) == ff + fb((2,))
    assert DDTPLinear().learned_parameters(h) == ff + [("area1", "Q_fb"), ("area2", "Q_fb")]
    Q = DDTPLinear(seed=3).direct_feedback(h)
    assert Q[0] is None and Q[3] is None and Q[1].shape == (3, 4) and Q[2].shape == (3, 6)
    assert TargetProp().name == "target_prop"
    assert TargetProp(difference=True).name == DifferenceTargetProp.name == "difference_target_prop"
    assert DDTPLinear.name == "ddtp_linear"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: TargetProp(loss="mes"), r"rule\.loss: unknown loss 'mes'"),
        (lambda: TargetProp(top_step=0.0), r"rule\.top_step: must be > 0"),
        (lambda: TargetProp(noise=-0.1), r"rule\.noise: must be >= 0"),
        (lambda: TargetProp(noise=float("nan")), r"rule\.noise: must be finite"),
        (lambda: DDTPLinear(noise=0.0), r"rule\.noise: must be > 0"),
        (lambda: TargetProp(difference="yes"), r"rule\.difference: expected true or false"),
        (lambda: TargetProp(first_target="top"), r"rule\.first_target: unknown value 'top'"),
        (lambda: DifferenceTargetProp(seed=-1), r"rule\.seed: expected a whole number"),
        (lambda: DDTPLinear(scale=0), r"rule\.scale: must be > 0"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_bad_use():
    spec = HierarchySpec.from_sizes([4, 3, 2], output_activation="sigmoid")
    h = build64(spec, "numpy")
    x, y = np.zeros((2, 4)), np.eye(2)
    with pytest.raises(ConfigurationError, match=r"top area 'area2' must have activation 'linear'"):
        DifferenceTargetProp("cross_entropy").infer(h, put(h, x), put(h, y))
    with pytest.raises(ConfigurationError, match=r"rule 'difference_target_prop' .* pass y"):
        DifferenceTargetProp().infer(h, put(h, x), None)
    pc_state = PredictiveCoding().infer(h, put(h, x), put(h, y))
    with pytest.raises(ConfigurationError, match=r"needs the state of its own infer"):
        TargetProp().gradients(h, pc_state)


@pytest.mark.parametrize("kind", ["dtp", "ddtp"])
def test_gradients_leave_the_state_intact(backend_name, kind):
    """A second gradients call on the same state gives the same forward update."""
    spec = HierarchySpec.from_sizes([5, 4, 6, 3])
    h = build64(spec, backend_name, seed=0)
    h.load_parameters(random_params(spec, np.random.default_rng(4)))
    x, y = random_data(np.random.default_rng(4), 6, 5, 3, "mse")
    rule = RULES[kind]()
    state = rule.infer(h, put(h, x), put(h, y))
    errors = [None if e is None else to_np(h, e) for e in state.errors]
    first = grads_to_np(h, rule.gradients(h, state))
    second = grads_to_np(h, rule.gradients(h, state))
    for key in first:
        if key[1] in ("W_ff", "b_ff"):
            np.testing.assert_array_equal(first[key], second[key])
    for before, after in zip(errors[1:], state.errors[1:]):
        np.testing.assert_array_equal(before, to_np(h, after))


@pytest.mark.parametrize("rule_class", [DifferenceTargetProp, DDTPLinear])
def test_resume_from_a_checkpoint_is_bit_identical_with_noise_and_direct_feedback(tmp_path, rule_class):
    """Checkpoints carry the rule's noise generator and DDTP's Q_fb."""
    from cortexsim import Adam, Scheduler
    from cortexsim.sim.checkpoint import load_checkpoint, save_checkpoint

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 6)), rng.integers(0, 3, size=60)

    def scheduler(epochs):
        h = build64(HierarchySpec.from_sizes([6, 5, 4, 3], activation="tanh"), "numpy", seed=4)
        return Scheduler(h, rule_class(), Adam(lr=0.01), x, y, batch_size=10, epochs=epochs, seed=1)

    whole = scheduler(3)
    whole.run()
    first = scheduler(3)
    first.epochs = 1
    first.run()
    save_checkpoint(tmp_path / "c.npz", first.state_dict())
    state, _ = load_checkpoint(tmp_path / "c.npz")
    resumed = scheduler(3)
    resumed.load_state_dict(state)
    resumed.run()
    expected = whole.hierarchy.parameters_to_numpy()
    got = resumed.hierarchy.parameters_to_numpy()
    assert expected.keys() == got.keys()
    if rule_class is DDTPLinear:
        assert ("area1", "Q_fb") in got
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=str(key))
