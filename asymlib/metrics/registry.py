"""Metric registry: ``create_metric(name, **kwargs)`` and the paper's named metric presets."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..backbones import create_feature_extractor, get_backbone_spec
from ..errors import ConfigError, UnknownNameError
from .dists import DISTSMetric
from .weights_io import is_metric_export, load_metric_weights, read_metric_weights, resolve_build_args

__all__ = ["create_metric", "list_metrics", "register_metric", "MetricLoss", "MetricPreset", "PAPER_METRICS",
           "get_metric_preset", "metric_from_preset"]

_METRICS: dict[str, Callable[..., nn.Module]] = {}


def register_metric(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _METRICS[name.lower()] = fn
        return fn

    return deco


def list_metrics() -> list[str]:
    return sorted(_METRICS)


@register_metric("dists")
def _build_dists(backbone: str | None = None, weights: str | Path | None = None, seed: int | None = None,
                 trainable_weights: bool = True, metric_weights: str | Path | None = None,
                 allow_download: bool | None = None) -> DISTSMetric:
    """DISTS-style metric over ``backbone``; ``metric_weights`` loads alpha/beta from a file.

    Args:
        backbone: backbone name (default: the one a ``metric_weights`` file records, else ``"vgg16"``).
        weights: backbone weights, ``"imagenet"``, ``"random"`` or a checkpoint path (default: what the
            ``metric_weights`` file records, else ``"imagenet"``). An asymlib metric export (``.safetensors``
            written by :func:`~asymlib.metrics.export_metric`) given here is read as ``metric_weights``.
        seed: seed of random backbone weights and of the alpha/beta initialization (default: the recorded
            one for a file exported from a random backbone, else 0).
        metric_weights: alpha/beta file: the official DISTS ``weights.pt`` (pyiqa's layout), an asymlib
            export, or a ``metric_train`` run's ``metric_weights.pt`` (see :mod:`.weights_io`).

    Raises:
        ConfigError: an explicit ``backbone`` differs from the one the ``metric_weights`` file records.
        CheckpointError: unreadable or mismatched weights file (the message names it).
    """
    if is_metric_export(weights):
        if metric_weights is not None:
            raise ConfigError(f"weights={str(weights)!r} is a metric export and metric_weights="
                              f"{str(metric_weights)!r} was given too; pass one of them")
        weights, metric_weights = None, weights
    file = read_metric_weights(metric_weights) if metric_weights is not None else None
    backbone, weights, seed = resolve_build_args(backbone, weights, seed, file)
    fx = create_feature_extractor(backbone, weights=weights, seed=seed, allow_download=allow_download)
    metric = DISTSMetric(fx, seed=seed, trainable_weights=trainable_weights)
    if file is not None:
        load_metric_weights(metric, file)
        if file.backbone_weights and file.backbone_weights != fx.weights_source:
            warnings.warn(f"{file.path} was exported from backbone weights {file.backbone_weights!r}, this "
                          f"metric's backbone has {fx.weights_source!r}: its distances can differ",
                          stacklevel=3)
    return metric


class MetricLoss(nn.Module):
    """A metric used as a loss: frozen (no parameter requires grad), always in eval mode (BatchNorm and dropout
    fixed even when a parent module is put in train mode), output reduced over the batch.

    ``loss(distorted, reference)`` with ``(B, 3, H, W)`` inputs in [0, 1] returns a scalar (``reduction="mean"``
    or ``"sum"``) or the ``(B,)`` values (``"none"``); gradients flow to ``distorted`` only.
    """

    def __init__(self, metric: nn.Module, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.metric = metric.requires_grad_(False).eval()
        self.reduction = reduction
        self.lower_better = getattr(metric, "lower_better", True)
        self.score_range = getattr(metric, "score_range", None)

    def train(self, mode: bool = True) -> "MetricLoss":
        super().train(False)  # the metric's statistics never change with its user's mode
        return self

    def forward(self, distorted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Raises :class:`~asymlib.errors.InputError` for inputs outside the metric input contract
        (:mod:`asymlib.inputcheck`), checked by the metric itself or, if it does not, here."""
        if not getattr(self.metric, "validates_inputs", False):
            from ..inputcheck import check_image_pair, module_device

            check_image_pair(distorted, reference, what=f"{type(self.metric).__name__} loss",
                             min_size=getattr(self.metric, "min_size", None), device=module_device(self.metric))
        d = self.metric(distorted, reference)
        return d if self.reduction == "none" else (d.mean() if self.reduction == "mean" else d.sum())


def create_metric(name: str = "dists", *, as_loss: bool = False, device: str | torch.device | None = None,
                  reduction: str = "mean", **kwargs) -> nn.Module:
    """Build a metric by name (``list_metrics()``, case-insensitive); called as ``metric(distorted, reference)``.

    Args:
        name: ``"dists"`` (also ``"DISTS"``).
        as_loss: return a :class:`MetricLoss`: frozen, in eval mode, reduced to a scalar (``reduction``).
        device: where to put the metric (default: CPU).
        kwargs: the metric's arguments, e.g. ``backbone="resnet50", weights="imagenet"``.

    The module has ``lower_better`` (True for distances) and ``score_range``.
    Example: ``create_metric("DISTS", backbone="vgg16", weights="imagenet", as_loss=True, device="cuda")``.
    """
    key = str(name).lower()
    if key not in _METRICS:
        raise UnknownNameError(f"unknown metric {name!r}; available: {list_metrics()}")
    metric = _METRICS[key](**kwargs)
    if device is not None:
        metric = metric.to(device)
    return MetricLoss(metric, reduction) if as_loss else metric


@dataclass(frozen=True)
class MetricPreset:
    """One perceptual objective of the paper (Sec. 3.1).

    ``weights`` is the backbone's weight source in the paper profile; ``trainable_weights=False`` marks the
    metrics whose alpha/beta stay at their random initialization (VGG-16-R).
    """

    key: str
    display: str
    backbone: str
    weights: str = "imagenet"
    trainable_weights: bool = True


PAPER_METRICS: dict[str, MetricPreset] = {
    p.key: p
    for p in (
        MetricPreset("vgg16_r", "VGG-16-R", "vgg16", weights="random", trainable_weights=False),
        MetricPreset("vgg16", "VGG-16", "vgg16"),
        MetricPreset("resnet50", "ResNet-50", "resnet50"),
        MetricPreset("convnext_tiny", "ConvNeXt", "convnext_tiny"),
        MetricPreset("clip_vit_b16", "CLIP-ViT", "clip_vit_b16"),
        MetricPreset("swin_t", "Swin-T", "swin_t"),
    )
}


def get_metric_preset(key: str) -> MetricPreset:
    if key in PAPER_METRICS:
        return PAPER_METRICS[key]
    get_backbone_spec(key)  # raises UnknownNameError for names that are neither a preset nor a backbone
    return MetricPreset(key, get_backbone_spec(key).display, key)


def metric_from_preset(key: str, weights: str | None = None, seed: int = 0, **kwargs) -> DISTSMetric:
    """Build a preset's metric; ``weights`` overrides the backbone weights (e.g. ``"random"`` in smoke)."""
    p = get_metric_preset(key)
    w = p.weights if weights is None or p.weights == "random" else weights
    return create_metric("dists", backbone=p.backbone, weights=w, seed=seed,
                         trainable_weights=p.trainable_weights, **kwargs)
