"""Texture synthesis with a DISTS-style metric's texture term (paper Fig. 15).

The texture term of Eq. 2-3 compares the global mean of every channel of every stage. Restricted to it,
the metric becomes a distance between texture statistics that ignores where things are:

    T(x, e) = 1 - sum_ij alpha_ij l(x_j^(i), e_j^(i)) / sum_ij alpha_ij,
    l = (2 mu_x mu_e + c1) / (mu_x^2 + mu_e^2 + c1)

Minimizing ``T`` over an image started from noise synthesizes a new sample of the exemplar texture; what
the result looks like shows which statistics the backbone's channel means capture (VGG-16 vs DINOv2 in
the paper). The exemplar's statistics are computed once; the synthesized image may have any size the
backbone accepts (channel means do not depend on the image size).

Example::

    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random")
    brick = fit_image(embedded_textures()["brick"], 128)
    res = synthesize_texture(metric, brick, size=64, steps=100)
    res.losses[0], res.losses[-1]           # texture distance at the start and at the end
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError
from .recovery import (
    Parametrization,
    as_batch,
    initial_image,
    optimize_image,
    to_numpy_image,
)

__all__ = [
    "TextureResult",
    "plot_textures",
    "synthesize_texture",
    "texture_distance",
    "texture_statistics",
    "texture_weights",
]

Weighting = Literal["alpha", "uniform"]


def _features(metric: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    if hasattr(metric, "features"):
        return list(metric.features(x))
    raise ConfigError(f"{type(metric).__name__} has no features(x) method; a DISTS-style metric is needed")


def texture_statistics(metric: torch.nn.Module, exemplar: torch.Tensor) -> list[torch.Tensor]:
    """Channel means of every stage of ``metric.features(exemplar)``: list of ``(B, C_i)`` (float32, no grad).

    Stage 0 is the raw RGB input, as in the metric.
    """
    with torch.no_grad():
        return [f.float().mean(dim=(2, 3)) for f in _features(metric, as_batch(exemplar))]


def texture_weights(metric: torch.nn.Module, weighting: Weighting = "alpha") -> torch.Tensor:
    """Per-channel weights of the texture term, flat ``(sum C_i,)``, summing to 1.

    ``"alpha"``: the metric's ``alpha`` divided by its sum (the texture half of Eq. 3, renormalized);
    ``"uniform"``: every channel counts the same.
    """
    chns = getattr(metric, "chns", None)
    if weighting == "alpha" and hasattr(metric, "alpha"):
        a = metric.alpha.detach().flatten().float().clamp_min(0)
    elif weighting in ("alpha", "uniform"):
        if chns is None:
            raise ConfigError("uniform texture weights need metric.chns (channels per stage)")
        a = torch.ones(int(sum(chns)))
    else:
        raise ConfigError(f"weighting must be 'alpha' or 'uniform', got {weighting!r}")
    return a / a.sum()


def texture_distance(metric: torch.nn.Module, x: torch.Tensor, target: Sequence[torch.Tensor],
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """Texture-only DISTS distance of ``x`` ``(B, 3, H, W)`` to target channel means -> ``(B,)`` in ``[0, 1]``.

    Args:
        metric: DISTS-style metric (``features``, ``alpha``, ``c1``).
        x: images in ``[0, 1]`` (differentiable).
        target: :func:`texture_statistics` of the exemplar, ``(1 or B, C_i)`` per stage.
        weights: flat per-channel weights summing to 1 (default :func:`texture_weights` ``"alpha"``).
    """
    c1 = float(getattr(metric, "c1", 1e-6))
    w = texture_weights(metric) if weights is None else weights
    feats = _features(metric, x)
    if len(feats) != len(target):
        raise ConfigError(f"{len(feats)} feature stages but {len(target)} target statistics")
    terms = []
    for f, mt in zip(feats, target):
        mx = f.float().mean(dim=(2, 3))
        mt = mt.to(mx)
        terms.append((2 * mx * mt + c1) / (mx * mx + mt * mt + c1))
    lt = torch.cat(terms, dim=1)
    if lt.shape[1] != w.numel():
        raise ConfigError(f"{lt.shape[1]} channels in the features but {w.numel()} weights")
    return 1.0 - (lt * w.to(lt)).sum(1)


@dataclass
class TextureResult:
    """Outcome of :func:`synthesize_texture`.

    Attributes:
        image: synthesized texture ``(1, 3, h, w)`` in ``[0, 1]``.
        exemplar: the exemplar ``(1, 3, H, W)``.
        initial: the starting image.
        losses: texture distance before each step and after the last one.
        seconds: wall time.
        label: free text for plots.
    """

    image: torch.Tensor
    exemplar: torch.Tensor
    initial: torch.Tensor
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    label: str = ""


def synthesize_texture(metric: torch.nn.Module, exemplar: torch.Tensor, size: int | tuple[int, int] | None = None,
                       *, init: str | torch.Tensor = "noise", steps: int = 200, lr: float = 0.05,
                       parametrization: Parametrization = "clamp", weighting: Weighting = "alpha", seed: int = 0,
                       progress: bool = True, label: str = "") -> TextureResult:
    """Synthesize a texture by minimizing :func:`texture_distance` to ``exemplar``, starting from noise.

    Args:
        metric: DISTS-style metric (any backbone); used as is, its parameters get no gradient.
        exemplar: ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``.
        size: side(s) of the synthesized image (default: the exemplar's); each side >= the metric's
            ``min_size``.
        init: ``"noise"``, ``"gray"`` or a starting tensor of the output shape.
        steps, lr, parametrization: Adam settings (see :func:`~asymlib.analysis.recovery.optimize_image`).
        weighting: ``"alpha"`` (the metric's texture weights) or ``"uniform"``.
        seed: seed of the starting noise.
    """
    ex = as_batch(exemplar).detach()
    if ex.shape[0] != 1:
        raise ConfigError(f"one exemplar at a time, got a batch of {ex.shape[0]}")
    h, w = ex.shape[-2:] if size is None else ((size, size) if isinstance(size, int) else size)
    start = time.perf_counter()
    target = texture_statistics(metric, ex)
    weights = texture_weights(metric, weighting)
    shape_ref = torch.zeros(1, 3, int(h), int(w), dtype=ex.dtype, device=ex.device)
    if isinstance(init, str) and init == "blur":
        raise ConfigError("a blurred start needs an aligned reference; use 'noise' or 'gray' for textures")
    x0 = initial_image(shape_ref, init, seed=seed)
    res = optimize_image(lambda x: texture_distance(metric, x, target, weights), x0, steps=steps, lr=lr,
                         parametrization=parametrization, progress=progress, desc=f"texture[{label or 'synth'}]")
    return TextureResult(image=res.image, exemplar=ex, initial=x0, losses=res.losses,
                         seconds=time.perf_counter() - start, label=label)


def plot_textures(results: dict[str, dict[str, TextureResult]], title: str = "Texture synthesis",
                  banner: str | None = None):
    """Grid: first row the exemplars, then one row per metric (``results[metric][texture]``).

    Each synthesized panel is captioned with its final texture distance. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    metrics = list(results)
    textures: list[str] = []
    for per in results.values():
        textures += [t for t in per if t not in textures]
    if not metrics or not textures:
        raise ConfigError("plot_textures needs at least one metric and one texture")
    fig, axes = plt.subplots(len(metrics) + 1, len(textures), figsize=(2.3 * len(textures), 2.3 * (len(metrics) + 1)
                                                                       + 0.6), squeeze=False)
    for col, tex in enumerate(textures):
        ex = next(per[tex].exemplar for per in results.values() if tex in per)
        axes[0, col].imshow(to_numpy_image(ex))
        axes[0, col].set_title(f"{tex} (exemplar)", fontsize=8)
        for row, m in enumerate(metrics, start=1):
            ax = axes[row, col]
            res = results[m].get(tex)
            if res is None:
                ax.imshow(np.ones((8, 8, 3)))
            else:
                ax.imshow(to_numpy_image(res.image))
                ax.set_title(f"T = {res.losses[-1]:.4f}", fontsize=7)
            if col == 0:
                ax.set_ylabel(m, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("exemplar", fontsize=8)
    fig.suptitle(title if banner is None else f"{title}\n{banner}", fontsize=9)
    fig.tight_layout()
    return fig
