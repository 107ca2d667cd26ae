"""The ``nr_train`` rows: one NR-IQA training iteration (:func:`asymlib.iqa.nr.train_nr_model`) per backbone.

The step is the trainer's own (:func:`asymlib.iqa.nr.nr_train_step` after :func:`asymlib.iqa.nr.nr_optimizer`):
forward of a batch of crops through backbone + head, the configured loss on z-scored labels, backward, Adam with
the backbone's and the head's learning rates, the scheduler step. Workloads of the device's profile
(``gan_init``): its backbones (random weights: the cost does not depend on the initialization) and its
``nr_train`` batch size, crop and head; paper (CUDA): VGG-16, ResNet-50 and DINOv2 ViT-B/14, batch 32 of
224-px crops; smoke (CPU): batch 8 of 64-px crops. Image decoding and validation are not included. Each
backbone's row is its own baseline; their mean is the ``nr_train`` step cost (each backbone trains as many
runs).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .inputs import image_batch
from .report import Row, row_from_timing
from .settings import Settings, profile_for
from .timing import measure

if TYPE_CHECKING:
    from ..iqa.nr import NRTrainConfig

__all__ = ["bench_nr_train", "build_nr_train_step"]


def build_nr_train_step(backbone: str, cfg: NRTrainConfig, device: torch.device, x: torch.Tensor,
                        target: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One training iteration of an NR-IQA model over ``backbone`` (random weights) under ``cfg``
    (:func:`asymlib.iqa.nr.nr_optimizer` and :func:`asymlib.iqa.nr.nr_train_step`, as
    :func:`asymlib.iqa.nr.train_nr_model` runs them), on the fixed batch ``x`` ``(B, 3, crop, crop)`` in
    ``[0, 1]`` with z-scored targets ``(B,)`` on ``device``; ``step()`` returns the loss (0-d)."""
    from ..iqa.nr import create_nr_model, nr_optimizer, nr_train_step

    model = create_nr_model(backbone, weights="random", seed=0, head=cfg.head, hidden=cfg.hidden, dropout=cfg.dropout,
                            finetune_backbone=cfg.finetune_backbone).to(device).train()
    opt, sched = nr_optimizer(model, cfg)
    return functools.partial(nr_train_step, model, x, target, opt, sched, cfg)


def bench_nr_train(device: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    """The ``nr_train`` rows of the device's profile, one per backbone."""
    from ..config import get_profile

    name = profile_for(device)
    gi = get_profile(name).gan_init
    cfg = gi.nr_train
    x = image_batch(cfg.batch_size, cfg.crop, seed=8).to(device)
    target = torch.randn(cfg.batch_size, generator=torch.Generator().manual_seed(8)).to(device)
    fns = {f"{bb} step": build_nr_train_step(bb, cfg, device, x, target) for bb in gi.backbones}
    reps = s.reps(10, 3)
    log(f"nr_train on {device}: {name} profile, backbones {list(gi.backbones)}, batch {cfg.batch_size} of "
        f"{cfg.crop}px crops; {reps} repeats")
    res = measure(fns, repeats=reps, warmup=s.warmup, device=device)
    tuning = "fine-tuned backbone" if cfg.finetune_backbone else "frozen backbone"
    return [row_from_timing("nr_train", device, v, v, t, t, images_per_s=cfg.batch_size / (t.median_ms / 1e3),
                            step_cost="nr_train/iteration",
                            notes=f"{name} profile: {v.removesuffix(' step')} + {cfg.head} head, {tuning}, batch "
                                  f"{cfg.batch_size} of {cfg.crop}px crops; forward, {cfg.loss} loss, backward, Adam "
                                  "(train_nr_model's step; image decoding and validation not included)")
            for v, t in res.items()]
