"""Benchmark inputs: crops of the embedded photographs and distorted copies of them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["distort", "image_batch"]

_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def image_batch(batch: int, size: int | tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``(batch, 3, h, w)`` crops in ``[0, 1]`` of the embedded photographs (upscaled where an image is smaller);
    ``size`` is ``(h, w)`` or one side of a square."""
    from ..data.corpus import embedded_images

    ch, cw = (size, size) if isinstance(size, int) else size
    imgs = list(embedded_images(list(_IMAGES)).values())
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(batch):
        im = imgs[i % len(imgs)]
        h, w = im.shape[-2:]
        if h < ch or w < cw:
            f = max(ch / h, cw / w)
            im = F.interpolate(im[None], size=(max(ch, round(h * f)), max(cw, round(w * f))), mode="bilinear",
                               align_corners=False, antialias=False)[0].clamp(0, 1)
            h, w = im.shape[-2:]
        top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        crop = im[:, top:top + ch, left:left + cw]
        out.append(crop.flip(-1) if (i // len(imgs)) % 2 else crop)
    return torch.stack(out).contiguous()


def distort(ref: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """A blurred, noisy version of ``ref`` ``(B, 3, H, W)`` in ``[0, 1]`` (non-trivial distances, not 0 == 0)."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.tensor([0.25, 0.5, 0.25])
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    blurred = F.conv2d(F.pad(ref, (1, 1, 1, 1), mode="reflect"), k2, groups=3)
    return (blurred + 0.03 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
