"""The report of recurrent-VAE studies (rule ``draw``; ``inference/recurrent.py``):
the importance-weighted test log-likelihood per rule, the KL of each step, the
canvas over the steps (the DRAW figure), reconstructions from the first k
steps' latents with the rest drawn from the prior (the conceptual-compression
figure, Gregor et al. 2016) and the distortion-rate curve they trace.

Every number is computed from the runs' checkpoints (``trained_models.restore``)
and the study's test images; the log-likelihood is kept per run in
``LABEL/seedS.generative.json`` (``trained_models.cached``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import plots
from ..errors import CortexsimError
from ..inference import recurrent
from ..inference.importance import recurrent_log_likelihood
from ..inference.variational import sigmoid
from ..model.hierarchy import Hierarchy
from .options import LOG_LIKELIHOOD_DEFAULTS
from .trained_models import cached, held_out, log_likelihood_rows, restore, study_dataset

__all__ = ["conceptual_compression", "canvases", "recurrent_labels", "recurrent_sections"]

SHOWN = 8          # images in the figures
RATE_IMAGES = 1000  # test images of the KL per step and the distortion-rate curve
NOISE_SEED = 11     # prior draws of the figures and the curve


def recurrent_labels(study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's rule entries by label when its model has a recurrent area."""
    plan = study.get("plan", {})
    if not any(area.get("cell") for area in plan.get("model", {}).get("areas", [])):
        return {}
    return {r["label"]: r for r in plan.get("rules", []) if r.get("rule") == "draw"}


def _mean(xp: Any, rule: Any, canvas: Any) -> Any:
    return sigmoid(xp, canvas) if rule.likelihood == "bernoulli" else canvas


def _pass(hierarchy: Hierarchy, rule: Any, x: np.ndarray, posterior_steps: int | None,
          rng: np.random.Generator) -> recurrent.RecurrentPass:
    """Posterior means for the first ``posterior_steps`` steps, prior draws after them."""
    be = hierarchy.backend
    rows, size = x.shape[0], hierarchy.areas[2].size
    known = rule.steps if posterior_steps is None else posterior_steps
    noise = [be.zeros((rows, size)) if t < known else be.asarray(rng.standard_normal((rows, size)))
             for t in range(rule.steps)]
    return recurrent.forward(hierarchy, be.asarray(x), noise, likelihood=rule.likelihood,
                             prior=rule.prior, posterior_steps=posterior_steps)


def canvases(hierarchy: Hierarchy, rule: Any, x: np.ndarray, seed: int = NOISE_SEED) -> dict[str, np.ndarray]:
    """The likelihood's mean of the canvas after every step, (N, steps, n_0): of
    the reconstructions of ``x`` (posterior means) and of as many samples from the prior."""
    be, xp = hierarchy.backend, hierarchy.backend.xp
    rng = np.random.default_rng(seed)
    out = {}
    for key, known in (("reconstruction", None), ("sample", 0)):
        p = _pass(hierarchy, rule, x, known, rng)
        out[key] = np.stack([be.to_numpy(_mean(xp, rule, c)) for c in p.canvas[1:]], axis=1)
    return out


def conceptual_compression(hierarchy: Hierarchy, rule: Any, x: np.ndarray, shown: int = SHOWN,
                           seed: int = NOISE_SEED) -> dict[str, np.ndarray]:
    """Reconstructions from the first ``k = 0 .. T`` steps' posterior means, the
    rest drawn from the prior, and the curve they trace over images ``x`` (N, n_0).

    Returns ``grid`` (shown, T + 1, n_0), ``kl_steps`` (T,): each step's KL term
    (nats per image, at the posterior means), ``rate`` (T + 1,): their sums over
    the first k steps, and ``distortion`` (T + 1,): ``-log p(x | c_T)`` per image.
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    rng = np.random.default_rng(seed)
    full = _pass(hierarchy, rule, x, None, rng)
    kl_steps = np.array([float(np.mean(be.to_numpy(xp.sum(kl, axis=1)))) for kl in full.kl])
    grid, distortion = [], []
    for k in range(rule.steps + 1):
        p = full if k == rule.steps else _pass(hierarchy, rule, x, k, rng)
        distortion.append(-float(np.mean(be.to_numpy(p.log_px))))
        grid.append(be.to_numpy(_mean(xp, rule, p.out))[:shown])
    return {"grid": np.stack(grid, axis=1), "kl_steps": kl_steps,
            "rate": np.concatenate([[0.0], np.cumsum(kl_steps)]), "distortion": np.array(distortion)}


def _pm(values: Sequence[float]) -> str:
    if not values:
        return "—"
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():.2f}" + (f" ± {a.std(ddof=1):.2f}" if a.size > 1 else "")


def _save(fig: Any, folder: Path, label: str, what: str) -> str:
    name = f"recurrent/{label}.{what}.png"
    plots.save(fig, folder / name)
    return name


def recurrent_sections(study: dict[str, Any], out: Path, runs: Sequence[Any], folder: Path) -> list[str]:
    """Markdown sections (with saved figures) for a recurrent-VAE study; empty otherwise."""
    labels = recurrent_labels(study)
    if not labels:
        return []
    out, folder = Path(out), Path(folder)
    plan = study["plan"]
    ll = plan.get("outputs", {}).get("log_likelihood")
    ll = None if ll is None else {**LOG_LIKELIHOOD_DEFAULTS, **ll}
    (folder / "recurrent").mkdir(parents=True, exist_ok=True)
    notes, figures = [], []
    try:
        dataset = study_dataset(plan["data"])
    except CortexsimError as exc:
        return ["## Recurrent VAE", "", f"Held-out images unavailable ({exc}).", ""]
    shape = tuple(dataset.image_shape)
    stats: dict[str, dict[str, list[float]]] = {}
    curves, kl_lines = {}, {}
    for label, entry in labels.items():
        s = stats.setdefault(label, {"ll": [], "test_loss": []})
        drawn = False
        for run in runs:
            if run.label != label or not run.included:
                continue
            try:
                hierarchy, rule = restore(out, study, label, run.seed)
            except (CortexsimError, OSError) as exc:
                notes.append(f"- `{label}` seed {run.seed}: checkpoint unusable ({exc}).")
                continue
            test_loss = run.metrics.get("test_loss")
            if test_loss is not None and len(test_loss):
                s["test_loss"].append(float(test_loss[-1]))
            x, _ = held_out(plan["data"], run.seed, dataset)
            if ll is not None:
                n = ll["images"] or x.shape[0]
                settings = {"k": ll["k"], "images": n, "seed": run.seed, "steps": rule.steps}
                compute = functools.partial(_log_likelihood, hierarchy, rule, x[:n], ll["k"], run.seed)
                s["ll"].append(cached(out, label, run.seed, "log_likelihood", settings, compute))
            if drawn:
                continue
            drawn = True
            result = conceptual_compression(hierarchy, rule, x[:RATE_IMAGES])
            curves[label] = (result["rate"], result["distortion"])
            kl_lines[label] = result["kl_steps"]
            steps = canvases(hierarchy, rule, x[:SHOWN])
            originals = x[:SHOWN, None, :]
            grid = np.concatenate([originals, result["grid"]], axis=1)
            figures += [f"#### `{label}` (seed {run.seed}, β = {entry.get('beta', 1.0)})", ""]
            for what, images, columns, caption in (
                ("canvas", steps["reconstruction"], [f"t={t + 1}" for t in range(rule.steps)],
                 "the canvas over the steps while reconstructing test images (posterior means)"),
                ("samples", steps["sample"], [f"t={t + 1}" for t in range(rule.steps)],
                 "the canvas over the steps while generating from the prior"),
                ("conceptual", grid, ["data"] + [f"k={k}" for k in range(rule.steps + 1)],
                 "reconstructions from the first k steps' latents, the rest drawn from the prior"),
            ):
                fig = plots.canvas_over_steps(images, shape, columns, title=f"{label}: {caption}")
                figures += [f"![{label}: {caption}]({_save(fig, folder, label, what)})", ""]
    lines = ["## Recurrent VAE", ""]
    head = "| label | β | steps | seeds | final test loss (nats) |"
    rule_line = "| --- | --- | ---: | ---: | ---: |"
    if ll is not None:
        head += f" L_{ll['k']} (nats) |"
        rule_line += " ---: |"
    lines += [head, rule_line]
    for label, entry in labels.items():
        s = stats[label]
        row = (f"| {label} | {entry.get('beta', 1.0)} | {entry.get('steps', 16)} | {len(s['test_loss'])} "
               f"| {_pm(s['test_loss'])} |")
        if ll is not None:
            row += f" {_pm(s['ll'])} |"
        lines.append(row)
    lines.append("")
    if ll is not None:
        lines += [f"L_{ll['k']}: Burda et al.'s importance-weighted log p(x) with k = {ll['k']} samples on "
                  f"{ll['images'] or 'all'} test images (statically binarized with seed + 2); mean ± sd over seeds.", ""]
    if kl_lines:
        lines += ["| label | " + " | ".join(f"KL step {t + 1}" for t in range(len(next(iter(kl_lines.values())))))
                  + " | rate, all steps | distortion, k = 0 | distortion, all steps |",
                  "| --- |" + " ---: |" * (len(next(iter(kl_lines.values()))) + 3)]
        for label, kl in kl_lines.items():
            rate, distortion = curves[label]
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in kl)
                         + f" | {rate[-1]:.2f} | {distortion[0]:.2f} | {distortion[-1]:.2f} |")
        lines += ["", f"KL per step and the distortion-rate curve: the first seed, {RATE_IMAGES} test images, "
                  "posterior means for the first k steps and prior draws for the rest.", ""]
        lines += [f"![KL per step]({_save(plots.kl_per_step(kl_lines), folder, 'all', 'kl_per_step')})", "",
                  f"![distortion against rate]({_save(plots.distortion_rate(curves), folder, 'all', 'distortion_rate')})", ""]
    lines += notes + ([""] if notes else [])
    lines += ["### Canvas over steps and conceptual compression", ""]
    lines += figures or ["No complete run with a checkpoint.", ""]
    return lines


def _log_likelihood(hierarchy: Hierarchy, rule: Any, x: np.ndarray, k: int, seed: int) -> float:
    estimate = recurrent_log_likelihood(hierarchy, x, k=k, steps=rule.steps, likelihood=rule.likelihood,
                                        prior=rule.prior, seed=seed, rows=log_likelihood_rows(x.shape[1]))
    return float(np.mean(estimate))
