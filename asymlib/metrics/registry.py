"""Metric registry: ``create_metric(name, **kwargs)`` and the paper's named metric presets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..backbones import create_feature_extractor, get_backbone_spec
from ..errors import UnknownNameError
from .dists import DISTSMetric

__all__ = ["create_metric", "list_metrics", "register_metric", "MetricPreset", "PAPER_METRICS",
           "get_metric_preset", "metric_from_preset"]

_METRICS: dict[str, Callable[..., nn.Module]] = {}


def register_metric(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _METRICS[name] = fn
        return fn

    return deco


def list_metrics() -> list[str]:
    return sorted(_METRICS)


@register_metric("dists")
def _build_dists(backbone: str = "vgg16", weights: str | Path = "imagenet", seed: int = 0,
                 trainable_weights: bool = True, metric_weights: str | Path | None = None,
                 allow_download: bool | None = None) -> DISTSMetric:
    """DISTS-style metric over ``backbone``; ``metric_weights`` loads trained alpha/beta from a file."""
    fx = create_feature_extractor(backbone, weights=weights, seed=seed, allow_download=allow_download)
    metric = DISTSMetric(fx, seed=seed, trainable_weights=trainable_weights)
    if metric_weights is not None:
        metric.load_weights_file(metric_weights)
    return metric


def create_metric(name: str = "dists", **kwargs) -> nn.Module:
    """Build a metric by name (``list_metrics()``); returns a module called as ``metric(distorted, reference)``.

    Example: ``create_metric("dists", backbone="resnet50", weights="imagenet")``.
    """
    if name not in _METRICS:
        raise UnknownNameError(f"unknown metric {name!r}; available: {list_metrics()}")
    return _METRICS[name](**kwargs)


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
