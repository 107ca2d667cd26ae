"""Typed study configuration: every setting of the study lives in one :class:`Profile`.

A profile holds the configuration of each part of the study (notebook 01's metrics, notebook 02's SR grid,
notebook 04's discriminators, notebook 03's GAN initialization, notebook 05's figures) and is defined in one
file per profile under :mod:`asymlib.profiles` (``smoke.py``, ``paper.py``). One dotted override mechanism
reaches every field: ``profile.replace(**{"sr.stage2.iterations": 10})``, or on the command line
``--set sr.stage2.iterations=10`` (:func:`parse_overrides`).

``smoke``: the whole study on a 2-core CPU in minutes: embedded corpus (images shipped by installed
packages), random backbone weights, small crops and few iterations. Every number it produces is labelled
``smoke``.

``paper``: the paper's datasets, sizes and schedules (Sec. 3.1, Appendix B-D), ImageNet weights from the
local timm/Hugging Face cache. Datasets are read from ``data_root`` (``$ASYMLIB_DATA`` or ``./data``).
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .typecheck import check_fields
from .iqa.nr import NR_TRAIN_PRESETS, NRTrainConfig
from .iqa.train import MetricTrainConfig
from .sr.config import PAPER_LAMBDAS, SRStudyConfig, SRTrainConfig

__all__ = ["MetricTrainConfig", "MetricStudyConfig", "SyntheticBenchmarkConfig", "DiscriminatorStudyConfig",
           "GanSourceConfig", "GanInitConfig", "FiguresConfig", "INITIALIZATIONS", "Profile", "get_profile",
           "list_profiles", "register_profile", "parse_overrides", "load_overrides"]

INITIALIZATIONS = ("random", "gan", "imagenet")

PAPER_METRIC_KEYS = ("vgg16_r", "vgg16", "resnet50", "convnext_tiny", "clip_vit_b16", "swin_t")


@dataclass(frozen=True)
class SyntheticBenchmarkConfig:
    """Embedded synthetic FR benchmark: KADID-style distortions x levels on shipped images."""

    images: tuple[str, ...] | None = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
    distortions: tuple[str, ...] | None = ("gaussian_blur", "gaussian_noise", "jpeg", "contrast_change",
                                           "pixelate")
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    crop: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)


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

    def __post_init__(self) -> None:
        check_fields(self)



# ----------------------------------------------------------------------------------------------
# Notebook 04: discriminators
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscriminatorStudyConfig:
    """Notebook 04: the Table 3 ablation and the Fig. 7 stability sweep.

    Attributes:
        backbones: discriminator backbones (:func:`asymlib.discriminators.create_discriminator` names). The paper
            names "DINOv2" without its size; the paper preset uses ViT-B/14, the smoke preset ViT-S/14.
        heads: heads of the ablation (``vanilla``, ``patch``).
        metric: perceptual loss (``l_VGG-16`` in Sec. 3.4), a :mod:`asymlib.metrics` preset key.
        lambdas: ``(lambda_1, lambda_2, lambda_3)`` of the ablation (Sec. 3.1, as in ESRGAN).
        spectral_norm: spectral normalization in the discriminator (not used in the paper).
        sweep_head: head of the stability sweep (the paper sweeps patch-level discriminators).
        sweep_lambda_adv: the ``lambda_3`` values of the sweep (the paper's values are not stated; log-spaced
            over 1e-3..5e-2 around ESRGAN's 5e-3).
        seeds: seeds per sweep cell (``profile.seed, profile.seed + 1, ...``); the ablation uses ``profile.seed``.
        train_overrides: :class:`~asymlib.sr.config.SRTrainConfig` fields changed from notebook 02's stage-2
            configuration (empty: the runs share notebook 02's configuration, hence its cached runs).
        export_backbones: write ``discriminator_backbone.pt`` for every trained discriminator.
    """

    backbones: tuple[str, ...] = ("vgg16", "resnet50", "dinov2_vitb14")
    heads: tuple[str, ...] = ("vanilla", "patch")
    metric: str = "vgg16"
    lambdas: tuple[float, float, float] = PAPER_LAMBDAS
    spectral_norm: bool = False
    sweep_head: str = "patch"
    sweep_lambda_adv: tuple[float, ...] = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
    seeds: int = 3
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    export_backbones: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        from .backbones import get_backbone_spec
        from .discriminators import list_heads

        for h in (*self.heads, self.sweep_head):
            if h not in list_heads():
                raise UnknownNameError(f"unknown discriminator head {h!r}; available: {list_heads()}")
        for b in self.backbones:
            get_backbone_spec(b)
        if not self.backbones:
            raise ConfigError("DiscriminatorStudyConfig.backbones is empty")
        if self.seeds < 1:
            raise ConfigError(f"DiscriminatorStudyConfig.seeds must be >= 1, got {self.seeds}")
        if any(not (v > 0) for v in self.sweep_lambda_adv):
            raise ConfigError(f"sweep_lambda_adv values must be > 0, got {list(self.sweep_lambda_adv)}")
        if len(self.lambdas) != 3 or min(self.lambdas) < 0:
            raise ConfigError(f"lambdas must be three weights >= 0, got {self.lambdas}")
        bad = set(self.train_overrides) - {f.name for f in dataclasses.fields(SRTrainConfig)}
        if bad:
            raise ConfigError(f"train_overrides has unknown SRTrainConfig fields {sorted(bad)}")

    def replace(self, **changes: Any) -> "DiscriminatorStudyConfig":
        return _replace_nested(self, changes)



# ----------------------------------------------------------------------------------------------
# Notebook 03: GAN initialization
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GanSourceConfig:
    """Which SR discriminator provides the GAN initialization.

    Among the finished adversarial SR runs whose discriminator has the wanted backbone (notebooks 02 and 04),
    preference goes to ``head``, then the stage-2 ``setting`` and perceptual ``metric`` named here, the
    paper's lambda_3 and the profile's seed. With ``train_if_missing`` the run notebook 04 trains for that
    cell of Table 3 (``rec+perceptual+adv``, ``metric``, ``head``) is trained when none exists. Defaults: the
    paper's full objective (Eq. 1) with the VGG-16 metric and the vanilla head (both heads read the backbone's
    last map, so either trains every backbone layer that a feature map goes through).
    """

    setting: str = "rec+perceptual+adv"
    metric: str = "vgg16"
    head: str = "vanilla"
    train_if_missing: bool = True


@dataclass(frozen=True)
class GanInitConfig:
    """Notebook 03 settings.

    Attributes:
        backbones: backbone names (the paper's DINOv2 is ViT-B/14; smoke uses ViT-S/14).
        initializations: subset of :data:`INITIALIZATIONS`.
        nr_datasets: NR sets (``kadid10k``, ``koniq10k``, or ``synthetic`` for the embedded set).
        nr_train: NR training (:class:`asymlib.iqa.nr.NRTrainConfig`).
        split_fractions: train/val/test fractions of the content groups (paper: 6:2:2).
        n_bootstrap: bootstrap resamples of the NR test intervals.
        require_imagenet: raise when ImageNet weights are not in the cache (else the row is skipped and
            labelled "imagenet (not available offline)").
        gan: where GAN checkpoints come from.
    """

    backbones: tuple[str, ...] = ("vgg16", "resnet50", "dinov2_vitb14")
    initializations: tuple[str, ...] = INITIALIZATIONS
    nr_datasets: tuple[str, ...] = ("kadid10k", "koniq10k")
    nr_train: NRTrainConfig = NR_TRAIN_PRESETS["paper"]
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    n_bootstrap: int = 1000
    require_imagenet: bool = True
    gan: GanSourceConfig = GanSourceConfig()

    def replace(self, **changes: Any) -> "GanInitConfig":
        """Copy with top-level or dotted overrides, e.g. ``replace(**{"nr_train.iterations": 4})``."""
        return _replace_nested(self, changes)

    def __post_init__(self) -> None:
        check_fields(self)
        bad = [i for i in self.initializations if i not in INITIALIZATIONS]
        if bad:
            raise ConfigError(f"unknown initialization(s) {bad}; available: {list(INITIALIZATIONS)}")
        from .backbones import get_backbone_spec

        for name in self.backbones:
            get_backbone_spec(name)
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ConfigError(f"split_fractions must be three fractions summing to 1, got {self.split_fractions}")



# ----------------------------------------------------------------------------------------------
# Notebook 05: figures and analyses
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FiguresConfig:
    """What notebook 05 computes beyond reading notebooks 01-04.

    Attributes:
        iqa_statistic: x axis of Fig. 3, a column of notebook 01's results (``srcc`` as in the paper; in
            smoke the ``Average`` row is the pooled synthetic-levels SRCC, where metrics differ).
        n_bootstrap: resamples of the Fig. 3 intervals.
        recovery_metrics, recovery_inits, recovery_image, recovery_size, recovery_steps: Fig. 12-13.
        texture_metrics, texture_size, texture_steps: Fig. 15 (the exemplars are the embedded textures).
        featuremap_backbones, featuremap_head, featuremap_image, featuremap_size: Fig. 14.
        ae_preset, ae_objectives, ae_metric, ae_discriminator, ae_steps, ae_lr, ae_d_lr, ae_batch, ae_crop,
            ae_images: Fig. 16 (Adam rates of the autoencoder and of the discriminator; paper: SR's 2e-4 for
            both; smoke trains the autoencoder faster, the discriminator never: at 3e-3 its logits explode).
        ae_warmup_steps: L1-only steps before each objective's ``ae_steps`` (as SR's stage 2 starts from stage
            1); the paper says nothing of its autoencoder's training, and 0 trains from scratch.
        widget_images: at most this many images in the comparison widget.
    """

    iqa_statistic: str = "srcc"
    n_bootstrap: int = 2000
    recovery_metrics: tuple[str, ...] = ("vgg16", "clip_vit_b16")
    recovery_inits: tuple[str, ...] = ("noise", "blur")
    recovery_image: str = "chelsea"
    recovery_size: int = 256
    recovery_steps: int = 1000
    texture_metrics: tuple[str, ...] = ("vgg16", "dinov2_vitb14")
    texture_size: int = 256
    texture_steps: int = 1000
    featuremap_backbones: tuple[str, ...] = ("vgg16", "dinov2_vitb14")
    featuremap_head: str = "patch"
    featuremap_image: str = "astronaut"
    featuremap_size: int = 224
    ae_preset: str = "base"
    ae_objectives: tuple[str, ...] = ("rec", "per", "rec_per", "per_adv", "rec_per_adv")
    ae_metric: str = "vgg16"
    ae_discriminator: str = "vgg16"
    ae_steps: int = 5000
    ae_warmup_steps: int = 0
    ae_lr: float = 2e-4
    ae_d_lr: float = 2e-4
    ae_batch: int = 16
    ae_crop: int = 128
    ae_images: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
    widget_images: int = 8

    def __post_init__(self) -> None:
        check_fields(self)

    def replace(self, **changes: Any) -> "FiguresConfig":
        return _replace_nested(self, changes)



# ----------------------------------------------------------------------------------------------
# The profile
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """A named set of every study setting.

    Attributes:
        name, description: shown in every banner; ``weights`` is the backbone weight source of pretrained
            metrics (``"imagenet"``, ``"random"``).
        metric_study, sr, discriminators, gan_init, figures: the configuration of notebooks 01, 02, 04, 03, 05.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        seed: the study seed.
        data_root: dataset folder (``None``: ``$ASYMLIB_DATA`` or ``./data``); never part of a run key.
    """

    name: str
    weights: str
    description: str
    metric_study: MetricStudyConfig = MetricStudyConfig()
    sr: SRStudyConfig = SRStudyConfig()
    discriminators: DiscriminatorStudyConfig = DiscriminatorStudyConfig()
    gan_init: GanInitConfig = GanInitConfig()
    figures: FiguresConfig = FiguresConfig()
    device: str = "auto"
    seed: int = 0
    data_root: str | None = None

    def resolved_data_root(self) -> Path:
        return Path(self.data_root or os.environ.get("ASYMLIB_DATA", "data")).expanduser()

    def replace(self, **changes: Any) -> "Profile":
        """Copy with top-level or dotted nested overrides, e.g. ``replace(**{"sr.stage2.iterations": 10})``."""
        return _replace_nested(self, changes)

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"


def _check_type(owner: Any, name: str, old: Any, new: Any) -> Any:
    """``new`` for field ``name`` whose current value is ``old``; no silent coercion between kinds."""
    where = f"{type(owner).__name__}.{name}"
    if isinstance(new, list):
        new = tuple(new)
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, int):
        ok = isinstance(new, int) and not isinstance(new, bool)
    elif isinstance(old, float):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        if ok:
            new = float(new)
            if not math.isfinite(new):
                raise ConfigError(f"{where} must be finite, got {new!r}")
    elif isinstance(old, str):
        ok = isinstance(new, str)
    elif isinstance(old, tuple):
        ok = isinstance(new, tuple)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where} expects a value like {old!r} ({type(old).__name__}), got {new!r} "
                          f"({type(new).__name__})")
    return new


def _replace_nested(obj: Any, changes: Mapping[str, Any]) -> Any:
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
            direct[head] = _check_type(obj, head, getattr(obj, head), value)
    for head, sub in nested.items():
        child = getattr(obj, head)
        if isinstance(child, Mapping):
            direct[head] = {**child, **sub}
        elif dataclasses.is_dataclass(child):
            direct[head] = _replace_nested(child, sub)
        else:
            raise ConfigError(f"{type(obj).__name__}.{head} is not a nested configuration; cannot set {sorted(sub)}")
    return dataclasses.replace(obj, **direct)


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["sr.stage2.iterations=10", "seed=3"]`` -> ``{"sr.stage2.iterations": 10, "seed": 3}``.

    Values are read as YAML scalars or flow lists (``10``, ``1e-3``, ``true``, ``[vgg16, swin_t]``, ``null``);
    a mapping is returned as it is.
    """
    import yaml

    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot read the value: {exc}") from exc
        out[key.strip()] = _yaml_number(value)
    return out


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Dotted overrides from a YAML file: nested mappings (``sr: {stage2: {iterations: 8}}``) or dotted keys
    (``sr.stage2.iterations: 8``), flattened to ``{"sr.stage2.iterations": 8}``."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the configuration file {p}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p} must hold a mapping of settings, got {type(data).__name__}")
    out: dict[str, Any] = {}

    def flatten(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and name not in _MAPPING_FIELDS:
                flatten(f"{name}.", value)
            else:
                out[name] = _yaml_number(value)

    flatten("", data)
    return out


_MAPPING_FIELDS = {"discriminators.train_overrides"}  # fields whose value is itself a mapping


def _yaml_number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; read such scalars (also inside lists) as floats."""
    if isinstance(value, list):
        return [_yaml_number(v) for v in value]
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if any(ch.isdigit() for ch in value) and value.strip().lower() not in ("nan", "inf") else value
    return value


def register_profile(profile: Profile) -> Profile:
    """Add ``profile`` to the registry (replacing one of the same name)."""
    from .profiles import PROFILES

    PROFILES[profile.name] = profile
    return profile


def list_profiles() -> list[str]:
    from .profiles import PROFILES

    return sorted(PROFILES)


def get_profile(name: str | Profile, **overrides: Any) -> Profile:
    """Profile by name with optional (dotted) overrides; UnknownNameError for unknown names."""
    from .profiles import PROFILES

    if isinstance(name, Profile):
        prof = name
    elif name not in PROFILES:
        raise UnknownNameError(f"unknown profile {name!r}; available: {list_profiles()}")
    else:
        prof = PROFILES[name]
    return prof.replace(**overrides) if overrides else prof
