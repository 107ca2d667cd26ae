"""Paired (LR, HR) super-resolution patches generated on the fly from HR images.

The HR crop is degraded with MATLAB-compatible bicubic downscaling (:func:`asymlib.sr.resize.imresize`),
as in the paper (x4 bicubic of 256x256 reference crops, Sec. 3.1).

Determinism: the crop position and augmentation of item ``i`` depend only on ``(seed, epoch, i)``
(``epoch`` set with :meth:`PairedSRDataset.set_epoch`), never on a global RNG, worker id or
iteration order, so a resumed run or any number of DataLoader workers sees exactly the same data.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import ConfigError, DatasetError, ImageReadError
from ..imageio import load_image
from .resize import imresize

__all__ = ["IMAGE_EXTENSIONS", "PairedSRDataset"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

Source = str | Path | Mapping[str, torch.Tensor]


class PairedSRDataset(Dataset):
    """HR images -> ``{"lr": (3, c/s, c/s), "hr": (3, c, c), "name": str}`` with c = ``hr_crop``, s = ``scale``.

    Args:
        source: a folder of HR images (DIV2K layout: the image files directly inside it, read in
            sorted order; strict RGB) or a mapping ``name -> Tensor (3, H, W)`` in [0, 1] (float,
            or uint8 in [0, 255]). A folder whose decoded store is current (``python -m asymlib.sr.store
            FOLDER``, :mod:`asymlib.sr.store`) is read from it: crops are slices of memory-mapped arrays,
            bit-identical to crops of the decoded files.
        hr_crop: side of the square HR crop (paper: 256); must be a multiple of ``scale``.
        scale: downscaling factor between HR and LR.
        train: random crop + random horizontal flip, vertical flip and transpose (each with
            probability 1/2; together the 8 dihedral transforms) if True; a deterministic centre
            crop otherwise.
        seed: base seed of the per-item randomness.
        repeats: virtual length multiplier (``len = repeats * number of images``); item ``i`` uses
            image ``i % number of images`` with its own random crop.
        quantize_lr: round the LR patch to 8 bits after clamping to [0, 1], like the stored uint8
            LR images of the standard benchmarks (MATLAB's imresize on uint8 input). If False the
            LR patch is the raw float bicubic output (it may overshoot [0, 1] slightly).

    Values: ``hr`` is in [0, 1]; ``lr`` is in [0, 1] when ``quantize_lr`` is True.

    Raises:
        ConfigError: bad ``hr_crop``/``scale``/``repeats``.
        DatasetError: missing or empty folder, empty mapping, malformed tensor, or an image smaller
            than ``hr_crop`` (the message names it and its size).
        ImageReadError: an unreadable or non-RGB (grayscale, RGBA, palette, ...) file, named.
    """

    def __init__(
        self,
        source: Source,
        hr_crop: int = 256,
        scale: int = 4,
        train: bool = True,
        seed: int = 0,
        repeats: int = 1,
        quantize_lr: bool = True,
    ) -> None:
        if int(scale) != scale or scale < 1:
            raise ConfigError(f"scale must be a positive integer, got {scale!r}")
        if int(hr_crop) != hr_crop or hr_crop < scale or hr_crop % scale:
            raise ConfigError(f"hr_crop must be a positive multiple of scale={scale}, got {hr_crop!r}")
        if int(repeats) != repeats or repeats < 1:
            raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
        self.hr_crop = int(hr_crop)
        self.scale = int(scale)
        self.train = bool(train)
        self.seed = int(seed)
        self.repeats = int(repeats)
        self.quantize_lr = bool(quantize_lr)
        self.epoch = 0
        self._paths: dict[str, Path] = {}
        self._tensors: dict[str, torch.Tensor] = {}
        self._store: dict[str, Path] = {}
        self._mmaps: dict[str, np.ndarray] = {}
        if isinstance(source, Mapping):
            self._init_from_mapping(source)
        else:
            self._init_from_folder(Path(source))
        self.names: list[str] = sorted(self._paths or self._tensors)

    # ------------------------------------------------------------------ construction checks
    def _check_size(self, what: str, h: int, w: int) -> None:
        if h < self.hr_crop or w < self.hr_crop:
            raise DatasetError(
                f"{what}: image is {w}x{h} (WxH), smaller than the {self.hr_crop}x{self.hr_crop} HR crop"
            )

    def _init_from_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise DatasetError(f"HR image folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"no HR images ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder}")
        for path in files:
            # header only: validates every file up front without decoding the pixels
            try:
                with Image.open(path) as im:
                    mode, (w, h) = im.mode, im.size
            except Image.DecompressionBombError as exc:
                from ..imageio import decompression_bomb_message

                raise ImageReadError(decompression_bomb_message(path, exc)) from exc
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise ImageReadError(f"cannot read image {path}: {exc}") from exc
            if mode != "RGB":
                raise ImageReadError(f"{path}: image mode is {mode!r}; HR images must be stored as RGB")
            self._check_size(str(path), h, w)
            if path.stem in self._paths:
                raise DatasetError(f"two HR images share the name {path.stem!r} in {folder}")
            self._paths[path.stem] = path
        from .store import open_hr_store, store_dir

        self._store = open_hr_store(folder, files) or {}
        if not self._store and store_dir(folder).is_dir():
            import warnings

            warnings.warn(f"{store_dir(folder)} does not match {folder} any more (files changed); decoding the "
                          f"images instead. Refresh it with: python -m asymlib.sr.store {folder}", stacklevel=2)

    def _init_from_mapping(self, images: Mapping[str, torch.Tensor]) -> None:
        if not images:
            raise DatasetError("the HR image mapping is empty")
        for name, img in images.items():
            if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
                shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
                raise DatasetError(f"HR image {name!r}: expected a (3, H, W) tensor, got {shape}")
            if img.dtype == torch.uint8:
                img = img.float() / 255.0
            elif not torch.is_floating_point(img):
                raise DatasetError(f"HR image {name!r}: expected float in [0, 1] or uint8, got {img.dtype}")
            self._check_size(f"HR image {name!r}", img.shape[1], img.shape[2])
            self._tensors[str(name)] = img.detach().float().cpu()

    # ------------------------------------------------------------------ dataset protocol
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops/augmentations ``__getitem__`` returns (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names) * self.repeats

    def _load(self, name: str) -> torch.Tensor:
        if name in self._tensors:
            return self._tensors[name]
        return load_image(self._paths[name], strict_mode=True)

    def _mmap(self, name: str) -> np.ndarray:
        """The stored ``uint8 (H, W, 3)`` array of ``name``, memory-mapped once per process."""
        if name not in self._mmaps:
            self._mmaps[name] = np.load(self._store[name], mmap_mode="r")
        return self._mmaps[name]

    def _image(self, name: str) -> tuple[torch.Tensor | np.ndarray, int, int]:
        """``(image, H, W)``: the memory-mapped ``uint8 (H, W, 3)`` store array, or the decoded ``(3, H, W)``."""
        if name in self._store:
            arr = self._mmap(name)
            return arr, int(arr.shape[0]), int(arr.shape[1])
        img = self._load(name)
        return img, int(img.shape[1]), int(img.shape[2])

    @staticmethod
    def _crop(img: torch.Tensor | np.ndarray, top: int, left: int, c: int) -> torch.Tensor:
        """``(3, c, c)`` float crop in [0, 1] (from a store array: the same values as from the decoded file)."""
        if isinstance(img, np.ndarray):
            arr = np.asarray(img[top : top + c, left : left + c])
            return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)
        return img[:, top : top + c, left : left + c]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mmaps"] = {}  # DataLoader workers map the files themselves
        return state

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of length {len(self)}")
        name = self.names[index % len(self.names)]
        img, h, w = self._image(name)
        self._check_size(str(self._paths.get(name, f"HR image {name!r}")), h, w)
        c = self.hr_crop
        if self.train:
            rng = self._rng(index)
            top = int(rng.integers(0, h - c + 1))
            left = int(rng.integers(0, w - c + 1))
            hflip, vflip, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
        else:
            top, left = (h - c) // 2, (w - c) // 2
            hflip = vflip = transpose = False
        hr = self._crop(img, top, left, c)
        if hflip:
            hr = hr.flip(-1)
        if vflip:
            hr = hr.flip(-2)
        if transpose:
            hr = hr.transpose(-1, -2)
        hr = hr.contiguous()
        lr = imresize(hr, 1.0 / self.scale)
        if self.quantize_lr:
            lr = lr.clamp(0.0, 1.0).mul(255.0).round().div(255.0)
        return {"lr": lr, "hr": hr, "name": name}

    def __repr__(self) -> str:
        src = ("memory-mapped store" if self._store else "folder") if self._paths else "memory"
        return (
            f"{type(self).__name__}({len(self.names)} images from {src}, hr_crop={self.hr_crop}, "
            f"scale={self.scale}, train={self.train}, repeats={self.repeats}, seed={self.seed})"
        )
