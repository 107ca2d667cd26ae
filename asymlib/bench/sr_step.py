"""The ``sr`` benchmark (rows ``sr_step``): one training iteration of the SR generator.

The iteration (:func:`build_sr_step`): the G update on Eq. 1 (:func:`asymlib.sr.losses.generator_loss`: L1 +
DISTS + relativistic patch-discriminator loss), the D update on real and fake halves
(:func:`asymlib.sr.trainer.discriminator_backward`), the EMA update. Variants of the full stage-2 objective, all
against the plain path (``eager fp32``: fp32, NCHW, eager, default Adam): ``optimized`` (bf16 autocast and
``torch.compile`` on CUDA, channels-last, fused Adam), on CUDA with compilation also ``optimized without
torch.compile``, and ``train_sr stage 2 + adversarial``. The ``train_sr`` variants
(:func:`build_trainer_sr_step`) take the precision, memory format, compilation and optimizer that
:func:`asymlib.sr.trainer.train_sr` uses with the profile's stage configs; with ``train_sr stage 1 (L1)`` and
``train_sr stage 2 (L1 + DISTS)`` (no discriminator; each its own baseline) their medians are the step costs
``sr_stage1``, ``sr_stage2`` and ``sr_stage2_adv`` (:func:`sr_stage_specs`). CUDA: the paper profile (SwinIR
classical x4, batch 32, 64x64 LR crops), with images/s, peak GPU memory and the projected hours of 400K
iterations (stage 2). CPU: the smoke profile (SwinIR small, batch 2, 16x16 LR).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..sr.config import SRTrainConfig
from .report import Row, row_from_timing
from .settings import Settings, profile_for
from .timing import measure

__all__ = ["PAPER_ITERATIONS", "SRStepSpec", "bench_sr", "build_sr_step", "build_trainer_sr_step", "sr_stage_specs",
           "sr_step_spec"]

PAPER_ITERATIONS = 400_000
# step-cost kind -> variant of the train_sr path
TRAINER_VARIANTS = {"sr_stage1": "train_sr stage 1 (L1)", "sr_stage2": "train_sr stage 2 (L1 + DISTS)",
                    "sr_stage2_adv": "train_sr stage 2 + adversarial"}


@dataclass(frozen=True)
class SRStepSpec:
    """Which SR step is timed: generator preset, batch, LR crop side (pixels), a label, and the training config
    whose scale, loss weights (a discriminator is built when ``lambda_adv > 0``, the metric when
    ``lambda_per > 0``), Adam settings and EMA decay are used (and, by :func:`build_trainer_sr_step`, its
    precision, memory format and compilation)."""

    preset: str
    batch: int
    lr_size: int
    label: str
    config: SRTrainConfig = SRTrainConfig()


def sr_stage_specs(device: torch.device) -> dict[str, SRStepSpec]:
    """The SR runs of the device's profile (:func:`~asymlib.bench.settings.profile_for`) by step-cost kind:
    ``sr_stage1`` (stage 1, L1), ``sr_stage2`` (stage 2 of the ``rec+perceptual`` setting) and ``sr_stage2_adv``
    (stage 2 of ``rec+perceptual+adv``, the full Eq. 1). Paper on CUDA (SwinIR classical, batch 32, 256-px HR
    crops), smoke on CPU."""
    from ..sr.config import get_setting, sr_config_for

    name = profile_for(device)
    study = sr_config_for(name)
    configs = {"sr_stage1": study.stage1, "sr_stage2": get_setting("rec+perceptual").apply(study.stage2),
               "sr_stage2_adv": get_setting("rec+perceptual+adv").apply(study.stage2)}
    return {kind: SRStepSpec(study.sr_preset, c.batch_size, c.lr_crop,
                             f"{name} preset: SwinIR {study.sr_preset} x{c.scale}, batch {c.batch_size}, "
                             f"{c.lr_crop}x{c.lr_crop} LR", c)
            for kind, c in configs.items()}


def sr_step_spec(device: torch.device) -> SRStepSpec:
    """The full stage-2 objective of the device's profile (``sr_stage2_adv`` of :func:`sr_stage_specs`)."""
    return sr_stage_specs(device)["sr_stage2_adv"]


def _sr_step(spec: SRStepSpec, dev: torch.device, *, use_amp: bool, mem: torch.memory_format,
             metric_mem: torch.memory_format | None, compile_models: bool, fused: bool | None,
             seed: int) -> Callable[[], torch.Tensor]:
    from ..discriminators import create_discriminator
    from ..metrics.registry import create_metric
    from ..sr.ema import ModelEMA
    from ..sr.losses import generator_loss
    from ..sr.models import create_sr_model
    from ..sr.trainer import discriminator_backward

    cfg = spec.config
    cuda = dev.type == "cuda"
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
        torch.manual_seed(seed)
        G = create_sr_model("swinir", scale=cfg.scale, preset=spec.preset).to(dev, memory_format=mem).train()
        D = (create_discriminator("vgg16", "patch", seed=seed).to(dev, memory_format=mem).train()
             if cfg.adversarial else None)
        metric = create_metric("dists", backbone="vgg16", weights="random", seed=seed) if cfg.perceptual else None
        gen = torch.Generator().manual_seed(seed)
        hr = torch.rand(spec.batch, 3, spec.lr_size * cfg.scale, spec.lr_size * cfg.scale, generator=gen)
    if metric is not None:
        metric = (metric.to(dev) if metric_mem is None else metric.to(dev, memory_format=metric_mem)).eval()
        metric.requires_grad_(False)
    d_params = [p for p in D.parameters() if p.requires_grad] if D is not None else []
    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas, fused=fused)
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr, betas=cfg.betas, fused=fused) if D is not None else None
    ema = ModelEMA(G, decay=cfg.ema_decay)
    g_train: nn.Module = torch.compile(G) if compile_models else G  # type: ignore[assignment]
    d_train = torch.compile(D) if compile_models and D is not None else D
    lr_img = F.interpolate(hr, scale_factor=1 / cfg.scale, mode="bicubic", antialias=True).clamp(0, 1)
    lr_img = lr_img.to(dev).contiguous(memory_format=mem)
    hr = hr.to(dev).contiguous(memory_format=mem)

    def autocast() -> Any:
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp)

    def set_d_trainable(flag: bool) -> None:
        for p in d_params:
            p.requires_grad_(flag)

    def step() -> torch.Tensor:
        set_d_trainable(False)
        with autocast():
            sr = g_train(lr_img)
        total = generator_loss(sr, hr, lambda_rec=cfg.lambda_rec, lambda_per=cfg.lambda_per,
                               lambda_adv=cfg.lambda_adv, metric=metric, discriminator=D, autocast=autocast)[0]
        if not torch.isfinite(total.detach()).item():
            raise FloatingPointError("non-finite generator loss in the SR benchmark step")
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        if d_train is not None and opt_d is not None:
            set_d_trainable(True)
            opt_d.zero_grad(set_to_none=True)
            d_loss = discriminator_backward(d_train, hr, sr.detach(), autocast)[0]
            if not torch.isfinite(d_loss).item():
                raise FloatingPointError("non-finite discriminator loss in the SR benchmark step")
            opt_d.step()
        ema.update(G)
        return total.detach()

    return step


def _describe(dev: torch.device, use_amp: bool, mem: torch.memory_format, metric_mem: torch.memory_format | None,
              compile_models: bool, fused: bool | None) -> str:
    precision = "bf16 autocast" if use_amp else "fp32"
    if not use_amp and fused and dev.type != "cuda":
        precision = "fp32 (autocast is CUDA-only, as in train_sr)"
    layout = "channels-last" if mem is torch.channels_last else "NCHW"
    if metric_mem is None and mem is not torch.channels_last:
        layout += " (the metric in its own layout)"
    return ", ".join([precision, layout, "torch.compile(G, D)" if compile_models else "eager",
                      "fused Adam" if fused else "Adam (default)"])


def build_sr_step(spec: SRStepSpec, device: str | torch.device, optimized: bool, compile_models: bool = False,
                  seed: int = 0) -> tuple[Callable[[], torch.Tensor], str]:
    """One training iteration as :func:`asymlib.sr.trainer.train_sr` runs it (minus logging, checkpoints,
    schedulers and DDP): the G update on Eq. 1 with ``spec.config``'s loss weights, D frozen and called unwrapped,
    then (when adversarial) the D update with separate real and fake backward passes, then the EMA update;
    learning rate, betas and EMA decay from ``spec.config``, the discriminator a random VGG-16 with a patch head,
    the metric DISTS over a random VGG-16. Inputs: ``spec.batch`` random HR images of ``spec.lr_size * scale``
    pixels and their bicubic LR versions.

    ``optimized=False``: the plain path: fp32, NCHW (the metric too), eager, ``torch.optim.Adam`` defaults.
    ``optimized=True``: bf16 autocast (CUDA only, as the trainer), channels-last, fused Adam; ``compile_models``
    wraps G and D in ``torch.compile`` (as ``SRTrainConfig.compile``). Returns ``(step, description)``;
    ``step()`` returns the generator loss (a 0-d tensor).
    """
    dev = torch.device(device)
    use_amp = optimized and dev.type == "cuda"
    mem = torch.channels_last if optimized else torch.contiguous_format
    fused = True if optimized else None
    step = _sr_step(spec, dev, use_amp=use_amp, mem=mem, metric_mem=mem, compile_models=compile_models, fused=fused,
                    seed=seed)
    return step, _describe(dev, use_amp, mem, mem, compile_models, fused)


def build_trainer_sr_step(spec: SRStepSpec, device: str | torch.device, seed: int = 0
                          ) -> tuple[Callable[[], torch.Tensor], str]:
    """The iteration of :func:`build_sr_step` on the path :func:`asymlib.sr.trainer.train_sr` takes under
    ``spec.config``: bf16 autocast (``amp="bf16"``) and channels-last (``channels_last``) on CUDA only, the
    metric in its own memory format unless the run is channels-last, ``torch.compile`` when ``compile``, and
    ``torch.optim.Adam`` defaults. Returns ``(step, description)``."""
    dev = torch.device(device)
    cfg = spec.config
    cuda = dev.type == "cuda"
    use_amp = cuda and cfg.amp == "bf16"
    mem = torch.channels_last if (cuda and cfg.channels_last) else torch.contiguous_format
    metric_mem = mem if mem is torch.channels_last else None
    step = _sr_step(spec, dev, use_amp=use_amp, mem=mem, metric_mem=metric_mem, compile_models=cfg.compile,
                    fused=None, seed=seed)
    return step, _describe(dev, use_amp, mem, metric_mem, cfg.compile, None)


_OBJECTIVES = {"sr_stage1": "L1 only, no discriminator", "sr_stage2": "L1 + DISTS(VGG-16), no discriminator",
               "sr_stage2_adv": "L1 + DISTS(VGG-16) + relativistic patch D (VGG-16), G+D update"}


def bench_sr(device: torch.device, cuda_available: bool, s: Settings, log: Callable[[str], None]) -> list[Row]:
    """The ``sr_step`` rows on ``device`` (and the CUDA rows marked skipped on a CPU run)."""
    rows: list[Row] = []
    if device.type != "cuda":
        why = "skipped: no CUDA" if not cuda_available else "skipped: --device cpu"
        for v in ("eager fp32", "optimized", *TRAINER_VARIANTS.values()):
            rows.append(Row("sr_step", "cuda", f"{v} (paper: SwinIR classical x4, batch 32, 64x64 LR)",
                            "eager fp32", status=why, notes="GPU-only row; not measured"))
    specs = sr_stage_specs(device)
    spec = specs["sr_stage2_adv"]
    compile_models = s.compile == "on" or (s.compile == "auto" and device.type == "cuda")
    steps = {"eager fp32": build_sr_step(spec, device, optimized=False),
             "optimized": build_sr_step(spec, device, optimized=True, compile_models=compile_models)}
    if compile_models:  # how much of the gain is compilation
        steps["optimized without torch.compile"] = build_sr_step(spec, device, optimized=True)
    kinds = {variant: kind for kind, variant in TRAINER_VARIANTS.items()}
    steps.update({variant: build_trainer_sr_step(specs[kind], device) for kind, variant in TRAINER_VARIANTS.items()})
    reps = s.reps(10, 3)
    warm = max(s.warmup, 2 if compile_models or any(sp.config.compile for sp in specs.values()) else 1)
    log(f"sr step on {device}: {spec.label}; {len(steps)} variants x {reps} repeats")
    res = measure({k: v[0] for k, v in steps.items()}, repeats=reps, warmup=warm, device=device)
    paper = device.type == "cuda"
    for name, t in res.items():
        kind = kinds.get(name, "sr_stage2_adv")
        sp = specs[kind]
        notes = f"{sp.label}; {_OBJECTIVES[kind]} + EMA; {steps[name][1]}"
        if name in kinds:
            notes += f"; as train_sr runs the profile's {'stage-1' if kind == 'sr_stage1' else 'stage-2'} config"
        if not paper:
            notes += "; no 400K projection (smoke preset, not the paper's configuration)"
        if s.compile == "auto" and device.type != "cuda" and name == "optimized":
            notes += "; torch.compile off on CPU by default (--compile on adds it; compiling takes minutes on 2 cores)"
        baseline = "eager fp32" if kind == "sr_stage2_adv" else name
        rows.append(row_from_timing("sr_step", device, name, baseline, t, res[baseline],
                                    images_per_s=sp.batch / (t.median_ms / 1e3),
                                    projected_h_400k=(t.median_ms / 1e3 * PAPER_ITERATIONS / 3600
                                                      if paper and kind != "sr_stage1" else None),
                                    notes=notes, step_cost=f"{kind}/iteration" if name in kinds else ""))
    return rows
