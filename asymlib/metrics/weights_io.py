"""Read and write the alpha/beta weights of a DISTS-style metric.

Files read by :func:`read_metric_weights` (and so by ``create_metric("dists", metric_weights=path)``):

- asymlib export (``.safetensors``, written by :func:`export_metric`): tensors ``alpha`` and ``beta`` of shape
  ``(1, C, 1, 1)``; string metadata ``format`` (``asymlib.metric_weights.v1``), ``metric``, ``backbone``,
  ``backbone_weights`` (the backbone's ``weights_source``), ``channels`` (JSON list), ``asymlib_version`` and
  ``provenance`` (JSON object).
- torch file (any other suffix, read with ``torch.load(weights_only=True)``): a dict holding tensors ``alpha``
  and ``beta`` of shape ``(1, C, 1, 1)``. This is the official DISTS ``weights.pt`` (DISTS repository and PyPI
  ``DISTS-pytorch``: ``C = 1475 = 3 + 64 + 128 + 256 + 512 + 512``, the raw input then VGG-16 relu1_2..relu5_3),
  pyiqa's DISTS file or state dict (its other keys are ignored), and the ``metric_weights.pt`` of asymlib's
  ``metric_train`` runs (which also name their ``backbone`` and ``weights_source``).

The stored values are the raw, unnormalized weights: DISTS, pyiqa and :class:`~asymlib.metrics.DISTSMetric`
all divide alpha and beta by one shared sum ``alpha.sum() + beta.sum()`` at forward time, so loading the
official file gives the official distances.
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from ..atomic import atomic_path, atomic_torch_save
from ..torchfile import read_torch_file
from ..errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from .dists import DISTSMetric

__all__ = ["METRIC_EXPORT_FORMAT", "DISTS_VGG16_CHANNELS", "MetricWeights", "read_metric_weights",
           "load_metric_weights", "export_metric", "is_metric_export", "resolve_build_args"]

METRIC_EXPORT_FORMAT = "asymlib.metric_weights.v1"
DISTS_VGG16_CHANNELS = (3, 64, 128, 256, 512, 512)  # raw input, VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_NESTED_KEYS = ("state_dict", "params", "params_ema")
_RANDOM_SOURCE = re.compile(r"^random\(seed=(-?\d+)\)$")


@dataclass(frozen=True)
class MetricWeights:
    """The content of a metric weights file.

    Attributes:
        alpha, beta: raw (unnormalized) weights, float32, shape ``(1, C, 1, 1)``.
        path: the file they were read from.
        backbone: backbone name recorded in the file; None for files that do not say (official DISTS and
            pyiqa files, which are VGG-16 ones).
        backbone_weights: the backbone's ``weights_source`` recorded at export (``"random(seed=0)"``,
            ``"imagenet(...)"``, ``"file(<path>)"``); None when not recorded.
        metadata: every other recorded field (``provenance`` as a dict, ``asymlib_version``, ...).
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    path: Path
    backbone: str | None = None
    backbone_weights: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return int(self.alpha.shape[1])


def is_metric_export(path: Any) -> bool:
    """Whether ``path`` is an existing asymlib metric export (a ``.safetensors`` file with our format tag).

    Only the safetensors header is read; anything else (``"imagenet"``, a backbone checkpoint) gives False.
    """
    if not isinstance(path, (str, Path)) or str(path) in ("random", "imagenet"):
        return False
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:  # not a safetensors file: the backbone loader reports it
        return False
    return meta.get("format") == METRIC_EXPORT_FORMAT


def _check_pair(state: Mapping[str, Any], p: Path) -> tuple[torch.Tensor, torch.Tensor]:
    found = sorted(str(k) for k in state)
    for key in ("alpha", "beta"):
        if key not in state:
            shown = found[:12] + (["..."] if len(found) > 12 else [])
            raise CheckpointError(
                f"{p}: no {key!r} tensor; expected tensors 'alpha' and 'beta' of shape (1, C, 1, 1) (official "
                f"DISTS weights.pt, pyiqa's DISTS file or an asymlib export), found keys {shown}"
            )
        if not isinstance(state[key], torch.Tensor):
            raise CheckpointError(f"{p}: {key!r} is a {type(state[key]).__name__}, expected a tensor of shape "
                                  f"(1, C, 1, 1)")
    alpha, beta = state["alpha"], state["beta"]
    for key, t in (("alpha", alpha), ("beta", beta)):
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[2:] != (1, 1):
            raise CheckpointError(f"{p}: {key} has shape {tuple(t.shape)}, expected (1, C, 1, 1)")
        if not t.is_floating_point() or not torch.isfinite(t).all():
            raise CheckpointError(f"{p}: {key} must hold finite floating-point values (dtype {t.dtype})")
    if alpha.shape != beta.shape:
        raise CheckpointError(f"{p}: alpha has shape {tuple(alpha.shape)} but beta {tuple(beta.shape)}")
    total = float(alpha.double().sum() + beta.double().sum())
    if not total > 0:
        raise CheckpointError(f"{p}: alpha.sum() + beta.sum() = {total:g}; DISTS divides by it, it must be > 0")
    return alpha.detach().to(torch.float32).cpu().clone(), beta.detach().to(torch.float32).cpu().clone()


def _read_safetensors(p: Path) -> MetricWeights:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise CheckpointError(f"cannot read metric weights {p}: {type(exc).__name__}: {exc}") from exc
    alpha, beta = _check_pair(state, p)
    extra: dict[str, Any] = {}
    for key, value in meta.items():
        if key in ("provenance", "channels"):
            try:
                extra[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{p}: metadata field {key!r} is not valid JSON: {value[:80]!r}") from exc
        elif key not in ("backbone", "backbone_weights"):
            extra[key] = value
    channels = extra.get("channels")
    if channels is not None and sum(int(c) for c in channels) != alpha.shape[1]:
        raise CheckpointError(f"{p}: metadata channels {channels} sum to {sum(channels)}, but alpha has "
                              f"{alpha.shape[1]} channels")
    return MetricWeights(alpha, beta, p, meta.get("backbone"), meta.get("backbone_weights"), extra)


def _read_torch(p: Path) -> MetricWeights:
    obj: Any = read_torch_file(p, what="metric weights")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}; expected a dict with tensors 'alpha' and 'beta'")
    if "alpha" not in obj:  # a checkpoint that nests its state dict (e.g. BasicSR/pyiqa training files)
        obj = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict) and "alpha" in obj[k]), obj)
    alpha, beta = _check_pair(obj, p)
    backbone = obj.get("backbone") if isinstance(obj.get("backbone"), str) else None
    source = obj.get("weights_source") if isinstance(obj.get("weights_source"), str) else None
    extra = {k: v for k, v in obj.items() if k not in ("alpha", "beta", "backbone", "weights_source")
             and isinstance(v, (str, int, float, bool, list))}
    return MetricWeights(alpha, beta, p, backbone, source, extra)


def read_metric_weights(path: str | Path) -> MetricWeights:
    """Read alpha/beta from an asymlib export (``.safetensors``) or a torch file (official DISTS/pyiqa layout).

    Raises:
        CheckpointError: missing or unreadable file, no ``alpha``/``beta`` tensors, shapes other than
            ``(1, C, 1, 1)``, non-finite values, or ``alpha.sum() + beta.sum() <= 0``; the message names the file
            and what it found.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"metric weights file not found: {p}")
    return _read_safetensors(p) if p.suffix == ".safetensors" else _read_torch(p)


def load_metric_weights(metric: "DISTSMetric", source: str | Path | MetricWeights) -> MetricWeights:
    """Copy a file's alpha/beta into ``metric`` (raw values: the metric normalizes them at forward time).

    Raises:
        CheckpointError: the file is unreadable, records another backbone, or its ``C`` differs from the
            metric's ``sum(metric.chns)``.
    """
    w = source if isinstance(source, MetricWeights) else read_metric_weights(source)
    name = metric.backbone.name
    if w.backbone is not None and w.backbone != name:
        raise CheckpointError(f"{w.path} holds the weights of a metric over backbone {w.backbone!r}, "
                              f"not {name!r}")
    need = tuple(metric.alpha.shape)
    if tuple(w.alpha.shape) != need:
        chans = "+".join(str(c) for c in metric.chns)
        raise CheckpointError(
            f"{w.path}: alpha/beta have shape {tuple(w.alpha.shape)}; a metric over {name!r} needs {need} "
            f"(channels {chans}: the raw input then the backbone's stages)"
        )
    with torch.no_grad():
        metric.alpha.copy_(w.alpha)
        metric.beta.copy_(w.beta)
    return w


def export_metric(metric: "DISTSMetric", path: str | Path, provenance: Mapping[str, Any] | None = None,
                  layout: Literal["asymlib", "dists"] = "asymlib") -> Path:
    """Write a metric's raw alpha/beta (float32, ``(1, C, 1, 1)``) to one file, atomically.

    Args:
        metric: a :class:`~asymlib.metrics.DISTSMetric` (or a ``MetricLoss`` wrapping one).
        path: the file to write.
        provenance: JSON-serializable record of how the weights were obtained (stored in the asymlib layout).
        layout: ``"asymlib"``: a ``.safetensors`` file with tensors ``alpha``, ``beta`` and metadata (backbone
            name and weights source, channels, asymlib version, provenance), read back by
            ``create_metric("dists", metric_weights=path)`` (or ``weights=path``), which rebuilds the recorded
            backbone. ``"dists"``: the official DISTS / pyiqa layout, a torch file holding exactly ``alpha`` and
            ``beta`` of shape ``(1, 1475, 1, 1)``, only for the VGG-16 metric; it is what DISTS-pytorch's
            ``weights.pt`` holds and what pyiqa's ``DISTS(pretrained_model_path=path)`` loads. It has no room
            for metadata: ``provenance`` is dropped with a warning.

    Raises:
        ConfigError: unknown layout, a ``.safetensors`` suffix missing for the asymlib layout, or the
            ``"dists"`` layout for a metric that is not DISTS's VGG-16 one; provenance not JSON-serializable.
    """
    metric = getattr(metric, "metric", metric)  # a MetricLoss holds the metric
    p = Path(path)
    alpha = metric.alpha.detach().to(torch.float32).cpu().contiguous().clone()
    beta = metric.beta.detach().to(torch.float32).cpu().contiguous().clone()
    name = metric.backbone.name
    if layout == "dists":
        if name != "vgg16" or tuple(metric.chns) != DISTS_VGG16_CHANNELS:
            raise ConfigError(f"layout='dists' (official DISTS/pyiqa file) needs the VGG-16 metric with channels "
                              f"{list(DISTS_VGG16_CHANNELS)}; this metric is over {name!r} with {metric.chns}")
        if provenance:
            warnings.warn(f"{p}: the official DISTS layout holds only alpha and beta; provenance is not stored "
                          f"(use layout='asymlib' to keep it)", stacklevel=2)
        return atomic_torch_save({"alpha": alpha, "beta": beta}, p)
    if layout != "asymlib":
        raise ConfigError(f"unknown layout {layout!r}: use 'asymlib' (safetensors) or 'dists' (official DISTS file)")
    if p.suffix != ".safetensors":
        raise ConfigError(f"{p}: an asymlib metric export must end in .safetensors (layout='dists' writes the "
                          f"official torch file)")
    try:
        prov = json.dumps(dict(provenance or {}), sort_keys=True)
    except TypeError as exc:
        raise ConfigError(f"provenance for {p} is not JSON-serializable: {exc}") from exc
    import asymlib
    from safetensors.torch import save_file

    meta = {
        "format": METRIC_EXPORT_FORMAT,
        "metric": "dists",
        "backbone": name,
        "backbone_weights": str(metric.backbone.weights_source),
        "channels": json.dumps([int(c) for c in metric.chns]),
        "asymlib_version": str(asymlib.__version__),
        "provenance": prov,
    }
    with atomic_path(p) as tmp:
        save_file({"alpha": alpha, "beta": beta}, str(tmp), metadata=meta)
    return p


def _weights_from_source(source: str, w: MetricWeights) -> tuple[str | Path, int | None]:
    """Backbone ``weights`` (and seed) that reproduce a recorded ``weights_source``."""
    m = _RANDOM_SOURCE.match(source)
    if m:
        return "random", int(m.group(1))
    if source.startswith("imagenet"):
        return "imagenet", None
    if source.startswith("file(") and source.endswith(")"):
        backbone_file = Path(source[len("file("):-1])
        if backbone_file.is_file():
            return backbone_file, None
        raise ConfigError(f"{w.path} was exported with backbone weights from {backbone_file}, which does not "
                          f"exist here; pass weights='imagenet', 'random' or that checkpoint's path")
    raise ConfigError(f"{w.path}: unrecognized backbone weights source {source!r}; pass weights= explicitly")


def resolve_build_args(backbone: str | None, weights: str | Path | None, seed: int | None,
                       w: MetricWeights | None) -> tuple[str, str | Path, int]:
    """``(backbone, weights, seed)`` for building a metric that will receive the weights file ``w``.

    Arguments the caller gave win; otherwise the file's recorded backbone and weights source are used
    (defaults without a file, or for files that record nothing: ``"vgg16"``, ``"imagenet"``, seed 0).

    Raises:
        ConfigError: an explicit ``backbone`` differs from the file's (the message names both and the file).
    """
    if w is not None and w.backbone is not None:
        if backbone is not None and backbone != w.backbone:
            raise ConfigError(f"backbone={backbone!r} was requested, but {w.path} holds weights for backbone "
                              f"{w.backbone!r}; omit backbone= to use the file's")
        backbone = w.backbone
    if weights is None and w is not None and w.backbone_weights:
        weights, recorded_seed = _weights_from_source(w.backbone_weights, w)
        seed = recorded_seed if seed is None and recorded_seed is not None else seed
    return backbone or "vgg16", "imagenet" if weights is None else weights, 0 if seed is None else seed
