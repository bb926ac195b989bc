"""The generative part of a study report: the Markdown section and figures on what
the variational models of a study learned (docs/studies.md, "Generative studies").

The models and their numbers come from ``trained_models`` (each complete run
rebuilt from its final checkpoint; slow numbers cached per run). Written to
``OUT/report/generative/``, for the first complete seed of each label: samples
from the prior, reconstructions of held-out images, latent traversals of the
top area and its KL per unit; and for the study: a table of the bound, the
importance-weighted test log-likelihood (``outputs.log_likelihood``), and, on
data with ground-truth factors (``shapes``), MIG, the β-VAE metric and DCI per
label, with ``disentanglement_vs_beta.png`` when the labels differ in β.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..analysis.disentanglement import active_units
from ..analysis.learning_curves import mean_and_sd
from ..errors import CortexsimError
from ..model.hierarchy import Hierarchy
from ..inference.variational import top_prior
from .options import DISENTANGLEMENT_DEFAULTS, LOG_LIKELIHOOD_DEFAULTS, REFINEMENT_DEFAULTS
from .trained_models import (
    FACTOR_DATASETS,
    FACTOR_SEED,
    amortization_gap,
    cached,
    decoded_means,
    disentanglement,
    held_out,
    log_likelihood,
    posterior,
    restore,
    study_dataset,
    variational_labels,
)

__all__ = ["generative_sections"]

SAMPLES, RECONSTRUCTED, TRAVERSED = 64, 10, 10
TRAVERSAL = np.linspace(-3.0, 3.0, 9)  # prior standard deviations from the prior mean
KL_IMAGES = 2000               # held-out images for the KL per unit and active units


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
                plots.samples_grid(decoded_means(hierarchy, rule, z, rng), shape, columns=8,
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
            rows.append(decoded_means(hierarchy, rule, codes))
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
    gap = options.get("refinement")
    gap = None if gap is None else {**REFINEMENT_DEFAULTS, **gap}
    dis = options.get("disentanglement", {})
    dis = None if dis is False or plan["data"]["name"] not in FACTOR_DATASETS else {**DISENTANGLEMENT_DEFAULTS, **dis}
    (folder / "generative").mkdir(parents=True, exist_ok=True)
    for stale in (folder / "generative").glob("*.png"):
        stale.unlink()
    notes: list[str] = []
    try:
        dataset = study_dataset(plan["data"])
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
        stats = per_label.setdefault(label, {k: [] for k in ("test_loss", "ll", "kl", "active", "dis", "gap")})
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
                for key in post:
                    if key.startswith("kl."):  # per stochastic level
                        name = key[3:]
                        stats.setdefault(f"kl.{name}", []).append(float(post[key].mean(axis=0).sum()))
                        stats.setdefault(f"active.{name}", []).append(
                            int(active_units(post[f"mean.{name}"]).sum()))
                if gap is not None:
                    n = gap["images"] or x.shape[0]
                    settings = {**gap, "images": n, "seed": seed}
                    compute = functools.partial(amortization_gap, hierarchy, rule, x[:n], gap, seed)
                    stats["gap"].append(cached(out, label, seed, "amortization_gap", settings, compute))
                if ll is not None:
                    n = ll["images"] or x.shape[0]
                    settings = {"k": ll["k"], "images": n, "seed": seed}
                    compute = functools.partial(log_likelihood, hierarchy, rule, x[:n], ll["k"], seed)
                    stats["ll"].append(cached(out, label, seed, "log_likelihood", settings, compute))
            if dis is not None:
                compute = functools.partial(disentanglement, hierarchy, rule, dis)
                stats["dis"].append(cached(out, label, seed, "disentanglement", dis, compute))
            if not drawn:
                figure_lines += [f"#### `{label}` (seed {seed})", ""]
                figure_lines += _figures(folder, label, seed, hierarchy, rule, x, shape, post)
                drawn = True
    lines = ["## Generative models", ""]
    lines += _tables(labels, per_label, ll, dis, shape, folder)
    lines += _levels(labels, per_label)
    lines += _gap_table(labels, per_label, gap)
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


def _levels(labels: dict[str, dict[str, Any]], stats: dict[str, dict[str, list[Any]]]) -> list[str]:
    """KL and active units of every stochastic level, where a model has more than one."""
    names = list(dict.fromkeys(key[3:] for s in stats.values() for key in s if key.startswith("kl.")))
    if len(names) < 2:
        return []
    lines = ["### Every stochastic level", "",
             "| rule label | seeds | " + " | ".join(f"KL {n} (nats) | active {n}" for n in names) + " |",
             "| --- | ---: |" + " ---: | ---: |" * len(names)]
    for label in labels:
        s = stats[label]
        cells = [label, str(len(s.get(f"kl.{names[0]}", [])))]
        for n in names:
            cells += [_pm(s.get(f"kl.{n}", [])), _pm(s.get(f"active.{n}", []), 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _gap_table(labels: dict[str, dict[str, Any]], stats: dict[str, dict[str, list[Any]]],
               gap: dict[str, Any] | None) -> list[str]:
    if gap is None:
        return []
    lines = [
        "### The amortization gap closed by iterative inference", "",
        f"Per test image, {gap['steps']} Adam steps of {gap['step_size']:g} on its own posterior "
        f"(`inference.refine`), {gap['images'] or 'all'} test images, {gap['samples']} samples per ELBO, "
        f"k = {gap['k']} per `L_k`; means over images, then ± sd over seeds (nats).", "",
        "| rule label | seeds | ELBO, amortized q | ELBO, refined q | gap closed | "
        "L_k, amortized proposal | L_k, refined proposal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in labels:
        runs = stats[label]["gap"]
        cells = [label, str(len(runs))]
        cells += [_pm([r[key] for r in runs]) for key in ("amortized_elbo", "refined_elbo")]
        cells += [_pm([r["refined_elbo"] - r["amortized_elbo"] for r in runs])]
        cells += [_pm([r[key] for r in runs]) for key in ("amortized_iw", "refined_iw")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _how(ll: dict[str, int] | None, dis: dict[str, int] | None) -> list[str]:
    lines = [
        "### How the generative numbers were computed",
        "",
        "Each complete run's model is rebuilt from `study.json` and the parameters of its "
        "checkpoint `LABEL/seedS.ckpt.npz` (`cortexsim.report.trained_models.restore`). Means ± sample "
        "sd over complete seeds.",
        "",
        "- **Final test loss**: the last `test_loss` of the recording, the rule's negative bound "
        "(its own k) on the held-out images.",
        f"- **KL of the top area** and **active units**: the closed-form KL of each top unit to its "
        f"prior at the posterior of up to {KL_IMAGES} test images (zero noise through `forward`), summed "
        "over units; a unit is active when the variance of its posterior mean over those images "
        "exceeds 0.01 (Burda et al. 2016; `analysis.active_units`). On a model with several "
        "stochastic levels the same per level, each level's prior predicted from the posterior mean "
        "of the level above.",
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
            "`rows = trained_models.log_likelihood_rows(n_pixels)`), averaged over images; "
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
