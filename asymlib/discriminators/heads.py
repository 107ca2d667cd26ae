"""Discriminator heads: turn one backbone feature map into real/fake logits.

* ``vanilla``: one global logit per image (paper footnote 1). Global average pooling of the
  *last* backbone map, then a two-layer MLP: ``(B, C, h, w) -> (B, 1)``.
* ``patch``: a map of logits over local patches. A 3x3 conv + LeakyReLU + 1x1 conv on the
  *deepest map whose stride is at most 16*: ``(B, C, h, w) -> (B, 1, h, w)``.

Why stride <= 16 for the patch head: it is the deepest map that still has a spatial grid of
local predictions on the paper's 256x256 HR crops (16x16 logits); deeper stride-32 maps leave
8x8 logits whose receptive field exceeds the crop. Resulting stages (theoretical receptive field
of the head output, i.e. backbone RF plus the 3x3 head conv):

==============  =======================  ======  =====================  ==============
backbone        patch stage (index)      stride  receptive field        grid at 256 px
==============  =======================  ======  =====================  ==============
vgg16 (L2pool)  relu5_3 (4, last)        16      211 + 32 = 243 px      16 x 16
resnet50        layer3 (3 of 0..4)       16      267 + 32 = 299 px      16 x 16
dinov2_vit*14   block 11 (3, last)       14      global (attention)     19 x 19 (padded)
esrgan_vgg128   stage 3 (3 of 0..4)      16      see esrgan.py          16 x 16
==============  =======================  ======  =====================  ==============

For VGG-16 and the DINOv2 ViTs the patch and vanilla discriminators therefore share the same
backbone computation and differ only in the head, as in the paper (Sec. 3.4); for ResNet-50 the
patch head reads ``layer3`` and ``layer4`` is left out of training (frozen, see
:class:`asymlib.discriminators.Discriminator`). Override with ``create_discriminator(..., stage=i)``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError, InputSizeError, UnknownNameError

__all__ = [
    "HEADS",
    "PATCH_MAX_REDUCTION",
    "FlattenLinearHead",
    "PatchHead",
    "VanillaHead",
    "default_stage",
    "get_head",
    "list_heads",
    "register_head",
]

PATCH_MAX_REDUCTION = 16
_LRELU_SLOPE = 0.2


class VanillaHead(nn.Module):
    """Global logit: ``(B, C, h, w) -> GAP -> Linear(C, hidden) -> LeakyReLU(0.2) -> Linear(hidden, 1) -> (B, 1)``."""

    def __init__(self, in_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = nn.LeakyReLU(_LRELU_SLOPE)
        self.fc2 = nn.Linear(hidden, 1)

    @staticmethod
    def select_stage(reductions: Sequence[int]) -> int:
        return len(reductions) - 1

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(feat.mean(dim=(2, 3)))))


class PatchHead(nn.Module):
    """Patch logits: ``(B, C, h, w) -> Conv3x3(C, hidden) -> LeakyReLU(0.2) -> Conv1x1(hidden, 1) -> (B, 1, h, w)``."""

    def __init__(self, in_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.act = nn.LeakyReLU(_LRELU_SLOPE)
        self.conv2 = nn.Conv2d(hidden, 1, 1)

    @staticmethod
    def select_stage(reductions: Sequence[int]) -> int:
        """Deepest map with stride <= 16 (the first map if every stride is larger)."""
        ok = [i for i, r in enumerate(reductions) if r <= PATCH_MAX_REDUCTION]
        return ok[-1] if ok else 0

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(feat)))


class FlattenLinearHead(nn.Module):
    """ESRGAN's head: flatten a fixed ``(C, s, s)`` map -> Linear(C*s*s, 100) -> LeakyReLU(0.2) -> Linear(100, 1)."""

    def __init__(self, in_channels: int, spatial: int = 4, hidden: int = 100) -> None:
        super().__init__()
        self.spatial = spatial
        self.linear1 = nn.Linear(in_channels * spatial * spatial, hidden)
        self.act = nn.LeakyReLU(_LRELU_SLOPE)
        self.linear2 = nn.Linear(hidden, 1)

    @staticmethod
    def select_stage(reductions: Sequence[int]) -> int:
        return len(reductions) - 1

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        if tuple(feat.shape[2:]) != (self.spatial, self.spatial):
            raise InputSizeError(
                f"the ESRGAN flatten head needs a {self.spatial}x{self.spatial} final map, got "
                f"{tuple(feat.shape[2:])}: feed images of exactly the discriminator's input size"
            )
        return self.linear2(self.act(self.linear1(feat.flatten(1))))


HeadFactory = Callable[..., nn.Module]
HEADS: dict[str, HeadFactory] = {"vanilla": VanillaHead, "patch": PatchHead}


def register_head(name: str, factory: HeadFactory) -> HeadFactory:
    """Add a head; ``factory(in_channels, **kw)`` must build a module with a ``select_stage`` static method."""
    if name in HEADS:
        raise ConfigError(f"discriminator head {name!r} is already registered")
    HEADS[name] = factory
    return factory


def list_heads() -> list[str]:
    return sorted(HEADS)


def get_head(name: str) -> HeadFactory:
    if name not in HEADS:
        raise UnknownNameError(f"unknown discriminator head {name!r}; available: {list_heads()}")
    return HEADS[name]


def default_stage(head: str, reductions: Sequence[int]) -> int:
    """Index of the backbone map a registered head reads by default."""
    return get_head(head).select_stage(reductions)
