"""Declarations of the study's runs: one function per kind of run, used by :func:`~asymlib.pipeline.build_graph`
and by the notebooks' modules to find the runs whose results they show.

Each ``*_spec`` function returns the :class:`~asymlib.pipeline.graph.RunSpec` of one run; each ``declare_*``
function adds a notebook's runs to a graph.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import DiscriminatorStudyConfig, Profile
from ..metrics.registry import get_metric_preset
from ..runs import to_jsonable
from ..sr.config import DiscriminatorConfig, SRStudyConfig, SRTrainConfig, get_setting
from .graph import (METRIC_EXECUTION_FIELDS, NR_EXECUTION_FIELDS, SR_EXECUTION_FIELDS, RunGraph, RunSpec)

__all__ = ["metric_train_spec", "metric_eval_spec", "stage1_spec", "stage2_spec", "calibration_spec",
           "sr_eval_spec", "discriminator_spec", "nr_spec", "declare_metrics", "declare_sr",
           "declare_discriminators", "declare_gan_init", "declare_analysis", "analysis_spec", "gan_source_spec",
           "metric_weights_label", "discriminator_identity",
           "ADV_SETTING", "BASE_SETTING"]

ADV_SETTING, BASE_SETTING = "rec+perceptual+adv", "rec+perceptual"


def _strip(cfg: Any, drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in to_jsonable(cfg).items() if k not in drop}


def discriminator_identity(dc: DiscriminatorConfig, adversarial: bool) -> dict[str, Any]:
    """``dc`` as it enters a run's identity.

    ``patch_stage`` and ``relativistic_mean`` were added to :class:`~asymlib.sr.config.DiscriminatorConfig` when
    the patch head moved from the deepest stride-16 map to the last map and the relativistic mean from the
    per-position batch mean to BasicSR's mean over all elements. Each enters only where it can change the
    result: ``relativistic_mean`` in an adversarial run whose head is not ``vanilla`` (a global logit's batch
    mean is the mean of all its elements), ``patch_stage`` in an adversarial ``patch`` run. So runs with a
    patch discriminator get new keys, while runs without a discriminator (stage 1, L1/perceptual) and runs
    with a vanilla head keep theirs.
    """
    out = to_jsonable(dc)
    if not (adversarial and dc.head == "patch"):
        out.pop("patch_stage", None)
    if not (adversarial and dc.head != "vanilla"):
        out.pop("relativistic_mean", None)
    return out


def _train_identity(cfg: SRTrainConfig) -> dict[str, Any]:
    """An SR training configuration as it enters a run's identity (execution fields left out)."""
    out = _strip(cfg, SR_EXECUTION_FIELDS)
    out["discriminator"] = discriminator_identity(cfg.discriminator, cfg.adversarial)
    return out


def _uses_synthetic(profile: Profile) -> bool:
    ms = profile.metric_study
    return ms.train_set == "synthetic" or "synthetic" in ms.eval_sets


def metric_weights_label(metric: str, profile: Profile, init: str | None = None) -> str:
    """Backbone weight source of a metric run: ``random`` for VGG-16-R, else ``init`` or the profile's."""
    if get_metric_preset(metric).weights == "random":
        return "random"
    return init or profile.weights


# ----------------------------------------------------------------------------------------------
# Notebook 01: metrics
# ----------------------------------------------------------------------------------------------
def metric_train_spec(profile: Profile, metric: str, init: str | None = None, gan_source: str | None = None,
                      notebooks: tuple[str, ...] = ("01",), name: str | None = None) -> RunSpec:
    """Build a metric and train its alpha/beta (backbone frozen); writes ``metric_weights.pt``.

    ``init`` replaces the profile's backbone weights (``random``, ``imagenet``, ``gan``); ``gan`` needs the key of
    the SR run whose discriminator backbone it reads (``gan_source``).
    """
    preset = get_metric_preset(metric)
    ms = profile.metric_study
    weights = metric_weights_label(metric, profile, init)
    identity: dict[str, Any] = {"metric": metric, "backbone": preset.backbone, "weights": weights,
                                "trainable": preset.trainable_weights, "seed": profile.seed}
    if preset.trainable_weights:
        identity["train"] = _strip(ms.train, METRIC_EXECUTION_FIELDS)
        identity["train_set"] = ms.train_set
        if ms.train_set == "synthetic":
            identity["synthetic"] = to_jsonable(ms.synthetic)
    deps = (gan_source,) if weights == "gan" and gan_source else ()
    # the name derives from the identity, so a run has one key whichever notebook declares it first
    default = name or (metric if weights == metric_weights_label(metric, profile) else f"{metric}-{weights}")
    return RunSpec("metric", "metric_train", default, identity, deps, notebooks,
                   iterations=ms.train.iterations if preset.trainable_weights else 0,
                   cost="metric_train" if preset.trainable_weights else "")


def metric_eval_spec(profile: Profile, train: RunSpec) -> RunSpec:
    """Quality predictions of a trained metric on the profile's FR benchmarks (statistics are computed when
    tables are built, so the bootstrap count is not part of the run)."""
    ms = profile.metric_study
    identity: dict[str, Any] = {"eval_sets": list(ms.eval_sets)}
    if "synthetic" in ms.eval_sets:
        identity["synthetic"] = to_jsonable(ms.synthetic)
    return RunSpec("metric_eval", "metric_eval", train.name, identity, (train.key,), train.notebooks, cost="eval")


def declare_metrics(graph: RunGraph) -> None:
    for metric in graph.profile.metric_study.metrics:
        key = graph.add(metric_train_spec(graph.profile, metric))
        graph.add(metric_eval_spec(graph.profile, graph[key]))


# ----------------------------------------------------------------------------------------------
# Notebook 02: SR stage 1, stage 2, calibration, evaluation
# ----------------------------------------------------------------------------------------------
def _sr_base(profile: Profile, cfg: SRStudyConfig) -> dict[str, Any]:
    base = {"sr_model": cfg.sr_model, "sr_preset": cfg.sr_preset, "scale": cfg.scale, "seed": profile.seed,
            "data": {"source": cfg.data.source, "train": cfg.data.train}}
    if cfg.sr_init != "default":  # absent at the default so that the paper's keys stay as they were
        base["sr_init"] = cfg.sr_init
    return base


def stage1_spec(profile: Profile, notebooks: tuple[str, ...] = ("02",)) -> RunSpec:
    """L1-only pre-training of the generator."""
    cfg = profile.sr
    identity = {**_sr_base(profile, cfg), "stage": "stage1", "train": _train_identity(cfg.stage1)}
    return RunSpec("sr", "sr_train", "stage1-l1", identity, (), notebooks, iterations=cfg.stage1.iterations,
                   cost="sr_stage1", params={"train": cfg.stage1, "label": "stage1 (L1)", "stage": "stage1"})


def stage2_spec(profile: Profile, graph: RunGraph, setting: str, metric: str, train: SRTrainConfig | None = None,
                train_seed: int | None = None, name: str | None = None, notebooks: tuple[str, ...] = ("02",),
                roles: tuple[str, ...] = (), label: str | None = None, grad_norms: bool = False) -> RunSpec:
    """A stage-2 run from stage 1's EMA weights: Eq. 1 with ``train``'s loss weights (default: ``setting`` applied
    to the profile's stage-2 configuration) and the ``metric`` perceptual term."""
    cfg = profile.sr
    tcfg = train if train is not None else get_setting(setting).apply(cfg.stage2)
    seed = profile.seed if train_seed is None else int(train_seed)
    s1 = graph.add(stage1_spec(profile, notebooks))
    deps = [s1]
    if cfg.alpha_beta == "trained":
        deps.append(graph.add(metric_train_spec(profile, metric, notebooks=notebooks)))
    identity = {**_sr_base(profile, cfg), "stage": "stage2", "metric": metric,
                "metric_weights": metric_weights_label(metric, profile), "alpha_beta": cfg.alpha_beta,
                "train": _train_identity(tcfg), "train_seed": seed}
    display = get_metric_preset(metric).display
    return RunSpec("sr", "sr_train", name or f"{setting}-{metric}", identity, tuple(deps), notebooks,
                   iterations=tcfg.iterations, cost="sr_stage2_adv" if tcfg.adversarial else "sr_stage2",
                   roles=roles,
                   params={"train": tcfg, "stage": "stage2", "setting": setting, "metric": metric, "seed": seed,
                           "label": label or f"{setting} / {display}", "grad_norms": grad_norms})


def calibration_spec(profile: Profile, evaluator: str, notebooks: tuple[str, ...] = ("02",)) -> RunSpec:
    """The Appendix D fit of one NR evaluator on the calibration set."""
    cal = profile.sr.calibration
    identity = {"evaluator": evaluator, "calibration": to_jsonable(cal)}
    return RunSpec("calibration", "calibration", evaluator, identity, (), notebooks, cost="eval")


def sr_eval_spec(profile: Profile, source: RunSpec | None, notebooks: tuple[str, ...] = ("02",)) -> RunSpec:
    """Validation images super-resolved by ``source``'s EMA generator (``None``: the HR images themselves),
    saved as 8-bit PNG; evaluators score them when tables are built."""
    cfg = profile.sr
    d = cfg.data
    identity = {"scale": cfg.scale, "sr_model": cfg.sr_model, "sr_preset": cfg.sr_preset,
                "val": {"source": d.source, "val": d.val, "val_crop": d.val_crop, "max_val_images": d.max_val_images,
                        "tile": d.tile, "tile_overlap": d.tile_overlap}}
    if source is None:
        return RunSpec("sr_eval", "sr_eval", "HR", identity, (), notebooks, cost="eval")
    return RunSpec("sr_eval", "sr_eval", source.name, identity, (source.key,), notebooks, cost="eval")


def declare_sr(graph: RunGraph) -> None:
    from ..sr.evaluators import get_evaluator_spec

    profile, cfg = graph.profile, graph.profile.sr
    s1 = graph.add(stage1_spec(profile))
    graph.add(sr_eval_spec(profile, None))
    graph.add(sr_eval_spec(profile, graph[s1]))
    for setting in cfg.settings:
        for metric in cfg.metrics:
            key = graph.add(stage2_spec(profile, graph, setting, metric))
            graph.add(sr_eval_spec(profile, graph[key]))
    for ev in cfg.evaluators:
        if get_evaluator_spec(ev).kind == "nr":
            graph.add(calibration_spec(profile, ev))


# ----------------------------------------------------------------------------------------------
# Notebook 04: discriminators
# ----------------------------------------------------------------------------------------------
def discriminator_spec(profile: Profile, graph: RunGraph, head: str, backbone: str | None, lambda_adv: float,
                       seed: int, dcfg: DiscriminatorStudyConfig | None = None, notebooks: tuple[str, ...] = ("04",),
                       roles: tuple[str, ...] = ()) -> RunSpec:
    """A run of the discriminator study: ``head="none"`` is the base without discriminator (notebook 02's
    ``rec+perceptual`` run with the study's metric), otherwise L1 + metric + relativistic GAN with a
    ``head``/``backbone`` discriminator at ``lambda_adv``. A run equal to a notebook-02 run is that run."""
    dcfg = dcfg or profile.discriminators
    adversarial = head != "none"
    setting = ADV_SETTING if adversarial else BASE_SETTING
    tcfg = get_setting(setting).apply(profile.sr.stage2, tuple(dcfg.lambdas))  # type: ignore[arg-type]
    if dcfg.train_overrides:
        tcfg = tcfg.replace(**dict(dcfg.train_overrides))
    name = f"{setting}-{dcfg.metric}"
    if adversarial:
        # the profile's discriminator settings (lr, patch_stage, relativistic_mean) with this cell's network
        disc = dataclasses.replace(profile.sr.stage2.discriminator, backbone=str(backbone), head=head,
                                   spectral_norm=dcfg.spectral_norm)
        tcfg = tcfg.replace(lambda_adv=float(lambda_adv), discriminator=disc)
        default = get_setting(ADV_SETTING).apply(profile.sr.stage2)
        if tcfg != default or seed != profile.seed:
            name = f"disc-{head}-{backbone}-adv{lambda_adv:.0e}-s{seed}"
    from ..backbones import get_backbone_spec

    shown = "w/o (base)" if backbone is None else get_backbone_spec(backbone).display
    label = f"D {head}/{shown} lambda3={lambda_adv:g} seed={seed}"
    return stage2_spec(profile, graph, setting, dcfg.metric, train=tcfg, train_seed=seed, name=name,
                       notebooks=notebooks, roles=roles, label=label, grad_norms=adversarial)


def declare_discriminators(graph: RunGraph) -> None:
    profile, dcfg = graph.profile, graph.profile.discriminators
    lam3 = float(dcfg.lambdas[2])
    cells: list[tuple[str, str | None, float, int, str]] = [("none", None, 0.0, profile.seed, "base")]
    cells += [(h, b, lam3, profile.seed, "ablation") for h in dcfg.heads for b in dcfg.backbones]
    cells += [(dcfg.sweep_head, b, float(lam), profile.seed + i, "sweep") for b in dcfg.backbones
              for lam in dcfg.sweep_lambda_adv for i in range(dcfg.seeds)]
    for head, backbone, lam, seed, role in cells:
        key = graph.add(discriminator_spec(profile, graph, head, backbone, lam, seed, roles=(role,)))
        graph.add(sr_eval_spec(profile, graph[key], notebooks=("04",)))


# ----------------------------------------------------------------------------------------------
# Notebook 03: GAN initialization
# ----------------------------------------------------------------------------------------------
def gan_source_spec(profile: Profile, graph: RunGraph, backbone: str) -> RunSpec:
    """The SR run whose discriminator backbone is the GAN initialization of ``backbone``: notebook 04's Table 3
    cell with the ``gan_init.gan`` head and metric at the paper's lambda_3 and the profile's seed."""
    gan = profile.gan_init.gan
    dcfg = profile.discriminators.replace(metric=gan.metric)
    return discriminator_spec(profile, graph, gan.head, backbone, float(dcfg.lambdas[2]), profile.seed, dcfg,
                              notebooks=("03",), roles=("gan-source",))


def nr_spec(profile: Profile, dataset: str, backbone: str, init: str, gan_source: str | None = None) -> RunSpec:
    """Fine-tune a backbone + MLP head for NR-IQA on a seeded 6:2:2 split of ``dataset``."""
    cfg = profile.gan_init
    weights = "random" if init == "random" else init
    identity: dict[str, Any] = {"dataset": dataset, "backbone": backbone, "initialization": init,
                                "weights": weights, "nr_train": _strip(cfg.nr_train, NR_EXECUTION_FIELDS),
                                "split_fractions": list(cfg.split_fractions), "seed": profile.seed}
    if dataset == "synthetic":
        identity["synthetic"] = to_jsonable(profile.metric_study.synthetic)
    deps = (gan_source,) if init == "gan" and gan_source else ()
    return RunSpec("nr_iqa", "nr_iqa", f"{dataset}-{backbone}-{init}", identity, deps, ("03",),
                   iterations=cfg.nr_train.iterations, cost="nr_train")


def declare_gan_init(graph: RunGraph) -> None:
    profile, cfg = graph.profile, graph.profile.gan_init
    for bb in cfg.backbones:
        source = None
        if "gan" in cfg.initializations:
            source = graph.add(gan_source_spec(profile, graph, bb))
        for init in cfg.initializations:
            dep = source if init == "gan" else None
            key = graph.add(metric_train_spec(profile, bb, init=init, gan_source=dep, notebooks=("03",)))
            graph.add(metric_eval_spec(profile, graph[key]))
            for ds in cfg.nr_datasets:
                graph.add(nr_spec(profile, ds, bb, init, dep))


# ----------------------------------------------------------------------------------------------
# Notebook 05: analyses
# ----------------------------------------------------------------------------------------------
def analysis_spec(profile: Profile, graph: RunGraph, task: str, name: str, identity: dict[str, Any],
                  metric: str | None, label: str = "") -> RunSpec:
    """An analysis run (``recovery``, ``texture``, ``autoencoder``); its metric (if any) carries the alpha/beta of
    the study's ``metric`` run of that metric with the profile's backbone weights (a dependency; the same run as
    notebook 01's or 03's where they declare it), or its fixed initialization for VGG-16-R."""
    deps: tuple[str, ...] = ()
    full = dict(identity)
    if metric is not None:
        full.update(metric=metric, metric_weights=metric_weights_label(metric, profile), seed=profile.seed)
        if get_metric_preset(metric).trainable_weights:
            deps = (graph.add(metric_train_spec(profile, metric)),)
        full["alpha_beta"] = "trained" if deps else "init"
    return RunSpec("analysis", task, name, full, deps, ("05",), cost="eval", params={"label": label or name})


def declare_analysis(graph: RunGraph) -> None:
    from ..data.corpus import list_embedded_images

    profile, cfg = graph.profile, graph.profile.figures
    for key in cfg.recovery_metrics:
        display = get_metric_preset(key).display
        for init in cfg.recovery_inits:
            graph.add(analysis_spec(profile, graph, "recovery", f"recovery-{key}-{init}",
                                    {"init": init, "image": cfg.recovery_image, "size": cfg.recovery_size,
                                     "steps": cfg.recovery_steps}, key, f"{display} / {init}"))
    for key in cfg.texture_metrics:
        display = get_metric_preset(key).display
        for tex in list_embedded_images("texture"):
            graph.add(analysis_spec(profile, graph, "texture", f"texture-{key}-{tex}",
                                    {"texture": tex, "size": cfg.texture_size, "steps": cfg.texture_steps}, key,
                                    f"{display} / {tex}"))
    from ..analysis import get_objective

    train = {"steps": cfg.ae_steps, "batch_size": cfg.ae_batch, "crop": cfg.ae_crop, "lr": cfg.ae_lr,
             "d_lr": cfg.ae_d_lr, "seed": profile.seed}
    if cfg.ae_warmup_steps:  # absent at 0 so that keys of runs without a warm-up stay as they were
        train["warmup_steps"] = cfg.ae_warmup_steps
    for objective in cfg.ae_objectives:
        obj = get_objective(objective)
        identity = {"objective": objective, "preset": cfg.ae_preset, "train": train, "images": list(cfg.ae_images),
                    "seed": profile.seed,
                    "discriminator": cfg.ae_discriminator if obj.needs_discriminator else None,
                    "head": cfg.featuremap_head if obj.needs_discriminator else None,
                    "discriminator_weights": "random" if obj.needs_discriminator else None}
        if obj.needs_discriminator:  # the library's patch_stage / relativistic_mean, where they matter
            ae_disc = DiscriminatorConfig(backbone=cfg.ae_discriminator, head=cfg.featuremap_head)
            identity.update({k: v for k, v in discriminator_identity(ae_disc, True).items()
                             if k in ("patch_stage", "relativistic_mean")})
        graph.add(analysis_spec(profile, graph, "autoencoder", f"autoencoder-{objective}", identity,
                                cfg.ae_metric if obj.needs_metric else None))
