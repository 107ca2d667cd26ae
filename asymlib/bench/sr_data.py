"""The ``sr_data`` row: training items/s of :class:`~asymlib.sr.data.PairedSRDataset` at the paper's sizes
(DIV2K-size 2040x1356 HR PNGs, 256-px HR crops, x4 bicubic LR), decoding the PNG for every item against slicing
its memory-mapped store (:mod:`asymlib.sr.store`). The images are random noise written to a temporary folder
(noise compresses about as badly as photographs, so decoding costs about what DIV2K's does)."""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from .report import Row, row_from_timing
from .settings import Settings
from .timing import measure

__all__ = ["bench_sr_data"]


def bench_sr_data(s: Settings, log: Callable[[str], None]) -> list[Row]:
    """Items/s of one data-loader worker: the decoded folder (baseline) and its store."""
    from ..imageio import save_image
    from ..sr.data import PairedSRDataset
    from ..sr.store import prepare_hr_store

    n_images, items = (2, 8) if s.quick else (4, 32)
    reps = s.reps(5, 3)
    with tempfile.TemporaryDirectory(prefix="asymlib-bench-data-") as tmp:
        folder = Path(tmp) / "DIV2K_train_HR"
        g = torch.Generator().manual_seed(0)
        for i in range(n_images):
            save_image(torch.rand(3, 1356, 2040, generator=g), folder / f"{i:04d}.png")
        decoded = PairedSRDataset(folder, hr_crop=256, scale=4, train=True, seed=0, repeats=items)
        prepare_hr_store(folder, log=None)
        mapped = PairedSRDataset(folder, hr_crop=256, scale=4, train=True, seed=0, repeats=items)
        base, var = "decode the PNG per item", "memory-mapped store"
        variants = {base: lambda: [decoded[i] for i in range(items)],
                    var: lambda: [mapped[i] for i in range(items)]}
        log(f"sr_data: {items} items of {n_images} 2040x1356 PNGs, 256-px crops, {reps} repeats")
        res = measure(variants, repeats=reps, warmup=s.warmup, memory=False)
    return [row_from_timing("sr_data", torch.device("cpu"), v, base, t, res[base],
                            images_per_s=items / (t.median_ms / 1e3),
                            notes=f"{items} items per call, one process (a DataLoader worker); random-noise PNGs")
            for v, t in res.items()]
