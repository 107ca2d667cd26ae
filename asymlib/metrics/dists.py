"""DISTS-style full-reference metric over any backbone (paper Eq. 2-3).

For stage ``i`` (stage 0 = the raw ``[0, 1]`` RGB input, then the backbone's feature maps) and channel ``j``:

    l_ij = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)          (texture: global means)
    s_ij = (2 cov_xy + c2) / (var_x + var_y + c2)                (structure: cov = E[xy] - mu_x mu_y)
    D(x, y) = 1 - sum_ij (alpha_ij l_ij + beta_ij s_ij) / (sum alpha + sum beta)

with c1 = c2 = 1e-6. ``D`` is 0 for identical images, symmetric in its arguments, differentiable, and lower
means more similar. Argument order follows pyiqa: ``metric(distorted, reference)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..backbones import FeatureExtractor

__all__ = ["DISTSMetric", "ALPHA_BETA_INIT"]

ALPHA_BETA_INIT = (0.1, 0.01)  # N(mean, std), as DISTS initializes alpha and beta
STAGE0_BOUNDS = (0.02, 1.0)  # projection of stage-0 weights after each update (paper Appendix B)


class DISTSMetric(nn.Module):
    """DISTS-style metric: frozen backbone + per-channel texture/structure weights.

    Args:
        backbone: a frozen :class:`~asymlib.backbones.FeatureExtractor`.
        seed: seed of the ``alpha``/``beta`` initialization ``N(0.1, 0.01)``.
        trainable_weights: False fixes ``alpha``/``beta`` (the paper's VGG-16-R keeps its random ones).
        c1, c2: stabilizing constants.

    Shapes: ``forward(x, y)`` with ``x, y`` of shape ``(B, 3, H, W)`` in ``[0, 1]`` returns ``(B,)``
    distances in about ``[0, 1]``.
    """

    def __init__(self, backbone: FeatureExtractor, seed: int = 0, trainable_weights: bool = True,
                 c1: float = 1e-6, c2: float = 1e-6):
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.chns: list[int] = [3] + list(backbone.channels)
        self.c1, self.c2 = c1, c2
        gen = torch.Generator().manual_seed(seed)
        mean, std = ALPHA_BETA_INIT
        total = sum(self.chns)
        self.alpha = nn.Parameter(torch.randn(1, total, 1, 1, generator=gen) * std + mean,
                                  requires_grad=trainable_weights)
        self.beta = nn.Parameter(torch.randn(1, total, 1, 1, generator=gen) * std + mean,
                                 requires_grad=trainable_weights)
        self.seed = seed

    # The backbone is a fixed feature transform: keep it in eval mode whatever the metric's mode.
    def train(self, mode: bool = True) -> "DISTSMetric":
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def min_size(self) -> int:
        return self.backbone.min_size

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage list ``[x, f_1(x), ..., f_m(x)]``; stage 0 is the raw input."""
        return [x] + self.backbone(x)

    def similarity_terms(self, feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Texture ``l`` and structure ``s`` terms of all stages, each ``(B, sum C_i)``, in float32.

        They do not depend on ``alpha``/``beta``: training the weights of a frozen backbone can compute
        them once per image pair (see :mod:`asymlib.iqa.train`).
        """
        ls, ss = [], []
        for fx, fy in zip(feats_x, feats_y):
            fx, fy = fx.float(), fy.float()
            mx = fx.mean(dim=(2, 3))
            my = fy.mean(dim=(2, 3))
            vx = (fx - mx[..., None, None]).pow(2).mean(dim=(2, 3))
            vy = (fy - my[..., None, None]).pow(2).mean(dim=(2, 3))
            cov = (fx * fy).mean(dim=(2, 3)) - mx * my
            ls.append((2 * mx * my + self.c1) / (mx * mx + my * my + self.c1))
            ss.append((2 * cov + self.c2) / (vx + vy + self.c2))
        return torch.cat(ls, dim=1), torch.cat(ss, dim=1)

    def pair_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(l, s)`` terms ``(B, sum C_i)`` of image pairs; one backbone pass over ``[x; y]``."""
        if x.shape != y.shape:
            raise ValueError(f"distorted and reference shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        self.backbone.check_input(x)
        feats = self.features(torch.cat([x, y], dim=0))
        b = x.shape[0]
        return self.similarity_terms([f[:b] for f in feats], [f[b:] for f in feats])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance_from_terms(*self.pair_terms(x, y))

    def distance_from_terms(self, l_terms: torch.Tensor, s_terms: torch.Tensor) -> torch.Tensor:
        """``1 - sum(alpha l + beta s) / (sum alpha + sum beta)`` from ``(B, sum C_i)`` terms -> ``(B,)``."""
        w_sum = self.alpha.sum() + self.beta.sum()
        a = (self.alpha / w_sum).flatten().float()
        b = (self.beta / w_sum).flatten().float()
        return 1.0 - (l_terms * a).sum(1) - (s_terms * b).sum(1)

    @torch.no_grad()
    def project_weights_(self, stage0_bounds: tuple[float, float] = STAGE0_BOUNDS) -> None:
        """Projection applied after each optimizer step: weights >= 0, stage-0 weights in ``stage0_bounds``."""
        for w in (self.alpha, self.beta):
            w.clamp_(min=0.0)
            w[:, : self.chns[0]].clamp_(*stage0_bounds)

    def weights_state(self) -> dict[str, Any]:
        return {"alpha": self.alpha.detach().cpu().clone(), "beta": self.beta.detach().cpu().clone(),
                "chns": list(self.chns), "backbone": self.backbone.name}

    def load_weights_state(self, state: dict[str, Any], source: str = "state") -> None:
        from ..errors import CheckpointError

        for key in ("alpha", "beta"):
            if key not in state:
                raise CheckpointError(f"{source}: no {key!r} in the metric weights")
            if tuple(state[key].shape) != tuple(self.alpha.shape):
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(state[key].shape)}, metric over {self.backbone.name!r} "
                    f"needs {tuple(self.alpha.shape)}"
                )
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
            self.beta.copy_(state["beta"])

    def load_weights_file(self, path: str | Path) -> None:
        from ..backbones import load_checkpoint_state_dict

        self.load_weights_state(load_checkpoint_state_dict(path), source=str(path))
