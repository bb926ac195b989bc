"""The generative part of a study report: what the variational models of a study
learned, read back from their final checkpoints (docs/studies.md, "Generative studies").

For every rule label whose rule is variational (``elbo``), each complete run's
hierarchy is rebuilt from the plan in ``study.json`` and the parameters of
``LABEL/seedS.ckpt.npz``; encoding and decoding go through the model's own
passes (``inference.variational.forward`` with zero noise for posterior means,
``inference.variational.decode`` for the generative path). Written to
``OUT/report/generative/``, for the first complete seed of each label: samples
from the prior, reconstructions of held-out images, latent traversals of the
top area and its KL per unit; and for the study: a table of the bound, the
importance-weighted test log-likelihood (``outputs.log_likelihood``), and, on
data with ground-truth factors (``shapes``), MIG, the β-VAE metric and DCI per
label, with ``disentanglement_vs_beta.png`` when the labels differ in β.

The slow numbers are cached per run in ``LABEL/seedS.generative.json`` beside
the checkpoint, keyed by their settings and by the checkpoint's size and
modification time, so running the report again costs only the figures.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .analysis.disentanglement import active_units, beta_vae_score, dci, mig
from .analysis.learning_curves import mean_and_sd
from .checkpoint import load_checkpoint
from .data import binarize, load
from .data.shapes import FACTOR_SIZES, factor_values, load_shapes, render
from .errors import CortexsimError
from .hierarchy import Hierarchy, build
from .inference import feedforward, log_likelihood_estimate
from .inference.variational import decode, forward, sigmoid, stochastic_areas, top_prior
from .rules import RULES
from .runs import checkpoint_path

__all__ = [
    "DISENTANGLEMENT_DEFAULTS", "LOG_LIKELIHOOD_DEFAULTS", "generative_sections", "held_out",
    "log_likelihood_rows", "posterior", "posterior_means", "restore", "variational_labels",
]

LOG_LIKELIHOOD_DEFAULTS = {"k": 5000, "images": 1000}  # images = 0: the whole test set
DISENTANGLEMENT_DEFAULTS = {"images": 5000, "train_votes": 1000, "test_votes": 500, "pairs": 64}
FACTOR_DATASETS = ("shapes",)  # datasets whose factors can be rendered on demand
FACTOR_SEED = 1                # seed of the shapes sample the codes are scored on
SAMPLES, RECONSTRUCTED, TRAVERSED = 64, 10, 10
TRAVERSAL = np.linspace(-3.0, 3.0, 9)  # prior standard deviations from the prior mean
KL_IMAGES = 2000               # held-out images for the KL per unit and active units
_ROWS = 1000                   # images per encoder pass


def log_likelihood_rows(n_features: int) -> int:
    """Rows (images x samples) per pass of the log-likelihood estimate: about 64 MB of input."""
    return max(1000, 16_000_000 // int(n_features))


def variational_labels(study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's rule entries whose rule is variational, by label (study order)."""
    rules = study.get("plan", {}).get("rules", [])
    return {r["label"]: r for r in rules
            if getattr(RULES.get(r.get("rule")), "mode", None) == "variational"}


def _settings(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("label", "rule", "optimizer")}


def restore(out: Path, study: dict[str, Any], label: str, seed: int) -> tuple[Hierarchy, Any]:
    """The trained hierarchy (NumPy) and a fresh rule object of one run, from its checkpoint."""
    plan = study["plan"]
    entry = variational_labels(study)[label]
    rule = RULES[entry["rule"]](**_settings(entry))
    hierarchy = build(plan["model"], backend="numpy", dtype=plan["schedule"]["dtype"], seed=seed)
    state, _ = load_checkpoint(checkpoint_path(out / label / f"seed{seed}.h5"))
    hierarchy.load_parameters(state["parameters"])
    return hierarchy, rule


def _dataset(data: dict[str, Any]) -> Any:
    """The study's dataset, loaded as the runner loads it (``data.n``, ``data.layout``)."""
    extra = {key: data[key] for key in ("n", "layout") if key in data}
    return load(data["name"], data_dir=data.get("data_dir"), **extra)


def held_out(data: dict[str, Any], seed: int, dataset: Any = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """The test images a run was evaluated on (binarized as the runner does: one
    static sample with ``seed + 2``) and the image shape."""
    dataset = dataset if dataset is not None else _dataset(data)
    x = dataset.x_test
    mode = data.get("binarize")
    if mode is not None:
        x = binarize(x, "static" if mode == "dynamic" else mode, seed=seed + 2)
    return x, tuple(dataset.image_shape)


def posterior(hierarchy: Hierarchy, rule: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Posterior means of the top area and what comes with them, from ``forward``
    with zero noise (every stochastic area at its posterior mean).

    Returns ``mean``, ``logvar`` (N, n_L), ``kl`` (N, n_L): the closed-form KL of
    each unit to the top prior, and ``reconstruction`` (N, n_0): the mean of
    ``p(x | z)`` at the posterior means.
    """
    be = hierarchy.backend
    top = len(hierarchy.areas) - 1
    parts: dict[str, list[np.ndarray]] = {"mean": [], "logvar": [], "kl": [], "reconstruction": []}
    for start in range(0, x.shape[0], _ROWS):
        rows = be.asarray(x[start:start + _ROWS])
        noise = [be.zeros((rows.shape[0], a.size)) if flag else None
                 for a, flag in zip(hierarchy.areas, stochastic_areas(hierarchy))]
        p = forward(hierarchy, rows, noise, posterior=rule.posterior, likelihood=rule.likelihood,
                    analytic_kl=True)
        out = sigmoid(be.xp, p.out) if rule.likelihood == "bernoulli" else p.out
        for key, value in (("mean", p.q_mean[top]), ("logvar", p.q_logvar[top]),
                           ("kl", p.kl[top]), ("reconstruction", out)):
            parts[key].append(np.asarray(be.to_numpy(value), dtype=np.float64))
    return {key: np.concatenate(value) for key, value in parts.items()}


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


def _decode(hierarchy: Hierarchy, rule: Any, z: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Decoded means for top codes ``z``; lower stochastic areas sampled from their
    priors with ``rng``, or at their prior means without it."""
    be = hierarchy.backend
    noise = None
    if rng is not None:
        noise = [be.asarray(rng.standard_normal((z.shape[0], a.size))) if flag else None
                 for a, flag in zip(hierarchy.areas, stochastic_areas(hierarchy))]
    return np.asarray(be.to_numpy(decode(hierarchy, z, noise, likelihood=rule.likelihood)))


# -- cache ----------------------------------------------------------------------------
def _cached(out: Path, label: str, seed: int, key: str, settings: dict[str, Any],
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


# -- numbers ---------------------------------------------------------------------------
def _log_likelihood(hierarchy: Hierarchy, rule: Any, x: np.ndarray, k: int, seed: int) -> float:
    estimate = log_likelihood_estimate(hierarchy, x, k=k, likelihood=rule.likelihood,
                                       posterior=rule.posterior, seed=seed,
                                       rows=log_likelihood_rows(x.shape[1]))
    return float(np.mean(estimate))


def _render(classes: np.ndarray) -> np.ndarray:
    values = factor_values(classes)
    images = render(classes[:, 0], *values[:, 1:].T)
    return images.reshape(len(classes), -1).astype(np.float32)


def _disentanglement(hierarchy: Hierarchy, rule: Any, settings: dict[str, int]) -> dict[str, float]:
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


# -- markdown helpers -------------------------------------------------------------------
def _pm(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    mean, sd = mean_and_sd([np.nan if x is None else x * scale for x in values])
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _file(label: str, what: str) -> str:
    return f"generative/{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}_{what}.png"


def _figures(folder: Path, label: str, seed: int, hierarchy: Hierarchy, rule: Any,
             x: np.ndarray | None, shape: tuple[int, ...], post: dict[str, np.ndarray] | None) -> list[str]:
    """The four figures of one run; returns their Markdown lines."""
    lines, top = [], hierarchy.top
    mean, logvar = top_prior(hierarchy)
    sd = float(np.exp(0.5 * logvar))
    rng = np.random.default_rng(seed)
    z = mean + sd * rng.standard_normal((SAMPLES, top.size))
    figures = [("samples", "samples from the prior",
                plots.samples_grid(_decode(hierarchy, rule, z, rng), shape, columns=8,
                                   title=f"{label} (seed {seed}): samples from the prior"))]
    if post is not None and x is not None:
        kl = post["kl"].mean(axis=0)
        active = active_units(post["mean"])
        units = np.argsort(-kl, kind="stable")[:TRAVERSED]
        base = np.repeat(post["mean"][:1], len(TRAVERSAL), axis=0)
        rows = []
        for unit in units:
            codes = base.copy()
            codes[:, unit] = mean + sd * TRAVERSAL
            rows.append(_decode(hierarchy, rule, codes))
        figures += [
            ("reconstructions", "reconstructions of held-out images",
             plots.reconstructions(x[:RECONSTRUCTED], post["reconstruction"][:RECONSTRUCTED], shape,
                                   title=f"{label} (seed {seed}): held-out images and reconstructions")),
            ("traversals", "latent traversals",
             plots.latent_traversals(np.stack(rows), shape, units=units, values=mean + sd * TRAVERSAL,
                                     kl=kl[units], title=f"{label} (seed {seed}): latent traversals of "
                                     f"{top.name} from the posterior mean of test image 0")),
            ("kl_per_unit", "KL per latent unit",
             plots.kl_per_unit(kl, active, title=f"{label} (seed {seed}): KL of each unit of "
                               f"{top.name} to its prior, {post['kl'].shape[0]} test images")),
        ]
    for what, caption, figure in figures:
        plots.save(figure, folder / _file(label, what))
        lines += [f"![{label}: {caption}]({_file(label, what)})", ""]
    return lines


# -- the section ------------------------------------------------------------------------
def generative_sections(study: dict[str, Any], out: Path, runs: Sequence[Any], folder: Path) -> list[str]:
    """Markdown sections (with saved figures) for the variational rules of a study;
    empty when it has none. ``runs`` are the report's ``RunData`` (label, seed,
    included, metrics)."""
    labels = variational_labels(study)
    if not labels:
        return []
    out, folder = Path(out), Path(folder)
    plan = study["plan"]
    options = plan.get("outputs", {})
    ll = options.get("log_likelihood")
    ll = None if ll is None else {**LOG_LIKELIHOOD_DEFAULTS, **ll}
    dis = options.get("disentanglement", {})
    dis = None if dis is False or plan["data"]["name"] not in FACTOR_DATASETS else {**DISENTANGLEMENT_DEFAULTS, **dis}
    (folder / "generative").mkdir(parents=True, exist_ok=True)
    for stale in (folder / "generative").glob("*.png"):
        stale.unlink()
    notes: list[str] = []
    try:
        dataset = _dataset(plan["data"])
    except CortexsimError as exc:
        dataset = None
        notes.append(f"- Held-out images unavailable ({exc}): no reconstructions, traversals, "
                     f"KL per unit or log-likelihood.")
    pixels = int(plan["model"]["areas"][0]["size"])
    side = round(float(np.sqrt(pixels)))
    shape = tuple(dataset.image_shape) if dataset is not None else (side, pixels // side)
    per_label: dict[str, dict[str, list[Any]]] = {}
    figure_lines: list[str] = []
    for label in labels:
        stats = per_label.setdefault(label, {k: [] for k in ("test_loss", "ll", "kl", "active", "dis")})
        drawn = False
        for run in runs:
            if run.label != label or not run.included:
                continue
            seed = run.seed
            try:
                hierarchy, rule = restore(out, study, label, seed)
            except (CortexsimError, OSError) as exc:
                notes.append(f"- `{label}` seed {seed}: checkpoint unusable ({exc}).")
                continue
            test_loss = run.metrics.get("test_loss")
            stats["test_loss"].append(float(test_loss[-1]) if test_loss is not None and len(test_loss) else None)
            x = post = None
            if dataset is not None:
                x, _ = held_out(plan["data"], seed, dataset)
                post = posterior(hierarchy, rule, x[:KL_IMAGES])
                stats["kl"].append(float(post["kl"].mean(axis=0).sum()))
                stats["active"].append(int(active_units(post["mean"]).sum()))
                if ll is not None:
                    n = ll["images"] or x.shape[0]
                    settings = {"k": ll["k"], "images": n, "seed": seed}
                    compute = functools.partial(_log_likelihood, hierarchy, rule, x[:n], ll["k"], seed)
                    stats["ll"].append(_cached(out, label, seed, "log_likelihood", settings, compute))
            if dis is not None:
                compute = functools.partial(_disentanglement, hierarchy, rule, dis)
                stats["dis"].append(_cached(out, label, seed, "disentanglement", dis, compute))
            if not drawn:
                figure_lines += [f"#### `{label}` (seed {seed})", ""]
                figure_lines += _figures(folder, label, seed, hierarchy, rule, x, shape, post)
                drawn = True
    lines = ["## Generative models", ""]
    lines += _tables(labels, per_label, ll, dis, shape, folder)
    lines += notes + ([""] if notes else [])
    lines += ["### Samples, reconstructions, latent traversals and KL per unit", ""]
    lines += figure_lines or ["No complete run with a checkpoint.", ""]
    lines += _how(ll, dis)
    return lines


def _tables(labels: dict[str, dict[str, Any]], stats: dict[str, dict[str, list[Any]]],
            ll: dict[str, int] | None, dis: dict[str, int] | None, shape: tuple[int, ...],
            folder: Path) -> list[str]:
    beta = {label: float(entry.get("beta", 1.0)) for label, entry in labels.items()}
    ll_head = "" if ll is None else f" test log-likelihood, IWAE k = {ll['k']} (nats) |"
    lines = [
        "| rule label | β | k | seeds | final test loss (nats) |" + ll_head
        + " KL of the top area (nats) | active units |",
        "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if ll else "") + " ---: | ---: |",
    ]
    for label, entry in labels.items():
        s = stats[label]
        cells = [label, f"{beta[label]:g}", str(entry.get("k", 1)), str(len(s["test_loss"])),
                 _pm(s["test_loss"])]
        cells += [_pm(s["ll"])] if ll is not None else []
        cells += [_pm(s["kl"]), _pm(s["active"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if dis is None:
        return lines
    lines += [
        "### Disentanglement (ground-truth factors of the shapes)",
        "",
        "| rule label | β | seeds | MIG | β-VAE metric (%) | DCI disentanglement "
        "| DCI completeness | DCI informativeness |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in labels:
        scores = stats[label]["dis"]
        cells = [label, f"{beta[label]:g}", str(len(scores)), _pm([d["MIG"] for d in scores], 3),
                 _pm([d["beta_vae"] for d in scores], 1, 100.0)]
        cells += [_pm([d[key] for d in scores], 3) for key in ("D", "C", "I")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    by_beta: dict[float, str] = {}
    for label in labels:
        if stats[label]["dis"]:
            by_beta.setdefault(beta[label], label)
    distinct = len(by_beta) >= 2 and len(by_beta) == sum(bool(stats[l]["dis"]) for l in labels)
    if distinct:
        results = {name: {beta[l]: [d[key] for d in stats[l]["dis"]] for l in labels if stats[l]["dis"]}
                   for name, key in (("MIG", "MIG"), ("β-VAE metric", "beta_vae"),
                                     ("DCI disentanglement", "D"))}
        plots.save(plots.disentanglement_vs_beta(results), folder / "generative" / "disentanglement_vs_beta.png")
        lines += ["![Disentanglement against β](generative/disentanglement_vs_beta.png)", ""]
    return lines


def _how(ll: dict[str, int] | None, dis: dict[str, int] | None) -> list[str]:
    lines = [
        "### How the generative numbers were computed",
        "",
        "Each complete run's model is rebuilt from `study.json` and the parameters of its "
        "checkpoint `LABEL/seedS.ckpt.npz` (`cortexsim.report_generative.restore`). Means ± sample "
        "sd over complete seeds.",
        "",
        "- **Final test loss**: the last `test_loss` of the recording, the rule's negative bound "
        "(its own k) on the held-out images.",
        f"- **KL of the top area** and **active units**: the closed-form KL of each top unit to its "
        f"prior at the posterior of up to {KL_IMAGES} test images (zero noise through `forward`), summed "
        "over units; a unit is active when the variance of its posterior mean over those images "
        "exceeds 0.01 (Burda et al. 2016; `analysis.active_units`).",
        "- **Figures** (first complete seed): 64 decoded samples from the prior (lower stochastic "
        "areas sampled from theirs, generator seeded with the run's seed; Bernoulli means shown); "
        f"the first {RECONSTRUCTED} test images and the decoded posterior means; traversals of the "
        f"{TRAVERSED} top units of largest KL, each set to the prior mean + (-3 .. 3) prior sd from "
        "the posterior mean of test image 0, the others kept (Higgins et al. 2017).",
    ]
    if ll is not None:
        lines.append(
            f"- **Test log-likelihood**: Burda et al.'s `L_k = log (1/k) sum_j p(x, z_j) / q(z_j | x)` "
            f"with k = {ll['k']} on the first {ll['images'] or 'all'} test images "
            "(`inference.log_likelihood_estimate`, noise seeded with the run's seed, "
            "`rows = report_generative.log_likelihood_rows(n_pixels)`), averaged over images; "
            "set with `[outputs] log_likelihood = {k = ..., images = ...}`; cached in "
            "`LABEL/seedS.generative.json`.")
    if dis is not None:
        lines.append(
            f"- **Disentanglement**: codes are the top area's posterior means of {dis['images']} shapes "
            f"images drawn with seed {FACTOR_SEED} (`data.load_shapes`) against their five factors: MIG "
            "(20 bins), DCI (Lasso); the β-VAE metric from "
            f"{dis['train_votes']} training and {dis['test_votes']} test votes of {dis['pairs']} "
            "pairs each, rendered on demand (`analysis.beta_vae_score`, seed 0). Set with "
            "`[outputs] disentanglement = {images, train_votes, test_votes, pairs}`; docs/disentanglement.md.")
    return lines + [""]
