"""Image reading and writing. Images are float32 tensors of shape (3, H, W) in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

__all__ = ["load_image", "to_tensor", "to_pil", "save_image"]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8/float array -> float32 tensor (3, H, W) in [0, 1].

    Grayscale is replicated to RGB; an alpha channel is dropped.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32)
        if arr.max() > 1.0 + 1e-6:
            arr = arr / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).clamp_(0.0, 1.0)


def load_image(path: str | Path, mode: str = "RGB", strict_mode: bool = False) -> torch.Tensor:
    """Read an image file as a float32 tensor (3, H, W) in [0, 1].

    Args:
        path: image file.
        mode: colour mode to convert to (only ``"RGB"`` is supported).
        strict_mode: if True, refuse images whose stored mode is not RGB (grayscale, RGBA,
            palette...) instead of converting them.

    Raises:
        ImageReadError: the file is missing, is not an image, is truncated, or (strict_mode)
            is not stored as RGB. The message names the path.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            if strict_mode and im.mode != mode:
                raise ImageReadError(
                    f"{p}: image mode is {im.mode!r} ({len(im.getbands())} channels); an {mode} image is required"
                )
            rgb = im.convert(mode)
            arr = np.asarray(rgb)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image {p}: {exc}") from exc
    return to_tensor(arr)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [0, 1] -> PIL RGB image (values are clamped and rounded)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got {tuple(image.shape)}")
    arr = (image.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr)


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Save a (3, H, W) tensor in [0, 1] atomically (format from the suffix, PNG recommended)."""
    from .atomic import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        to_pil(image).save(tmp, format=p.suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG")
    return p
