"""A tiny SwinIR, images and schedule shared by the SR trainer tests (CPU, seconds)."""
from __future__ import annotations

import torch
from torch import nn

from asymlib.sr.config import SRTrainConfig
from asymlib.sr.models import create_sr_model


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return create_sr_model(preset="small", depths=(2, 2), num_heads=(6, 6))


def tiny_images() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"img{i}": torch.rand(3, 80, 80, generator=g) for i in range(3)}


def tiny_cfg(**kw) -> SRTrainConfig:
    base = dict(iterations=4, batch_size=2, hr_crop=32, milestones=(2,), lambda_rec=1.0, lambda_per=0.0,
                lambda_adv=0.0, checkpoint_every=2, log_every=1, sample_every=100, num_workers=0, ema_decay=0.5)
    base.update(kw)
    return SRTrainConfig(**base)
