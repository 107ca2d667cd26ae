"""Synthetic distortions in the spirit of KADID-10K: a registry of types with 5 severity levels.

Every distortion maps a float tensor (3, H, W) in [0, 1] to a float32 tensor of the same
shape in [0, 1]. Level 1 is the mildest and level 5 the strongest; the per-level parameters
are chosen so that the mean absolute error to the original grows strictly with the level on
the natural colour images of the embedded corpus (``color_saturation`` leaves grayscale images
unchanged). Random distortions draw from ``numpy.random.default_rng((seed, crc32(kind)))``,
so a (kind, seed) pair always gives the same result, and the levels of one seed share the same
random draws (only the strength changes).
"""
from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, InputSizeError, UnknownNameError

__all__ = [
    "NUM_LEVELS",
    "Distortion",
    "distort",
    "get_distortion",
    "list_distortions",
    "register_distortion",
]

NUM_LEVELS = 5

DistortionFn = Callable[[torch.Tensor, float, np.random.Generator], torch.Tensor]


@dataclass(frozen=True)
class Distortion:
    """A registered distortion type.

    Attributes:
        name: registry key.
        fn: ``fn(image (3, H, W) float32 in [0, 1], parameter, rng) -> (3, H, W)``.
        levels: the parameter of levels 1..5, mildest first.
        description: what the parameter means.
    """

    name: str
    fn: DistortionFn
    levels: tuple[float, ...]
    description: str


_REGISTRY: dict[str, Distortion] = {}


def register_distortion(name: str, levels: Sequence[float], description: str) -> Callable[[DistortionFn], DistortionFn]:
    """Decorator registering ``fn(image, parameter, rng)`` under ``name`` with 5 level parameters."""
    if len(levels) != NUM_LEVELS:
        raise ConfigError(f"distortion {name!r} needs {NUM_LEVELS} level parameters, got {len(levels)}")

    def decorator(fn: DistortionFn) -> DistortionFn:
        _REGISTRY[name] = Distortion(name, fn, tuple(levels), description)
        return fn

    return decorator


def get_distortion(kind: str) -> Distortion:
    """The registry entry of ``kind``; :class:`UnknownNameError` lists the known kinds."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise UnknownNameError(f"unknown distortion {kind!r}; known: {list_distortions()}") from None


def list_distortions() -> list[str]:
    """Names of the registered distortion types, in registration order."""
    return list(_REGISTRY)


def distort(image: torch.Tensor, kind: str, level: int, seed: int = 0) -> torch.Tensor:
    """Apply distortion ``kind`` at severity ``level``.

    Args:
        image: float tensor (3, H, W) in [0, 1].
        kind: a name from :func:`list_distortions`.
        level: severity, integer in 1..5 (5 = strongest).
        seed: seed of the random draws (noise, motion direction); deterministic given it.

    Returns:
        float32 tensor (3, H, W) in [0, 1] on the input's device.

    Raises:
        UnknownNameError: unknown ``kind``.
        ConfigError: ``level`` is not an integer in 1..5.
        InputSizeError: ``image`` is not a (3, H, W) tensor.
    """
    entry = get_distortion(kind)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= NUM_LEVELS:
        raise ConfigError(f"distortion level must be an integer in 1..{NUM_LEVELS}, got {level!r}")
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputSizeError(f"distort expects a (3, H, W) tensor, got {shape}")
    rng = np.random.default_rng((int(seed) & 0xFFFFFFFF, zlib.crc32(kind.encode())))
    x = image.detach().float().clamp(0.0, 1.0)
    out = entry.fn(x, entry.levels[int(level) - 1], rng)
    return out.clamp_(0.0, 1.0).to(torch.float32)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _filter(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D filtering of (3, H, W) with an odd-sized (kh, kw) kernel, edge-replicated."""
    kh, kw = kernel.shape
    padded = F.pad(image[None], (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    weight = kernel.to(image)[None, None].expand(3, 1, kh, kw)
    return F.conv2d(padded, weight, groups=3)[0]


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (1, H, W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
    return (image * weights[:, None, None]).sum(dim=0, keepdim=True)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(rng.random(shape, dtype=np.float32)).to(like.device)


# ----------------------------------------------------------------------------------------------
# Blur
# ----------------------------------------------------------------------------------------------
@register_distortion("gaussian_blur", (0.5, 1.0, 2.0, 3.0, 5.0), "standard deviation of the Gaussian (pixels)")
def _gaussian_blur(image: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    return _filter(_filter(image, k[None, :]), k[:, None])


@register_distortion("motion_blur", (3, 5, 9, 13, 19), "length of the linear motion path (pixels); "
                     "its direction is drawn from the seed")
def _motion_blur(image: torch.Tensor, length: float, rng: np.random.Generator) -> torch.Tensor:
    angle = rng.uniform(0.0, math.pi)
    size = int(length) + 2 if int(length) % 2 == 1 else int(length) + 3
    kernel = np.zeros((size, size), dtype=np.float64)
    centre = size // 2
    # Bilinear splatting of densely sampled points along the segment gives an anti-aliased line.
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * int(length)):
        px, py = centre + t * math.cos(angle), centre + t * math.sin(angle)
        x0, y0 = math.floor(px), math.floor(py)
        fx, fy = px - x0, py - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                kernel[y0 + dy, x0 + dx] += wx * wy
    kernel /= kernel.sum()
    return _filter(image, torch.from_numpy(kernel).float())


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------
@register_distortion("gaussian_noise", (0.02, 0.04, 0.07, 0.10, 0.15), "standard deviation of white noise")
def _gaussian_noise(image: torch.Tensor, std: float, rng: np.random.Generator) -> torch.Tensor:
    noise = torch.from_numpy(rng.standard_normal(tuple(image.shape), dtype=np.float32)).to(image.device)
    return image + std * noise


@register_distortion("impulse_noise", (0.01, 0.03, 0.06, 0.10, 0.15), "fraction of salt-and-pepper values")
def _impulse_noise(image: torch.Tensor, fraction: float, rng: np.random.Generator) -> torch.Tensor:
    hit = _uniform(rng, tuple(image.shape), image) < fraction
    salt = _uniform(rng, tuple(image.shape), image) < 0.5
    return torch.where(hit, salt.to(image.dtype), image)


# ----------------------------------------------------------------------------------------------
# Compression and quantization
# ----------------------------------------------------------------------------------------------
@register_distortion("jpeg", (60, 35, 20, 10, 5), "JPEG quality (PIL, 4:2:0 chroma subsampling)")
def _jpeg(image: torch.Tensor, quality: float, rng: np.random.Generator) -> torch.Tensor:
    array = (image.cpu().numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out.transpose(2, 0, 1).copy()).to(image.device)


@register_distortion("quantization", (32, 16, 8, 5, 3), "number of uniform levels per channel")
def _quantization(image: torch.Tensor, levels: float, rng: np.random.Generator) -> torch.Tensor:
    steps = float(levels) - 1.0
    return torch.round(image * steps) / steps


@register_distortion("pixelate", (2, 3, 4, 6, 8), "side of the averaged pixel blocks")
def _pixelate(image: torch.Tensor, factor: float, rng: np.random.Generator) -> torch.Tensor:
    h, w = image.shape[-2:]
    small = F.interpolate(image[None], size=(max(1, round(h / factor)), max(1, round(w / factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")[0]


# ----------------------------------------------------------------------------------------------
# Photometric changes
# ----------------------------------------------------------------------------------------------
@register_distortion("contrast_change", (0.85, 0.70, 0.55, 0.40, 0.25), "remaining contrast around the mean luma")
def _contrast_change(image: torch.Tensor, factor: float, rng: np.random.Generator) -> torch.Tensor:
    mean = _luminance(image).mean()
    return mean + factor * (image - mean)


@register_distortion("brighten", (0.85, 0.70, 0.55, 0.45, 0.35), "gamma < 1 applied to every channel")
def _brighten(image: torch.Tensor, gamma: float, rng: np.random.Generator) -> torch.Tensor:
    return image.pow(gamma)


@register_distortion("darken", (1.2, 1.5, 1.9, 2.4, 3.0), "gamma > 1 applied to every channel")
def _darken(image: torch.Tensor, gamma: float, rng: np.random.Generator) -> torch.Tensor:
    return image.pow(gamma)


@register_distortion("color_saturation", (0.8, 0.6, 0.4, 0.2, 0.0), "remaining saturation (0 = grayscale)")
def _color_saturation(image: torch.Tensor, factor: float, rng: np.random.Generator) -> torch.Tensor:
    luma = _luminance(image)
    return luma + factor * (image - luma)
