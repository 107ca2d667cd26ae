"""``create_discriminator``: a randomly initialised backbone + a vanilla or patch head.

The backbones are the :mod:`asymlib.backbones` feature extractors (``vgg16``, ``resnet50``,
``dinov2_vits14``, ``dinov2_vitb14`` or any timm name), built with random weights (paper
footnote 3) and trainable, plus ESRGAN's VGG-style discriminator (``esrgan_vgg128``/``esrgan_vgg256``).

Input and output (both heads read the backbone's last map by default, so vanilla and patch discriminators
of one backbone share every backbone parameter; see :mod:`asymlib.discriminators.heads`):
    (B, 3, H, W) float, nominally [0, 1] (SR outputs are passed unclamped, as in BasicSR)
    -> ``vanilla``: (B, 1) logits;  ``patch``: (B, 1, h, w) logits.

Backbone parameters that cannot influence the logits (a ViT's or Swin's final norm, which the feature
maps never go through; with a non-default ``stage``, the layers after it) are found once at construction
(one forward pass, then a walk of its autograd graph) and frozen (``requires_grad=False``):
DistributedDataParallel then needs no ``find_unused_parameters``, and the export lists them as
``untrained_keys``. Their forward computation still runs (the backbone returns every map).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..atomic import atomic_torch_save
from ..backbones import BACKBONE_EXPORT_FORMAT, create_feature_extractor, keys_signature, list_backbones, stage_index
from ..errors import CheckpointError, ConfigError
from ..state_dict_io import load_weights_into
from .esrgan import ESRGAN_VARIANTS, build_esrgan_vgg
from .heads import HeadFactory, get_head, stage_by_rule

__all__ = [
    "Discriminator",
    "create_discriminator",
    "list_discriminator_backbones",
    "read_backbone_export",
    "register_discriminator_backbone",
]

# name -> builder(name, seed) -> (feature extractor, {head name: head factory overriding HEADS})
BackboneBuilder = Callable[[str, int], "tuple[nn.Module, dict[str, HeadFactory]]"]
_SPECIAL_BACKBONES: dict[str, BackboneBuilder] = {name: build_esrgan_vgg for name in ESRGAN_VARIANTS}


def register_discriminator_backbone(name: str, builder: BackboneBuilder) -> None:
    """Add a discriminator-specific backbone (one that :mod:`asymlib.backbones` does not provide)."""
    if name in _SPECIAL_BACKBONES:
        raise ConfigError(f"discriminator backbone {name!r} is already registered")
    _SPECIAL_BACKBONES[name] = builder


def list_discriminator_backbones() -> list[str]:
    """Registered names; any timm model name is accepted as well."""
    return sorted(set(list_backbones()) | set(_SPECIAL_BACKBONES))


def _build_backbone(name: str, seed: int, weights: str = "random") -> tuple[nn.Module, dict[str, HeadFactory]]:
    """The backbone, randomly initialised (``weights="random"``) or from ImageNet (``"imagenet"``)."""
    if name in _SPECIAL_BACKBONES:
        if weights != "random":
            raise ConfigError(f"discriminator backbone {name!r} has no {weights!r} weights; use weights='random' "
                              f"or a discriminator weights file")
        return _SPECIAL_BACKBONES[name](name, seed)
    return create_feature_extractor(name, weights=weights, seed=seed, trainable=True), {}


def _plain(value: Any, where: str) -> Any:
    """Metadata as types ``torch.load(weights_only=True)`` accepts (Paths become str, tuples lists)."""
    if value is None or isinstance(value, (str, bool, int, float, torch.Tensor)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"metadata key {where}.{k!r} must be a str")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    raise ConfigError(
        f"metadata {where} has type {type(value).__name__}; use str, int, float, bool, None, tensors, lists or dicts"
    )


def _sn_modules(module: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(getattr(m, "weight", None), nn.Parameter)
        and m.weight.requires_grad
    ]


def _baked_state_dict(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """``backbone.backbone_state_dict()`` with parametrized weights (spectral norm) evaluated into
    plain ``<module>.weight`` entries, as an unparametrized backbone expects them.

    Evaluated in eval mode (no power iteration, nothing updated). Removing the parametrizations
    from a deep copy is not an option: the parametrized class is shared with the original.
    """
    sd = backbone.backbone_state_dict()
    body = getattr(backbone, "body", backbone)  # backbone_state_dict keys are relative to the body
    modules = [(name, m) for name, m in body.named_modules() if parametrize.is_parametrized(m)]
    if not modules:
        return sd
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            for name, module in modules:
                prefix = f"{name}." if name else ""
                for tensor_name in module.parametrizations:
                    stale = f"{prefix}parametrizations.{tensor_name}."
                    for key in [k for k in sd if k.startswith(stale)]:
                        del sd[key]
                    sd[prefix + tensor_name] = getattr(module, tensor_name).detach().clone()
    finally:
        backbone.train(was_training)
    return sd


def _graph_leaves(out: torch.Tensor) -> set[int]:
    """ids of the leaf tensors ``out`` depends on, read off its autograd graph (no backward pass)."""
    leaves: set[int] = set()
    seen: set[Any] = set()
    stack = [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)  # AccumulateGrad nodes hold the leaf
        if variable is not None:
            leaves.add(id(variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return leaves


class Discriminator(nn.Module):
    """Backbone + head.

    forward: (B, 3, H, W) -> (B, 1) (vanilla) or (B, 1, h, w) (patch) logits.

    Attributes:
        backbone: the feature extractor (``asymlib.backbones.FeatureExtractor`` interface).
        head: the head module; head_name: its registry name.
        stage: index of the backbone map the head reads; stage_stride: that map's stride.
        backbone_name, spectral_norm, seed: construction arguments.
        frozen_backbone_parameters: backbone parameter names that cannot affect the logits (frozen).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        backbone_name: str,
        head_name: str,
        stage: int,
        spectral_norm: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.stage = stage_index(backbone, stage, backbone_name)
        self.backbone = backbone
        self.head = head
        self.backbone_name = backbone_name
        self.head_name = head_name
        self.stage_stride = int(backbone.reductions[self.stage])
        self.seed = seed
        self.frozen_backbone_parameters = self._freeze_unused()
        self.spectral_norm = bool(spectral_norm)
        if self.spectral_norm:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # the power-iteration vectors u, v start random
                for m in _sn_modules(self):
                    _spectral_norm(m)

    def _probe_size(self) -> int:
        return int(getattr(self.backbone, "input_size", 0) or max(self.backbone.min_size, 64))

    def _freeze_unused(self) -> list[str]:
        named = [(k, p) for k, p in self.backbone.named_parameters() if p.requires_grad]
        if not named:
            return []
        was_training = self.training
        self.eval()  # no BatchNorm statistics update, no dropout
        try:
            s = self._probe_size()
            out = self(torch.zeros(1, 3, s, s, device=named[0][1].device, dtype=named[0][1].dtype))
            reachable = _graph_leaves(out)
        finally:
            self.train(was_training)
        frozen = [k for k, p in named if id(p) not in reachable]
        for k, p in named:
            if k in frozen:
                p.requires_grad_(False)
        return frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[self.stage])

    def describe(self) -> dict[str, Any]:
        """Plain summary for logs and run metadata."""
        return {
            "backbone": self.backbone_name,
            "head": self.head_name,
            "stage": self.stage,
            "stage_stride": self.stage_stride,
            "stage_channels": int(self.backbone.channels[self.stage]),
            "spectral_norm": self.spectral_norm,
            "seed": self.seed,
            "trainable_parameters": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "frozen_parameters": sum(p.numel() for p in self.parameters() if not p.requires_grad),
        }

    def export_backbone(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the backbone weights for reuse as an IQA initialization (paper Sec. 3.3), atomically.

        The file is a dict readable with ``torch.load(weights_only=True)`` and by
        ``asymlib.backbones.create_feature_extractor(name, weights=path)``::

            format, backbone, timm_name, channels, keys_sha   (asymlib.backbones export header)
            state_dict       backbone body weights, spectral norm baked in (plain ``weight`` keys)
            weights_origin   "gan"
            head, stage, stage_stride, spectral_norm, reductions, weights_source
            untrained_keys   parameters frozen because they cannot affect the logits
            metadata         the caller's ``metadata`` (str/int/float/bool/None/tensors, lists, dicts)
        """
        user = _plain(dict(metadata or {}), "metadata")
        state_dict = {k: v.cpu() for k, v in _baked_state_dict(self.backbone).items()}
        payload: dict[str, Any] = dict(self.backbone.export_metadata())
        payload.update(
            keys_sha=keys_signature(state_dict),  # of the baked keys, not the parametrized ones
            state_dict=state_dict,
            weights_origin="gan",
            head=self.head_name,
            stage=self.stage,
            stage_stride=self.stage_stride,
            spectral_norm=self.spectral_norm,
            reductions=[int(r) for r in self.backbone.reductions],
            weights_source=str(getattr(self.backbone, "weights_source", "")),
            untrained_keys=[k.removeprefix("body.") for k in self.frozen_backbone_parameters],
            metadata=user,
        )
        payload["channels"] = [int(c) for c in payload["channels"]]
        return atomic_torch_save(payload, path)


def create_discriminator(
    backbone: str,
    head: str = "vanilla",
    spectral_norm: bool = False,
    seed: int = 0,
    *,
    stage: int | str | None = None,
    hidden: int | None = None,
    weights: str | Path = "random",
) -> Discriminator:
    """Build a discriminator, randomly initialised (the default) or loaded from a weights file.

    Args:
        backbone: ``vgg16``, ``resnet50``, ``dinov2_vits14``, ``dinov2_vitb14``, any timm model name,
            or ``esrgan_vgg128`` / ``esrgan_vgg256`` (ESRGAN's VGG-style discriminator; with
            ``head="vanilla"`` it is BasicSR's network exactly and needs 128x128 / 256x256 input).
        head: ``"vanilla"`` (one logit per image) or ``"patch"`` (logit map); see :mod:`.heads`.
        spectral_norm: wrap every trainable Conv2d/Linear weight (backbone and head) in spectral
            normalization (``torch.nn.utils.parametrizations.spectral_norm``, one power iteration).
        seed: seed of the backbone and head initialization.
        stage: the backbone map the head reads: an index (negative counts from the end), a rule of
            :data:`asymlib.discriminators.heads.STAGE_RULES` (``"last"``; ``"stride16"``: the deepest map with
            stride <= 16, e.g. ResNet-50's ``layer3``), or ``None``: the head's default, the last map for both
            ``vanilla`` and ``patch``. Layers after the map read are frozen.
        hidden: width of the head's hidden layer (default: 256; 100 for ESRGAN's flatten head).
        weights: ``"random"`` (paper footnote 3), ``"imagenet"`` (the backbone from ImageNet, as in
            :func:`asymlib.backbones.create_feature_extractor`; the head stays random), or a discriminator
            weights file read with ``torch.load(weights_only=True)``: a training run's ``discriminator.pt``
            (``{"state_dict": ...}``) or a bare ``Discriminator.state_dict()``. The file must come from a
            discriminator built with the same ``backbone``, ``head``, ``spectral_norm``, ``stage`` and ``hidden``.

    Raises:
        UnknownNameError: unknown backbone or head.
        ConfigError: ``stage`` out of range; ``"imagenet"`` for a backbone that has no such weights.
        CheckpointError: ``weights`` file unreadable or not matching (the message names it).
        WeightsUnavailableError: ``"imagenet"`` weights not in the local cache.
    """
    factory = get_head(head)  # unknown names fail before the backbone is built
    weights_str = str(weights)
    is_file = weights_str not in ("random", "imagenet")
    if is_file and not Path(weights_str).is_file():
        raise CheckpointError(f"discriminator weights {weights_str!r}: not 'random', not 'imagenet' and no such file")
    features, head_overrides = _build_backbone(backbone, seed, "random" if is_file else weights_str)
    factory = head_overrides.get(head, factory)
    head_cls = factory.func if isinstance(factory, functools.partial) else factory
    if stage is None:
        stage = head_cls.select_stage(features.reductions)
    elif isinstance(stage, str):
        stage = stage_by_rule(stage, features.reductions)
    else:
        stage = int(stage)
    n = len(features.channels)
    if not -n <= stage < n:
        raise ConfigError(f"stage {stage} out of range: backbone {backbone!r} has {n} feature maps")
    kw = {} if hidden is None else {"hidden": int(hidden)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head_module = factory(features.channels[stage], **kw)
    disc = Discriminator(
        features, head_module, backbone_name=backbone, head_name=head, stage=stage,
        spectral_norm=spectral_norm, seed=seed,
    )
    if is_file:
        load_weights_into(disc, weights_str, keys=("state_dict",), what="discriminator weights",
                          model_desc=f"backbone {backbone!r}, head {head!r}, stage {disc.stage}, "
                                     f"spectral_norm={bool(spectral_norm)}")
    return disc


def read_backbone_export(path: str | Path) -> dict[str, Any]:
    """Load a file written by :meth:`Discriminator.export_backbone` (``weights_only=True``).

    Raises:
        CheckpointError: missing, unreadable, or not a backbone export; the message names the file.
    """
    from ..torchfile import read_torch_file

    p = Path(path)
    obj = read_torch_file(p, "backbone export")
    if not isinstance(obj, dict) or obj.get("format") != BACKBONE_EXPORT_FORMAT or "state_dict" not in obj:
        raise CheckpointError(f"{p} is not an asymlib backbone export (format {BACKBONE_EXPORT_FORMAT!r})")
    return obj
