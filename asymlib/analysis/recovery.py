"""Image recovery with a full-reference metric (paper Fig. 12-13, after Ding et al. 2021).

An image ``x`` is optimized so that ``metric(x, reference)`` becomes small, starting from noise (or from a
blurred or gray copy of the reference). A metric that is *injective* (a bijection onto its feature space,
such as the DISTS-style metrics with the raw input as stage 0) should lead back to the reference; where it
is not, recovery stalls on images the metric cannot tell apart from the reference. The gradient
``d metric / d x`` at the starting point shows which image content the metric reacts to first (Fig. 13).

Pixel values stay in ``[0, 1]`` throughout: either by projection (``parametrization="clamp"``: Adam on the
pixels, clamped after each step, as in Ding et al.) or through a sigmoid (``"sigmoid"``: Adam on logits).

Example::

    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random")
    ref = fit_image(embedded_images(["chelsea"])["chelsea"], 64)
    res = recover_image(metric, ref, init="noise", steps=100)
    res.losses[0], res.losses[-1]           # metric value at the start and at the end
    res.image.shape                         # (1, 3, 64, 64), in [0, 1]
    res.gradient.shape                      # (1, 3, 64, 64): d metric / d x at the start
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputSizeError

__all__ = [
    "INITIALIZATIONS",
    "RecoveryResult",
    "as_batch",
    "fit_image",
    "gaussian_blur",
    "gradient_magnitude",
    "initial_image",
    "metric_gradient",
    "optimize_image",
    "plot_recovery",
    "recover_image",
    "to_numpy_image",
]

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Parametrization = Literal["clamp", "sigmoid"]
INITIALIZATIONS = ("noise", "blur", "gray")
_EPS = 1e-4


# ------------------------------------------------------------------------------------------------
# Image helpers (shared by the other analysis modules)
# ------------------------------------------------------------------------------------------------
def as_batch(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``(3, H, W)`` / ``(B, 3, H, W)`` tensor or ``(H, W[, 3])`` array -> float ``(B, 3, H, W)`` tensor."""
    if isinstance(image, np.ndarray):
        from ..imageio import to_tensor

        image = to_tensor(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a tensor or an array, got {type(image).__name__}")
    x = image.float()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputSizeError(f"expected a (3, H, W) or (B, 3, H, W) image, got shape {tuple(image.shape)}")
    return x


def fit_image(image: torch.Tensor | np.ndarray, size: int | tuple[int, int], mode: str = "crop") -> torch.Tensor:
    """Bring an image to ``size`` pixels: ``(3, H, W)`` or ``(B, 3, H, W)`` -> ``(B, 3, h, w)`` in ``[0, 1]``.

    ``mode="crop"`` resizes the shorter side to ``size`` (antialiased bicubic) and takes the central crop;
    ``mode="resize"`` resizes the whole image (aspect ratio not kept).
    """
    x = as_batch(image)
    h, w = (size, size) if isinstance(size, int) else size
    if mode == "resize":
        return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    if mode != "crop":
        raise ConfigError(f"mode must be 'crop' or 'resize', got {mode!r}")
    H, W = x.shape[-2:]
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    if (nh, nw) != (H, W):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (nh - h) // 2, (nw - w) // 2
    return x[..., top:top + h, left:left + w].contiguous()


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` or ``(1, 3, H, W)`` tensor -> ``(H, W, 3)`` float array in ``[0, 1]`` (for imshow)."""
    x = image.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding: ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, min(x.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def initial_image(reference: torch.Tensor, init: str | torch.Tensor = "noise", seed: int = 0,
                  blur_sigma: float = 4.0, noise_std: float | None = None) -> torch.Tensor:
    """Starting point of an image optimization, shaped like ``reference`` ``(B, 3, H, W)``, in ``[0, 1]``.

    Args:
        reference: ``(B, 3, H, W)`` in ``[0, 1]``.
        init: ``"noise"`` (uniform noise in ``[0, 1]``, or Gaussian noise of std ``noise_std`` around 0.5),
            ``"blur"`` (the reference blurred with ``blur_sigma`` pixels), ``"gray"`` (constant 0.5 plus a
            little noise, so that every structure term is defined), or a tensor of the reference's shape.
        seed: seed of the noise (CPU generator: identical on every device).
    """
    ref = as_batch(reference)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(init, torch.Tensor):
        x0 = as_batch(init).to(ref)
        if x0.shape != ref.shape:
            raise InputSizeError(f"init has shape {tuple(x0.shape)}, the reference {tuple(ref.shape)}")
        return x0.clamp(0, 1)
    if init == "noise":
        if noise_std is None:
            noise = torch.rand(ref.shape, generator=gen)
        else:
            noise = 0.5 + noise_std * torch.randn(ref.shape, generator=gen)
        return noise.clamp(0, 1).to(ref)
    if init == "blur":
        return gaussian_blur(ref, blur_sigma).clamp(0, 1)
    if init == "gray":
        return (0.5 + 0.01 * torch.randn(ref.shape, generator=gen)).clamp(0, 1).to(ref)
    raise ConfigError(f"init must be one of {INITIALIZATIONS} or a tensor, got {init!r}")


# ------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------
def _objective_gradient(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(objective(xg).sum(), [xg])
    return g.detach()


def metric_gradient(metric: MetricFn, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``d metric(x, reference).sum() / d x``, shape ``(B, 3, H, W)``; the metric's parameters get no grad."""
    ref = as_batch(reference).detach()
    return _objective_gradient(lambda z: metric(z, ref), as_batch(x))


def gradient_magnitude(gradient: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Per-pixel gradient magnitude for display: ``(B, 3, H, W)`` -> ``(B, H, W)`` in ``[0, 1]``.

    The L2 norm over colour channels, divided per image by its ``percentile``-th value and clipped, so that
    a few extreme pixels do not flatten the map.
    """
    g = as_batch(gradient) if gradient.dim() == 3 else gradient
    mag = g.detach().float().pow(2).sum(1).sqrt()
    flat = mag.flatten(1)
    scale = torch.quantile(flat, percentile / 100.0, dim=1).clamp_min(1e-20)
    return (mag / scale[:, None, None]).clamp(0, 1)


# ------------------------------------------------------------------------------------------------
# Optimization
# ------------------------------------------------------------------------------------------------
@dataclass
class RecoveryResult:
    """Outcome of :func:`recover_image` / :func:`optimize_image`.

    Attributes:
        image: the optimized image ``(B, 3, H, W)`` in ``[0, 1]``.
        initial: the starting image ``(B, 3, H, W)``.
        losses: objective value (batch mean) before each step, then after the last one (``steps + 1``).
        gradient: ``d objective / d x`` at the starting image, ``(B, 3, H, W)``.
        snapshots: ``{step: image (B, 3, H, W)}`` recorded along the way (``snapshot_steps``).
        final_values: per-image objective at the end, ``(B,)``.
        seconds: wall time of the optimization.
        label: free text for plots.
    """

    image: torch.Tensor
    initial: torch.Tensor
    losses: list[float]
    gradient: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    final_values: torch.Tensor | None = None
    seconds: float = 0.0
    label: str = ""

    @property
    def relative_improvement(self) -> float:
        """``1 - last / first`` objective value (1 = objective driven to zero)."""
        first, last = self.losses[0], self.losses[-1]
        return float(1.0 - last / first) if first != 0 else 0.0


def _logit(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(_EPS, 1 - _EPS)
    return torch.log(x) - torch.log1p(-x)


def optimize_image(objective: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, steps: int = 100,
                   lr: float = 0.05, parametrization: Parametrization = "clamp",
                   snapshot_steps: Sequence[int] = (), progress: bool = True, desc: str = "optimize",
                   lr_decay: float | None = 0.1) -> RecoveryResult:
    """Minimize ``objective(x) -> (B,)`` over images ``x`` in ``[0, 1]`` with Adam, starting from ``x0``.

    Args:
        objective: maps ``(B, 3, H, W)`` to per-image values ``(B,)`` (their sum is minimized).
        x0: starting image ``(B, 3, H, W)`` in ``[0, 1]``.
        steps: number of Adam steps.
        lr: Adam learning rate (pixel units for ``"clamp"``, logit units for ``"sigmoid"``).
        parametrization: ``"clamp"`` (projected gradient on pixels) or ``"sigmoid"`` (``x = sigmoid(z)``).
        snapshot_steps: steps at which to keep a copy of the image (0 = start).
        progress: show a tqdm bar.
        lr_decay: cosine-anneal the learning rate down to ``lr * lr_decay`` (None: constant).
    """
    from ..progress import tqdm

    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if lr <= 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    if parametrization not in ("clamp", "sigmoid"):
        raise ConfigError(f"parametrization must be 'clamp' or 'sigmoid', got {parametrization!r}")
    x0 = as_batch(x0).detach().clamp(0, 1)
    param = (x0.clone() if parametrization == "clamp" else _logit(x0)).requires_grad_(True)

    def image() -> torch.Tensor:
        return param if parametrization == "clamp" else torch.sigmoid(param)

    opt = torch.optim.Adam([param], lr=lr)
    sched = None
    if lr_decay is not None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * lr_decay)
    snaps = {int(s) for s in snapshot_steps}
    snapshots: dict[int, torch.Tensor] = {}
    losses: list[float] = []
    gradient0: torch.Tensor | None = None
    start = time.perf_counter()
    bar = tqdm(range(steps + 1), desc=desc, disable=not progress, leave=False)
    with torch.enable_grad():
        for step in bar:
            x = image()
            if step in snaps:
                snapshots[step] = x.detach().clone()
            values = objective(x)
            loss = values.sum()
            losses.append(float(values.detach().mean()))
            if step == steps:
                final_values = values.detach()
                break
            (grad,) = torch.autograd.grad(loss, [param])
            if step == 0:
                # gradient w.r.t. the pixels (through the sigmoid's Jacobian when used)
                gradient0 = grad.detach().clone() if parametrization == "clamp" else _objective_gradient(objective, x0)
            param.grad = grad
            opt.step()
            if sched is not None:
                sched.step()
            if parametrization == "clamp":
                with torch.no_grad():
                    param.clamp_(0, 1)
            if progress:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    assert gradient0 is not None
    return RecoveryResult(image=image().detach().clone(), initial=x0, losses=losses, gradient=gradient0,
                          snapshots=snapshots, final_values=final_values, seconds=time.perf_counter() - start)


def recover_image(metric: MetricFn, reference: torch.Tensor, init: str | torch.Tensor = "noise", *,
                  steps: int = 100, lr: float = 0.05, parametrization: Parametrization = "clamp", seed: int = 0,
                  blur_sigma: float = 4.0, snapshot_steps: Sequence[int] = (), progress: bool = True,
                  lr_decay: float | None = 0.1, label: str = "") -> RecoveryResult:
    """Recover ``reference`` by minimizing ``metric(x, reference)`` from a starting image (Fig. 12-13).

    Args:
        metric: full-reference distance ``metric(x, y) -> (B,)`` (lower = more similar), differentiable
            w.r.t. ``x``; e.g. a :class:`~asymlib.metrics.DISTSMetric`. It is used as is (put it in eval
            mode and on the reference's device); its parameters receive no gradient.
        reference: ``(3, H, W)`` or ``(B, 3, H, W)`` in ``[0, 1]`` (``H, W`` >= the metric's ``min_size``).
        init: ``"noise"``, ``"blur"``, ``"gray"`` or a starting tensor (see :func:`initial_image`).
        steps, lr, parametrization, snapshot_steps, progress, lr_decay: see :func:`optimize_image`.
        seed: seed of the starting noise.
        blur_sigma: Gaussian sigma (pixels) of the ``"blur"`` start.

    Returns:
        A :class:`RecoveryResult`; ``losses[0]`` is the metric at the start, ``losses[-1]`` at the end and
        ``gradient`` is ``d metric / d x`` at the start.
    """
    ref = as_batch(reference).detach()
    x0 = initial_image(ref, init, seed=seed, blur_sigma=blur_sigma)
    name = label or (init if isinstance(init, str) else "custom")
    res = optimize_image(lambda x: metric(x, ref), x0, steps=steps, lr=lr, parametrization=parametrization,
                         snapshot_steps=snapshot_steps, progress=progress, desc=f"recover[{name}]",
                         lr_decay=lr_decay)
    res.label = name
    return res


# ------------------------------------------------------------------------------------------------
# Plotting
# ------------------------------------------------------------------------------------------------
def plot_recovery(results: dict[str, RecoveryResult], reference: torch.Tensor, title: str = "Image recovery",
                  banner: str | None = None, show_gradient: bool = True, show_curve: bool = True):
    """One row per result: start, gradient magnitude at the start, recovered image; plus the reference and
    the loss curves. ``results`` maps a row label (e.g. ``"VGG-16 / noise"``) to a result (first image of
    its batch is shown). Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    n = len(results)
    cols = 3 + int(show_gradient) + int(show_curve)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols, 2.3 * n + 0.6), squeeze=False)
    ref = to_numpy_image(as_batch(reference)[0])
    for row, (label, res) in enumerate(results.items()):
        panels: list[tuple[str, np.ndarray | None, str | None]] = [("start", to_numpy_image(res.initial[0]), None)]
        if show_gradient:
            panels.append(("|d metric / d x| at start", gradient_magnitude(res.gradient)[0].cpu().numpy(), "magma"))
        panels.append((f"recovered ({res.losses[-1]:.3f})", to_numpy_image(res.image[0]), None))
        panels.append(("reference", ref, None))
        for col, (name, img, cmap) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0 or col != 0:
                ax.set_title(name, fontsize=8)
        axes[row, 0].set_ylabel(label, fontsize=8)
        if show_curve:
            ax = axes[row, -1]
            ax.plot(res.losses, lw=1.2)
            ax.set_yscale("log")
            ax.set_xlabel("step", fontsize=7)
            ax.set_title("metric", fontsize=8)
            ax.tick_params(labelsize=6)
    head = title if banner is None else f"{title}\n{banner}"
    fig.suptitle(head, fontsize=9)
    fig.tight_layout()
    return fig
