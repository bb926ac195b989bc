"""Trained variational models read back from a study folder, and the numbers
computed from them (docs/studies.md, "Generative studies").

For every rule label whose rule is variational (``elbo``), each complete run's
hierarchy is rebuilt from the plan in ``study.json`` and the parameters of
``LABEL/seedS.ckpt.npz`` (:func:`restore`); encoding and decoding go through
the model's own passes (``inference.variational.forward`` with zero noise for
posterior means, ``inference.variational.decode`` for the generative path).
From them: the held-out images a run was evaluated on, posterior means, KL per
unit and reconstructions, decoded codes, the importance-weighted test
log-likelihood and, on data with ground-truth factors (``shapes``), MIG, the
β-VAE metric and DCI. The report (``report_generative``) draws and tabulates them.

The slow numbers are cached per run in ``LABEL/seedS.generative.json`` beside
the checkpoint (:func:`cached`), keyed by their settings and by the checkpoint's
size and modification time, so running the report again costs only the figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.disentanglement import beta_vae_score, dci, mig
from ..data import binarize, load
from ..data.shapes import FACTOR_SIZES, factor_values, load_shapes, render
from ..model.hierarchy import Hierarchy
from ..inference import feedforward, log_likelihood_estimate
from ..inference.refine import Refinement, refined_bounds
from ..inference.variational import decode, forward, kl_analytic, sigmoid, stochastic_areas
from ..rules import RULES, Rule, make_rule
from ..sim.recorded import checkpoint_path
from ..sim.simulator import Simulator

__all__ = [
    "FACTOR_DATASETS", "FACTOR_SEED", "amortization_gap", "cached", "decoded_means", "disentanglement", "held_out",
    "log_likelihood", "log_likelihood_rows", "posterior", "posterior_means", "restore",
    "study_dataset", "variational_labels",
]

FACTOR_DATASETS = ("shapes",)  # datasets whose factors can be rendered on demand
FACTOR_SEED = 1                # seed of the shapes sample the codes are scored on
_ROWS = 1000                   # images per encoder pass


def log_likelihood_rows(n_features: int) -> int:
    """Rows (images x samples) per pass of the log-likelihood estimate: about 64 MB of input."""
    return max(1000, 16_000_000 // int(n_features))


def variational_labels(study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's rule entries whose rule is variational, by label (study order);
    a recurrent model's (``report/recurrent.py``) are not among them."""
    plan = study.get("plan", {})
    if any(area.get("cell") for area in plan.get("model", {}).get("areas", [])):
        return {}
    return {r["label"]: r for r in plan.get("rules", [])
            if r.get("rule") in RULES and _rule(r).capabilities.setting == "variational"}


def _rule(entry: dict[str, Any]) -> Rule:
    """A fresh rule object from a study.json rule entry."""
    settings = {k: v for k, v in entry.items() if k not in ("label", "rule", "optimizer")}
    return make_rule(entry["rule"], **settings)


def restore(out: Path, study: dict[str, Any], label: str, seed: int) -> tuple[Hierarchy, Any]:
    """The trained hierarchy (NumPy) and a fresh rule object of one run, from its checkpoint."""
    plan = study["plan"]
    entry = {r["label"]: r for r in plan["rules"]}[label]
    sim = Simulator.trained(plan["model"], _rule(entry), checkpoint_path(out / label / f"seed{seed}.h5"),
                            dtype=plan["schedule"]["dtype"], seed=seed, rule_state=False)
    return sim.hierarchy, sim.rule


def study_dataset(data: dict[str, Any]) -> Any:
    """The study's dataset, loaded as the runner loads it (``data.n``, ``data.layout``)."""
    extra = {key: data[key] for key in ("n", "layout") if key in data}
    return load(data["name"], data_dir=data.get("data_dir"), **extra)


def held_out(data: dict[str, Any], seed: int, dataset: Any = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """The test images a run was evaluated on (binarized as the runner does: one
    static sample with ``seed + 2``) and the image shape."""
    dataset = dataset if dataset is not None else study_dataset(data)
    x = dataset.x_test
    mode = data.get("binarize")
    if mode is not None:
        x = binarize(x, "static" if mode == "dynamic" else mode, seed=seed + 2)
    return x, tuple(dataset.image_shape)


def posterior(hierarchy: Hierarchy, rule: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Posterior means of the top area and what comes with them, from ``forward``
    with zero noise (every stochastic area at its posterior mean).

    Returns ``mean``, ``logvar`` (N, n_L), ``kl`` (N, n_L): the closed-form KL of
    each unit to the top prior, ``reconstruction`` (N, n_0): the mean of
    ``p(x | z)`` at the posterior means, and per stochastic area ``AREA`` (the
    top included) ``mean.AREA`` and ``kl.AREA`` (N, n_l): its posterior means
    and the closed-form KL of each unit to its prior, predicted from the
    posterior mean of the area above.
    """
    be = hierarchy.backend
    top = len(hierarchy.areas) - 1
    flags = stochastic_areas(hierarchy)
    levels = [l for l, flag in enumerate(flags) if flag and l > 0]
    parts: dict[str, list[np.ndarray]] = {"mean": [], "logvar": [], "kl": [], "reconstruction": []}
    for start in range(0, x.shape[0], _ROWS):
        rows = be.asarray(x[start:start + _ROWS])
        noise = [be.zeros((rows.shape[0], a.size)) if flag else None
                 for a, flag in zip(hierarchy.areas, flags)]
        p = forward(hierarchy, rows, noise, posterior=rule.posterior, likelihood=rule.likelihood,
                    analytic_kl=True)
        out = sigmoid(be.xp, p.out) if rule.likelihood == "bernoulli" else p.out
        values = [("mean", p.q_mean[top]), ("logvar", p.q_logvar[top]), ("kl", p.kl[top]),
                  ("reconstruction", out)]
        for l in levels:
            name = hierarchy.areas[l].name
            values += [(f"mean.{name}", p.q_mean[l]),
                       (f"kl.{name}", kl_analytic(be.xp, p.q_mean[l], p.q_logvar[l], p.p_mean[l], p.p_logvar[l]))]
        for key, value in values:
            parts.setdefault(key, []).append(np.asarray(be.to_numpy(value), dtype=np.float64))
    return {key: np.concatenate(value) for key, value in parts.items()}


def amortization_gap(hierarchy: Hierarchy, rule: Any, x: np.ndarray, settings: dict[str, Any],
                     seed: int) -> dict[str, float]:
    """Means over images of ``inference.refined_bounds``: the bound of the
    rule's amortized posterior, of the refined one, and ``L_k`` with each as
    the proposal (``settings``: ``steps``, ``step_size``, ``samples``, ``k``;
    refinement and evaluation noise seeded with ``seed``)."""
    refinement = Refinement(steps=settings["steps"], step_size=settings["step_size"],
                            start=rule.posterior, seed=seed)
    bounds = refined_bounds(hierarchy, x, refinement, likelihood=rule.likelihood,
                            samples=settings["samples"], k=settings["k"], seed=seed,
                            rows=log_likelihood_rows(x.shape[1]))
    return {key: float(np.mean(value)) for key, value in bounds.items()}


def posterior_means(hierarchy: Hierarchy, x: np.ndarray) -> np.ndarray:
    """Posterior means of the top area (N, n_L) for many images: the feedforward
    sweep of a variational model (docs/math.md, "Variational areas"), without
    the decoder pass and likelihood that :func:`posterior` also computes."""
    be = hierarchy.backend
    return np.concatenate([
        np.array(be.to_numpy(feedforward(hierarchy, be.asarray(x[start:start + _ROWS])).h[-1]),
                 dtype=np.float64)
        for start in range(0, x.shape[0], _ROWS)
    ])


def decoded_means(hierarchy: Hierarchy, rule: Any, z: np.ndarray,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Decoded means for top codes ``z``; lower stochastic areas sampled from their
    priors with ``rng``, or at their prior means without it."""
    be = hierarchy.backend
    noise = None
    if rng is not None:
        noise = [be.asarray(rng.standard_normal((z.shape[0], a.size))) if flag else None
                 for a, flag in zip(hierarchy.areas, stochastic_areas(hierarchy))]
    return np.asarray(be.to_numpy(decode(hierarchy, z, noise, likelihood=rule.likelihood)))


def cached(out: Path, label: str, seed: int, key: str, settings: dict[str, Any],
            compute: Callable[[], Any]) -> Any:
    """``compute()`` once per checkpoint and settings, kept in ``LABEL/seedS.generative.json``."""
    stat = checkpoint_path(out / label / f"seed{seed}.h5").stat()
    checkpoint = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    path = out / label / f"seed{seed}.generative.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get("checkpoint") != checkpoint:
        cache = {"checkpoint": checkpoint}
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("settings") == settings:
        return entry["value"]
    value = compute()
    cache[key] = {"settings": settings, "value": value}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(cache, indent=1))
    os.replace(temporary, path)
    return value


def log_likelihood(hierarchy: Hierarchy, rule: Any, x: np.ndarray, k: int, seed: int) -> float:
    """Burda et al.'s importance-weighted ``log p(x)`` with ``k`` samples, averaged over the images ``x``."""
    estimate = log_likelihood_estimate(hierarchy, x, k=k, likelihood=rule.likelihood,
                                       posterior=rule.posterior, seed=seed,
                                       rows=log_likelihood_rows(x.shape[1]))
    return float(np.mean(estimate))


def _render(classes: np.ndarray) -> np.ndarray:
    values = factor_values(classes)
    images = render(classes[:, 0], *values[:, 1:].T)
    return images.reshape(len(classes), -1).astype(np.float32)


def disentanglement(hierarchy: Hierarchy, rule: Any, settings: dict[str, int]) -> dict[str, float]:
    """MIG, the β-VAE metric and DCI of the top area's posterior means on the shapes
    (``settings``: ``images``, ``train_votes``, ``test_votes``, ``pairs``)."""
    def encode(images: np.ndarray) -> np.ndarray:
        return posterior_means(hierarchy, images)

    sample = load_shapes(n=settings["images"], seed=FACTOR_SEED)
    codes = encode(sample.images)
    result = dci(codes, sample.classes)
    return {
        "MIG": mig(codes, sample.classes),
        "beta_vae": beta_vae_score(encode, _render, FACTOR_SIZES, pairs=settings["pairs"],
                                   n_train=settings["train_votes"], n_test=settings["test_votes"]),
        "D": result.disentanglement, "C": result.completeness, "I": result.informativeness,
    }
