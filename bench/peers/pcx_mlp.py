"""The peer benchmark task of bench/pc_mlp.py written in pcx 0.6.3 (JAX).

784-256-256-10 MLP, tanh hidden, linear output, batch 128; input and one-hot
label clamped, squared-error energy on every value node; latents start at the
feedforward sweep (``STATUS.INIT``), T = 20 inference steps of plain gradient
descent (optax.sgd, lr 0.1) on the value nodes, then one Adam step (lr 1e-4)
on the weights with the gradient averaged over the batch. The whole batch
(init + 20 steps + weight update) is one ``pxf.jit`` call, as pcx's own
examples write it. Data: uniform(0, 1) inputs and random one-hot labels, 8
fixed batches cycled. Timing: median wall-clock per batch over ``--batches``
batches after 5 warm-up batches (the first compiles), synchronised with
``block_until_ready``.

pcx pins an old JAX, so it lives in a virtual environment of its own, outside
the project (it is not a dependency of cortexsim, and this file does not import
it)::

    python3.11 -m venv /work/pcx-venv
    /work/pcx-venv/bin/pip install pcx==0.6.3 jax==0.4.38 jaxlib==0.4.38 \\
        equinox==0.11.12 optax==0.2.5 jaxtyping==0.3.11 chex==0.1.90 \\
        numpy==2.4.6 ml_dtypes==0.7.0 scipy==1.17.1
    /work/pcx-venv/bin/python bench/peers/pcx_mlp.py --batches 50

JAX runs on the CPU with its default thread settings (on the benchmark machine,
both of its two cores). ``python bench/pc_mlp.py --pcx /work/pcx-venv/bin/python``
runs this alternated with cortexsim's own timings. ``--check`` also prints the
total energy before and after the inference steps of a few batches.

The last line is machine-readable: ``pcx_samples_per_s=... ms_per_batch=...``.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pcx  # noqa: E402
import pcx.functional as pxf  # noqa: E402
import pcx.nn as pxnn  # noqa: E402
import pcx.predictive_coding as pxc  # noqa: E402
import pcx.utils as pxu  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCH = 128
STEPS = 20
STATE_LR = 0.1
WEIGHT_LR = 1e-4


class MLP(pxc.EnergyModule):
    """Value nodes after each layer; the top one is clamped to the label."""

    def __init__(self, sizes: tuple[int, ...] = SIZES) -> None:
        super().__init__()
        self.act_fn = pcx.static(jax.nn.tanh)
        self.layers = [pxnn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.vodes = [pxc.Vode() for _ in sizes[1:]]  # se_energy: 0.5 |h - u|^2
        self.vodes[-1].h.frozen = True

    def __call__(self, x, y=None):
        for vode, layer in zip(self.vodes[:-1], self.layers[:-1]):
            x = vode(self.act_fn(layer(x)))
        self.vodes[-1](self.layers[-1](x))  # linear output
        if y is not None:
            self.vodes[-1].set("h", y)  # clamp the label
        return self.vodes[-1].get("u")


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
def forward(x, y, *, model: MLP):
    return model(x, y)


@pxf.vmap(
    pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)),
    in_axes=(0,),
    out_axes=(None, 0),
    axis_name="batch",
)
def energy(x, *, model: MLP):
    y_ = model(x, None)
    return jax.lax.psum(model.energy(), "batch"), y_


def _train(T: int, x, y, *, model: MLP, optim_w: pxu.Optim, optim_h: pxu.Optim):
    """One batch; returns the total energy seen at each inference step and after."""
    model.train()
    inference_step = pxf.value_and_grad(
        pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True
    )(energy)
    learning_step = pxf.value_and_grad(
        pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True
    )(energy)

    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(x, y, model=model)
    optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))

    energies = []
    for _ in range(T):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = inference_step(x, model=model)
        optim_h.step(model, g["model"])
        energies.append(e)
    optim_h.clear()

    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        (e, _), g = learning_step(x, model=model)
    optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
    energies.append(e)
    return jnp.stack(energies)


@pxf.jit(static_argnums=0)
def train_on_batch(T: int, x, y, *, model: MLP, optim_w: pxu.Optim, optim_h: pxu.Optim):
    _train(T, x, y, model=model, optim_w=optim_w, optim_h=optim_h)


@pxf.jit(static_argnums=0)
def train_on_batch_recorded(
    T: int, x, y, *, model: MLP, optim_w: pxu.Optim, optim_h: pxu.Optim
):
    return _train(T, x, y, model=model, optim_w=optim_w, optim_h=optim_h)


def build():
    pcx.RKG.seed(0)  # pcx seeds its global generator from the clock
    model = MLP()
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(jnp.zeros((BATCH, SIZES[0])), None, model=model)
    optim_h = pxu.Optim(lambda: optax.sgd(STATE_LR))
    optim_w = pxu.Optim(lambda: optax.adam(WEIGHT_LR), pxu.M(pxnn.LayerParam)(model))
    return model, optim_w, optim_h


def data():
    rng = np.random.default_rng(1)
    xs = [jnp.asarray(rng.uniform(0, 1, (BATCH, SIZES[0])), dtype=jnp.float32) for _ in range(8)]
    ys = [
        jnp.asarray(np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], BATCH)], dtype=jnp.float32)
        for _ in range(8)
    ]
    return xs, ys


def sync(model: MLP) -> None:
    jax.block_until_ready(model.layers[0].nn.weight.get())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--check", action="store_true", help="print the energies of a few recorded batches"
    )
    args = parser.parse_args()
    model, optim_w, optim_h = build()
    xs, ys = data()

    if args.check:
        for i in range(16):
            trace = train_on_batch_recorded(
                STEPS, xs[i % 8], ys[i % 8], model=model, optim_w=optim_w, optim_h=optim_h
            )
            trace = np.asarray(trace) / BATCH
            if i in (0, 1, 8, 15):
                print(
                    f"batch {i}: energy/sample at step 0 {trace[0]:.4f}, step 1 {trace[1]:.4f}, "
                    f"after {STEPS} steps {trace[-1]:.4f}; "
                    f"non-increasing: {bool(np.all(np.diff(trace) <= 1e-6))}"
                )
        model, optim_w, optim_h = build()

    times = []
    compile_s = None
    for i in range(args.warmup + args.batches):
        start = time.perf_counter()
        train_on_batch(STEPS, xs[i % 8], ys[i % 8], model=model, optim_w=optim_w, optim_h=optim_h)
        sync(model)
        elapsed = time.perf_counter() - start
        if i == 0:
            compile_s = elapsed
        if i >= args.warmup:
            times.append(elapsed)
    median = statistics.median(times)
    print(f"pcx {version('pcx')}, jax {jax.__version__} on {jax.devices()[0]}")
    print(f"first batch (compile): {compile_s:.2f} s")
    print(
        f"{median * 1e3:.2f} ms/batch (min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f} "
        f"over {len(times)}), {BATCH / median:,.0f} samples/s"
    )
    print(f"pcx_samples_per_s={BATCH / median:.0f} ms_per_batch={median * 1e3:.2f}")


if __name__ == "__main__":
    main()
