"""MATLAB-compatible bicubic resizing in PyTorch.

Reproduces MATLAB's ``imresize(img, scale, 'bicubic')`` (the operator that produced the DIV2K
bicubic LR images and that BasicSR's ``matlab_functions.imresize`` mirrors):

* Keys cubic kernel with a = -0.5, support 4;
* when downscaling with ``antialias=True`` the kernel is stretched by ``1/scale``
  (``h(x) = scale * cubic(scale * x)``, support ``4/scale``), which low-pass filters the input;
* output sample ``j`` (1-based) maps to input coordinate ``u = j/scale + 0.5*(1 - 1/scale)``
  (pixel centres aligned, not corners);
* weights are normalised to sum to one per output sample;
* out-of-range taps are mirrored symmetrically (``..., 2, 1, 1, 2, ...``: edge pixel repeated);
* output length is ``ceil(in_length * scale)``.

Each axis becomes a dense (out, in) interpolation matrix, so the resize is two matrix products:
exact, differentiable and fast for the image sizes used here.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..errors import ConfigError, InputSizeError

__all__ = ["cubic_kernel", "imresize", "resize_matrix"]


def cubic_kernel(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def _resize_matrix_f64(in_length: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    kernel_width = 4.0
    stretch = scale < 1 and antialias
    if stretch:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    weights = scale * cubic_kernel(dist * scale) if stretch else cubic_kernel(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # symmetric mirroring of 1-based positions onto [1, in_length]: period 2*in_length
    period = 2 * in_length
    m = torch.remainder(idx - 1, period)
    src = torch.where(m < in_length, m, period - 1 - m).long()
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, src, weights)
    return matrix


def resize_matrix(
    in_length: int, out_length: int, scale: float, antialias: bool = True, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(out_length, in_length) matrix ``M`` with ``y = M @ x`` the MATLAB bicubic resize of a 1-D signal."""
    return _resize_matrix_f64(int(in_length), int(out_length), float(scale), bool(antialias)).to(dtype)


def _output_length(length: int, scale: float) -> int:
    # MATLAB: ceil(scale * size); the rounding guards against 256 * 0.25 -> 64.00000000000001
    return max(1, math.ceil(round(length * scale, 10)))


def imresize(x: torch.Tensor, scale: float | tuple[float, float], antialias: bool = True) -> torch.Tensor:
    """MATLAB-compatible bicubic resize.

    Args:
        x: (C, H, W) or (B, C, H, W) floating tensor (any range; no clamping or rounding is done).
        scale: resize factor (``0.25`` for x4 downscaling), or ``(scale_h, scale_w)``.
        antialias: stretch the kernel when downscaling (MATLAB default). Ignored when upscaling.

    Returns:
        Tensor of the input's rank and dtype with spatial size ``(ceil(H*scale_h), ceil(W*scale_w))``.
    """
    if not torch.is_floating_point(x):
        raise ConfigError(f"imresize expects a floating-point tensor, got {x.dtype}")
    if x.dim() not in (3, 4):
        raise InputSizeError(f"imresize expects (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
    if sh <= 0 or sw <= 0:
        raise ConfigError(f"imresize scale must be positive, got {scale!r}")
    h, w = x.shape[-2:]
    if h < 1 or w < 1:
        raise InputSizeError(f"imresize got an empty image of size {h}x{w}")
    # float64 weights for float64 inputs, float32 otherwise (half inputs are computed in float32)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    mh = resize_matrix(h, _output_length(h, sh), sh, antialias, work).to(x.device)
    mw = resize_matrix(w, _output_length(w, sw), sw, antialias, work).to(x.device)
    y = torch.matmul(torch.matmul(mh, x.to(work)), mw.transpose(0, 1))
    return y.to(x.dtype)
