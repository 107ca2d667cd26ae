"""No-reference IQA: a backbone with a regression head, trained on (image, score) data (paper Appendix C).

Model (:func:`create_nr_model`)::

    image (B, 3, H, W) in [0, 1]
      -> backbone feature maps (asymlib.backbones.FeatureExtractor; the last map by default)
      -> head: global average pooling -> MLP -> (B,) quality

The head predicts z-scored quality; the model keeps the training labels' mean and standard deviation as
buffers, so ``model(x)`` returns quality in label units, higher = better (labels that are lower-is-better
are negated once, when read). The backbone is initialized from ``"random"``, ``"imagenet"`` or a checkpoint
(e.g. a GAN discriminator's exported backbone) and fine-tuned with the head.

Training (:func:`train_nr_model`): Adam with separate learning rates for backbone and head, learning rate
halved every ``lr_halve_every`` iterations, random crops (+ horizontal flips) of ``crop`` pixels; every
``eval_every`` iterations the validation SRCC is computed on full images and the best model is kept
(model selection on val). :func:`evaluate_nr` gives SRCC/KRCC/PLCC with bootstrap intervals
(:func:`asymlib.iqa.stats.evaluate_iqa`).

The paper states only the data protocol (KADID-10K and KonIQ-10k, 6:2:2 train/val/test, SRCC/PLCC on
test); the optimizer and schedule of the ``paper`` preset are our choice and are named as such.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from ..progress import tqdm

from ..atomic import atomic_torch_save
from ..backbones import FeatureExtractor, create_feature_extractor, stage_index
from ..errors import CheckpointError, ConfigError, UnknownNameError
from ..typecheck import check_fields
from ..runs import run_of
from ..torchfile import read_torch_file
from .stats import evaluate_iqa
from .train import resolve_device

__all__ = [
    "NR_CHECKPOINT_FORMAT",
    "NR_TRAIN_PRESETS",
    "NRIQAModel",
    "NRTrainConfig",
    "NRTrainResult",
    "SyntheticNRDataset",
    "create_nr_model",
    "evaluate_nr",
    "get_nr_train_preset",
    "list_nr_heads",
    "load_nr_checkpoint",
    "nr_optimizer",
    "nr_train_step",
    "predict_nr",
    "register_nr_head",
    "train_nr_model",
]

NR_CHECKPOINT_FORMAT = "asymlib.nr_iqa.v1"


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NRTrainConfig:
    """Training of an NR-IQA model (backbone + regression head).

    Attributes:
        iterations: optimizer steps.
        batch_size: images per step.
        lr_backbone, lr_head: Adam learning rates of the backbone and of the head.
        weight_decay: Adam weight decay (L2) on all parameters.
        lr_halve_every: the learning rates are halved every this many steps.
        crop: side of the random training crops (pixels, >= the backbone's ``min_size``).
        resize_short_side: resize every image (train and eval) so its shorter side has this length
            before cropping (None: as stored).
        hflip: random horizontal flips in training.
        eval_every: validation interval in steps (model selection on the best validation SRCC).
        eval_batch_size: images per forward pass in evaluation (full images).
        finetune_backbone: train the backbone with the head (False: frozen backbone, linear probe).
        head: registered head name (:func:`list_nr_heads`); hidden, dropout: its width and dropout.
        loss: ``"l1"`` or ``"mse"`` on z-scored labels.
        num_workers: DataLoader workers (image decoding).
        log_every: logging interval in steps.
    """

    iterations: int = 6000
    batch_size: int = 32
    lr_backbone: float = 1e-4
    lr_head: float = 1e-3
    weight_decay: float = 0.0
    lr_halve_every: int = 2000
    crop: int = 224
    resize_short_side: int | None = None
    hflip: bool = True
    eval_every: int = 250
    eval_batch_size: int = 16
    finetune_backbone: bool = True
    head: str = "mlp"
    hidden: int = 512
    dropout: float = 0.1
    loss: str = "l1"
    num_workers: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("iterations", "batch_size", "lr_halve_every", "crop", "eval_every", "eval_batch_size",
                     "hidden", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"NRTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_backbone < 0 or self.lr_head <= 0:
            raise ConfigError(f"NRTrainConfig learning rates must be > 0 (backbone >= 0), got "
                              f"{self.lr_backbone}, {self.lr_head}")
        if self.loss not in _LOSSES:
            raise ConfigError(f"NRTrainConfig.loss must be one of {sorted(_LOSSES)}, got {self.loss!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"NRTrainConfig.dropout must lie in [0, 1), got {self.dropout}")
        if self.resize_short_side is not None and self.resize_short_side < self.crop:
            raise ConfigError(f"resize_short_side ({self.resize_short_side}) must be >= crop ({self.crop})")


_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
}

NR_TRAIN_PRESETS: dict[str, NRTrainConfig] = {
    # Paper: KADID-10K / KonIQ-10k, 6:2:2 split, SRCC/PLCC on test (Appendix C). Not stated in the paper,
    # our choice: Adam 1e-4 (backbone) / 1e-3 (head), halved every 2000 of 6000 steps (about 30 epochs of
    # KADID-10K's 6075 training images at batch 32), 224-px random crops, validation every 250 steps;
    # KonIQ-10k's 1024x768 images are read at 512x384 (shorter side 384); 8 workers decode the images.
    "paper": NRTrainConfig(resize_short_side=384, num_workers=8),
    # CPU smoke run on the 64-px synthetic set: a handful of steps, pipeline check only.
    "smoke": NRTrainConfig(iterations=12, batch_size=8, lr_backbone=1e-4, lr_head=1e-3, lr_halve_every=100,
                           crop=64, eval_every=4, eval_batch_size=32, hidden=64, dropout=0.0, log_every=4),
}


def get_nr_train_preset(name: str, **overrides: Any) -> NRTrainConfig:
    """A named training preset (``paper``/``smoke``), optionally with field overrides."""
    if name not in NR_TRAIN_PRESETS:
        raise UnknownNameError(f"unknown NR training preset {name!r}; available: {sorted(NR_TRAIN_PRESETS)}")
    import dataclasses

    return dataclasses.replace(NR_TRAIN_PRESETS[name], **overrides)


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

HeadFactory = Callable[..., nn.Module]
_NR_HEADS: dict[str, HeadFactory] = {}


def register_nr_head(name: str) -> Callable[[HeadFactory], HeadFactory]:
    """Decorator adding a head factory ``(in_channels, hidden=..., dropout=...) -> module`` under ``name``.

    A head maps one feature map ``(B, C, h, w)`` to ``(B,)`` (z-scored quality).
    """

    def deco(fn: HeadFactory) -> HeadFactory:
        _NR_HEADS[name] = fn
        return fn

    return deco


def list_nr_heads() -> list[str]:
    return sorted(_NR_HEADS)


class PoolMLPHead(nn.Module):
    """``(B, C, h, w) -> GAP -> Linear(C, hidden) -> ReLU -> Dropout -> Linear(hidden, 1) -> (B,)``."""

    def __init__(self, in_channels: int, hidden: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = feat.float().mean(dim=(2, 3))
        return self.fc2(self.drop(self.act(self.fc1(x)))).squeeze(1)


class PoolLinearHead(nn.Module):
    """``(B, C, h, w) -> GAP -> Linear(C, 1) -> (B,)``."""

    def __init__(self, in_channels: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, 1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(feat.float().mean(dim=(2, 3)))).squeeze(1)


register_nr_head("mlp")(PoolMLPHead)
register_nr_head("linear")(PoolLinearHead)


class NRIQAModel(nn.Module):
    """Backbone + regression head.

    forward: ``(B, 3, H, W)`` float in ``[0, 1]`` (``H, W >= backbone.min_size``) -> ``(B,)`` predicted quality
    in label units (higher = better). :meth:`forward_normalized` returns the z-scored prediction.

    Attributes:
        backbone: :class:`~asymlib.backbones.FeatureExtractor` (trainable unless frozen).
        head: head module; head_name: its registry name; stage: index of the feature map it reads.
        label_mean, label_std: buffers mapping z-scores to label units (set by :meth:`set_label_stats`).
        weights_source: the backbone's initialization (``random(seed=0)``, ``imagenet(...)``, ``file(...)``).
    """

    def __init__(self, backbone: FeatureExtractor, head: nn.Module, *, head_name: str = "mlp", stage: int = -1,
                 finetune_backbone: bool = True) -> None:
        super().__init__()
        self.stage = stage_index(backbone, stage)
        self.backbone = backbone
        self.head = head
        self.head_name = head_name
        self.finetune_backbone = bool(finetune_backbone)
        self.backbone.requires_grad_(self.finetune_backbone)
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_std", torch.ones(()))

    @property
    def weights_source(self) -> str:
        return self.backbone.weights_source

    def train(self, mode: bool = True) -> "NRIQAModel":
        super().train(mode)
        if not self.finetune_backbone:
            self.backbone.eval()  # a frozen backbone keeps its BatchNorm statistics
        return self

    def set_label_stats(self, mean: float, std: float) -> None:
        if not math.isfinite(std) or std <= 0:
            raise ConfigError(f"label standard deviation must be > 0, got {std}")
        self.label_mean.fill_(float(mean))
        self.label_std.fill_(float(std))

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[self.stage])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(x) * self.label_std + self.label_mean


def create_nr_model(backbone: str = "resnet50", weights: str | Path = "random", seed: int = 0, *,
                    head: str = "mlp", hidden: int = 512, dropout: float = 0.0, stage: int = -1,
                    finetune_backbone: bool = True, allow_download: bool | None = None) -> NRIQAModel:
    """Build an NR-IQA model.

    Args:
        backbone: backbone name (``vgg16``, ``resnet50``, ``dinov2_vits14``... or a timm name).
        weights: backbone initialization: ``"random"``, ``"imagenet"`` (local cache only unless downloads are
            allowed) or a checkpoint path, e.g. a discriminator backbone exported in the
            ``asymlib.backbone.v1`` format (architecture and key names are checked).
        seed: seed of the backbone's random initialization and of the head.
        head: head name (:func:`list_nr_heads`); hidden, dropout: head width and dropout.
        stage: index of the backbone feature map the head reads (default: the last one).
        finetune_backbone: train the backbone (True) or keep it frozen.

    Raises:
        UnknownNameError: unknown backbone or head.
        WeightsUnavailableError: ``"imagenet"`` weights not in the local cache.
        CheckpointError: a checkpoint that is missing, unreadable or of another architecture.
    """
    if head not in _NR_HEADS:
        raise UnknownNameError(f"unknown NR head {head!r}; available: {list_nr_heads()}")
    fx = create_feature_extractor(backbone, weights=weights, seed=seed, allow_download=allow_download,
                                  trainable=True)
    n = len(fx.channels)
    if not -n <= stage < n:
        raise ConfigError(f"stage {stage} out of range for backbone {backbone!r} with {n} feature maps")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head_module = _NR_HEADS[head](fx.channels[stage], hidden=hidden, dropout=dropout)
    return NRIQAModel(fx, head_module, head_name=head, stage=stage, finetune_backbone=finetune_backbone)


def _model_header(model: NRIQAModel) -> dict[str, Any]:
    return {"format": NR_CHECKPOINT_FORMAT, "backbone": model.backbone.name, "head": model.head_name,
            "stage": model.stage, "weights_source": model.weights_source}


def load_nr_checkpoint(model: NRIQAModel, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train_nr_model` into ``model`` (``weights_only=True``).

    Returns the checkpoint's metadata (iteration, val_srcc...).

    Raises:
        CheckpointError: missing/unreadable file, another format, backbone or head.
    """
    p = Path(path)
    obj = read_torch_file(p, "NR-IQA checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != NR_CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not an NR-IQA checkpoint (format {NR_CHECKPOINT_FORMAT!r})")
    for key in ("backbone", "head", "stage"):
        want = _model_header(model)[key]
        if obj.get(key) != want:
            raise CheckpointError(f"{p}: checkpoint {key} {obj.get(key)!r} does not match the model's {want!r}")
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{p} does not match the model: {exc}") from exc
    return {k: v for k, v in obj.items() if k != "state_dict"}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


class NRData(Protocol):
    """What training and evaluation need: items ``{"image": (3, H, W) in [0, 1], "score": scalar}`` and
    ``records`` with a ``score`` column; ``higher_is_better`` gives the label direction."""

    records: pd.DataFrame
    higher_is_better: bool

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, Any]: ...


class SyntheticNRDataset:
    """The synthetic FR benchmark's distorted images as an NR set (smoke profile).

    ``score`` = ``-level`` (higher = better): labels are synthetic distortion levels, not MOS, and levels of
    different contents or distortion types are not comparable. ``records`` columns: ``image`` (item id),
    ``score``, ``group`` (the reference image: the content, for content-disjoint splits),
    ``protocol_group`` (reference x distortion: the items whose labels can be compared), ``distortion``,
    ``level``.

    Items: ``{"image": float32 (3, crop, crop) in [0, 1], "score": float32 scalar tensor, "index": i}``.
    """

    name = "Synthetic levels (embedded corpus)"
    score_name = "negative synthetic distortion level (-5 .. -1)"
    higher_is_better = True

    def __init__(self, benchmark: Any) -> None:
        self.benchmark = benchmark
        rec = benchmark.records
        self.records = pd.DataFrame({
            "image": rec["dist"].astype(str).to_numpy(),
            "score": -rec["level"].to_numpy(dtype=np.float64),
            "group": rec["ref"].astype(str).to_numpy(),
            "protocol_group": rec["group"].astype(str).to_numpy(),
            "distortion": rec["distortion"].to_numpy(),
            "level": rec["level"].to_numpy(),
        })

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.benchmark[int(i)]
        return {"image": item["dist"], "score": torch.tensor(self.records["score"].iat[int(i)], dtype=torch.float32),
                "index": int(i)}

    def subset(self, indices: Sequence[int] | np.ndarray) -> "SyntheticNRDataset":
        idx = np.asarray(indices, dtype=np.int64)
        out = copy.copy(self)
        out.benchmark = self.benchmark.subset(idx)
        out.records = self.records.iloc[idx].reset_index(drop=True)
        return out

    def __repr__(self) -> str:
        return f"SyntheticNRDataset(n={len(self)}, contents={self.records['group'].nunique()})"


def _oriented_scores(dataset: NRData) -> np.ndarray:
    s = dataset.records["score"].to_numpy(dtype=np.float64)
    return s if getattr(dataset, "higher_is_better", True) else -s


def _resize_short(img: torch.Tensor, short: int | None) -> torch.Tensor:
    if short is None:
        return img
    h, w = img.shape[-2:]
    if min(h, w) == short:
        return img
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    return F.interpolate(img[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


class _TrainView(torch.utils.data.Dataset):
    """Random crop (+ flip) of each item; crop positions come from a per-item seed, so runs are repeatable
    whatever the number of workers."""

    def __init__(self, data: NRData, cfg: NRTrainConfig) -> None:
        self.data, self.cfg = data, cfg

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, item_seed = key
        img = _resize_short(self.data[i]["image"].float(), self.cfg.resize_short_side)
        rng = np.random.default_rng(item_seed)
        c = self.cfg.crop
        h, w = img.shape[-2:]
        if h < c or w < c:
            raise ConfigError(f"image {i} is {h}x{w}, smaller than the {c}-px training crop")
        top, left = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        img = img[:, top:top + c, left:left + c]
        if self.cfg.hflip and rng.random() < 0.5:
            img = img.flip(-1)
        return img.contiguous(), i


class _KeySampler(torch.utils.data.Sampler):
    def __init__(self, keys: list[tuple[int, int]]) -> None:
        self.keys = keys

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _train_keys(n: int, cfg: NRTrainConfig, seed: int) -> list[tuple[int, int]]:
    """(item, crop seed) for every sample of the run: epochs of seeded permutations."""
    rng = np.random.default_rng(seed)
    total = cfg.iterations * cfg.batch_size
    order: list[int] = []
    while len(order) < total:
        order.extend(rng.permutation(n).tolist())
    crop_seeds = rng.integers(0, 2**31 - 1, size=total)
    return [(int(i), int(s)) for i, s in zip(order[:total], crop_seeds)]


def _collate_train(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.tensor([i for _, i in items])


# ----------------------------------------------------------------------------------------------
# Prediction and evaluation
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_nr(model: NRIQAModel, dataset: NRData, *, batch_size: int = 16, resize_short_side: int | None = None,
               device: str | torch.device = "auto", desc: str | None = None) -> np.ndarray:
    """Predicted quality ``(N,)`` of every item (full images; items of different sizes are batched apart)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    was_training = model.training
    model.to(dev).eval()
    out = np.empty(len(dataset), dtype=np.float64)
    try:
        for start in tqdm(range(0, len(dataset), batch_size), desc=desc or "predict", leave=False):
            idx = list(range(start, min(start + batch_size, len(dataset))))
            imgs = [_resize_short(dataset[i]["image"].float(), resize_short_side) for i in idx]
            by_size: dict[tuple[int, ...], list[int]] = {}
            for j, im in enumerate(imgs):
                by_size.setdefault(tuple(im.shape), []).append(j)
            for members in by_size.values():
                x = torch.stack([imgs[j] for j in members]).to(dev)
                pred = model(x).float().cpu().numpy()
                out[[idx[j] for j in members]] = pred
    finally:
        model.train(was_training)
    return out


def evaluate_nr(model: NRIQAModel, dataset: NRData, *, groups: np.ndarray | None = None, n_resamples: int = 1000,
                seed: int = 0, batch_size: int = 16, resize_short_side: int | None = None,
                device: str | torch.device = "auto", predictions: np.ndarray | None = None) -> dict[str, Any]:
    """SRCC/KRCC/PLCC of the model on ``dataset`` with bootstrap 95% intervals.

    ``groups=None``: global protocol (PLCC after the 4-parameter logistic); with ``groups`` (synthetic
    levels) the within-group protocol of :func:`asymlib.iqa.stats.evaluate_iqa`.
    """
    pred = predictions if predictions is not None else predict_nr(
        model, dataset, batch_size=batch_size, resize_short_side=resize_short_side, device=device)
    return evaluate_iqa(pred, _oriented_scores(dataset), pred_higher_is_better=True, target_higher_is_better=True,
                        groups=groups, n_resamples=n_resamples, seed=seed)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class NRTrainResult:
    """Outcome of :func:`train_nr_model`; the model holds the best (validation SRCC) weights afterwards."""

    best_iteration: int
    best_val_srcc: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0


def _srcc_or_nan(pred: np.ndarray, dataset: NRData, groups: np.ndarray | None) -> float:
    if np.ptp(pred) == 0:
        return float("nan")
    return float(evaluate_iqa(pred, _oriented_scores(dataset), pred_higher_is_better=True,
                              target_higher_is_better=True, groups=groups, n_resamples=0)["srcc"])


def nr_optimizer(model: NRIQAModel, cfg: NRTrainConfig
                 ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.StepLR]:
    """The optimizer and schedule of :func:`train_nr_model` for ``model`` (already on its device).

    Adam (weight decay ``cfg.weight_decay``) over the head's trainable parameters at ``cfg.lr_head`` (param group
    0) and, when ``cfg.finetune_backbone`` and ``cfg.lr_backbone > 0``, the backbone's trainable parameters at
    ``cfg.lr_backbone`` (group 1); the learning rates are halved every ``cfg.lr_halve_every`` scheduler steps.
    """
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": cfg.lr_head}]
    bb = [p for p in model.backbone.parameters() if p.requires_grad]
    if cfg.finetune_backbone and bb and cfg.lr_backbone > 0:
        groups.append({"params": bb, "lr": cfg.lr_backbone})
    opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_halve_every, gamma=0.5)


def nr_train_step(model: NRIQAModel, x: torch.Tensor, target: torch.Tensor, opt: torch.optim.Optimizer,
                  sched: torch.optim.lr_scheduler.LRScheduler, cfg: NRTrainConfig) -> torch.Tensor:
    """One training iteration of :func:`train_nr_model`: forward, ``cfg.loss``, backward, optimizer and scheduler step.

    Args:
        model: in training mode, on the device of ``x``.
        x: crops ``(B, 3, H, W)`` in ``[0, 1]``.
        target: z-scored labels ``(B,)`` (float32, higher = better), on the device of ``x``.
        opt, sched: from :func:`nr_optimizer`.

    Returns:
        The batch loss before the update (0-d, float32, detached).
    """
    loss = _LOSSES[cfg.loss](model.forward_normalized(x).float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.detach()


def train_nr_model(model: NRIQAModel, train_set: NRData, val_set: NRData, cfg: NRTrainConfig, *, seed: int = 0,
                   val_groups: np.ndarray | None = None, device: str = "auto",
                   log: Callable[..., None] | None = None, checkpoint_path: str | Path | None = None,
                   desc: str | None = None) -> NRTrainResult:
    """Train ``model`` on ``train_set`` and keep the weights of the best validation SRCC.

    Labels are oriented (higher = better) and z-scored with the training set's mean/std, which the model
    stores (so predictions come out in label units). Validation runs at iteration 0 (the initialization),
    every ``cfg.eval_every`` steps and at the end; ties keep the earlier model. The best state is written
    atomically to ``checkpoint_path`` (if given, format :data:`NR_CHECKPOINT_FORMAT`) and loaded back at the
    end with ``torch.load(weights_only=True)``.

    Args:
        val_groups: per validation item, the groups inside which labels are comparable (synthetic levels);
            None: global SRCC.
        log: called as ``log(step, **scalars)`` (e.g. :meth:`asymlib.runs.Run.log`). Training always starts
            at step 0 (there is no resume), so when ``log`` is a run's ``log`` the rows of an interrupted earlier
            attempt are dropped first (:meth:`asymlib.runs.Run.truncate_log`); hold the run's lock.

    Returns:
        :class:`NRTrainResult`.
    """
    import time

    if len(train_set) < 2 or len(val_set) < 2:
        raise ConfigError(f"need at least 2 training and 2 validation images, got {len(train_set)}, {len(val_set)}")
    t0 = time.perf_counter()
    if (run := run_of(log)) is not None:
        run.truncate_log(-1)
    dev = resolve_device(device)
    y = _oriented_scores(train_set)
    std = float(y.std())
    model.set_label_stats(float(y.mean()), std if std > 0 else 1.0)
    y_z = torch.as_tensor((y - y.mean()) / (std if std > 0 else 1.0), dtype=torch.float32)
    model.to(dev)
    opt, sched = nr_optimizer(model, cfg)
    loader = torch.utils.data.DataLoader(
        _TrainView(train_set, cfg), batch_size=cfg.batch_size, sampler=_KeySampler(_train_keys(len(train_set), cfg, seed)),
        collate_fn=_collate_train, num_workers=cfg.num_workers, drop_last=False)

    history: list[dict[str, float]] = []
    best: dict[str, float] = {"iteration": -1, "srcc": math.nan, "score": -math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None

    def validate(step: int) -> None:
        nonlocal best_state
        pred = predict_nr(model, val_set, batch_size=cfg.eval_batch_size, resize_short_side=cfg.resize_short_side,
                          device=dev, desc="validation")
        srcc = _srcc_or_nan(pred, val_set, val_groups)
        row = {"step": step, "val_srcc": srcc}
        history.append(row)
        if log is not None:
            log(step, val_srcc=srcc)
        score = -math.inf if math.isnan(srcc) else srcc  # a constant prediction never wins
        if best["iteration"] < 0 or score > best["score"]:
            best.update(iteration=step, srcc=srcc, score=score)
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if ckpt is not None:
                atomic_torch_save({**_model_header(model), "state_dict": state, "iteration": step,
                                   "val_srcc": float(srcc)}, ckpt)
            else:
                best_state = state

    rng_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)  # dropout; the caller's random state is left untouched
        _train_loop(model, loader, opt, sched, y_z, cfg, dev, validate, history, log, desc)
    model.eval()
    if ckpt is not None:
        load_nr_checkpoint(model, ckpt)
    elif best_state is not None:
        model.load_state_dict(best_state)
    return NRTrainResult(best_iteration=int(best["iteration"]), best_val_srcc=float(best["srcc"]), history=history,
                         checkpoint=ckpt, seconds=time.perf_counter() - t0)


def _train_loop(model: NRIQAModel, loader: Any, opt: torch.optim.Optimizer,
                sched: torch.optim.lr_scheduler.LRScheduler, y_z: torch.Tensor, cfg: NRTrainConfig, dev: torch.device,
                validate: Callable[[int], None], history: list[dict[str, float]], log: Callable[..., None] | None,
                desc: str | None) -> None:
    validate(0)
    model.train()
    bar = tqdm(loader, total=cfg.iterations, desc=desc or f"{model.backbone.display}: NR-IQA", leave=False)
    for step, (x, idx) in enumerate(bar, start=1):
        x = x.to(dev, non_blocking=True)
        loss = nr_train_step(model, x, y_z[idx].to(dev), opt, sched, cfg)
        if step % cfg.log_every == 0 or step == cfg.iterations:
            row = {"step": step, "loss": float(loss.item()), "lr_head": float(opt.param_groups[0]["lr"])}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if log is not None:
                log(step, loss=row["loss"], lr_head=row["lr_head"])
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            validate(step)
            model.train()
