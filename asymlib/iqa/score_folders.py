"""Score a folder of distorted images against a folder of references with a full-reference metric.

Pairs are formed by file name: ``DIST_DIR/x.png`` is compared with ``REF_DIR/x.png``. Used by ``asymlib score``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DatasetError, InputSizeError
from ..imageio import load_image
from ..sr.data import IMAGE_EXTENSIONS

__all__ = ["ImagePair", "pair_folders", "score_pairs"]


@dataclass(frozen=True)
class ImagePair:
    """A distorted image and its reference (same file name in both folders)."""

    dist: Path
    ref: Path


def pair_folders(dist_dir: str | Path, ref_dir: str | Path) -> list[ImagePair]:
    """Every image of ``dist_dir`` (sorted by name) with the file of the same name in ``ref_dir``.

    Images are files with a suffix in :data:`asymlib.sr.data.IMAGE_EXTENSIONS`; references without a
    distorted counterpart are ignored.

    Raises:
        DatasetError: a folder is missing, ``dist_dir`` holds no image, or a distorted image has no reference
            (the message names it and where the reference was expected).
    """
    dist_dir, ref_dir = Path(dist_dir), Path(ref_dir)
    for label, folder in (("distorted", dist_dir), ("reference", ref_dir)):
        if not folder.is_dir():
            raise DatasetError(f"{label} folder not found: {folder}")
    files = sorted(p for p in dist_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in distorted folder {dist_dir}")
    pairs = []
    for p in files:
        ref = ref_dir / p.name
        if not ref.is_file():
            raise DatasetError(f"distorted image {p} has no reference: expected {ref} (pairs share a file name)")
        pairs.append(ImagePair(p, ref))
    return pairs


def _load_pair(pair: ImagePair, min_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_image(pair.dist), load_image(pair.ref)
    if x.shape != y.shape:
        raise DatasetError(f"{pair.dist} is {x.shape[-1]}x{x.shape[-2]} but its reference {pair.ref} is "
                           f"{y.shape[-1]}x{y.shape[-2]} (width x height); a full-reference metric needs equal sizes")
    if min(x.shape[-2:]) < min_size:
        raise InputSizeError(f"{pair.dist}: {x.shape[-1]}x{x.shape[-2]} is smaller than the {min_size} px side "
                             f"this metric needs")
    return x, y


def _batches(pairs: list[ImagePair], batch_size: int, min_size: int
             ) -> Iterator[tuple[list[ImagePair], torch.Tensor, torch.Tensor]]:
    """Consecutive pairs of one image size, at most ``batch_size`` at a time."""
    group: list[tuple[ImagePair, torch.Tensor, torch.Tensor]] = []
    for pair in pairs:
        x, y = _load_pair(pair, min_size)
        if group and (len(group) == batch_size or group[0][1].shape != x.shape):
            yield [g[0] for g in group], torch.stack([g[1] for g in group]), torch.stack([g[2] for g in group])
            group = []
        group.append((pair, x, y))
    if group:
        yield [g[0] for g in group], torch.stack([g[1] for g in group]), torch.stack([g[2] for g in group])


@torch.no_grad()
def score_pairs(metric: nn.Module, pairs: list[ImagePair], batch_size: int = 1,
                device: str | torch.device = "cpu", progress: Callable[[int, int], None] | None = None
                ) -> list[float]:
    """``metric(distorted, reference)`` of every pair, in order; images are ``(3, H, W)`` in [0, 1].

    Pairs of the same size are batched (at most ``batch_size``); ``progress(done, total)`` is called after
    each batch.

    Raises:
        DatasetError / ImageReadError / InputSizeError: naming the offending file.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    metric = metric.eval()
    min_size = int(getattr(metric, "min_size", 1))
    scores: list[float] = []
    for _, x, y in _batches(pairs, batch_size, min_size):
        d = metric(x.to(device), y.to(device)).flatten().double().cpu()
        scores.extend(float(v) for v in d)
        if progress is not None:
            progress(len(scores), len(pairs))
    return scores
