"""What one benchmark run measures (:class:`Settings`) and which profile's workloads a device runs."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Settings", "profile_for"]


@dataclass
class Settings:
    """What one run measures; ``--quick`` shrinks repeats and the scaling grid."""

    quick: bool = False
    repeats: int | None = None
    warmup: int = 1
    dists_batch: int = 8
    dists_size: int = 256
    scaling_sizes: tuple[int, ...] = (64, 128, 256, 384)
    scaling_batches: tuple[int, ...] = (1, 2, 4, 8)
    nr_images: int = 8
    nr_size: int = 256
    compile: str = "auto"
    profile: bool = False

    def reps(self, full: int, quick: int) -> int:
        return self.repeats if self.repeats is not None else (quick if self.quick else full)


def profile_for(device: torch.device) -> str:
    """The study profile whose training workloads a device is timed on: ``"paper"`` on CUDA, ``"smoke"`` on CPU."""
    return "paper" if device.type == "cuda" else "smoke"
