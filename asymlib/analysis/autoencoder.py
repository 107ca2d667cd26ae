"""A small convolutional autoencoder trained with the SR objectives, as a second task (paper Fig. 16).

The same composite objective as the SR study (Eq. 1, :func:`asymlib.sr.losses.generator_loss`),

    loss = lambda_1 * L1(x_hat, x) + lambda_2 * metric(x_hat, x) + lambda_3 * l_adv(x_hat, x),

with the same loss weights (:data:`OBJECTIVE_SETTINGS`: SR stage 1's L1 objective and the four stage-2 settings
of :data:`asymlib.sr.config.SR_SETTINGS`), Adam(0.9, 0.99) and alternating generator/discriminator updates,
applied to reconstruction ``x -> encoder -> decoder -> x_hat`` instead of super-resolution. Whether perceptual
metrics leave artifacts (checkerboards from the decoder's upsampling) and whether an adversarial term removes
them can then be checked on a task other than SR.

Architecture (:class:`ConvAutoencoder`): per level a stride-2 3x3 conv and a residual block going down,
a 1x1 conv to ``latent_channels`` at the bottleneck, and the mirror image going up with nearest (or
transposed-conv, or pixel-shuffle) upsampling. Any input size works: inputs are reflect-padded to a
multiple of ``2 ** levels`` and outputs cropped back.

Presets (``create_autoencoder(preset)``): ``"tiny"`` (2 levels, 16/32 channels, about 50k parameters,
CPU-trainable in seconds on 64-px crops) and ``"base"`` (3 levels, 64/128/256 channels).

Example::

    ae = create_autoencoder("tiny")
    result = train_autoencoder(ae, images, objective="rec_per", metric=metric,
                               config=AETrainConfig(steps=50, crop=64, batch_size=4))
    result.log[["step", "loss"]]
    recon = reconstruct(ae, images)
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError, UnknownNameError
from ..sr.config import SR_SETTINGS, STAGE1_LAMBDAS
from .recovery import as_batch, to_numpy_image

__all__ = [
    "AE_PRESETS",
    "OBJECTIVE_SETTINGS",
    "AETrainConfig",
    "AETrainResult",
    "AutoencoderConfig",
    "ConvAutoencoder",
    "ObjectiveWeights",
    "create_autoencoder",
    "get_objective",
    "list_autoencoder_presets",
    "plot_autoencoder_results",
    "reconstruct",
    "register_autoencoder_preset",
    "train_autoencoder",
]

Upsample = Literal["nearest", "transpose", "pixelshuffle"]


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of :class:`ConvAutoencoder`.

    Attributes:
        channels: width of each level (one stride-2 downsampling per level).
        latent_channels: channels of the bottleneck code (spatial size ``H / 2**levels``).
        upsample: ``"nearest"`` (nearest x2 + 3x3 conv), ``"transpose"`` (4x4 stride-2 transposed conv,
            prone to checkerboards) or ``"pixelshuffle"`` (3x3 conv to 4C channels + pixel shuffle).
        blocks_per_level: residual blocks after each down/up step.
    """

    channels: tuple[int, ...] = (16, 32)
    latent_channels: int = 8
    upsample: Upsample = "nearest"
    blocks_per_level: int = 1

    def validate(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"channels must be a non-empty tuple of positive widths, got {self.channels}")
        if self.latent_channels < 1 or self.blocks_per_level < 0:
            raise ConfigError("latent_channels must be >= 1 and blocks_per_level >= 0")
        if self.upsample not in ("nearest", "transpose", "pixelshuffle"):
            raise ConfigError(f"upsample must be 'nearest', 'transpose' or 'pixelshuffle', got {self.upsample!r}")


AE_PRESETS: dict[str, AutoencoderConfig] = {}


def register_autoencoder_preset(name: str, config: AutoencoderConfig) -> AutoencoderConfig:
    config.validate()
    AE_PRESETS[name] = config
    return config


register_autoencoder_preset("tiny", AutoencoderConfig(channels=(16, 32), latent_channels=8))
register_autoencoder_preset("base", AutoencoderConfig(channels=(64, 128, 256), latent_channels=16,
                                                      blocks_per_level=2))


def list_autoencoder_presets() -> list[str]:
    return sorted(AE_PRESETS)


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def _upsampler(c_in: int, c_out: int, mode: str) -> nn.Module:
    if mode == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))
    if mode == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
    return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2))


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder.

    forward: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` reconstruction (not clamped).
    encode: ``(B, 3, H, W)`` -> ``(B, latent_channels, ceil(H / 2**L), ceil(W / 2**L))``.
    """

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig(), preset: str = "custom") -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.preset = preset
        self.levels = len(config.channels)
        act = nn.LeakyReLU(0.2)
        ch = list(config.channels)
        enc: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1), act]
        c_prev = ch[0]
        for c in ch:
            enc += [nn.Conv2d(c_prev, c, 3, stride=2, padding=1), act]
            enc += [_ResBlock(c) for _ in range(config.blocks_per_level)]
            c_prev = c
        enc.append(nn.Conv2d(c_prev, config.latent_channels, 1))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, ch[-1], 3, padding=1), act]
        c_prev = ch[-1]
        for c in reversed([ch[0]] + ch[:-1]):
            dec += [_upsampler(c_prev, c, config.upsample), act]
            dec += [_ResBlock(c) for _ in range(config.blocks_per_level)]
            c_prev = c
        dec.append(nn.Conv2d(c_prev, 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        m = 2 ** self.levels
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        return x, (h, w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._pad(x)[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = self._pad(x)
        # residual around the mean gray level keeps the untrained output near mid-gray
        return self.decoder(self.encoder(xp))[..., :h, :w] + 0.5


def create_autoencoder(preset: str = "tiny", seed: int = 0, **overrides: Any) -> ConvAutoencoder:
    """Build a seeded :class:`ConvAutoencoder` from a preset, with :class:`AutoencoderConfig` overrides."""
    if preset not in AE_PRESETS:
        raise UnknownNameError(f"unknown autoencoder preset {preset!r}; available: {list_autoencoder_presets()}")
    cfg = AE_PRESETS[preset]
    if overrides:
        names = {f.name for f in dataclasses.fields(cfg)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"AutoencoderConfig has no field(s) {bad}; fields: {sorted(names)}")
        cfg = dataclasses.replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvAutoencoder(cfg, preset=preset)


# ------------------------------------------------------------------------------------------------
# Objectives
# ------------------------------------------------------------------------------------------------
_TERMS = (("rec", "Rec."), ("per", "Per."), ("adv", "Adv."))


@dataclass(frozen=True)
class ObjectiveWeights:
    """``(lambda_1, lambda_2, lambda_3)`` of Eq. 1 (each ``>= 0``): L1 reconstruction, perceptual metric,
    adversarial. ``key`` (``"rec_per"``) and ``display`` (``"Rec.+Per."``) name the terms that are on."""

    rec: float = 0.0
    perceptual: float = 0.0
    adversarial: float = 0.0

    @property
    def lambdas(self) -> tuple[float, float, float]:
        return (self.rec, self.perceptual, self.adversarial)

    @property
    def key(self) -> str:
        return "_".join(key for (key, _), w in zip(_TERMS, self.lambdas) if w > 0)

    @property
    def display(self) -> str:
        return "+".join(label for (_, label), w in zip(_TERMS, self.lambdas) if w > 0)

    @property
    def needs_metric(self) -> bool:
        return self.perceptual > 0

    @property
    def needs_discriminator(self) -> bool:
        return self.adversarial > 0


# SR stage 1's L1-only objective, then the four stage-2 settings of Table 1 at the paper's lambdas:
# rec, per, rec_per, per_adv, rec_per_adv.
OBJECTIVE_SETTINGS: dict[str, ObjectiveWeights] = {
    w.key: w
    for w in [ObjectiveWeights(*STAGE1_LAMBDAS)] + [ObjectiveWeights(*s.lambdas()) for s in SR_SETTINGS.values()]
}


def get_objective(objective: str | ObjectiveWeights) -> ObjectiveWeights:
    """An :class:`ObjectiveWeights` from a setting name (:data:`OBJECTIVE_SETTINGS`) or as is."""
    if isinstance(objective, ObjectiveWeights):
        return objective
    if objective not in OBJECTIVE_SETTINGS:
        raise UnknownNameError(f"unknown objective setting {objective!r}; available: {sorted(OBJECTIVE_SETTINGS)}")
    return OBJECTIVE_SETTINGS[objective]


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AETrainConfig:
    """Optimization of :func:`train_autoencoder`.

    Attributes:
        steps: generator updates (each followed by one discriminator update when adversarial).
        warmup_steps: L1-only updates before those ``steps`` (no metric, no discriminator update), as SR's stage
            2 starts from an L1-trained stage 1; 0 trains the objective from the initialization.
        batch_size, crop: random crops of ``crop`` pixels (>= the metric's ``min_size``) per step.
        lr, betas: Adam for the autoencoder (SR defaults: 2e-4, (0.9, 0.99)); ``d_lr`` for the discriminator.
        lr_milestones: steps at which both learning rates are halved.
        flips: random horizontal/vertical flips of the crops.
        log_every: steps between log rows (the first and last steps are always logged).
        seed: seed of the crop sampler.
        relativistic_mean: mean ``E d(.)`` of the relativistic losses over patch logits: ``"all"`` (BasicSR's,
            the default) or ``"batch"`` (per position); :func:`asymlib.sr.losses.relativistic_mean`.
        max_d_loss, max_abs_logit, collapse_patience: the SR trainer's collapse rule
            (:class:`asymlib.sr.collapse.CollapseRule`): training stops as ``collapsed`` when the discriminator
            loss or a logit stays over its threshold for ``collapse_patience`` consecutive steps, or at once when
            a loss is not finite.
    """

    steps: int = 200
    warmup_steps: int = 0
    batch_size: int = 4
    crop: int = 64
    lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    lr_milestones: tuple[int, ...] = ()
    flips: bool = True
    log_every: int = 10
    seed: int = 0
    relativistic_mean: str = "all"
    max_d_loss: float = 50.0
    max_abs_logit: float = 1e4
    collapse_patience: int = 20

    def validate(self) -> None:
        from ..sr.losses import MEAN_OVER_CHOICES

        for name in ("steps", "batch_size", "crop", "log_every", "collapse_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AETrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"AETrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.lr <= 0 or self.d_lr <= 0:
            raise ConfigError("learning rates must be > 0")
        if self.relativistic_mean not in MEAN_OVER_CHOICES:
            raise ConfigError(f"AETrainConfig.relativistic_mean must be one of {list(MEAN_OVER_CHOICES)}, "
                              f"got {self.relativistic_mean!r}")


@dataclass
class AETrainResult:
    """Outcome of :func:`train_autoencoder`.

    Attributes:
        model: the trained autoencoder (same object as passed in).
        discriminator: the trained discriminator (None without adversarial term).
        log: one row per logged step: ``step, loss, l1, perceptual, adversarial, d_loss, seconds``
            (terms are unweighted; ``loss`` is the weighted generator objective; steps count from the end of the
            warm-up).
        objective: the weights used.
        seconds: wall time.
        status, reason, steps: ``"finished"``, or ``"collapsed"`` with why and at which step it stopped
            (``steps`` generator updates were made).
    """

    model: nn.Module
    discriminator: nn.Module | None
    log: pd.DataFrame
    objective: ObjectiveWeights
    seconds: float
    status: str = "finished"
    reason: str = ""
    steps: int = 0


def _stack_images(images: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(images, Mapping):
        images = list(images.values())
    if isinstance(images, torch.Tensor):
        images = list(as_batch(images))
    out = [as_batch(im)[0] for im in images]
    if not out:
        raise ConfigError("no training images")
    return out


class _CropSampler:
    def __init__(self, images: list[torch.Tensor], crop: int, flips: bool, seed: int) -> None:
        small = [tuple(im.shape[-2:]) for im in images if min(im.shape[-2:]) < crop]
        if small:
            raise ConfigError(f"crop {crop} is larger than training image(s) of size {small}")
        self.images, self.crop, self.flips = images, crop, flips
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int) -> torch.Tensor:
        out = []
        for _ in range(n):
            im = self.images[int(self.rng.integers(len(self.images)))]
            h, w = im.shape[-2:]
            top = int(self.rng.integers(h - self.crop + 1))
            left = int(self.rng.integers(w - self.crop + 1))
            patch = im[:, top:top + self.crop, left:left + self.crop]
            if self.flips and self.rng.random() < 0.5:
                patch = patch.flip(-1)
            if self.flips and self.rng.random() < 0.5:
                patch = patch.flip(-2)
            out.append(patch)
        return torch.stack(out)


def _descend(opt: torch.optim.Optimizer, params: list[torch.Tensor], loss: torch.Tensor) -> None:
    """One optimizer step on ``loss`` for ``params`` only (gradients taken with autograd.grad, so frozen modules
    in the graph, e.g. the metric, never accumulate any)."""
    for p, g in zip(params, torch.autograd.grad(loss, params)):
        p.grad = g
    opt.step()


def train_autoencoder(model: nn.Module, images: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
                      objective: str | ObjectiveWeights = "rec_per", *, metric: nn.Module | None = None,
                      discriminator: nn.Module | None = None, config: AETrainConfig = AETrainConfig(),
                      run: Any | None = None, progress: bool = True) -> AETrainResult:
    """Train ``model`` to reconstruct random crops of ``images`` with the composite objective (Eq. 1).

    Args:
        model: an autoencoder (e.g. :func:`create_autoencoder`); trained in place on its device.
        images: ``(N, 3, H, W)``, a list of ``(3, H, W)`` or a ``{name: (3, H, W)}`` mapping, in ``[0, 1]``.
        objective: a setting of :data:`OBJECTIVE_SETTINGS` (``rec``, ``per``, ``rec_per``, ``per_adv``,
            ``rec_per_adv``) or :class:`ObjectiveWeights`.
        metric: perceptual distance ``metric(x_hat, x) -> (B,)`` (needed when ``perceptual > 0``); frozen,
            it receives no gradient.
        discriminator: logits ``(B, 1)`` or ``(B, 1, h, w)`` (needed when ``adversarial > 0``); trained in
            place with the relativistic discriminator loss.
        config: :class:`AETrainConfig`.
        run: optional :class:`asymlib.runs.Run`; logged rows are appended to its ``log.jsonl``.
        progress: show a tqdm bar.
    """
    from ..progress import tqdm

    from ..sr.collapse import CollapseRule, refused_output
    from ..sr.losses import generator_loss, relativistic_discriminator_loss

    config.validate()
    obj = get_objective(objective)
    if obj.rec <= 0 and not obj.needs_metric and not obj.needs_discriminator:
        raise ConfigError(f"objective {obj} has no term with a positive weight")
    if obj.needs_metric and metric is None:
        raise ConfigError(f"objective {obj} has a perceptual term but no metric was given")
    if obj.needs_discriminator and discriminator is None:
        raise ConfigError(f"objective {obj} has an adversarial term but no discriminator was given")
    device = next(model.parameters()).device
    sampler = _CropSampler([im.to(device) for im in _stack_images(images)], config.crop, config.flips, config.seed)
    g_params = [p for p in model.parameters() if p.requires_grad]
    g_opt = torch.optim.Adam(g_params, lr=config.lr, betas=config.betas)
    scheds = [torch.optim.lr_scheduler.MultiStepLR(g_opt, list(config.lr_milestones), 0.5)]
    d_params: list[torch.Tensor] = []
    d_opt = None
    use_d = obj.needs_discriminator
    if use_d:
        assert discriminator is not None
        d_params = [p for p in discriminator.parameters() if p.requires_grad]
        d_opt = torch.optim.Adam(d_params, lr=config.d_lr, betas=config.betas)
        scheds.append(torch.optim.lr_scheduler.MultiStepLR(d_opt, list(config.lr_milestones), 0.5))
    model.train()
    for _ in range(config.warmup_steps):
        x = sampler(config.batch_size)
        with torch.enable_grad():
            warm = F.l1_loss(model(x), x)
        _descend(g_opt, g_params, warm)
    if config.warmup_steps:  # the objective starts with fresh moment estimates, like a new stage
        g_opt = torch.optim.Adam(g_params, lr=config.lr, betas=config.betas)
        scheds[0] = torch.optim.lr_scheduler.MultiStepLR(g_opt, list(config.lr_milestones), 0.5)
    rule = CollapseRule(config.max_d_loss, config.max_abs_logit, config.collapse_patience)
    status, reason, bad_steps, done = "finished", "", 0, 0
    rows: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(1, config.steps + 1), desc=f"autoencoder[{obj.display}]", disable=not progress,
               leave=False)
    for step in bar:
        x = sampler(config.batch_size)
        # -- generator update (discriminator fixed) --
        with torch.enable_grad():
            x_hat = model(x)
            try:
                loss, terms = generator_loss(x_hat, x, lambda_rec=obj.rec, lambda_per=obj.perceptual,
                                             lambda_adv=obj.adversarial, metric=metric, discriminator=discriminator,
                                             mean_over=config.relativistic_mean)  # type: ignore[arg-type]
            except InputError as exc:
                # as in the SR trainer: a NaN/Inf output refused by the metric is a collapse, other errors are bugs
                if not refused_output(exc):
                    raise
                status, reason = "collapsed", f"non-finite output at step {step} (refused by the metric: {exc})"
                break
            if not torch.isfinite(loss.detach()):
                status, reason = "collapsed", f"non-finite generator loss at step {step}"
                break
        _descend(g_opt, g_params, loss)
        done = step
        # -- discriminator update --
        d_loss = torch.zeros(())
        if use_d:
            assert discriminator is not None and d_opt is not None
            with torch.enable_grad():
                real, fake = discriminator(x), discriminator(x_hat.detach())
                d_loss = relativistic_discriminator_loss(real, fake, config.relativistic_mean)  # type: ignore[arg-type]
                if not torch.isfinite(d_loss.detach()):
                    status, reason = "collapsed", f"non-finite discriminator loss at step {step}"
                    break
            _descend(d_opt, d_params, d_loss)
            max_logit = float(torch.maximum(real.detach().abs().max(), fake.detach().abs().max()))
            bad_steps = bad_steps + 1 if rule.exploding(float(d_loss.detach()), max_logit) else 0
        for s in scheds:
            s.step()
        if step == 1 or step == config.steps or step % config.log_every == 0:
            row = {"step": step, "loss": float(loss.detach()), "l1": float(F.l1_loss(x_hat.detach(), x)),
                   "perceptual": float(terms["l_per"].detach()) if "l_per" in terms else 0.0,
                   "adversarial": float(terms["l_g_adv"].detach()) if "l_g_adv" in terms else 0.0,
                   "d_loss": float(d_loss.detach()), "seconds": time.perf_counter() - start}
            rows.append(row)
            if run is not None:
                run.log(step, **{k: v for k, v in row.items() if k != "step"})
            if progress:
                bar.set_postfix(loss=f"{row['loss']:.4f}")
        if rule.collapsed(bad_steps):
            status, reason = "collapsed", rule.reason(bad_steps, step)
            break
    bar.close()
    model.eval()
    return AETrainResult(model=model, discriminator=discriminator, log=pd.DataFrame(rows), objective=obj,
                         seconds=time.perf_counter() - start, status=status, reason=reason, steps=done)


@torch.no_grad()
def reconstruct(model: nn.Module, images: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
                ) -> list[torch.Tensor] | dict[str, torch.Tensor]:
    """Reconstructions clamped to ``[0, 1]``, one ``(3, H, W)`` per image (a dict for a dict input)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        if isinstance(images, Mapping):
            return {k: model(as_batch(v).to(device))[0].clamp(0, 1).cpu() for k, v in images.items()}
        return [model(im[None].to(device))[0].clamp(0, 1).cpu() for im in _stack_images(images)]
    finally:
        model.train(was_training)


def plot_autoencoder_results(originals: Mapping[str, torch.Tensor],
                             reconstructions: Mapping[str, Mapping[str, torch.Tensor]], title: str = "Autoencoder reconstructions", banner: str | None = None,
                             crop: int | None = None):
    """Grid: one row per image, columns ``original`` then one per objective setting.

    Args:
        originals: ``{image name: (3, H, W)}``.
        reconstructions: ``{setting label: {image name: (3, H, W)}}``.
        crop: show only the central ``crop`` x ``crop`` pixels (to see artifacts).
    """
    import matplotlib.pyplot as plt

    names = list(originals)
    settings = list(reconstructions)
    fig, axes = plt.subplots(len(names), 1 + len(settings), figsize=(2.2 * (1 + len(settings)), 2.2 * len(names) + 0.6),
                             squeeze=False)

    def view(t: torch.Tensor) -> np.ndarray:
        img = to_numpy_image(t)
        if crop:
            h, w = img.shape[:2]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            img = img[top:top + crop, left:left + crop]
        return img

    for r, name in enumerate(names):
        cols = [("original", originals[name])] + [(s, reconstructions[s][name]) for s in settings]
        for c, (label, img) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(view(img), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title if banner is None else f"{title}\n{banner}", fontsize=9)
    fig.tight_layout()
    return fig
