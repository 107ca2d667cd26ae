"""Image reading and writing. Images are float32 tensors of shape (3, H, W) in [0, 1]."""
from __future__ import annotations

import re
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_16BIT_VIA_CV2 = (2, 4, 6)  # RGB, grey + alpha, RGBA: Pillow reduces these to 8 bits
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from the IHDR chunk of a PNG file, None for any other file."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16_cv2(path: Path) -> np.ndarray:
    """A 16-bit colour PNG as an ``(H, W)`` or ``(H, W, 3)`` uint16 array through OpenCV (keeps all 16 bits)."""
    try:
        import cv2
    except ImportError as exc:
        raise ImageReadError(f"{path} is a 16-bit colour PNG; reading it without losing precision needs OpenCV "
                             f"(pip install opencv-python-headless, a dependency of pyiqa): {exc}") from exc
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        got = "nothing" if arr is None else f"a {arr.dtype} array"
        raise ImageReadError(f"cannot decode 16-bit PNG {path}: OpenCV returned {got}")
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[-1] <= 2 else arr[..., 2::-1]  # grey(+alpha) or BGR(A) -> RGB
    return arr


def _pixels(path: Path, im: Image.Image, mode: str) -> np.ndarray:
    """Pixel array of an opened image: uint8 ``(H, W, 3)``, or uint16 ``(H, W[, 3])`` for 16-bit images."""
    header = _png_header(path) if im.format == "PNG" else None
    if header is not None and header[0] == 16 and header[1] in _PNG_COLOUR_16BIT_VIA_CV2:
        return _read_png16_cv2(path)
    if im.mode in _MODES_16BIT:
        return np.asarray(im).astype(np.uint16)
    if im.mode == "I":  # 32-bit integer storage: 16-bit greyscale PNG/PGM/TIFF in some Pillow versions
        arr = np.asarray(im)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageReadError(f"{path}: 32-bit integer image with values in [{lo}, {hi}]; only 8- and 16-bit "
                                 f"images are supported")
        return arr.astype(np.uint16)
    return np.asarray(im.convert(mode))


def decompression_bomb_message(path: Path, exc: Exception) -> str:
    """Message of an :class:`ImageReadError` for Pillow's ``DecompressionBombError``: the file, its pixel count,
    the limit and how to raise it."""
    m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+) pixels", str(exc))
    size = f"{int(m.group(1)):,} pixels, over the limit of {int(m.group(2)):,}" if m else str(exc)
    return (f"{path}: image of {size} refused by Pillow as a possible decompression bomb; if the file is "
            f"trusted, raise the limit with PIL.Image.MAX_IMAGE_PIXELS = <pixels> (now {Image.MAX_IMAGE_PIXELS}; "
            f"images over twice that are refused) or set it to None to disable the check")


def load_image(path: str | Path, mode: str = "RGB", strict_mode: bool = False) -> torch.Tensor:
    """Read an image file as a float32 tensor (3, H, W) in [0, 1].

    8-bit images are divided by 255; 16-bit ones (greyscale ``I;16`` and RGB/RGBA PNGs, which Pillow would
    reduce to 8 bits and are read with OpenCV) by 65535, keeping their precision. Greyscale is replicated to
    RGB and an alpha channel dropped.

    Args:
        path: image file.
        mode: colour mode to convert to (only ``"RGB"`` is supported).
        strict_mode: if True, refuse images whose stored mode is not RGB (grayscale, RGBA,
            palette...) instead of converting them.

    Raises:
        ImageReadError: the file is missing, is not an image, is truncated, is larger than Pillow's
            decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), or (strict_mode) is not stored as RGB.
            The message names the path.
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
            arr = _pixels(p, im, mode)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(decompression_bomb_message(p, exc)) from exc
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
