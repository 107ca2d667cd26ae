"""ESRGAN's VGG-style discriminator (BasicSR ``VGGStyleDiscriminator``), split into trunk + head.

Architecture (``f = num_feat = 64``), input (B, 3, S, S) in [0, 1] with S = 128 (or 256), no
input normalization (as in BasicSR):

* stage 0: conv0_0 3x3 (3->f, bias) + LReLU, conv0_1 4x4/2 (no bias) + BN + LReLU   -> f,  S/2
* stage i (1..4): conv{i}_0 3x3 + BN + LReLU, conv{i}_1 4x4/2 + BN + LReLU        -> 2f, 4f, 8f, 8f at S/4..S/32
* (S = 256 only) stage 5: as stage 4                                                 -> 8f, S/64
* head: flatten (8f * 4 * 4) -> linear1 (100) + LReLU -> linear2 (1)

Layer names match BasicSR's (``conv0_0``... in the trunk, ``linear1``/``linear2`` in the head),
so a BasicSR checkpoint maps onto ``backbone.body.*`` and ``head.*`` by prefix. All layers keep
PyTorch's default initialization, as BasicSR does. 128 x 128 input: 14,499,401 parameters.

Theoretical receptive field / stride of the stage outputs: stage 0: 6 px / 2, stage 1: 16 / 4,
stage 2: 36 / 8, stage 3: 76 / 16, stage 4: 156 / 32.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..backbones import BACKBONE_EXPORT_FORMAT
from ..errors import CheckpointError, InputSizeError
from .heads import FlattenLinearHead

__all__ = ["ESRGAN_VARIANTS", "ESRGANVGGBody", "ESRGANVGGFeatures"]

ESRGAN_VARIANTS: dict[str, int] = {"esrgan_vgg128": 128, "esrgan_vgg256": 256}


class ESRGANVGGBody(nn.Module):
    """Convolutional trunk; ``forward`` returns the output of every stage (stride 2, 4, ..., S/4)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        f = num_feat
        widths = [f, 2 * f, 4 * f, 8 * f, 8 * f] + ([8 * f] if input_size == 256 else [])
        self.num_stages = len(widths)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)
        self.conv0_0 = nn.Conv2d(num_in_ch, f, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(f, f, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(f, affine=True)
        for i in range(1, self.num_stages):
            cin, cout = widths[i - 1], widths[i]
            setattr(self, f"conv{i}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(cout, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(cout, affine=True))
        self.channels = widths
        self.reductions = [2 ** (i + 1) for i in range(self.num_stages)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        outs = [feat]
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
            outs.append(feat)
        return outs


class ESRGANVGGFeatures(nn.Module):
    """The trunk behind the :class:`asymlib.backbones.FeatureExtractor` interface.

    forward: (B, 3, H, W) in [0, 1], H, W >= 32 and multiples of 32 -> list of (B, C_i, H/2^(i+1), W/2^(i+1)).
    """

    def __init__(self, name: str, input_size: int, seed: int = 0, num_feat: int = 64) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = ESRGANVGGBody(3, num_feat, input_size)
        self.name = name
        self.display = f"ESRGAN VGG-style ({input_size})"
        self.timm_name = ""  # not a timm model
        self.input_size = input_size
        self.min_size = 2 ** self.body.num_stages
        self.channels: list[int] = list(self.body.channels)
        self.reductions: list[int] = list(self.body.reductions)
        self.weights_source = f"random(seed={seed})"

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputSizeError(f"{self.name}: expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size or any(s % self.min_size for s in x.shape[-2:]):
            raise InputSizeError(
                f"{self.name}: input {x.shape[-2]}x{x.shape[-1]} must be a multiple of {self.min_size} "
                f"(the vanilla head needs exactly {self.input_size}x{self.input_size})"
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        return self.body(x)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.body.state_dict().items()}

    def load_backbone_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str = "state_dict") -> None:
        """Load trunk weights (all keys required, extra keys ignored). Raises CheckpointError."""
        own = self.body.state_dict()
        missing = [k for k in own if k not in state_dict]
        wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
        if missing or wrong:
            raise CheckpointError(
                f"{source} does not match backbone {self.name!r}: missing {missing[:3]}, shape mismatch {wrong[:3]}"
            )
        self.body.load_state_dict({k: state_dict[k] for k in own})

    def export_metadata(self) -> dict[str, Any]:
        sd = self.body.state_dict()
        signature = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
        return {
            "format": BACKBONE_EXPORT_FORMAT,
            "backbone": self.name,
            "timm_name": self.timm_name,
            "channels": list(self.channels),
            "keys_sha": hashlib.sha256(signature.encode()).hexdigest()[:16],
        }


def build_esrgan_vgg(name: str, seed: int = 0) -> tuple[ESRGANVGGFeatures, dict[str, Any]]:
    """Trunk plus the head overrides of this family (``vanilla`` = ESRGAN's flatten + 2 linear layers)."""
    size = ESRGAN_VARIANTS[name]
    features = ESRGANVGGFeatures(name, size, seed=seed)
    final = size // features.reductions[-1]
    return features, {"vanilla": functools.partial(FlattenLinearHead, spatial=final)}
