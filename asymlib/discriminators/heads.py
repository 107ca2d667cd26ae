"""Discriminator heads: turn one backbone feature map into real/fake logits.

* ``vanilla``: one global logit per image (paper footnote 1). Global average pooling of the
  *last* backbone map, then a two-layer MLP: ``(B, C, h, w) -> (B, 1)``.
* ``patch``: a map of logits over local patches. A 3x3 conv + LeakyReLU + 1x1 conv on the
  *same last backbone map*: ``(B, C, h, w) -> (B, 1, h, w)``.

Both heads read the last map by default, so the vanilla and patch discriminators of one backbone
have the same backbone parameters (names and shapes), all of them trained (but a ViT's or Swin's
final norm, which no feature map goes through and both heads leave frozen), and differ only in the
head, as the paper states (Sec. 3.4: the patch discriminator changes "only the regression head").
The logit grid is the last map's: stride 16 (VGG-16, CLIP ViT), 14 (DINOv2) or 32 (ResNet-50,
ConvNeXt, Swin, ESRGAN). Theoretical receptive field of one patch logit (backbone RF plus the 3x3
head conv, i.e. ``+ 2 * stride``; CNN values checked as the gradient support of the centre logit
with BatchNorm scales and layer scales set to 1):

==============  ==================  ======  =================================  ================
backbone        stage read (index)  stride  receptive field                    grid at 256 px
==============  ==================  ======  =================================  ================
vgg16 (L2pool)  relu5_3 (4, last)   16      211 + 32 = 243 px                  16 x 16
resnet50        layer4 (4, last)    32      427 + 64 = 491 px                  8 x 8
convnext_tiny   stage 3 (3, last)   32      1688 + 64 = 1752 px                8 x 8
swin_t          stage 3 (3, last)   32      the whole crop (window attention)  8 x 8
clip_vit_b16    block 11 (3, last)  16      global (attention)                 16 x 16
dinov2_vit*14   block 11 (3, last)  14      global (attention)                 19 x 19 (padded)
esrgan_vgg128   stage 4 (4, last)   32      156 + 64 = 220 px                  8 x 8
esrgan_vgg256   stage 5 (5, last)   64      316 + 128 = 444 px                 4 x 4
==============  ==================  ======  =================================  ================

Only for VGG-16 and ``esrgan_vgg128`` is that theoretical field smaller than a 256-pixel crop (the
*effective* receptive field of a logit is much smaller than the theoretical one). A finer logit grid is an
option, not the default: ``create_discriminator(..., stage=i)`` reads map ``i``, and
``stage="stride16"`` (:data:`STAGE_RULES`) the deepest map with stride <= 16 (ResNet-50: ``layer3``,
16 x 16 logits of RF 299 px at 256 px; ESRGAN: stage 3); the layers after that map then cannot
affect the logits and are frozen (see :class:`asymlib.discriminators.Discriminator`).
``asymlib.sr.config.DiscriminatorConfig.patch_stage`` selects the rule for SR training runs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError, InputSizeError, UnknownNameError

__all__ = [
    "HEADS",
    "PATCH_MAX_REDUCTION",
    "STAGE_RULES",
    "FlattenLinearHead",
    "PatchHead",
    "VanillaHead",
    "default_stage",
    "get_head",
    "list_heads",
    "register_head",
    "stage_by_rule",
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
        """The last map, as the vanilla head (``stage="stride16"`` selects a finer one, :func:`stage_by_rule`)."""
        return len(reductions) - 1

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


def _last_stage(reductions: Sequence[int]) -> int:
    return len(reductions) - 1


def _stride16_stage(reductions: Sequence[int]) -> int:
    ok = [i for i, r in enumerate(reductions) if r <= PATCH_MAX_REDUCTION]
    return ok[-1] if ok else 0


# named rules choosing the backbone map a head reads: reductions (one stride per map) -> index
STAGE_RULES: dict[str, Callable[[Sequence[int]], int]] = {"last": _last_stage, "stride16": _stride16_stage}


def stage_by_rule(rule: str, reductions: Sequence[int]) -> int:
    """Index of the map chosen by ``rule``: ``"last"`` (the last map, both heads' default) or ``"stride16"``
    (the deepest map with stride <= :data:`PATCH_MAX_REDUCTION`, the first map if every stride is larger).

    Raises:
        ConfigError: unknown rule.
    """
    if rule not in STAGE_RULES:
        raise ConfigError(f"unknown stage rule {rule!r}; use one of {sorted(STAGE_RULES)} or a map index")
    return STAGE_RULES[rule](reductions)


def default_stage(head: str, reductions: Sequence[int]) -> int:
    """Index of the backbone map a registered head reads by default."""
    return get_head(head).select_stage(reductions)
