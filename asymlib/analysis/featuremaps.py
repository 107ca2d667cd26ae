"""Feature maps of discriminator backbones for display (paper Fig. 14).

Each stage's ``(C, h, w)`` activation is reduced to one ``(h, w)`` map and normalized to ``[0, 1]``:

- ``"mean"``: the channel mean (what a global texture statistic sees),
- ``"absmean"``: the mean absolute activation (energy; useful for signed maps such as ViT tokens),
- ``"topk"``: the mean of the ``k`` channels with the largest spatial variance (the most
  image-dependent channels),
- ``"max"``: the channel-wise maximum.

Normalization is per map, between its ``low`` and ``high`` percentiles (1 and 99 by default), so that a
few extreme activations do not wash out the rest.

Works with a :class:`~asymlib.discriminators.Discriminator` (its ``.backbone``), a
:class:`~asymlib.backbones.FeatureExtractor` (``forward -> list of maps``) or a DISTS-style metric
(``.features``, whose stage 0 is the input itself).

Example::

    disc = asymlib.create_discriminator("vgg16", "patch")
    maps = feature_maps(disc, image)                 # list of (h_i, w_i) tensors in [0, 1]
    fig = plot_feature_maps({"VGG-16": (image, maps)})
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .recovery import as_batch, to_numpy_image

__all__ = ["REDUCTIONS", "feature_maps", "normalize_map", "plot_feature_maps", "stage_features"]

Reduction = Literal["mean", "absmean", "topk", "max"]
REDUCTIONS = ("mean", "absmean", "topk", "max")


def stage_features(model: nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
    """Backbone maps of one image ``(3, H, W)`` / ``(1, 3, H, W)`` -> list of ``(C_i, h_i, w_i)`` (no grad).

    ``model`` is a discriminator (``.backbone``), a feature extractor (callable returning a list) or a
    metric (``.features``). The model is evaluated in eval mode and its mode restored afterwards.
    """
    x = as_batch(image)
    if x.shape[0] != 1:
        raise ConfigError(f"one image at a time, got a batch of {x.shape[0]}")
    method = getattr(model, "features", None)
    if callable(method) and not isinstance(method, nn.Module):  # a metric's features(x) method
        fn, owner = method, model
    elif hasattr(model, "backbone"):
        fn, owner = model.backbone, model.backbone
    else:
        fn, owner = model, model
    was_training = owner.training
    owner.eval()
    try:
        with torch.no_grad():
            p = next(owner.parameters(), None)
            maps = fn(x.to(p.device) if p is not None else x)
    finally:
        owner.train(was_training)
    if not isinstance(maps, (list, tuple)):
        raise ConfigError(f"{type(model).__name__} returned {type(maps).__name__}, expected a list of maps")
    return [m[0].detach().float().cpu() for m in maps]


def normalize_map(m: torch.Tensor, low: float = 1.0, high: float = 99.0) -> torch.Tensor:
    """Map ``(h, w)`` -> ``[0, 1]`` between its ``low`` and ``high`` percentiles (constant maps -> 0)."""
    flat = m.flatten().float()
    lo = torch.quantile(flat, low / 100.0)
    hi = torch.quantile(flat, high / 100.0)
    if not torch.isfinite(hi - lo) or float(hi - lo) <= 1e-12 * max(1.0, float(flat.abs().max())):
        return torch.zeros_like(m, dtype=torch.float32)
    return ((m.float() - lo) / (hi - lo)).clamp(0, 1)


def _reduce(f: torch.Tensor, reduce: Reduction, k: int) -> torch.Tensor:
    if reduce == "mean":
        return f.mean(0)
    if reduce == "absmean":
        return f.abs().mean(0)
    if reduce == "max":
        return f.max(0).values
    if reduce == "topk":
        var = f.flatten(1).var(1, unbiased=False)
        idx = var.topk(min(k, f.shape[0])).indices
        sel = f[idx]
        # put every channel on one scale before averaging, so no single channel dominates
        mu = sel.mean(dim=(1, 2), keepdim=True)
        sd = sel.std(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        return ((sel - mu) / sd).mean(0)
    raise ConfigError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")


def feature_maps(model: nn.Module, image: torch.Tensor, *, reduce: Reduction = "mean", k: int = 8,
                 stages: Sequence[int] | None = None, upsample: bool = False, low: float = 1.0,
                 high: float = 99.0) -> list[torch.Tensor]:
    """Per-stage feature maps of one image, reduced over channels and normalized to ``[0, 1]``.

    Args:
        model: discriminator, feature extractor or DISTS-style metric (see :func:`stage_features`).
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``.
        reduce: channel reduction (see the module docstring); ``k`` channels for ``"topk"``.
        stages: indices into the model's map list (default: all).
        upsample: resize every map to the image size ``(H, W)`` (bilinear), e.g. for overlays.
        low, high: normalization percentiles.

    Returns:
        ``[(h_i, w_i)]`` float32 tensors in ``[0, 1]`` (``(H, W)`` each with ``upsample=True``).
    """
    feats = stage_features(model, image)
    idx = list(range(len(feats))) if stages is None else [int(s) for s in stages]
    bad = [s for s in idx if not -len(feats) <= s < len(feats)]
    if bad:
        raise ConfigError(f"stages {bad} out of range for {len(feats)} feature maps")
    size = tuple(as_batch(image).shape[-2:])
    out = []
    for s in idx:
        m = normalize_map(_reduce(feats[s], reduce, k), low, high)
        if upsample and tuple(m.shape) != size:
            m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)
        out.append(m)
    return out


def plot_feature_maps(rows: Mapping[str, tuple[torch.Tensor, Sequence[torch.Tensor]]],
                      stage_names: Mapping[str, Sequence[str]] | None = None, title: str = "Discriminator feature maps",
                      banner: str | None = None, cmap: str = "viridis"):
    """Fig. 14 layout: one row per model, the input image then its normalized maps.

    Args:
        rows: ``{row label: (image (3, H, W), [maps (h_i, w_i) in [0, 1]])}``.
        stage_names: optional ``{row label: [name per map]}`` for the column titles (default ``stage i``).
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ConfigError("plot_feature_maps needs at least one row")
    ncols = 1 + max(len(maps) for _, maps in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.0 * ncols, 2.1 * len(rows) + 0.6), squeeze=False)
    for r, (label, (image, maps)) in enumerate(rows.items()):
        axes[r, 0].imshow(to_numpy_image(as_batch(image)[0]))
        axes[r, 0].set_title("input", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
        names = list((stage_names or {}).get(label, [])) or [f"stage {i}" for i in range(len(maps))]
        for c in range(1, ncols):
            ax = axes[r, c]
            if c - 1 < len(maps):
                m = maps[c - 1]
                arr = m.numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
                ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(f"{names[c - 1]} ({arr.shape[0]}x{arr.shape[1]})", fontsize=7)
            else:
                ax.axis("off")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title if banner is None else f"{title}\n{banner}", fontsize=9)
    fig.tight_layout()
    return fig
