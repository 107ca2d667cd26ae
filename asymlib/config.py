"""Typed study configuration with named profiles.

``smoke``: the whole study on a 2-core CPU in minutes: embedded corpus (images shipped by installed
packages), random backbone weights, small crops and few iterations. Every number it produces is labelled
``smoke``.

``paper``: the paper's datasets, sizes and schedules (Sec. 3.1, Appendix B-D), ImageNet weights from the
local timm/Hugging Face cache. Datasets are read from ``data_root`` (``$ASYMLIB_DATA`` or ``./data``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError

__all__ = ["MetricTrainConfig", "MetricStudyConfig", "SyntheticBenchmarkConfig", "Profile", "get_profile",
           "list_profiles", "register_profile", "PROFILES"]

PAPER_METRIC_KEYS = ("vgg16_r", "vgg16", "resnet50", "convnext_tiny", "clip_vit_b16", "swin_t")


@dataclass(frozen=True)
class MetricTrainConfig:
    """Training of alpha/beta with the backbone frozen (paper Appendix B).

    Paper: Adam, lr 1e-4 halved every 1000 iterations, 5000 iterations, batch 32, stage-0 weights
    projected onto [0.02, 1] after each update. Loss: ``(1 - PLCC)/2`` on the batch plus a pairwise
    logistic ranking loss (see :func:`asymlib.iqa.train.ranking_plcc_loss`).
    """

    iterations: int = 5000
    batch_size: int = 32
    lr: float = 1e-4
    lr_halve_every: int = 1000
    stage0_bounds: tuple[float, float] = (0.02, 1.0)
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "lr_halve_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MetricTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"MetricTrainConfig.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class SyntheticBenchmarkConfig:
    """Embedded synthetic FR benchmark: KADID-style distortions x levels on shipped images."""

    images: tuple[str, ...] | None = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
    distortions: tuple[str, ...] | None = ("gaussian_blur", "gaussian_noise", "jpeg", "contrast_change",
                                           "pixelate")
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    crop: int = 64
    seed: int = 0


@dataclass(frozen=True)
class MetricStudyConfig:
    """Notebook 01: which metrics, how they are trained and where they are evaluated."""

    metrics: tuple[str, ...] = PAPER_METRIC_KEYS
    train: MetricTrainConfig = MetricTrainConfig()
    train_set: str = "kadid10k"
    eval_sets: tuple[str, ...] = ("tid2013", "liu13", "ma17", "tqd")
    synthetic: SyntheticBenchmarkConfig = SyntheticBenchmarkConfig()
    eval_batch_size: int = 1
    n_bootstrap: int = 1000


@dataclass(frozen=True)
class Profile:
    """A named set of study settings. ``weights`` is the backbone weight source for pretrained metrics."""

    name: str
    weights: str
    description: str
    metric_study: MetricStudyConfig = MetricStudyConfig()
    device: str = "auto"
    seed: int = 0
    data_root: str | None = None

    def resolved_data_root(self) -> Path:
        return Path(self.data_root or os.environ.get("ASYMLIB_DATA", "data")).expanduser()

    def replace(self, **changes: Any) -> "Profile":
        """Copy with top-level or dotted nested overrides, e.g. ``replace(**{"metric_study.train.iterations": 10})``."""
        return _replace_nested(self, changes)

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"


def _replace_nested(obj: Any, changes: dict[str, Any]) -> Any:
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ConfigError(f"{type(obj).__name__} has no field {head!r} (fields: {sorted(names)})")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = tuple(value) if isinstance(value, list) else value
    for head, sub in nested.items():
        direct[head] = _replace_nested(getattr(obj, head), sub)
    return dataclasses.replace(obj, **direct)


PROFILES: dict[str, Profile] = {}


def register_profile(profile: Profile) -> Profile:
    PROFILES[profile.name] = profile
    return profile


register_profile(Profile(
    name="paper",
    weights="imagenet",
    description="Paper settings: KADID-10K training (5000 it., batch 32, Adam 1e-4 halved every 1000), "
                "TID2013/Liu13/Ma17/TQD evaluation, ImageNet backbones.",
))

register_profile(Profile(
    name="smoke",
    weights="random",
    description="CPU smoke run: embedded corpus, synthetic distortion levels (not MOS), RANDOM backbone "
                "weights, 64-px crops, short schedules. Not comparable to the paper's numbers.",
    metric_study=MetricStudyConfig(
        train=MetricTrainConfig(iterations=300, batch_size=32, lr=2e-3, lr_halve_every=100, log_every=25),
        train_set="synthetic",
        eval_sets=("synthetic",),
        eval_batch_size=32,
        n_bootstrap=1000,
    ),
))


def list_profiles() -> list[str]:
    return sorted(PROFILES)


def get_profile(name: str, **overrides: Any) -> Profile:
    """Profile by name with optional (dotted) overrides; UnknownNameError for unknown names."""
    if name not in PROFILES:
        raise UnknownNameError(f"unknown profile {name!r}; available: {list_profiles()}")
    prof = PROFILES[name]
    return prof.replace(**overrides) if overrides else prof
