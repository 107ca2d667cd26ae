"""Configuration of the perceptual-optimization study of SwinIR (paper Sec. 2.1, 2.3, 3.1, Appendix D).

Two dataclasses describe everything notebook 02 does:

* :class:`SRTrainConfig`: one training run (schedule, crop, loss weights, discriminator, EMA,
  checkpointing, mixed precision, collapse thresholds).
* :class:`SRStudyConfig`: the whole study (stage 1, stage 2 and its settings x metrics grid, the
  generator preset, training/validation images, NR-IQA evaluators and their rescaling calibration).

The profiles (:mod:`asymlib.profiles`) hold one :class:`SRStudyConfig` each; :func:`sr_config_for` returns the
one of a :class:`~asymlib.config.Profile`. The four stage-2 settings of Table 1 are registered in
:data:`SR_SETTINGS` (loss weights switched on/off over the paper's ``lambda_1, lambda_2, lambda_3``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, UnknownNameError
from ..typecheck import check_fields

__all__ = [
    "CalibrationConfig",
    "DiscriminatorConfig",
    "SRDataConfig",
    "SRSetting",
    "SRStudyConfig",
    "SRTrainConfig",
    "SR_SETTINGS",
    "STAGE1_LAMBDAS",
    "get_setting",
    "sr_config_for",
]

PAPER_LAMBDAS = (1e-2, 1.0, 5e-3)  # lambda_1 (rec), lambda_2 (per), lambda_3 (adv), as in ESRGAN (Sec. 3.1)
STAGE1_LAMBDAS = (1.0, 0.0, 0.0)  # stage 1: L1 only


PATCH_STAGE_CHOICES = ("last", "stride16")
RELATIVISTIC_MEAN_CHOICES = ("all", "batch")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Discriminator of the adversarial term: :func:`asymlib.discriminators.create_discriminator` arguments.

    Attributes:
        backbone, head, spectral_norm: the discriminator.
        lr: its learning rate; ``None`` uses the generator's rate and schedule (the paper states one rate).
        patch_stage: the backbone map a ``patch`` head reads: ``"last"`` (the vanilla head's map, so the two
            heads differ only in the head, paper Sec. 3.4) or ``"stride16"`` (the deepest map with stride <= 16,
            e.g. ResNet-50's ``layer3``; :data:`asymlib.discriminators.STAGE_RULES`). Ignored by other heads.
        relativistic_mean: the mean ``E d(.)`` of the relativistic loss over patch logits: ``"all"`` (batch and
            positions, BasicSR's, which the paper's numbers assume) or ``"batch"`` (per position);
            :func:`asymlib.sr.losses.relativistic_mean`. Global logits give the same result with either.

    ``patch_stage`` and ``relativistic_mean`` enter a run's identity only where they can change its result
    (:func:`asymlib.pipeline.declare.discriminator_identity`).
    """

    backbone: str = "vgg16"
    head: str = "vanilla"
    spectral_norm: bool = False
    lr: float | None = None
    patch_stage: str = "last"
    relativistic_mean: str = "all"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.patch_stage not in PATCH_STAGE_CHOICES:
            raise ConfigError(f"DiscriminatorConfig.patch_stage must be one of {list(PATCH_STAGE_CHOICES)}, "
                              f"got {self.patch_stage!r}")
        if self.relativistic_mean not in RELATIVISTIC_MEAN_CHOICES:
            raise ConfigError(f"DiscriminatorConfig.relativistic_mean must be one of "
                              f"{list(RELATIVISTIC_MEAN_CHOICES)}, got {self.relativistic_mean!r}")

    @property
    def stage(self) -> str | None:
        """``create_discriminator``'s ``stage`` argument: ``patch_stage`` for a patch head, else the head's default."""
        return self.patch_stage if self.head == "patch" else None


@dataclass(frozen=True)
class SRTrainConfig:
    """One SR training run: ``lambda_rec * L1 + lambda_per * metric + lambda_adv * relativistic GAN``.

    Attributes:
        iterations: generator updates.
        batch_size: global mini-batch (split evenly over DDP ranks).
        lr, betas: Adam; ``milestones`` halve the learning rate (``lr_gamma``) at these iterations.
        hr_crop, scale: HR training crop and downscaling factor (LR crop = ``hr_crop // scale``).
        lambda_rec, lambda_per, lambda_adv: loss weights of Eq. 1 (0 switches a term off).
        discriminator: used when ``lambda_adv > 0``; G and D are updated alternately.
        ema_decay: generator EMA (evaluated and saved beside the raw weights).
        checkpoint_every, log_every, sample_every: steps between checkpoints, logged scalars, sample images.
        keep_checkpoint: keep ``checkpoint.pt`` (models, optimizers, EMA, RNG: what resuming needs) once the run
            has finished; its results (``generator*.pt``, ``discriminator.pt``) are kept either way. False saves
            a few hundred MB per finished paper-size run. A collapsed run always keeps it (its last
            discriminator is exported from it).
        amp: ``"bf16"`` autocast on CUDA (ignored on CPU) or ``"none"``.
        channels_last: NHWC memory format on CUDA (ignored on CPU).
        compile: wrap generator and discriminator in ``torch.compile``.
        num_workers: DataLoader workers per rank.
        max_d_loss, max_abs_logit, collapse_patience: the discriminator counts as exploded when its loss
            exceeds ``max_d_loss`` or a logit's magnitude exceeds ``max_abs_logit`` for
            ``collapse_patience`` consecutive steps; any non-finite loss stops training at once.
    """

    iterations: int = 400_000
    batch_size: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: tuple[int, ...] = (150_000, 300_000, 350_000, 375_000)
    lr_gamma: float = 0.5
    hr_crop: int = 256
    scale: int = 4
    lambda_rec: float = PAPER_LAMBDAS[0]
    lambda_per: float = PAPER_LAMBDAS[1]
    lambda_adv: float = PAPER_LAMBDAS[2]
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    ema_decay: float = 0.999
    checkpoint_every: int = 5000
    log_every: int = 100
    sample_every: int = 5000
    keep_checkpoint: bool = True
    amp: str = "bf16"
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 4
    max_d_loss: float = 50.0
    max_abs_logit: float = 1e4
    collapse_patience: int = 20

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("iterations", "batch_size", "hr_crop", "scale", "checkpoint_every", "log_every",
                     "sample_every", "collapse_patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"SRTrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.hr_crop % self.scale:
            raise ConfigError(f"SRTrainConfig.hr_crop={self.hr_crop} must be a multiple of scale={self.scale}")
        if self.lr <= 0:
            raise ConfigError(f"SRTrainConfig.lr must be > 0, got {self.lr}")
        for name in ("lambda_rec", "lambda_per", "lambda_adv"):
            if getattr(self, name) < 0:
                raise ConfigError(f"SRTrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lambda_rec == self.lambda_per == self.lambda_adv == 0:
            raise ConfigError("SRTrainConfig: every loss weight is 0; nothing would be optimized")
        if self.amp not in ("bf16", "none"):
            raise ConfigError(f"SRTrainConfig.amp must be 'bf16' or 'none', got {self.amp!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"SRTrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"SRTrainConfig.milestones must be increasing, got {list(self.milestones)}")

    @property
    def lr_crop(self) -> int:
        return self.hr_crop // self.scale

    @property
    def adversarial(self) -> bool:
        return self.lambda_adv > 0

    @property
    def perceptual(self) -> bool:
        return self.lambda_per > 0

    def replace(self, **changes: Any) -> "SRTrainConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SRSetting:
    """A stage-2 objective of Table 1: which of ``lambda_1, lambda_2, lambda_3`` are on.

    ``paper_label`` is the ``setting`` value of the shipped Table 1 CSV.
    """

    key: str
    title: str
    paper_label: str
    rec: bool
    adv: bool

    def lambdas(self, lambdas: tuple[float, float, float] = PAPER_LAMBDAS) -> tuple[float, float, float]:
        """``(lambda_rec, lambda_per, lambda_adv)`` of this setting: ``lambdas`` with the terms that are off set to 0
        (the perceptual term is always on in stage 2)."""
        return (lambdas[0] if self.rec else 0.0, lambdas[1], lambdas[2] if self.adv else 0.0)

    def apply(self, cfg: SRTrainConfig, lambdas: tuple[float, float, float] = PAPER_LAMBDAS) -> SRTrainConfig:
        """``cfg`` with this setting's loss weights (:meth:`lambdas`)."""
        rec, per, adv = self.lambdas(lambdas)
        return cfg.replace(lambda_rec=rec, lambda_per=per, lambda_adv=adv)


SR_SETTINGS: dict[str, SRSetting] = {
    s.key: s
    for s in (
        SRSetting("perceptual", "Perceptual", "perceptual", rec=False, adv=False),
        SRSetting("rec+perceptual", "Reconstruction and Perceptual", "reconstruction+perceptual",
                  rec=True, adv=False),
        SRSetting("perceptual+adv", "Perceptual and Adversarial", "perceptual+adversarial", rec=False, adv=True),
        SRSetting("rec+perceptual+adv", "Reconstruction, Perceptual and Adversarial",
                  "reconstruction+perceptual+adversarial", rec=True, adv=True),
    )
}


def get_setting(key: str) -> SRSetting:
    if key not in SR_SETTINGS:
        raise UnknownNameError(f"unknown SR setting {key!r}; available: {list(SR_SETTINGS)}")
    return SR_SETTINGS[key]


@dataclass(frozen=True)
class SRDataConfig:
    """Where HR images come from.

    ``source="folder"``: ``train``/``val`` are folders relative to the profile's ``data_root`` (DIV2K layout).
    ``source="embedded"``: ``train``/``val`` are comma-separated names of :mod:`asymlib.data.corpus` images.

    Validation: each HR image is centre-cropped to ``val_crop`` (``None``: the full image, trimmed to a
    multiple of the scale), bicubic-downscaled, super-resolved (``tile`` LR pixels per tile, ``None``: whole
    image) and scored. ``max_val_images`` limits how many are used (``None``: all).
    """

    source: str = "folder"
    train: str = "DIV2K/DIV2K_train_HR"
    val: str = "DIV2K/DIV2K_valid_HR"
    val_crop: int | None = None
    max_val_images: int | None = None
    tile: int | None = 128
    tile_overlap: int = 16
    sample_images: int = 2

    def __post_init__(self) -> None:
        check_fields(self)
        if self.source not in ("folder", "embedded"):
            raise ConfigError(f"SRDataConfig.source must be 'folder' or 'embedded', got {self.source!r}")


@dataclass(frozen=True)
class CalibrationConfig:
    """Calibration set of the Appendix D rescaling (Eq. 7, eta1 = 100, eta2 = 1 fixed).

    ``dataset="koniq10k"``: ``max_images`` images of KonIQ-10k (``MOS_zscore``, already on [1, 100]) read from
    ``data_root/koniq10k``. ``dataset="synthetic"``: the embedded synthetic benchmark, whose label is the
    distortion level; ``-level`` is mapped linearly onto [1, 100] and called a *pseudo-MOS*.
    """

    dataset: str = "koniq10k"
    max_images: int | None = 1000
    images: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")
    distortions: tuple[str, ...] = ("gaussian_blur", "gaussian_noise", "jpeg", "contrast_change", "pixelate")
    crop: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        if self.dataset not in ("koniq10k", "synthetic"):
            raise ConfigError(f"CalibrationConfig.dataset must be 'koniq10k' or 'synthetic', got {self.dataset!r}")


PAPER_EVALUATORS = ("maniqa", "liqe", "deqa", "vq_r1")


@dataclass(frozen=True)
class SRStudyConfig:
    """Notebook 02: stage 1 (L1), stage 2 (settings x metrics), scoring.

    Attributes:
        sr_model, sr_preset: :func:`asymlib.sr.create_sr_model` arguments (``"swinir"``, ``"classical"``).
        sr_init: how stage 1's generator starts: ``"default"`` (SwinIR's initialization, the paper's) or
            ``"nearest"`` (nearest-neighbour upsampling, for schedules too short to learn the colours).
        stage1: L1-only pre-training (``lambda_rec=1``, no other term).
        stage2: the perceptual stage; each setting switches its loss weights on (:data:`SR_SETTINGS`).
        settings, metrics: the grid (setting keys, :data:`asymlib.metrics.PAPER_METRICS` keys).
        evaluators: :mod:`asymlib.sr.evaluators` names; unavailable ones are reported and skipped.
        alpha_beta: metric weights: ``"trained"`` (the study's metric run, a dependency of every stage-2 run)
            or ``"init"`` (the seeded initialization).
        data, calibration: images and Appendix D calibration.
        eval_batch_size: images per evaluator call.
    """

    sr_model: str = "swinir"
    sr_preset: str = "classical"
    sr_init: str = "default"
    stage1: SRTrainConfig = SRTrainConfig(
        iterations=100_000, lambda_rec=STAGE1_LAMBDAS[0], lambda_per=STAGE1_LAMBDAS[1], lambda_adv=STAGE1_LAMBDAS[2],
        # the paper gives only the initial rate of stage 1; SwinIR's own schedule halves at 50/80/90/95 %
        milestones=(50_000, 80_000, 90_000, 95_000),
    )
    stage2: SRTrainConfig = SRTrainConfig()
    settings: tuple[str, ...] = tuple(SR_SETTINGS)
    metrics: tuple[str, ...] = ("vgg16_r", "vgg16", "resnet50", "convnext_tiny", "clip_vit_b16", "swin_t")
    evaluators: tuple[str, ...] = PAPER_EVALUATORS
    alpha_beta: str = "trained"
    data: SRDataConfig = SRDataConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    eval_batch_size: int = 1

    def __post_init__(self) -> None:
        check_fields(self)
        for key in self.settings:
            get_setting(key)
        from .models import SR_INITS

        if self.sr_init not in SR_INITS:
            raise ConfigError(f"SRStudyConfig.sr_init must be one of {list(SR_INITS)}, got {self.sr_init!r}")
        if self.alpha_beta not in ("trained", "init"):
            raise ConfigError(f"SRStudyConfig.alpha_beta must be 'trained' or 'init', got {self.alpha_beta!r}")
        if self.stage1.scale != self.stage2.scale:
            raise ConfigError(f"stage 1 and stage 2 scales differ: {self.stage1.scale} vs {self.stage2.scale}")

    @property
    def scale(self) -> int:
        return self.stage2.scale

    def replace(self, **changes: Any) -> "SRStudyConfig":
        """Copy with top-level or dotted overrides, e.g. ``replace(**{"stage2.iterations": 10})``."""
        from ..config import _replace_nested

        return _replace_nested(self, changes)


def sr_config_for(profile: Any) -> SRStudyConfig:
    """The SR study configuration of a :class:`~asymlib.config.Profile` (or a registered profile's name)."""
    from ..config import get_profile

    return get_profile(profile).sr
