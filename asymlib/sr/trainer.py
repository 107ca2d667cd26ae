"""Perceptual optimization of an SR generator (paper Eq. 1, 4-6): one resumable, DDP-ready training loop.

Objective of the generator ``G`` on a batch of (LR ``x``, HR ``y``) pairs::

    lambda_rec * L1(G(x), y) + lambda_per * metric(G(x), y) + lambda_adv * l_adv(G(x), y)

with ``l_adv`` the relativistic average generator loss (:func:`asymlib.sr.losses.generator_loss` computes it all).
``G`` and the discriminator ``D`` are updated alternately (G, then D on the detached output). The perceptual metric is
frozen: only gradients with respect to its first input flow.

Engineering contract:

* **Resume.** Every ``checkpoint_every`` steps ``checkpoint.pt`` is written atomically with generator, EMA,
  discriminator, optimizers, schedulers, step, RNG states of every rank (torch, CUDA, numpy, python) and
  the data-sampler position. Calling :func:`train_sr` again on the same run continues from it; the data
  order depends only on ``(seed, sample position)``, so an interrupted and an uninterrupted run end with the
  same weights. The checkpoint records the run's identity (:meth:`asymlib.runs.Run.identity`): one copied from
  another run is refused. On (re)start the run folder's orphan temporary files and the log rows after the
  resumed step are removed (:meth:`asymlib.runs.Run.prepare_resume`), so ``log.jsonl`` never repeats a step.
  Workers sharing a run folder hold :meth:`asymlib.runs.Run.lock` around :func:`train_sr` (it does not lock).
* **DDP.** Launch with ``torchrun`` (``nccl`` on GPUs, ``gloo`` on CPU): ``batch_size`` is global and split
  over the ranks; rank 0 writes every file. The discriminator is updated with two backward passes (real,
  then fake), which keeps BatchNorm discriminators valid under DDP; the generator step calls the unwrapped
  discriminator (its parameters are frozen there), so DDP never waits for gradients it will not get.
* **Collapse.** A non-finite loss stops training before the weights are touched; a discriminator whose loss
  or logits stay above the configured thresholds for ``collapse_patience`` steps stops it too. The run is
  then recorded ``collapsed`` with the step and the reason, and the caller carries on.
* **Precision.** On CUDA, bf16 autocast and channels-last memory format (per config); optional
  ``torch.compile``. The same code runs in float32 on CPU.
* **Outputs** in the run folder: ``generator.pt`` (raw weights), ``generator_ema.pt`` (EMA weights),
  ``discriminator.pt`` (adversarial runs), ``samples/step_*.png``, ``log.jsonl`` + TensorBoard scalars;
  ``status.json`` is written last.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..atomic import atomic_torch_save
from ..errors import CheckpointError, ConfigError, DatasetError, InputError
from ..runs import Run
from ..torchfile import read_torch_file
from .collapse import CollapseRule, refused_output
from .config import SRTrainConfig
from .data import PairedSRDataset
from .ema import ModelEMA
from .losses import (DEFAULT_MEAN_OVER, MeanOver, generator_loss, relativistic_discriminator_loss_fake,
                     relativistic_discriminator_loss_real)

__all__ = ["CHECKPOINT_FORMAT", "TrainResult", "DistInfo", "discriminator_backward", "dist_info", "init_distributed",
           "load_checkpoint",
           "load_generator_weights", "train_sr"]

CHECKPOINT_FORMAT = "asymlib.sr_checkpoint.v1"
WEIGHTS_FORMAT = "asymlib.sr_weights.v1"
CHECKPOINT_NAME = "checkpoint.pt"

StepCallback = Callable[[int, Mapping[str, float]], None]


# ----------------------------------------------------------------------------------------------
# Distributed helpers
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def init_distributed() -> DistInfo:
    """Join the process group described by ``torchrun``'s environment (no-op for a single process).

    Backend: ``nccl`` when CUDA is available, otherwise ``gloo``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist_info()


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _any_rank(flag: bool, device: torch.device, info: DistInfo) -> bool:
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


# ----------------------------------------------------------------------------------------------
# Deterministic, resumable data order
# ----------------------------------------------------------------------------------------------
class _PositionDataset(Dataset):
    """Maps a global sample position ``p`` to ``base[perm_e[p % N]]`` with ``e = p // N``.

    ``perm_e`` is a permutation seeded by ``(seed, e)`` and ``base.set_epoch(e)`` selects the epoch's crops, so
    sample ``p`` is the same whatever the number of ranks, workers or interruptions.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base = base
        self.n = len(base)  # type: ignore[arg-type]
        self.seed = seed
        self._perm_epoch = -1
        self._perm: np.ndarray = np.arange(self.n)

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, position: int) -> Any:
        epoch, offset = divmod(int(position), self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng(np.random.SeedSequence([self.seed, 7919, epoch])).permutation(self.n)
            self._perm_epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        return self.base[int(self._perm[offset])]


class _StepBatchSampler(Sampler[list[int]]):
    """Batches of global sample positions for steps ``start..stop-1``; rank ``r`` takes its slice."""

    def __init__(self, start: int, stop: int, global_batch: int, info: DistInfo):
        self.start, self.stop, self.global_batch, self.info = start, stop, global_batch, info
        self.local = global_batch // info.world_size

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = step * self.global_batch + self.info.rank * self.local
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


# ----------------------------------------------------------------------------------------------
# RNG state (stored as tensors/ints so that torch.load(weights_only=True) reads it)
# ----------------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def _torch_load(path: Path, what: str) -> Any:
    return read_torch_file(path, what, hint="; delete it to restart from scratch")


def load_checkpoint(path: str | Path, run: Run | None = None) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`train_sr`.

    With ``run``, the checkpoint must have been written by that run (checkpoints older than the ``run`` field
    are accepted).

    Raises:
        CheckpointError: missing, corrupt, not an SR training checkpoint, or another run's; the message names
            the file.
    """
    p = Path(path)
    obj = _torch_load(p, "SR checkpoint")
    required = ("generator", "ema", "opt_g", "sched_g", "step", "rng", "sampler")
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT or any(k not in obj for k in required):
        raise CheckpointError(f"{p} is not an asymlib SR checkpoint (format {CHECKPOINT_FORMAT!r} with keys "
                              f"{list(required)}); delete it to restart from scratch")
    if run is not None:
        run.check_identity(obj.get("run"), p)
    return obj


def load_generator_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load ``generator.pt``/``generator_ema.pt`` (or a training checkpoint's EMA) into ``model``.

    Returns the file's metadata (``step``, ``kind``...). Raises :class:`CheckpointError` naming the file when it
    is missing, corrupt or does not match the architecture.
    """
    p = Path(path)
    obj = _torch_load(p, "generator weights")
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        state, meta = obj["ema"]["module"], {"step": obj["step"], "kind": "ema"}
    elif isinstance(obj, dict) and obj.get("format") == WEIGHTS_FORMAT:
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        raise CheckpointError(f"{p} holds no asymlib generator weights (format {WEIGHTS_FORMAT!r})")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"generator weights {p} do not match the model: {exc}") from exc
    return meta


def _save_weights(path: Path, module: nn.Module, step: int, kind: str, **meta: Any) -> Path:
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return atomic_torch_save({"format": WEIGHTS_FORMAT, "state_dict": state, "step": int(step), "kind": kind, **meta},
                             path)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """Outcome of :func:`train_sr` (also for a run that was already done)."""

    status: str
    step: int
    run_dir: Path
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ema_weights(self) -> Path:
        return self.run_dir / "generator_ema.pt"

    @property
    def weights(self) -> Path:
        return self.run_dir / "generator.pt"

    @property
    def collapsed(self) -> bool:
        return self.status == "collapsed"

    @classmethod
    def from_run(cls, run: Run) -> "TrainResult":
        """The outcome recorded in a done run's ``status.json``."""
        st = run.status
        if st is None:
            raise ConfigError(f"run {run.path} has no status yet")
        return cls(st["status"], int(st.get("step", 0)), run.path, st.get("reason", ""), dict(st))


def _as_dataset(train_data: Dataset | str | Path | Mapping[str, torch.Tensor], cfg: SRTrainConfig,
                seed: int) -> Dataset:
    if isinstance(train_data, Dataset):
        hr_crop, scale = getattr(train_data, "hr_crop", cfg.hr_crop), getattr(train_data, "scale", cfg.scale)
        if (hr_crop, scale) != (cfg.hr_crop, cfg.scale):
            raise ConfigError(f"training data yields {hr_crop}-px HR crops at x{scale}, the config asks for "
                              f"{cfg.hr_crop} at x{cfg.scale}")
        ds = train_data
    else:
        ds = PairedSRDataset(train_data, hr_crop=cfg.hr_crop, scale=cfg.scale, train=True, seed=seed)
    if len(ds) == 0:  # type: ignore[arg-type]
        raise DatasetError("the SR training set is empty")
    return ds


def _set_trainable(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def _save_samples(run: Run, step: int, model: nn.Module, lr: torch.Tensor, device: torch.device) -> None:
    from ..imageio import save_image

    with torch.no_grad():
        sr = model(lr.to(device)).float().clamp(0, 1).cpu()
    up = F.interpolate(lr, size=sr.shape[-2:], mode="nearest")
    rows = [torch.cat([u, s], dim=-1) for u, s in zip(up, sr)]
    grid = torch.cat(rows, dim=-2)
    save_image(grid, run.path / "samples" / f"step_{step:07d}.png")
    run.log_image("samples", grid, step)


def train_sr(
    run: Run,
    cfg: SRTrainConfig,
    stage: str,
    *,
    generator: nn.Module,
    train_data: Dataset | str | Path | Mapping[str, torch.Tensor],
    metric: nn.Module | None = None,
    init_from: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    provenance: Mapping[str, Any] | None = None,
    sample_lr: torch.Tensor | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train ``generator`` under ``cfg`` inside ``run``, resuming from its checkpoint if it has one.

    Args:
        run: the run folder (:func:`asymlib.runs.open_run`); a finished/collapsed run is returned untouched.
        cfg: schedule, loss weights, discriminator, checkpointing.
        stage: label for logs and the progress bar (e.g. ``"stage1"`` or ``"perceptual/vgg16"``).
        generator: a freshly built SR model, ``(B, 3, h, w) -> (B, 3, s*h, s*w)``, inputs in [0, 1].
        train_data: a dataset of ``{"lr", "hr"}`` items, or a folder / ``{name: (3, H, W)}`` mapping of HR
            images (wrapped in :class:`~asymlib.sr.data.PairedSRDataset` with ``cfg.hr_crop``/``cfg.scale``).
        metric: the frozen perceptual metric ``metric(sr, hr) -> (B,)`` (needed when ``cfg.lambda_per > 0``).
        init_from: generator weights to start from when there is no checkpoint (e.g. stage 1's EMA).
        seed: seeds the initial RNG states (rank ``r`` uses ``seed + r``), the data order and D's init.
        device: ``"auto"`` (this rank's GPU, else CPU) or a device.
        provenance: written to ``provenance.json`` when the run starts.
        sample_lr: ``(N, 3, h, w)`` LR images super-resolved with the EMA model every ``sample_every`` steps.
        progress: show a tqdm bar (rank 0).
        on_step: called as ``on_step(step, scalars)`` after every step, on every rank.

    Returns:
        :class:`TrainResult` with status ``"finished"`` or ``"collapsed"``.

    Raises:
        CheckpointError: the checkpoint or ``init_from`` is corrupt or does not match (the run is marked
            ``failed`` and the file named).
        DatasetError, ImageReadError, ConfigError: bad training data or configuration (before any file is
            written).
    """
    if run.finished:
        return TrainResult.from_run(run)
    if cfg.perceptual and metric is None:
        raise ConfigError(f"{stage}: lambda_per={cfg.lambda_per} but no perceptual metric was given")
    info = dist_info()
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} DDP ranks")
    dataset = _as_dataset(train_data, cfg, seed)
    dev = _resolve_device(device)
    if info.is_main:
        if not (run.path / "provenance.json").is_file():
            run.start(dict(provenance or {}))
    _barrier(info)
    try:
        return _train(run, cfg, stage, generator, dataset, metric, init_from, seed, dev, info, sample_lr,
                      progress, on_step)
    except CheckpointError as exc:
        if info.is_main:
            run.finish("failed", reason=str(exc))
        raise


def discriminator_backward(d: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                           autocast: Callable[[], Any], mean_over: MeanOver = DEFAULT_MEAN_OVER,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of the relativistic discriminator loss (Eq. 5) for one batch; the caller zeroes them before
    and steps the optimizer after.

    The real and fake halves run as separate forward/backward passes, so that BatchNorm statistics never mix
    real and generated images and DDP sees one reduction per pass; the other half's logits enter each loss
    as a detached mean (``fake`` is first scored without a graph; ``mean_over``: see
    :func:`asymlib.sr.losses.relativistic_mean`). Returns the detached loss ``()`` and the real and fake logits
    (detached, the discriminator's output shape).
    """
    with torch.no_grad(), autocast():
        fake_ref = d(fake).float()
    with autocast():
        real_logits = d(real).float()
    l_real = relativistic_discriminator_loss_real(real_logits, fake_ref, mean_over)
    l_real.backward()
    with autocast():
        fake_logits = d(fake).float()
    l_fake = relativistic_discriminator_loss_fake(fake_logits, real_logits.detach(), mean_over)
    l_fake.backward()
    return (l_real + l_fake).detach(), real_logits.detach(), fake_logits.detach()


def _train(run: Run, cfg: SRTrainConfig, stage: str, generator: nn.Module, dataset: Dataset,
           metric: nn.Module | None, init_from: str | Path | None, seed: int, dev: torch.device, info: DistInfo,
           sample_lr: torch.Tensor | None, progress: bool, on_step: StepCallback | None) -> TrainResult:
    from ..progress import tqdm

    from ..discriminators import create_discriminator

    t0 = time.perf_counter()
    cuda = dev.type == "cuda"
    use_amp = cuda and cfg.amp == "bf16"
    mem = torch.channels_last if (cuda and cfg.channels_last) else torch.contiguous_format
    _seed_everything(seed + info.rank)

    G = generator.to(dev, memory_format=mem)
    G.train()
    D: nn.Module | None = None
    d_params: list[nn.Parameter] = []
    if cfg.adversarial:
        dc = cfg.discriminator
        D = create_discriminator(dc.backbone, dc.head, spectral_norm=dc.spectral_norm, seed=seed, stage=dc.stage)
        D = D.to(dev, memory_format=mem).train()
        d_params = [p for p in D.parameters() if p.requires_grad]  # D freezes parameters it never uses
    if metric is not None:
        # the metric keeps its own memory format (its VGG body is channels-last on every device) unless the
        # run asks for channels-last everywhere
        metric = (metric.to(dev, memory_format=mem) if mem is torch.channels_last else metric.to(dev)).eval()
        metric.requires_grad_(False)

    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas)
    sched_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, list(cfg.milestones), gamma=cfg.lr_gamma)
    opt_d = sched_d = None
    if D is not None:
        opt_d = torch.optim.Adam(d_params, lr=cfg.discriminator.lr or cfg.lr, betas=cfg.betas)
        sched_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, list(cfg.milestones), gamma=cfg.lr_gamma)

    # ---- resume or initialize
    ckpt_path = run.path / CHECKPOINT_NAME
    start, resumed_from, bad_steps = 0, None, 0
    rule = CollapseRule(cfg.max_d_loss, cfg.max_abs_logit, cfg.collapse_patience)
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, run=run)
        try:
            G.load_state_dict(ck["generator"])
            opt_g.load_state_dict(ck["opt_g"])
            sched_g.load_state_dict(ck["sched_g"])
            if D is not None:
                D.load_state_dict(ck["discriminator"])
                opt_d.load_state_dict(ck["opt_d"])  # type: ignore[union-attr]
                sched_d.load_state_dict(ck["sched_d"])  # type: ignore[union-attr]
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {ckpt_path} does not match this run's models/optimizers "
                                  f"({type(exc).__name__}: {exc}); delete it to restart from scratch") from exc
        ema = ModelEMA(G, decay=cfg.ema_decay)
        ema.load_state_dict(ck["ema"])
        start = resumed_from = int(ck["step"])
        bad_steps = int(ck.get("bad_steps", 0))
        rng = ck["rng"]
        if isinstance(rng, list):
            rng = rng[info.rank] if len(rng) == info.world_size else None
        if rng is not None:
            _set_rng_state(rng)
        else:  # resumed with another world size: data order is unaffected, dropout streams are reseeded
            _seed_everything(seed + info.rank + 1_000_003 * start)
    else:
        if init_from is not None:
            load_generator_weights(G, init_from)
        ema = ModelEMA(G, decay=cfg.ema_decay)
    if info.is_main:
        run.prepare_resume(start)

    g_train: nn.Module = G
    d_train: nn.Module | None = D
    if info.enabled:
        ids = [dev.index] if cuda else None
        g_train = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        if D is not None:
            d_train = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    if cfg.compile:
        g_train = torch.compile(g_train)
        if d_train is not None:
            d_train = torch.compile(d_train)

    # The loader draws its workers' base seed when iterated; from the global RNG that draw would fall right
    # after a resumed run restored its RNG state and shift every later random stream (drop-path masks).
    loader = DataLoader(_PositionDataset(dataset, seed),
                        batch_sampler=_StepBatchSampler(start, cfg.iterations, cfg.batch_size, info),
                        num_workers=cfg.num_workers, pin_memory=cuda,
                        persistent_workers=False, generator=torch.Generator().manual_seed(seed + info.rank))

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp)

    def checkpoint(step: int) -> None:
        rng = _rng_state()
        if info.enabled:
            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, rng)
            rngs: Any = gathered
        else:
            rngs = [rng]
        if info.is_main:
            obj = {
                "format": CHECKPOINT_FORMAT, "run": run.identity(), "stage": stage, "step": step,
                "bad_steps": bad_steps,
                "generator": G.state_dict(), "ema": ema.state_dict(),
                "opt_g": opt_g.state_dict(), "sched_g": sched_g.state_dict(),
                "discriminator": D.state_dict() if D is not None else None,
                "opt_d": opt_d.state_dict() if opt_d is not None else None,
                "sched_d": sched_d.state_dict() if sched_d is not None else None,
                "rng": rngs, "world_size": info.world_size,
                "sampler": {"next_position": step * cfg.batch_size, "global_batch": cfg.batch_size,
                            "seed": seed, "dataset_len": len(dataset)},  # type: ignore[arg-type]
            }
            run.save_checkpoint(obj, CHECKPOINT_NAME)

    status, reason, step = "finished", "", start
    last: dict[str, float] = {}
    bar = tqdm(total=cfg.iterations, initial=start, desc=stage, disable=not (progress and info.is_main),
               file=sys.stderr, mininterval=2.0, dynamic_ncols=True)
    for batch in loader:
        lr_img = batch["lr"].to(dev, non_blocking=True).contiguous(memory_format=mem)
        hr = batch["hr"].to(dev, non_blocking=True).contiguous(memory_format=mem)

        # ---- generator step (D frozen, called unwrapped)
        _set_trainable(d_params, False)
        with autocast():
            sr = g_train(lr_img)
        bad_output = ""
        try:
            total, terms = generator_loss(sr, hr, lambda_rec=cfg.lambda_rec, lambda_per=cfg.lambda_per,
                                          lambda_adv=cfg.lambda_adv, metric=metric, discriminator=D, autocast=autocast,
                                          mean_over=cfg.discriminator.relativistic_mean)  # type: ignore[arg-type]
        except InputError as exc:
            # a NaN/Inf generator output refused by the metric's input check is a collapse like a non-finite
            # loss (every rank must reach the all-reduce below); any other input error is a bug: raise it
            if not refused_output(exc):
                raise
            bad_output = f"(generator output refused by the metric: {exc})"
            total, terms = torch.full((), float("nan"), device=dev), {}
        if _any_rank(not torch.isfinite(total.detach()).item(), dev, info):
            status, reason = "collapsed", f"non-finite generator loss at step {step + 1} " + (bad_output or ", ".join(
                f"{k}={v.item():.4g}" for k, v in terms.items()))
            break
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()

        # ---- discriminator step: real and fake halves with separate backward passes (BatchNorm + DDP)
        scalars: dict[str, float] = {}
        if D is not None and d_train is not None and opt_d is not None:
            _set_trainable(d_params, True)
            opt_d.zero_grad(set_to_none=True)
            d_loss, real_logits, fake_logits = discriminator_backward(
                d_train, hr, sr.detach(), autocast, cfg.discriminator.relativistic_mean)  # type: ignore[arg-type]
            max_logit = torch.maximum(real_logits.abs().max(), fake_logits.abs().max())
            if _any_rank(not torch.isfinite(d_loss).item(), dev, info):
                status, reason = "collapsed", f"non-finite discriminator loss at step {step + 1}"
                break
            opt_d.step()
            assert sched_d is not None
            sched_d.step()
            exploding = rule.exploding(d_loss.item(), max_logit.item())
            bad_steps = bad_steps + 1 if _any_rank(exploding, dev, info) else 0
            rd = real_logits - fake_logits.mean(0, keepdim=True)
            scalars.update(d_loss=d_loss.item(), d_real=real_logits.mean().item(),
                           d_fake=fake_logits.mean().item(),
                           d_real_prob=torch.sigmoid(rd).mean().item(), d_max_abs_logit=max_logit.item(),
                           lr_d=opt_d.param_groups[0]["lr"])
        sched_g.step()
        ema.update(G)
        step += 1
        scalars.update({k: v.detach().item() for k, v in terms.items()})
        scalars["lr"] = opt_g.param_groups[0]["lr"]
        last = scalars
        bar.update(1)
        if info.is_main and (step % cfg.log_every == 0 or step == cfg.iterations):
            run.log(step, **scalars)
            bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items() if k in ("l_total", "d_loss")})
        if on_step is not None:
            on_step(step, scalars)
        if rule.collapsed(bad_steps):
            status, reason = "collapsed", rule.reason(bad_steps, step)
            break
        if info.is_main and sample_lr is not None and step % cfg.sample_every == 0:
            _save_samples(run, step, ema.module, sample_lr, dev)
        if step % cfg.checkpoint_every == 0:
            checkpoint(step)
    bar.close()

    if info.is_main:
        if status == "finished":
            _save_weights(run.path / "generator.pt", G, step, "raw", stage=stage)
            _save_weights(run.path / "generator_ema.pt", ema.module, step, "ema", stage=stage,
                          ema_decay=cfg.ema_decay)
            if D is not None:
                atomic_torch_save({"state_dict": {k: v.cpu() for k, v in D.state_dict().items()}, "step": step,
                                   "describe": D.describe()}, run.path / "discriminator.pt")
        run_info = {"step": step, "reason": reason, "stage": stage, "resumed_from": resumed_from,
                    "world_size": info.world_size, "device": str(dev), "amp": "bf16" if use_amp else "fp32",
                    "seconds": round(time.perf_counter() - t0, 2),
                    "last": {k: (v if math.isfinite(v) else str(v)) for k, v in last.items()}}
        run.finish(status, **run_info)
        if status == "finished" and not cfg.keep_checkpoint:
            ckpt_path.unlink(missing_ok=True)  # after finish(): a crash before it still resumes from the checkpoint
    _barrier(info)
    st = run.status or {}
    return TrainResult(status, step, run.path, reason, dict(st))
