"""A full-reference IQA benchmark generated offline from the embedded image corpus.

Every reference image is distorted with every registered distortion type at levels 1..5; the
"score" of an item is its distortion level (lower is better). Levels of different contents or
distortion types are not comparable, so the benchmark is meant to be evaluated with the
within-group protocol of :func:`asymlib.iqa.stats.evaluate_iqa` using ``records["group"]``
(one group = one reference image under one distortion type).
"""
from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.corpus import embedded_images, list_embedded_images
from ..data.distortions import NUM_LEVELS, distort, get_distortion, list_distortions
from ..errors import ConfigError
from .splits import group_split

__all__ = ["SyntheticFRBenchmark", "resize_center_crop"]

_MIN_CROP = 16

PairedTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def resize_center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (3, H, W) in [0, 1] so the shorter side is ``size`` (antialiased bicubic), then
    take the central ``size`` x ``size`` crop. Returns float32 (3, size, size) in [0, 1]."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[0, :, top:top + size, left:left + size].clamp(0.0, 1.0).contiguous()


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return (image * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class SyntheticFRBenchmark(Dataset):
    """Synthetic full-reference benchmark: (distorted, reference, distortion level) triplets.

    Images are generated once at construction and held in memory as 8-bit tensors (like the
    PNG files of KADID-10K), i.e. about ``len(self) * 3 * crop**2`` bytes.

    Args:
        image_names: reference images from :func:`asymlib.data.corpus.list_embedded_images`
            (``None``: the colour photographs).
        distortions: distortion types (``None``: all registered ones).
        levels: severity levels to include, each in 1..5.
        crop: side of the square items; each reference is resized so its shorter side is
            ``crop`` and centre-cropped, then distorted at that size.
        seed: seed of the random distortions (each reference gets its own stream derived from
            it, shared across levels so severity is the only thing that changes in a group).
        transform: optional paired transform ``(dist, ref) -> (dist, ref)`` applied in
            ``__getitem__`` (as in :class:`asymlib.iqa.datasets.FRDataset`).

    Attributes:
        name, score_name, higher_is_better: dataset description shared with the FR readers.
        records: one row per item: ``dist`` ("astronaut|gaussian_blur|3"), ``ref``
            ("astronaut"), ``score`` (float level), ``group`` ("astronaut|gaussian_blur"),
            ``distortion``, ``level``. Unlike the file-based readers, whose ``group`` is the
            reference image, a group here is one reference under one distortion type.

    Items: ``{"dist": float32 (3, crop, crop) in [0, 1], "ref": same, "score": float32 scalar
    tensor, "index": i}``.
    """

    name = "Synthetic levels (embedded corpus)"
    score_name = f"synthetic distortion level (1-{NUM_LEVELS})"
    higher_is_better = False

    def __init__(
        self,
        image_names: Sequence[str] | None = None,
        distortions: Sequence[str] | None = None,
        levels: Sequence[int] = (1, 2, 3, 4, 5),
        crop: int = 128,
        seed: int = 0,
        transform: PairedTransform | None = None,
    ) -> None:
        image_names = list_embedded_images("color") if image_names is None else list(image_names)
        distortions = list_distortions() if distortions is None else list(distortions)
        levels = [int(level) for level in levels]
        for label, values in (("image_names", image_names), ("distortions", distortions), ("levels", levels)):
            if not values:
                raise ConfigError(f"{label} must not be empty")
            if len(set(values)) != len(values):
                raise ConfigError(f"{label} contains duplicates: {values}")
        bad_levels = [level for level in levels if not 1 <= level <= NUM_LEVELS]
        if bad_levels:
            raise ConfigError(f"levels must lie in 1..{NUM_LEVELS}, got {bad_levels}")
        if int(crop) < _MIN_CROP:
            raise ConfigError(f"crop must be at least {_MIN_CROP} pixels, got {crop}")
        for kind in distortions:
            get_distortion(kind)  # fail before any work on an unknown name

        self.image_names, self.distortions, self.levels = image_names, distortions, levels
        self.crop, self.seed = int(crop), int(seed)
        self.transform = transform

        refs = {name: resize_center_crop(image, self.crop) for name, image in embedded_images(image_names).items()}
        rows: list[dict[str, object]] = []
        dist_images: list[torch.Tensor] = []
        for ref_name, ref in refs.items():
            item_seed = (self.seed * 1_000_003 + zlib.crc32(ref_name.encode())) % 2**32
            for kind in distortions:
                for level in levels:
                    dist_images.append(_to_uint8(distort(ref, kind, level, seed=item_seed)))
                    rows.append({"dist": f"{ref_name}|{kind}|{level}", "ref": ref_name, "score": float(level),
                                 "group": f"{ref_name}|{kind}", "distortion": kind, "level": level})

        self.records = pd.DataFrame(rows, columns=["dist", "ref", "score", "group", "distortion", "level"])
        self._dist_store = torch.stack(dist_images)
        self._ref_store = torch.stack([_to_uint8(r) for r in refs.values()])
        ref_position = {name: i for i, name in enumerate(refs)}
        self._dist_rows = np.arange(len(rows))
        self._ref_rows = self.records["ref"].map(ref_position).to_numpy()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = int(index) % len(self)
        dist = self._dist_store[self._dist_rows[index]].float().div_(255.0)
        ref = self._ref_store[self._ref_rows[index]].float().div_(255.0)
        if self.transform is not None:
            dist, ref = self.transform(dist, ref)
        score = torch.tensor(self.records["score"].iat[index], dtype=torch.float32)
        return {"dist": dist, "ref": ref, "score": score, "index": index}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(items={len(self)}, references={self.records['ref'].nunique()}, "
                f"distortions={len(self.distortions)}, crop={self.crop})")

    def validate(self, decode: bool = True) -> None:
        """Interface parity with the file-based readers: generated images cannot be missing."""

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> SyntheticFRBenchmark:
        """A benchmark over ``records.iloc[indices]`` (integer positions or a boolean mask),
        renumbered from 0 and sharing the image memory."""
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        indices = np.asarray(indices).reshape(-1)
        if indices.dtype == bool:
            if indices.size != len(self):
                raise IndexError(f"boolean mask of length {indices.size} for {len(self)} items")
            indices = np.flatnonzero(indices)
        indices = indices.astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"subset indices must lie in [0, {len(self)}), got {indices.min()}..{indices.max()}")
        view = copy.copy(self)
        view.records = self.records.iloc[indices].reset_index(drop=True)
        view._dist_rows = self._dist_rows[indices]
        view._ref_rows = self._ref_rows[indices]
        return view

    def split(
        self, train_fraction: float = 0.6, val_fraction: float = 0.2, seed: int = 0
    ) -> tuple[SyntheticFRBenchmark, SyntheticFRBenchmark, SyntheticFRBenchmark]:
        """Split by reference image, so no content appears in two parts.

        The references are shuffled with ``seed`` (:func:`asymlib.iqa.splits.group_split`);
        ``round(n * train_fraction)`` go to train, ``round(n * val_fraction)`` to validation and
        the rest to test.

        Returns:
            ``(train, val, test)`` subsets.
        """
        test_fraction = 1.0 - train_fraction - val_fraction
        if test_fraction < -1e-9:
            raise ConfigError(f"train_fraction + val_fraction must be <= 1, got {train_fraction} + {val_fraction}")
        parts = group_split(self.records["ref"].to_numpy(), (train_fraction, val_fraction, max(test_fraction, 0.0)),
                            seed=seed)
        return tuple(self.subset(part) for part in parts)  # type: ignore[return-value]
