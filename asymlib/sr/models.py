"""Super-resolution generators: SwinIR presets built on spandrel's SwinIR architecture.

A preset is a frozen dataclass of architecture hyper-parameters; :func:`create_sr_model` looks it up
in a registry and applies keyword overrides.

Input/output contract of every model returned here:
    input  (B, 3, h, w) float in [0, 1] (the low-resolution image)
    output (B, 3, scale*h, scale*w) float, nominally in [0, 1] but *not* clamped (clamp for display
    or metrics, not inside the training loss).

Window padding (verified in spandrel 0.4.2, ``SwinIR.check_image_size``): the input is
reflect-padded on the bottom/right to a multiple of ``window_size`` and the output is cropped back
to ``scale*h x scale*w``, so any size works *as long as reflect padding is possible*: each side must
be a multiple of the window or larger than the padding it needs (``(-h) % window < h``). For
window 8 that excludes 1..4 pixels; such inputs raise :class:`InputSizeError` instead of a
``RuntimeError`` from ``F.pad``. Sizes that are multiples of the window avoid the padding work and
the border effect of the reflected rows/columns.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from spandrel.architectures.SwinIR import SwinIR as _SpandrelSwinIR
from torch import nn

from ..errors import ConfigError, InputSizeError, UnknownNameError

__all__ = ["SwinIRConfig", "SwinIRSR", "count_parameters", "create_sr_model", "list_sr_models", "list_sr_presets"]

_SUPPORTED_SCALES = (2, 3, 4, 8)  # pixel-shuffle upsampler: powers of two and 3
# Entries of a weights file that may hold the state dict, in order: official SwinIR/BasicSR files hold
# "params" and/or "params_ema" (the EMA weights are preferred), asymlib's generator files "state_dict".
SR_WEIGHT_KEYS = ("params_ema", "params", "state_dict")


@dataclass(frozen=True)
class SwinIRConfig:
    """SwinIR hyper-parameters (names follow the SwinIR / spandrel constructor).

    ``img_size`` is the training patch size; it only sets the precomputed attention masks and
    ``input_resolution`` bookkeeping, other sizes are handled at run time.
    """

    img_size: int = 64
    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    window_size: int = 8
    mlp_ratio: float = 2.0
    upsampler: str = "pixelshuffle"
    resi_connection: str = "1conv"
    img_range: float = 1.0
    drop_path_rate: float = 0.1  # SwinIR default; kept for parity with the reference training
    description: str = field(default="", compare=False)

    def validate(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ConfigError(f"depths {list(self.depths)} and num_heads {list(self.num_heads)} differ in length")
        for h in self.num_heads:
            if self.embed_dim % h:
                raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {h}")
        if self.upsampler not in ("pixelshuffle", "pixelshuffledirect", "nearest+conv"):
            raise ConfigError(f"unsupported upsampler {self.upsampler!r}")
        if self.resi_connection not in ("1conv", "3conv"):
            raise ConfigError(f"unsupported resi_connection {self.resi_connection!r}")


_PRESETS: dict[str, SwinIRConfig] = {}


def register_sr_preset(name: str, config: SwinIRConfig) -> SwinIRConfig:
    """Add a SwinIR preset to the registry (name must be new)."""
    if name in _PRESETS:
        raise ConfigError(f"SR preset {name!r} is already registered")
    config.validate()
    _PRESETS[name] = config
    return config


register_sr_preset(
    "classical",
    SwinIRConfig(description="SwinIR classical SR (Liang et al. 2021): 11,900,199 parameters at x4"),
)
register_sr_preset(
    "small",
    SwinIRConfig(
        embed_dim=60,
        depths=(4, 4, 4, 4),
        num_heads=(6, 6, 6, 6),
        description="reduced SwinIR for CPU smoke runs and tests: 988,959 parameters at x4",
    ),
)


class SwinIRSR(_SpandrelSwinIR):
    """spandrel's SwinIR with an input check and its preset recorded.

    Subclassing (rather than wrapping) keeps the state-dict keys identical to the official SwinIR
    checkpoints, so those load with ``load_state_dict`` directly.
    """

    def __init__(self, config: SwinIRConfig, scale: int, preset: str = "custom") -> None:
        with warnings.catch_warnings():
            # spandrel calls torch.meshgrid without `indexing`; the default ("ij") is the intended one
            warnings.filterwarnings("ignore", message=r"torch\.meshgrid", category=UserWarning)
            self._init_arch(config, scale)
        self.config = config
        self.scale = scale
        self.preset = preset

    def _init_arch(self, config: SwinIRConfig, scale: int) -> None:
        super().__init__(
            img_size=config.img_size,
            embed_dim=config.embed_dim,
            depths=list(config.depths),
            num_heads=list(config.num_heads),
            window_size=config.window_size,
            mlp_ratio=config.mlp_ratio,
            upscale=scale,
            img_range=config.img_range,
            upsampler=config.upsampler,
            resi_connection=config.resi_connection,
            drop_path_rate=config.drop_path_rate,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> (B, 3, scale*h, scale*w)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputSizeError(f"SwinIR expects a (B, 3, h, w) tensor, got {tuple(x.shape)}")
        ws = self.window_size
        for side in x.shape[2:]:
            if (-side) % ws >= side:
                raise InputSizeError(
                    f"SwinIR input {tuple(x.shape[2:])} cannot be reflect-padded to a multiple of the "
                    f"window {ws}: each side must be a multiple of {ws} or longer than the padding it needs"
                )
        return super().forward(x)


def _build_swinir(scale: int, preset: str, **overrides: Any) -> SwinIRSR:
    if preset not in _PRESETS:
        raise UnknownNameError(f"unknown SwinIR preset {preset!r}; available: {list_sr_presets()}")
    if scale not in _SUPPORTED_SCALES:
        raise ConfigError(f"SwinIR scale must be one of {_SUPPORTED_SCALES}, got {scale!r}")
    base = _PRESETS[preset]
    valid = {f.name for f in dataclasses.fields(SwinIRConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"unknown SwinIR option(s) {unknown}; valid: {sorted(valid - {'description'})}")
    for key in ("depths", "num_heads"):
        if key in overrides:
            overrides[key] = tuple(int(v) for v in overrides[key])
    config = dataclasses.replace(base, **overrides)
    config.validate()
    return SwinIRSR(config, scale=scale, preset=preset if not overrides else f"{preset}+overrides")


_MODELS: dict[str, Callable[..., nn.Module]] = {"swinir": _build_swinir}


def list_sr_models() -> list[str]:
    """Names accepted by :func:`create_sr_model`."""
    return sorted(_MODELS)


def list_sr_presets(name: str = "swinir") -> list[str]:
    """Presets of an SR model family."""
    if name != "swinir":
        raise UnknownNameError(f"unknown SR model {name!r}; available: {list_sr_models()}")
    return sorted(_PRESETS)


SR_INITS = ("default", "nearest")


def create_sr_model(name: str = "swinir", scale: int = 4, preset: str = "classical", *,
                    weights: str | Path | None = None, init: str = "default", **overrides: Any) -> nn.Module:
    """Build an SR generator, randomly initialised or loaded from a weights file.

    Args:
        name: model family (see :func:`list_sr_models`).
        scale: upscaling factor (2, 3, 4 or 8).
        preset: named hyper-parameter set: ``"classical"`` (11,900,199 parameters at x4) or
            ``"small"`` (988,959 parameters at x4).
        weights: None (random initialization) or a weights file read with ``torch.load(weights_only=True)``:
            an official SwinIR / BasicSR file (``{"params": ...}`` or ``{"params_ema": ...}``; EMA preferred),
            asymlib's ``generator_ema.pt`` (``{"state_dict": ...}``), or a bare state dict; a ``module.``
            prefix is removed. Keys and shapes must match exactly (:class:`SwinIRSR` keeps the official
            parameter names), e.g. the official ``001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth`` is
            ``preset="classical", scale=4``.
        init: initialization of a model built without ``weights``: ``"default"`` (SwinIR's own) or
            ``"nearest"`` (the untrained model computes nearest-neighbour upsampling,
            :func:`~asymlib.sr.nearest_init.init_nearest_upsampler`; short schedules start from there).
        **overrides: fields of :class:`SwinIRConfig` to change, e.g. ``img_size=48``.

    Returns:
        A module mapping (B, 3, h, w) in [0, 1] to (B, 3, scale*h, scale*w) (not clamped).

    Raises:
        UnknownNameError, ConfigError: unknown name/preset or invalid options.
        CheckpointError: ``weights`` unreadable or not matching the architecture (the message names the file).
    """
    if name not in _MODELS:
        raise UnknownNameError(f"unknown SR model {name!r}; available: {list_sr_models()}")
    if init not in SR_INITS:
        raise UnknownNameError(f"unknown SR initialization {init!r}; available: {list(SR_INITS)}")
    model = _MODELS[name](scale=scale, preset=preset, **overrides)
    if init == "nearest":
        from .nearest_init import init_nearest_upsampler

        init_nearest_upsampler(model)
    if weights is not None:
        from ..state_dict_io import load_weights_into

        load_weights_into(model, weights, keys=SR_WEIGHT_KEYS, what="SR weights",
                          model_desc=f"SwinIR preset {model.preset!r}, scale {scale}")
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
