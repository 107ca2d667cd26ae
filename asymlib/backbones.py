"""Feature extractors over timm backbones, with explicit weight sources.

``create_feature_extractor(name, weights=...)`` returns a :class:`FeatureExtractor` whose forward maps an
RGB image batch ``(B, 3, H, W)`` in ``[0, 1]`` to a list of feature maps ``(B, C_i, H_i, W_i)`` (NCHW, also
for Swin and ViTs, whose tokens are reshaped into spatial maps). The backbone's own mean/std normalization
is applied inside; the raw input is *not* part of the list (DISTS-style metrics add it as stage 0).

Weights (``weights=``):

- ``"random"``: seeded initialization (``seed=``), reproducible across runs.
- ``"imagenet"``: timm's pretrained tag, read from the local Hugging Face cache (``HF_HUB_CACHE`` or
  ``$HF_HOME/hub``); for VGG-16 also torchvision's file in ``$TORCH_HOME/hub/checkpoints``. Nothing is
  downloaded unless ``allow_download=True`` (or ``ASYMLIB_ALLOW_DOWNLOAD=1``); weights that cannot be had
  raise :class:`~asymlib.errors.WeightsUnavailableError`, never a silent random fallback.
- a path to a local checkpoint (``.pth``/``.pt``/``.safetensors``): a timm/torchvision state dict of the
  full model, or a backbone exported by asymlib (e.g. a trained discriminator's backbone).

VGG-16 is built as in DISTS: ``features`` up to ``relu5_3`` with every max-pool replaced by L2-pooling
(an injective, anti-aliased downsampling), stages ``relu1_2 .. relu5_3``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError, ConfigError, InputSizeError, UnknownNameError, WeightsUnavailableError
from .torchfile import read_torch_file

__all__ = [
    "BackboneSpec",
    "FeatureExtractor",
    "L2Pool2d",
    "stage_index",
    "create_feature_extractor",
    "imagenet_weights_location",
    "list_backbones",
    "get_backbone_spec",
    "register_backbone",
    "load_checkpoint_state_dict",
    "BACKBONE_EXPORT_FORMAT",
    "keys_signature",
]

BACKBONE_EXPORT_FORMAT = "asymlib.backbone.v1"


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: asymlib name (``"vgg16"``, ``"resnet50"``...).
        timm_name: timm model name with pretrained tag (``"vgg16.tv_in1k"``).
        display: name used in tables and figures (``"VGG-16"``).
        kind: ``"vgg_l2pool"`` (DISTS VGG) or ``"timm"`` (``forward_intermediates`` of any timm model).
        indices: which intermediates to return (int = last n, sequence = block indices; None = all stages).
        timm_kwargs: extra ``timm.create_model`` arguments (e.g. dynamic image size for ViTs).
        min_size: smallest input side accepted, in pixels.
        input_multiple: inputs whose sides are not multiples of this are zero-padded at the bottom/right (after
            normalization) before the model, as timm's ``dynamic_img_pad`` does for ViTs; 1 = as given.
    """

    name: str
    timm_name: str
    display: str
    kind: str = "timm"
    indices: int | tuple[int, ...] | None = None
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    min_size: int = 64
    input_multiple: int = 1


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    _BACKBONES[spec.name] = spec
    return spec


# Any input size: position embeddings interpolated, and images whose sides are not multiples of the patch size
# padded (the paper's benchmarks hold full images of sizes such as 500x333).
_VIT_KW = {"dynamic_img_size": True, "dynamic_img_pad": True}
for _spec in (
    BackboneSpec("vgg16", "vgg16.tv_in1k", "VGG-16", kind="vgg_l2pool"),
    BackboneSpec("resnet50", "resnet50.tv_in1k", "ResNet-50", indices=5),
    BackboneSpec("convnext_tiny", "convnext_tiny.fb_in1k", "ConvNeXt", indices=4),
    BackboneSpec("swin_t", "swin_tiny_patch4_window7_224.ms_in1k", "Swin-T", indices=4,
                 timm_kwargs={"strict_img_size": False}, input_multiple=4),  # Swin has no dynamic_img_pad
    BackboneSpec("clip_vit_b16", "vit_base_patch16_clip_224.openai", "CLIP-ViT", indices=(2, 5, 8, 11),
                 timm_kwargs=_VIT_KW),
    BackboneSpec("dinov2_vits14", "vit_small_patch14_dinov2.lvd142m", "DINOv2 ViT-S/14", indices=(2, 5, 8, 11),
                 timm_kwargs=_VIT_KW),
    BackboneSpec("dinov2_vitb14", "vit_base_patch14_dinov2.lvd142m", "DINOv2 ViT-B/14", indices=(2, 5, 8, 11),
                 timm_kwargs=_VIT_KW),
):
    register_backbone(_spec)


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names with a preset, optionally filtered by a wildcard ``pattern`` as in ``timm.list_models``
    (``"*vit*"``, ``"dinov2_*"``; case-insensitive). Any other timm model name is accepted too."""
    import fnmatch

    names = sorted(_BACKBONES)
    return [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())] if pattern else names


def _is_vit_like(timm_name: str) -> bool:
    base = timm_name.split(".")[0]
    return base.startswith(("vit_", "deit", "eva", "beit"))


def get_backbone_spec(name: str) -> BackboneSpec:
    """Spec for a registered name, or a generic spec for any timm model name.

    Raises:
        UnknownNameError: neither a registered backbone nor a timm model.
    """
    if name in _BACKBONES:
        return _BACKBONES[name]
    import timm

    base = name.split(".")[0]
    if not timm.is_model(base):
        raise UnknownNameError(
            f"unknown backbone {name!r}: not one of {list_backbones()} and not a timm model name "
            f"(see timm.list_models())"
        )
    kwargs: dict[str, Any] = {}
    indices: int | tuple[int, ...] | None = None
    if _is_vit_like(name):
        kwargs = {"dynamic_img_size": True, "dynamic_img_pad": True}
        indices = 4
    elif "swin" in base:
        kwargs = {"strict_img_size": False}
    return BackboneSpec(name, name, name, indices=indices, timm_kwargs=kwargs)


def stage_index(backbone: "FeatureExtractor", stage: int, name: str | None = None) -> int:
    """Non-negative index of feature map ``stage`` (negative counts from the end) of ``backbone``.

    Raises ConfigError naming the backbone when ``stage`` is out of range.
    """
    n = len(backbone.channels)
    if not -n <= stage < n:
        raise ConfigError(f"stage {stage} out of range for backbone {name or backbone.name!r} with {n} feature maps")
    return stage % n


class _L2PoolFunction(torch.autograd.Function):
    """``sqrt(conv(x^2, g) + eps)`` with a hand-written backward.

    The chain rule collapses to ``dx = conv_input_grad(dout / out) * x`` (the factor 2 of ``d x^2`` cancels
    the 1/2 of ``d sqrt``): one depthwise transposed convolution and one in-place product, where autograd
    would add several full-resolution temporaries. Only ``x`` and the (smaller) output are saved.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, filt: torch.Tensor, stride: int, eps: float) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            w = filt.to(x.dtype)
            out = F.conv2d(x * x, w, stride=stride, padding=1, groups=x.shape[1])
            out = out.add_(eps).sqrt_()
        ctx.save_for_backward(x, w, out)
        ctx.stride = stride
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        x, w, out = ctx.saved_tensors
        g = grad_out.to(out.dtype) / out
        gx = torch.ops.aten.convolution_backward(
            g, x, w, None, [ctx.stride, ctx.stride], [1, 1], [1, 1], False, [0, 0], x.shape[1],
            [True, False, False],
        )[0]
        return gx.mul_(x), None, None, None


class L2Pool2d(nn.Module):
    """DISTS L2-pooling: ``sqrt(conv(x^2, g) + 1e-12)`` with a normalized 3x3 Hanning window.

    ``g`` is the outer product of ``[0.5, 1, 0.5]`` normalized to sum 1, applied depthwise with stride 2 and
    padding 1. Shapes: ``(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))``; the output keeps the input's memory
    format (channels-last input runs the fast NHWC depthwise kernels).
    """

    eps = 1e-12

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        g = a[:, None] * a[None, :]
        g = (g / g.sum()).float()
        self.channels = channels
        self.stride = stride
        # Not persistent: the window is a constant, so checkpoints keep only the conv weights.
        self.register_buffer("filter", g[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _L2PoolFunction.apply(x, self.filter, self.stride, self.eps)


class _VGGL2PoolBody(nn.Module):
    """VGG-16 ``features[:30]`` with max-pools (indices 4, 9, 16, 23) replaced by L2-pooling."""

    taps = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3

    def __init__(self, vgg_features: nn.Sequential):
        super().__init__()
        layers: list[nn.Module] = []
        for i, layer in enumerate(list(vgg_features)[:30]):
            if isinstance(layer, nn.MaxPool2d):
                prev_convs = [m for m in layers if isinstance(m, nn.Conv2d)]
                layer = L2Pool2d(prev_convs[-1].out_channels)
            layers.append(layer)
        self.features = nn.Sequential(*layers)
        self.channels = [64, 128, 256, 512, 512]
        self.reductions = [1, 2, 4, 8, 16]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs


class _TimmIntermediatesBody(nn.Module):
    """Any timm model through ``forward_intermediates`` (NCHW maps; ViT tokens reshaped to a grid)."""

    def __init__(self, model: nn.Module, indices: int | tuple[int, ...] | None, input_multiple: int = 1):
        super().__init__()
        self.input_multiple = input_multiple
        n_stages = len(getattr(model, "feature_info", [])) or None
        if indices is None:
            indices = n_stages
        if indices is None:
            raise UnknownNameError(f"timm model {type(model).__name__} exposes no feature_info; pass indices")
        model.prune_intermediate_layers(indices, prune_norm=False, prune_head=True)
        self.model = model
        self.indices = indices
        with torch.no_grad():
            was_training = model.training
            model.eval()
            probe = self.forward(torch.zeros(1, 3, 224, 224))
            model.train(was_training)
        self.channels = [int(p.shape[1]) for p in probe]
        self.reductions = [round(224 / p.shape[-1]) for p in probe]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        m = self.input_multiple
        if m > 1 and (x.shape[-2] % m or x.shape[-1] % m):
            x = F.pad(x, (0, -x.shape[-1] % m, 0, -x.shape[-2] % m))
        return list(
            self.model.forward_intermediates(x, indices=self.indices, intermediates_only=True, output_fmt="NCHW")
        )


class FeatureExtractor(nn.Module):
    """Backbone feature extractor.

    forward: ``(B, 3, H, W)`` float in ``[0, 1]`` (``H, W >= min_size``) -> list of ``(B, C_i, H_i, W_i)``.

    Attributes:
        name, display, timm_name: identifiers of the backbone.
        channels: ``C_i`` of each returned map; reductions: approximate stride of each map.
        min_size: smallest accepted input side.
        weights_source: ``"random(seed=0)"``, ``"imagenet(<repo>@<revision>/<file>)"`` (or
            ``imagenet(torchvision/<file>)``) or ``"file(<path>)"``.
    """

    def __init__(self, spec: BackboneSpec, body: nn.Module, mean: Sequence[float], std: Sequence[float],
                 weights_source: str):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.display = spec.display
        self.timm_name = spec.timm_name
        self.min_size = spec.min_size
        self.body = body
        self.channels: list[int] = list(body.channels)
        self.reductions: list[int] = list(body.reductions)
        self.weights_source = weights_source
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputSizeError(f"{self.name}: expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise InputSizeError(
                f"{self.name}: input {x.shape[-2]}x{x.shape[-1]} is smaller than the {self.min_size}x{self.min_size} "
                f"pixels this backbone needs; crop or resize larger images"
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.body(h)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of the backbone body (keys as in the timm/torchvision model)."""
        return {k: v.detach().clone() for k, v in self.body.state_dict().items()}

    def load_backbone_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str = "state_dict") -> None:
        """Load body weights; every body key must be present with the right shape (extra keys are ignored).

        Raises:
            CheckpointError: naming missing keys or shape mismatches.
        """
        _load_into(self.body, state_dict, self.name, source)

    def export_metadata(self) -> dict[str, Any]:
        return {
            "format": BACKBONE_EXPORT_FORMAT,
            "backbone": self.name,
            "timm_name": self.timm_name,
            "channels": list(self.channels),
            "keys_sha": keys_signature(self.body.state_dict()),
        }


def keys_signature(sd: Mapping[str, torch.Tensor]) -> str:
    """Architecture fingerprint of a state dict: sha256 of its sorted ``key:shape`` lines (16 hex digits)."""
    import hashlib

    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _align_prefix(own_keys: Sequence[str], state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """Full-model checkpoints lack the ``model.`` prefix that wraps timm bodies (and vice versa)."""
    candidates = [dict(state_dict), {f"model.{k}": v for k, v in state_dict.items()},
                  {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}]
    return max(candidates, key=lambda sd: sum(k in sd for k in own_keys))


def _load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str, source: str) -> None:
    own = module.state_dict()
    state_dict = _align_prefix(list(own), state_dict)
    missing = [k for k in own if k not in state_dict]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if wrong:
            detail.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:2]})")
        raise CheckpointError(f"{source} does not match backbone {name!r}: " + "; ".join(detail))
    module.load_state_dict({k: state_dict[k] for k in own}, strict=True)


def load_checkpoint_state_dict(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (``torch.load(weights_only=True)`` or safetensors).

    Raises:
        CheckpointError: missing, unreadable or not a state dict; the message names the file.
    """
    p = Path(path)
    if p.suffix != ".safetensors":
        obj: Any = read_torch_file(p, "checkpoint")
    elif not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    else:
        try:
            from safetensors.torch import load_file

            obj = load_file(str(p))
        except Exception as exc:  # truncated or foreign file
            raise CheckpointError(f"checkpoint {p} is corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, not a state dict")
    return obj


def _unwrap_state_dict(obj: Mapping[str, Any], spec: BackboneSpec, path: Path) -> dict[str, torch.Tensor]:
    if obj.get("format") == BACKBONE_EXPORT_FORMAT:
        if obj.get("backbone") != spec.name:
            raise CheckpointError(
                f"{path} holds a {obj.get('backbone')!r} backbone, but {spec.name!r} was requested"
            )
        return dict(obj["state_dict"])
    for key in ("state_dict", "model", "params_ema", "params"):
        if key in obj and isinstance(obj[key], dict):
            return dict(obj[key])
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def _torch_hub_dir() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "torch")
    return Path(home) / "hub" / "checkpoints"


# torchvision files that hold the same weights as a timm tag (pyiqa and torchvision users have these cached).
_TORCHVISION_FILES = {"vgg16.tv_in1k": "vgg16-397923af.pth", "resnet50.tv_in1k": "resnet50-0676ba61.pth"}


def _find_cached_imagenet(timm_name: str) -> Path | None:
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        for fname in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(hub_id, fname, cache_dir=_hf_cache_dir())
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
    tv = _TORCHVISION_FILES.get(timm_name)
    if tv and (_torch_hub_dir() / tv).is_file():
        return _torch_hub_dir() / tv
    return None


def _weights_origin(path: Path) -> str:
    """``<org>/<repo>@<revision>/<file>`` for a Hugging Face cache file, ``torchvision/<file>`` for a torchvision
    hub checkpoint, else the file name: which weights, at which revision, a result was produced with."""
    parts = path.parts
    if len(parts) >= 4 and parts[-3] == "snapshots" and parts[-4].startswith("models--"):
        repo = parts[-4][len("models--"):].replace("--", "/")
        return f"{repo}@{parts[-2]}/{parts[-1]}"
    if path.parent == _torch_hub_dir():
        return f"torchvision/{path.name}"
    return path.name


def imagenet_weights_location(name: str) -> tuple[Path | None, str]:
    """``(cached file or None, where it is looked for)`` of a backbone's ImageNet weights; nothing is built
    or downloaded."""
    import timm

    spec = get_backbone_spec(name)
    cfg = timm.models.get_pretrained_cfg(spec.timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    places = []
    if hub_id:
        places.append(f"{_hf_cache_dir()}/models--{hub_id.replace('/', '--')} (Hugging Face hub {hub_id})")
    tv = _TORCHVISION_FILES.get(spec.timm_name)
    if tv:
        places.append(str(_torch_hub_dir() / tv))
    return _find_cached_imagenet(spec.timm_name), " or ".join(places) or f"timm has no weights for {spec.timm_name}"


def _download_imagenet(timm_name: str) -> Path:
    import timm
    from huggingface_hub import hf_hub_download

    cfg = timm.models.get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        raise WeightsUnavailableError(f"timm has no hub weights for {timm_name!r}")
    return Path(hf_hub_download(hub_id, "model.safetensors", cache_dir=_hf_cache_dir()))


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _vgg16_features() -> nn.Sequential:
    """VGG-16 ``features`` (torchvision/timm layout and init); built directly because the full timm model
    also allocates a 100M-parameter classifier that a feature extractor never uses."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(cin, int(v), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]  # as torchvision; saves a full-size map per layer
            cin = int(v)
    return nn.Sequential(*layers)


def _build_body(spec: BackboneSpec) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    if spec.kind == "vgg_l2pool":
        return _VGGL2PoolBody(_vgg16_features()), _IMAGENET_MEAN, _IMAGENET_STD
    import timm

    model = timm.create_model(spec.timm_name, pretrained=False, **dict(spec.timm_kwargs))
    cfg = model.pretrained_cfg
    mean, std = tuple(cfg.get("mean", _IMAGENET_MEAN)), tuple(cfg.get("std", _IMAGENET_STD))
    return _TimmIntermediatesBody(model, spec.indices, spec.input_multiple), mean, std


def create_feature_extractor(
    name: str,
    weights: str | Path = "random",
    seed: int = 0,
    allow_download: bool | None = None,
    trainable: bool = False,
) -> FeatureExtractor:
    """Build a feature extractor by backbone name.

    Args:
        name: registered name (:func:`list_backbones`) or any timm model name.
        weights: ``"random"``, ``"imagenet"`` or a checkpoint path.
        seed: seed of the random initialization (also used before loading weights, so unused heads are
            deterministic).
        allow_download: let ``"imagenet"`` download from the hub when not cached (default: env
            ``ASYMLIB_ALLOW_DOWNLOAD=1``, else False).
        trainable: leave parameters trainable (discriminators); otherwise frozen (metrics).

    Raises:
        UnknownNameError, WeightsUnavailableError, CheckpointError.
    """
    spec = get_backbone_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body, mean, std = _build_body(spec)
    weights_str = str(weights)
    if weights_str == "random":
        source = f"random(seed={seed})"
    elif weights_str == "imagenet":
        if allow_download is None:
            allow_download = os.environ.get("ASYMLIB_ALLOW_DOWNLOAD", "") == "1"
        path = _find_cached_imagenet(spec.timm_name)
        if path is None and allow_download:
            path = _download_imagenet(spec.timm_name)
        if path is None:
            raise WeightsUnavailableError(
                f"ImageNet weights for backbone {name!r} (timm {spec.timm_name!r}) are not in the local cache "
                f"({_hf_cache_dir()}) and downloading is off. Fetch them once on a connected machine "
                f"(timm.create_model({spec.timm_name!r}, pretrained=True)), set ASYMLIB_ALLOW_DOWNLOAD=1, "
                f"or use weights='random' / a checkpoint path."
            )
        _load_into(body, _unwrap_state_dict(load_checkpoint_state_dict(path), spec, path), name, str(path))
        source = f"imagenet({_weights_origin(path)})"
    else:
        path = Path(weights_str)
        if not path.exists():
            raise CheckpointError(
                f"weights {weights_str!r} for backbone {name!r}: not 'random', not 'imagenet' and no such file"
            )
        _load_into(body, _unwrap_state_dict(load_checkpoint_state_dict(path), spec, path), name, str(path))
        source = f"file({path})"
    fx = FeatureExtractor(spec, body, mean, std, source)
    if not trainable:
        fx.requires_grad_(False)
        fx.eval()
    return fx


BackboneFactory = Callable[..., FeatureExtractor]
