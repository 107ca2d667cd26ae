"""Analysis runs of notebook 05 (``analysis``): image recovery (Fig. 12-13), texture synthesis (Fig. 15) and the
autoencoder (Fig. 16), each a run whose result (tensors, numbers, strings, lists) is ``result.pt``.

The metric of a run carries the alpha/beta of the study's ``metric`` run when the metric is one of notebook 01's
(a dependency), else its seeded initialization.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..atomic import atomic_torch_save
from ..provenance import provenance
from ..runs import Run
from ..torchfile import read_torch_file
from .execute import StudyContext, register_executor
from .graph import RunSpec
from .metric_runs import metric_source, run_metric

__all__ = ["RESULT_FILE", "analysis_metric", "reference_image", "load_result", "ae_train_config"]

RESULT_FILE = "result.pt"


def reference_image(name: str, size: int) -> torch.Tensor:
    """An embedded image fitted to ``size`` pixels: ``(1, 3, size, size)`` in [0, 1]."""
    from ..analysis import fit_image
    from ..data.corpus import embedded_images

    return fit_image(embedded_images([name])[name], size)


def analysis_metric(ctx: StudyContext, spec: RunSpec) -> tuple[torch.nn.Module, str]:
    """``(metric, alpha/beta source)`` of an analysis run (:func:`~asymlib.pipeline.metric_runs.run_metric`)."""
    return run_metric(ctx, spec), metric_source(ctx, spec)


def load_result(ctx: StudyContext, key: str) -> dict[str, Any]:
    return read_torch_file(ctx.graph[key].path(ctx.output_dir) / RESULT_FILE, "analysis result", expect_dict=True)


def ae_train_config(ctx: StudyContext) -> Any:
    """The autoencoder's :class:`~asymlib.analysis.AETrainConfig` of the profile's figures configuration."""
    from ..analysis import AETrainConfig

    cfg = ctx.profile.figures
    return AETrainConfig(steps=cfg.ae_steps, warmup_steps=cfg.ae_warmup_steps, batch_size=cfg.ae_batch,
                         crop=cfg.ae_crop, lr=cfg.ae_lr, d_lr=cfg.ae_d_lr, seed=ctx.profile.seed,
                         log_every=max(1, cfg.ae_steps // 10))


def _save(run: Run, result: dict[str, Any], status: str = "finished", **info: Any) -> None:
    atomic_torch_save(result, run.path / RESULT_FILE)
    run.finish(status, **info)


@register_executor("recovery")
def _recover(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    from ..analysis import recover_image

    idt = spec.identity
    metric, source = analysis_metric(ctx, spec)
    run.start(provenance(ctx.profile.name, ctx.profile.seed, analysis="recovery", alpha_beta=source, run_key=spec.key))
    ref = reference_image(idt["image"], idt["size"])
    res = recover_image(metric, ref, init=idt["init"], steps=idt["steps"], seed=ctx.profile.seed,
                        progress=ctx.progress, label=spec.params.get("label", spec.name))
    _save(run, {"image": res.image, "initial": res.initial, "losses": list(map(float, res.losses)),
                           "gradient": res.gradient, "seconds": float(res.seconds), "source": source})


@register_executor("texture")
def _synthesize(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    from ..analysis import fit_image, synthesize_texture
    from ..data.corpus import embedded_textures

    idt = spec.identity
    metric, source = analysis_metric(ctx, spec)
    run.start(provenance(ctx.profile.name, ctx.profile.seed, analysis="texture", alpha_beta=source, run_key=spec.key))
    exemplar = fit_image(embedded_textures()[idt["texture"]], idt["size"])
    res = synthesize_texture(metric, exemplar, steps=idt["steps"], seed=ctx.profile.seed, progress=ctx.progress,
                             label=spec.params.get("label", spec.name))
    _save(run, {"image": res.image, "initial": res.initial, "losses": list(map(float, res.losses)),
                           "seconds": float(res.seconds), "source": source})


@register_executor("autoencoder")
def _train_autoencoder(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    from ..analysis import create_autoencoder, fit_image, get_objective, reconstruct, train_autoencoder
    from ..data.corpus import embedded_images
    from ..discriminators import create_discriminator
    from ..sr.losses import DEFAULT_MEAN_OVER

    idt, cfg = spec.identity, ctx.profile.figures
    obj = get_objective(idt["objective"])
    metric, source = analysis_metric(ctx, spec) if obj.needs_metric else (None, "none")
    run.start(provenance(ctx.profile.name, ctx.profile.seed, analysis="autoencoder", alpha_beta=source,
                         run_key=spec.key))
    originals = {k: fit_image(v, cfg.ae_crop * 2) for k, v in embedded_images(list(cfg.ae_images)).items()}
    model = create_autoencoder(idt["preset"], seed=ctx.profile.seed)
    # patch_stage / relativistic_mean are in the identity where they matter (declare.discriminator_identity)
    disc = (create_discriminator(idt["discriminator"], idt["head"], seed=ctx.profile.seed,
                                 stage=idt.get("patch_stage") if idt["head"] == "patch" else None)
            if obj.needs_discriminator else None)
    train_cfg = dataclasses.replace(ae_train_config(ctx),
                                    relativistic_mean=idt.get("relativistic_mean", DEFAULT_MEAN_OVER))
    res = train_autoencoder(model, originals, idt["objective"], metric=metric, discriminator=disc,
                            config=train_cfg, progress=ctx.progress)
    rec = reconstruct(res.model, originals)
    # a collapsed run keeps what it reconstructs at the collapse (Fig. 16 shows it, marked) unless that is not
    # even finite
    if not all(bool(torch.isfinite(v).all()) for v in rec.values()):
        rec = {}
    _save(run, {"names": list(rec), "images": torch.stack(list(rec.values())) if rec else torch.empty(0),
                "log": {c: res.log[c].astype(float).tolist() for c in res.log.columns},
                "status": res.status, "reason": res.reason, "steps": res.steps},
          res.status, reason=res.reason, step=res.steps)
