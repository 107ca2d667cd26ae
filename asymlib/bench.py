"""Benchmarks: ``python -m asymlib.bench [--quick] [--device cpu|cuda|auto] [--only dists,sr,nr,scaling]``.

Every row is a median of repeated timings taken in this one process run, next to a *named baseline* timed
in the same run (variants are interleaved round by round, so a machine whose load changes affects both
alike); ``ratio_vs_baseline = baseline median / variant median`` (> 1: faster than the baseline).

Benchmarks (``--only`` picks some):

``dists``
    DISTS-style VGG-16 metric, forward + backward with respect to the distorted image (a loss), 256x256,
    batch 8: :class:`asymlib.metrics.DISTSMetric` against pyiqa's DISTS architecture holding *identical*
    weights (:func:`build_pyiqa_twin`); ``max_abs_diff`` is the largest difference of the distances (the
    notes add the gradients'). On CPU, and on CUDA when present (there also asymlib under bf16 autocast,
    which is faster but not equal-valued; its difference is shown).
``sr``
    One stage-2 training iteration of the SR generator (:func:`build_sr_step`: G update on L1 + DISTS +
    relativistic patch-discriminator loss, D update on real and fake halves, EMA), the optimized path (bf16
    autocast and ``torch.compile`` on CUDA, channels-last, fused Adam) against the plain fp32 eager path of
    the same step function. CUDA: SwinIR classical x4, batch 32, 64x64 LR crops (the paper's stage 2), with
    images/s, peak GPU memory and the projected hours of 400K iterations. CPU: the smoke preset (SwinIR
    small, batch 2, 16x16 LR) only.
``nr``
    Scoring throughput (images/s) of every no-reference evaluator of :mod:`asymlib.sr.evaluators` that is
    available here, a batch per call against one image per call; unavailable ones are listed as skipped.
``scaling``
    asymlib's DISTS forward + backward against pyiqa's over a grid of image sizes and batch sizes, printed
    as a small table so that the growth of the cost is visible.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during a timed call minus the memory allocated
before it; on CPU the growth of the process's resident set during the first warm-up call, measured after
``malloc_trim`` has handed freed memory back to the OS (``VmHWM`` after resetting it through
``/proc/self/clear_refs``; where that is not possible, the growth of ``ru_maxrss``, which only sees new
process-wide peaks). Results are written atomically to ``<output>/bench.csv`` and ``<output>/bench.json``
(with the device, torch version, date and git commit). ``--quick`` finishes in under 5 minutes on 2 CPU
cores; ``--profile`` also prints where the time of one DISTS step goes (``torch.profiler``).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BENCHMARKS", "COLUMNS", "Row", "Timing", "build_pyiqa_twin", "build_sr_step", "main", "measure",
           "ratio", "run_benchmarks"]

BENCHMARKS = ("dists", "sr", "nr", "scaling")
PAPER_ITERATIONS = 400_000
DEFAULT_OUTPUT = Path("build") / "bench"


# ----------------------------------------------------------------------------------------------
# Rows, timing, memory
# ----------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the result table (see the module docstring for the meaning of the columns)."""

    benchmark: str
    device: str
    variant: str
    baseline: str
    repeats: int = 0
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    ratio_vs_baseline: float | None = None
    peak_mem_mb: float | None = None
    mem_kind: str = ""
    images_per_s: float | None = None
    max_abs_diff: float | None = None
    projected_h_400k: float | None = None
    status: str = "ok"
    notes: str = ""


COLUMNS = tuple(f.name for f in dataclasses.fields(Row))


def ratio(baseline_ms: float | None, variant_ms: float | None) -> float | None:
    """``baseline / variant`` (> 1: the variant is faster); None when either is missing or zero."""
    if baseline_ms is None or variant_ms is None or variant_ms <= 0 or baseline_ms <= 0:
        return None
    return baseline_ms / variant_ms


@dataclass
class Timing:
    """Repeated timings of one variant (seconds) and its peak memory (MB, see :class:`MemoryProbe`)."""

    times_s: list[float]
    peak_mem_mb: float | None = None
    mem_kind: str = ""
    result: Any = None  # what the last call returned

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_s) * 1e3

    @property
    def min_ms(self) -> float:
        return min(self.times_s) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.times_s) * 1e3


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Hand memory the C allocator keeps after frees back to the OS (glibc ``malloc_trim``), so that a CPU
    peak-RSS measurement starts from what is really in use; a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _maxrss_mb() -> float:
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


class MemoryProbe:
    """Peak memory of one call: ``with MemoryProbe(device) as probe: ...; probe.peak_mb``."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.peak_mb: float | None = None
        self.kind = ""

    def __enter__(self) -> "MemoryProbe":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device) / 2**20
            self.kind = "cuda max_memory_allocated growth"
        elif _reset_rss_peak() and _proc_status_mb("VmRSS") is not None:
            self._start = _proc_status_mb("VmRSS") or 0.0
            self.kind = "cpu peak RSS growth (VmHWM)"
        else:
            self._start = _maxrss_mb()
            self.kind = "cpu ru_maxrss growth (new process peaks only)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.kind.startswith("cpu peak RSS"):
            peak = _proc_status_mb("VmHWM") or 0.0
        else:
            peak = _maxrss_mb()
        self.peak_mb = max(0.0, peak - self._start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1,
            device: str | torch.device = "cpu", clock: Callable[[], float] = time.perf_counter,
            memory: bool = True) -> dict[str, Timing]:
    """Time several variants of one workload, interleaved.

    Each variant is called ``warmup`` times first (compilation, first-touch allocations), then ``repeats``
    rounds follow in which every variant runs once, the order rotating from round to round.

    Peak memory (:class:`MemoryProbe`): on CUDA the largest over the timed calls; on CPU it is taken in the
    first warm-up call, after freed memory has been handed back to the OS (so that what earlier variants
    left in the allocator does not hide a variant's needs, and the timed calls are not slowed by it), or
    over the timed calls when there is no warm-up.
    """
    dev = torch.device(device)
    names = list(fns)
    out = {k: Timing([]) for k in names}
    cpu_warm_probe = memory and dev.type != "cuda" and warmup > 0

    def call(k: str, probed: bool, timed: bool) -> None:
        t = out[k]
        probe = MemoryProbe(dev) if probed else contextlib.nullcontext()
        with probe:
            _sync(dev)
            t0 = clock()
            t.result = fns[k]()
            _sync(dev)
            if timed:
                t.times_s.append(clock() - t0)
        if isinstance(probe, MemoryProbe):
            t.peak_mem_mb = probe.peak_mb if t.peak_mem_mb is None else max(t.peak_mem_mb, probe.peak_mb or 0.0)
            t.mem_kind = probe.kind + (" in a warm-up call after malloc_trim" if cpu_warm_probe else "")

    for k in names:
        for w in range(warmup):
            if cpu_warm_probe and w == 0:
                _release_free_memory()
            call(k, probed=cpu_warm_probe and w == 0, timed=False)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        for k in order:
            call(k, probed=memory and not cpu_warm_probe, timed=True)
    return out


def _row(benchmark: str, device: torch.device, variant: str, baseline: str, t: Timing, base: Timing,
         **kw: Any) -> Row:
    return Row(benchmark, str(device), variant, baseline, repeats=len(t.times_s), median_ms=t.median_ms,
               min_ms=t.min_ms, max_ms=t.max_ms, ratio_vs_baseline=ratio(base.median_ms, t.median_ms),
               peak_mem_mb=t.peak_mem_mb, mem_kind=t.mem_kind, **kw)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def image_batch(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(batch, 3, size, size)`` crops of the embedded photographs (upscaled where an image is smaller)."""
    from .data.corpus import embedded_images

    imgs = list(embedded_images(list(_IMAGES)).values())
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(batch):
        im = imgs[i % len(imgs)]
        h, w = im.shape[-2:]
        if min(h, w) < size:
            f = size / min(h, w)
            im = F.interpolate(im[None], size=(max(size, round(h * f)), max(size, round(w * f))), mode="bilinear",
                               align_corners=False, antialias=False)[0].clamp(0, 1)
            h, w = im.shape[-2:]
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
        crop = im[:, top:top + size, left:left + size]
        out.append(crop.flip(-1) if (i // len(imgs)) % 2 else crop)
    return torch.stack(out).contiguous()


def distort(ref: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """A blurred, noisy version of ``ref`` (non-trivial distances, not 0 == 0)."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.tensor([0.25, 0.5, 0.25])
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    blurred = F.conv2d(F.pad(ref, (1, 1, 1, 1), mode="reflect"), k2, groups=3)
    return (blurred + 0.03 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# pyiqa's DISTS with asymlib's weights
# ----------------------------------------------------------------------------------------------
_TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def seeded_vgg16_state_dict(seed: int = 123) -> dict[str, torch.Tensor]:
    """A torchvision VGG-16 state dict: seeded convolution weights (torchvision's init: Kaiming normal,
    fan-out, zero biases); the classifier, which DISTS never uses, as zeros stored as one element each
    (expanded views), so that the file stays small."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in torchvision.models.vgg16(weights=None).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.startswith("features.") and key.endswith(".weight"):
            fan_out = shape[0] * shape[2] * shape[3]
            sd[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_out)
        elif key.startswith("features."):
            sd[key] = torch.zeros(shape)
        else:
            sd[key] = torch.zeros(1).expand(shape)
    return sd


_TWINS: dict[tuple[int, int], tuple[nn.Module, nn.Module]] = {}


def build_pyiqa_twin(seed: int = 123, alpha_seed: int = 7) -> tuple[nn.Module, nn.Module]:
    """``(asymlib DISTSMetric, pyiqa DISTS)`` on CPU, in eval mode, with identical weights.

    Recipe of ``tests/test_metric.py``: a seeded torchvision VGG-16 file is placed as
    ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` in a temporary folder, where pyiqa's DISTS
    (``pretrained=False``: torchvision weights, no DISTS alpha/beta download) and asymlib
    (``weights=<file>``) both read it; alpha/beta (pyiqa's seeded initialization) are copied into asymlib's
    metric. Nothing is downloaded. Both are frozen (a loss: gradients reach the images only). Cached per
    process; callers move copies to their device.
    """
    key = (seed, alpha_seed)
    if key not in _TWINS:
        # Imported before TORCH_HOME is switched: pyiqa fixes its cache folder (where the NR evaluators'
        # weights are looked up) when it is first imported.
        from pyiqa.archs.dists_arch import DISTS

        from .metrics.registry import create_metric

        with tempfile.TemporaryDirectory(prefix="asymlib-bench-") as home:
            path = Path(home) / "hub" / "checkpoints" / _TORCHVISION_VGG16_FILE
            path.parent.mkdir(parents=True)
            torch.save(seeded_vgg16_state_dict(seed), path)
            with _env(TORCH_HOME=home):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(alpha_seed)
                    peer = DISTS(pretrained=False).eval()
                ours = create_metric("dists", backbone="vgg16", weights=path).eval()
        with torch.no_grad():
            ours.alpha.copy_(peer.alpha)
            ours.beta.copy_(peer.beta)
        # used as a loss: gradients flow to the distorted image only
        ours.requires_grad_(False)
        peer.requires_grad_(False)
        _TWINS[key] = (ours, peer)
    return _TWINS[key]


def _twin_on(device: torch.device) -> tuple[nn.Module, nn.Module]:
    import copy

    ours, peer = build_pyiqa_twin()
    if device.type == "cpu":
        return ours, peer
    return copy.deepcopy(ours).to(device), copy.deepcopy(peer).to(device)


def dists_step(metric: nn.Module, x0: torch.Tensor, ref: torch.Tensor, autocast_bf16: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One loss evaluation: distances ``(B,)`` of ``(x0, ref)`` and their summed gradient w.r.t. ``x0``."""
    x = x0.detach().clone().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
        d = metric(x, ref).float().reshape(-1)
    d.sum().backward()
    return d.detach(), x.grad  # type: ignore[return-value]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


# ----------------------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------------------
@dataclass
class Settings:
    """What one run measures; ``--quick`` shrinks repeats and the scaling grid."""

    quick: bool = False
    repeats: int | None = None
    warmup: int = 1
    dists_batch: int = 8
    dists_size: int = 256
    scaling_sizes: tuple[int, ...] = (64, 128, 256, 384)
    scaling_batches: tuple[int, ...] = (1, 2, 4, 8)
    nr_images: int = 8
    nr_size: int = 256
    compile: str = "auto"
    profile: bool = False

    def reps(self, full: int, quick: int) -> int:
        return self.repeats if self.repeats is not None else (quick if self.quick else full)


def bench_dists(devices: Sequence[torch.device], s: Settings, log: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    for dev in devices:
        rows += _bench_dists_on(dev, s, log)
    return rows


def _bench_dists_on(dev: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    base_name = "pyiqa DISTS fp32"
    ours, peer = _twin_on(dev)
    ref = image_batch(s.dists_batch, s.dists_size, seed=0).to(dev)
    x0 = distort(ref.cpu(), seed=1).to(dev)
    variants: dict[str, Callable[[], Any]] = {
        base_name: lambda: dists_step(peer, x0, ref),
        "asymlib DISTSMetric fp32": lambda: dists_step(ours, x0, ref),
    }
    if dev.type == "cuda":
        variants["asymlib DISTSMetric bf16 autocast"] = lambda: dists_step(ours, x0, ref, autocast_bf16=True)
    reps = s.reps(7, 3)
    log(f"dists on {dev}: {len(variants)} variants x {reps} repeats (batch {s.dists_batch}, "
        f"{s.dists_size}x{s.dists_size})")
    res = measure(variants, repeats=reps, warmup=s.warmup, device=dev)
    d_ref, g_ref = res[base_name].result
    rows = []
    for name, t in res.items():
        d, g = t.result
        notes = f"forward+backward w.r.t. the distorted image, batch {s.dists_batch}, {s.dists_size}x{s.dists_size}"
        diff = None
        if name != base_name:
            diff = _max_diff(d, d_ref)
            notes += f"; max |grad diff| vs pyiqa {_max_diff(g, g_ref):.2e}"
            if "bf16" in name:
                notes += "; bf16: not expected to be equal-valued (the 1e-5 goal is for the fp32 rows)"
        else:
            notes += "; pyiqa 0.1.16 dists_arch.DISTS, eager NCHW fp32, same VGG weights and alpha/beta"
        rows.append(_row("dists", dev, name, base_name, t, res[base_name], max_abs_diff=diff,
                         images_per_s=s.dists_batch / (t.median_ms / 1e3), notes=notes))
    if s.profile:
        _print_profile(dev, {"asymlib": variants["asymlib DISTSMetric fp32"], "pyiqa": variants[base_name]}, log)
    return rows


def _print_profile(dev: torch.device, fns: Mapping[str, Callable[[], Any]], log: Callable[[str], None]) -> None:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    for name, fn in fns.items():
        fn()
        with profile(activities=acts) as prof:
            fn()
            _sync(dev)
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        log(f"\nprofile of one {name} DISTS step on {dev} (top 15 by self time):")
        log(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=48))


# ---- SR stage-2 training step --------------------------------------------------------------------
@dataclass(frozen=True)
class SRStepSpec:
    """Which SR step is timed: generator preset, batch, LR crop side."""

    preset: str
    batch: int
    lr_size: int
    label: str


def sr_step_spec(device: torch.device) -> SRStepSpec:
    """Paper stage 2 on CUDA (SwinIR classical, batch 32, 256-px HR crops); the smoke preset on CPU."""
    from .sr.config import sr_config_for

    name = "paper" if device.type == "cuda" else "smoke"
    cfg = sr_config_for(name)
    st = cfg.stage2
    return SRStepSpec(cfg.sr_preset, st.batch_size, st.lr_crop, f"{name} preset: SwinIR {cfg.sr_preset} x{st.scale}, "
                      f"batch {st.batch_size}, {st.lr_crop}x{st.lr_crop} LR")


def build_sr_step(spec: SRStepSpec, device: str | torch.device, optimized: bool, compile_models: bool = False,
                  seed: int = 0) -> tuple[Callable[[], torch.Tensor], str]:
    """One stage-2 iteration as :func:`asymlib.sr.trainer.train_sr` runs it (minus logging, checkpoints,
    schedulers and DDP): the G update on ``lambda_rec L1 + lambda_per DISTS + lambda_adv relativistic`` with
    D frozen and called unwrapped, then the D update with separate real and fake backward passes, then the
    EMA update; loss weights, learning rate and betas are the paper's (:class:`~asymlib.sr.config.SRTrainConfig`
    defaults), the discriminator a random VGG-16 with a patch head, the metric DISTS over a random VGG-16.

    ``optimized=False``: the plain path: fp32, NCHW, eager, ``torch.optim.Adam`` defaults. ``optimized=True``:
    bf16 autocast (CUDA only, as the trainer), channels-last, fused Adam; ``compile_models`` wraps G and D
    in ``torch.compile`` (as ``SRTrainConfig.compile``). Returns ``(step, description)``; ``step()`` returns
    the generator loss (a 0-d tensor).
    """
    from .discriminators import create_discriminator
    from .metrics.registry import create_metric
    from .sr.config import SRTrainConfig
    from .sr.ema import ModelEMA
    from .sr.losses import relativistic_generator_loss
    from .sr.models import create_sr_model
    from .sr.trainer import discriminator_backward

    dev = torch.device(device)
    cfg = SRTrainConfig()
    cuda = dev.type == "cuda"
    use_amp = optimized and cuda
    mem = torch.channels_last if optimized else torch.contiguous_format
    fused = True if optimized else None
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
        torch.manual_seed(seed)
        G = create_sr_model("swinir", scale=cfg.scale, preset=spec.preset).to(dev, memory_format=mem).train()
        D = create_discriminator("vgg16", "patch", seed=seed).to(dev, memory_format=mem).train()
        metric = create_metric("dists", backbone="vgg16", weights="random", seed=seed)
        gen = torch.Generator().manual_seed(seed)
        hr = torch.rand(spec.batch, 3, spec.lr_size * cfg.scale, spec.lr_size * cfg.scale, generator=gen)
    metric = metric.to(dev, memory_format=mem).eval()
    metric.requires_grad_(False)
    d_params = [p for p in D.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas, fused=fused)
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr, betas=cfg.betas, fused=fused)
    ema = ModelEMA(G, decay=cfg.ema_decay)
    g_train: nn.Module = torch.compile(G) if compile_models else G  # type: ignore[assignment]
    d_train: nn.Module = torch.compile(D) if compile_models else D  # type: ignore[assignment]
    lr_img = F.interpolate(hr, scale_factor=1 / cfg.scale, mode="bicubic", antialias=True).clamp(0, 1)
    lr_img = lr_img.to(dev).contiguous(memory_format=mem)
    hr = hr.to(dev).contiguous(memory_format=mem)

    def autocast() -> Any:
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp)

    def set_d_trainable(flag: bool) -> None:
        for p in d_params:
            p.requires_grad_(flag)

    def step() -> torch.Tensor:
        set_d_trainable(False)
        with autocast():
            sr = g_train(lr_img)
        total = cfg.lambda_rec * F.l1_loss(sr.float(), hr)
        with autocast():
            total = total + cfg.lambda_per * metric(sr, hr).float().mean()
            real_ref = D(hr).detach()
            fake_g = D(sr)
        total = total + cfg.lambda_adv * relativistic_generator_loss(real_ref.float(), fake_g.float())
        if not torch.isfinite(total.detach()).item():
            raise FloatingPointError("non-finite generator loss in the SR benchmark step")
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        set_d_trainable(True)
        opt_d.zero_grad(set_to_none=True)
        d_loss = discriminator_backward(d_train, hr, sr.detach(), autocast)[0]
        if not torch.isfinite(d_loss).item():
            raise FloatingPointError("non-finite discriminator loss in the SR benchmark step")
        opt_d.step()
        ema.update(G)
        return total.detach()

    parts = ["bf16 autocast" if use_amp else "fp32", "channels-last" if optimized else "NCHW",
             "torch.compile(G, D)" if compile_models else "eager", "fused Adam" if fused else "Adam (default)"]
    if optimized and not cuda:
        parts[0] = "fp32 (autocast is CUDA-only, as in train_sr)"
    return step, ", ".join(parts)


def bench_sr(device: torch.device, cuda_available: bool, s: Settings, log: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    if device.type != "cuda":
        why = "skipped: no CUDA" if not cuda_available else "skipped: --device cpu"
        for v in ("eager fp32", "optimized"):
            rows.append(Row("sr_step", "cuda", f"{v} (paper: SwinIR classical x4, batch 32, 64x64 LR)",
                            "eager fp32", status=why, notes="GPU-only row; not measured"))
    spec = sr_step_spec(device)
    compile_models = s.compile == "on" or (s.compile == "auto" and device.type == "cuda")
    steps = {"eager fp32": build_sr_step(spec, device, optimized=False),
             "optimized": build_sr_step(spec, device, optimized=True, compile_models=compile_models)}
    if compile_models:  # how much of the gain is compilation
        steps["optimized without torch.compile"] = build_sr_step(spec, device, optimized=True)
    reps = s.reps(10, 3)
    warm = max(s.warmup, 2 if compile_models else 1)
    log(f"sr step on {device}: {spec.label}; {len(steps)} variants x {reps} repeats")
    res = measure({k: v[0] for k, v in steps.items()}, repeats=reps, warmup=warm, device=device)
    paper = device.type == "cuda"
    for name, t in res.items():
        desc = steps[name][1]
        notes = f"{spec.label}; L1 + DISTS(VGG-16) + relativistic patch D (VGG-16), G+D update + EMA; {desc}"
        if not paper:
            notes += "; no 400K projection (smoke preset, not the paper's configuration)"
        if s.compile == "auto" and device.type != "cuda" and name == "optimized":
            notes += "; torch.compile off on CPU by default (--compile on adds it; compiling takes minutes on 2 cores)"
        rows.append(_row("sr_step", device, name, "eager fp32", t, res["eager fp32"],
                         images_per_s=spec.batch / (t.median_ms / 1e3),
                         projected_h_400k=t.median_ms / 1e3 * PAPER_ITERATIONS / 3600 if paper else None,
                         notes=notes))
    return rows


# ---- NR-IQA throughput -------------------------------------------------------------------------------
def bench_nr(device: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    from .sr.evaluators import create_evaluator, evaluator_status, get_evaluator_spec, list_evaluators

    rows: list[Row] = []
    images = image_batch(s.nr_images, s.nr_size, seed=2)
    reps = s.reps(5, 3)
    for name in list_evaluators():
        spec = get_evaluator_spec(name)
        if spec.kind != "nr":
            continue
        status = evaluator_status(name)
        batched = f"{spec.display} batch of {s.nr_images}"
        if not status.available:
            rows.append(Row("nr", str(device), batched, f"{spec.display} one image per call",
                            status="skipped: unavailable", notes=status.reason[:300]))
            continue
        try:
            ev = create_evaluator(name, device)
        except Exception as exc:  # noqa: BLE001  (a broken evaluator is reported as a row, not fatal)
            rows.append(Row("nr", str(device), batched, f"{spec.display} one image per call",
                            status="skipped: build failed", notes=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        x = images.to(device)
        one = f"{spec.display} one image per call"
        variants = {one: lambda ev=ev, x=x: [ev(x[i:i + 1]) for i in range(x.shape[0])],
                    batched: lambda ev=ev, x=x: ev(x)}
        log(f"nr {name} on {device}: {s.nr_images} images {s.nr_size}x{s.nr_size}, {reps} repeats")
        res = measure(variants, repeats=reps, warmup=s.warmup, device=device)
        for vname, t in res.items():
            rows.append(_row("nr", device, vname, one, t, res[one],
                             images_per_s=s.nr_images / (t.median_ms / 1e3),
                             notes=f"{s.nr_images} images {s.nr_size}x{s.nr_size}; {ev.source}"))
    return rows


# ---- Scaling -----------------------------------------------------------------------------------------
def bench_scaling(device: torch.device, s: Settings, log: Callable[[str], None]) -> tuple[list[Row], list[dict]]:
    ours, peer = _twin_on(device)
    configs = [(size, b) for size in s.scaling_sizes for b in s.scaling_batches]
    fns: dict[str, Callable[[], Any]] = {}
    data = {}
    for size, b in configs:
        ref = image_batch(b, size, seed=3).to(device)
        x0 = distort(ref.cpu(), seed=4).to(device)
        data[(size, b)] = (ref, x0)
        fns[f"asymlib {size}px b{b}"] = lambda r=ref, x=x0: dists_step(ours, x, r)
        fns[f"pyiqa {size}px b{b}"] = lambda r=ref, x=x0: dists_step(peer, x, r)
    reps = s.reps(3, 2)
    log(f"scaling on {device}: sizes {list(s.scaling_sizes)} x batches {list(s.scaling_batches)}, {reps} repeats")
    res = measure(fns, repeats=reps, warmup=s.warmup, device=device)
    rows, grid = [], []
    small = min(configs, key=lambda c: c[0] * c[0] * c[1])
    t_small = res[f"asymlib {small[0]}px b{small[1]}"].median_ms
    for size, b in configs:
        mine, theirs = res[f"asymlib {size}px b{b}"], res[f"pyiqa {size}px b{b}"]
        pixels_x = size * size * b / (small[0] * small[0] * small[1])
        diff = _max_diff(mine.result[0], theirs.result[0])
        mpix = size * size * b / 1e6
        grid.append({"size": size, "batch": b, "asymlib_ms": mine.median_ms, "pyiqa_ms": theirs.median_ms,
                     "ratio_vs_pyiqa": ratio(theirs.median_ms, mine.median_ms),
                     "asymlib_ms_per_mpix": mine.median_ms / mpix, "pixels_x": pixels_x,
                     "time_x": mine.median_ms / t_small})
        rows.append(_row("scaling", device, f"asymlib {size}px b{b}", f"pyiqa {size}px b{b}", mine, theirs,
                         max_abs_diff=diff, images_per_s=b / (mine.median_ms / 1e3),
                         notes=f"DISTS fwd+bwd; {pixels_x:g}x the pixels of {small[0]}px b{small[1]}, "
                               f"{mine.median_ms / t_small:.3g}x its time"))
        rows.append(_row("scaling", device, f"pyiqa {size}px b{b}", f"pyiqa {size}px b{b}", theirs, theirs,
                         images_per_s=b / (theirs.median_ms / 1e3), notes="baseline of the row above"))
    return rows, grid


def scaling_table(grid: Sequence[Mapping[str, Any]]) -> str:
    """``size x batch`` table of asymlib's ms (ratio vs pyiqa) and ms per megapixel."""
    if not grid:
        return ""
    sizes = sorted({g["size"] for g in grid})
    batches = sorted({g["batch"] for g in grid})
    cell = {(g["size"], g["batch"]): g for g in grid}
    w = 22
    lines = ["asymlib DISTS forward+backward: median ms (speed-up vs pyiqa) | ms per megapixel",
             "size \\ batch".ljust(14) + "".join(f"b{b}".rjust(w) for b in batches)]
    for size in sizes:
        parts = []
        for b in batches:
            g = cell.get((size, b))
            if g is None:
                parts.append("-".rjust(w))
                continue
            r = g["ratio_vs_pyiqa"]
            parts.append(f"{g['asymlib_ms']:.0f} ({r:.2f}x) | {g['asymlib_ms_per_mpix']:.0f}".rjust(w)
                         if r is not None else f"{g['asymlib_ms']:.0f}".rjust(w))
        lines.append(f"{size}px".ljust(14) + "".join(parts))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_benchmarks(only: Sequence[str], device: str, s: Settings, log: Callable[[str], None] = print
                   ) -> tuple[list[Row], dict[str, Any]]:
    """Run the chosen benchmarks; returns the rows and the run's metadata."""
    from .provenance import provenance

    cuda_available = torch.cuda.is_available()
    if device == "cuda" and not cuda_available:
        raise SystemExit("asymlib.bench: --device cuda but CUDA is not available")
    primary = torch.device("cuda" if device == "cuda" or (device == "auto" and cuda_available) else "cpu")
    meta = provenance("bench-quick" if s.quick else "bench", seed=0, weights={"all": "random (seeded)"},
                      benchmarks=list(only), device_arg=device, primary_device=str(primary),
                      cuda_device=torch.cuda.get_device_name(0) if cuda_available else None,
                      cpu_model=_cpu_model(), cpu_count=os.cpu_count(), torch_version=torch.__version__,
                      date=_dt.date.today().isoformat(), loadavg_start=_loadavg(),
                      settings=dataclasses.asdict(s))
    rows: list[Row] = []
    scaling_grid: list[dict] = []
    t0 = time.perf_counter()
    if "dists" in only:
        devs = [primary] if device == "cuda" else [torch.device("cpu")] + ([primary] if primary.type == "cuda" else [])
        rows += bench_dists(devs, s, log)
        if not cuda_available:
            rows.append(Row("dists", "cuda", "asymlib DISTSMetric fp32 / bf16 autocast", "pyiqa DISTS fp32",
                            status="skipped: no CUDA", notes="GPU-only rows; not measured"))
    if "sr" in only:
        rows += bench_sr(primary, cuda_available, s, log)
    if "nr" in only:
        rows += bench_nr(primary, s, log)
    if "scaling" in only:
        r, scaling_grid = bench_scaling(primary, s, log)
        rows += r
    meta.update(loadavg_end=_loadavg(), seconds=round(time.perf_counter() - t0, 1), scaling=scaling_grid)
    return rows, meta


def rows_frame(rows: Sequence[Row]) -> "Any":
    import pandas as pd

    return pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=list(COLUMNS))


def format_table(rows: Sequence[Row]) -> str:
    df = rows_frame(rows)
    if df.empty:
        return "(no rows)"
    shown = df[["benchmark", "device", "variant", "baseline", "median_ms", "ratio_vs_baseline", "peak_mem_mb",
                "images_per_s", "max_abs_diff", "status"]].copy()
    for col, fmt in (("median_ms", "{:.1f}"), ("ratio_vs_baseline", "{:.2f}x"), ("peak_mem_mb", "{:.0f}"),
                     ("images_per_s", "{:.3g}"), ("max_abs_diff", "{:.1e}")):
        shown[col] = [fmt.format(v) if v is not None and not math.isnan(v) else "" for v in df[col]]
    notes = [f"[{i}] {n}" for i, n in enumerate(df["notes"]) if n]
    kinds = sorted({k for k in df["mem_kind"] if k})
    return (shown.to_string(index=True) + "\n\nnotes:\n" + "\n".join(notes)
            + ("\n\npeak_mem_mb: " + "; ".join(kinds) if kinds else ""))


def write_results(out_dir: str | Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """``bench.csv`` (the rows) and ``bench.json`` (metadata + rows), each written atomically."""
    from .atomic import atomic_write_csv, atomic_write_json

    out = Path(out_dir)
    df = rows_frame(rows)
    for key in ("date", "git_commit", "torch_version", "cpu_model", "cuda_device"):
        df[key] = meta.get(key)
    csv_path = atomic_write_csv(df, out / "bench.csv")
    json_path = atomic_write_json(out / "bench.json", {"meta": dict(meta),
                                                       "rows": [dataclasses.asdict(r) for r in rows]})
    return csv_path, json_path


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m asymlib.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats, small scaling grid (< 5 min on 2 cores)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="auto: CUDA when present (DISTS then runs on CPU and CUDA)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="folder for bench.csv / bench.json")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default: per benchmark)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per variant before timing")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile in the optimized SR step (auto: on CUDA only)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of one DISTS step")
    # sizes, mainly for tests and quick looks
    p.add_argument("--dists-batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--dists-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--scaling-sizes", type=_csv_ints, default=None, help=argparse.SUPPRESS)
    p.add_argument("--scaling-batches", type=_csv_ints, default=None, help=argparse.SUPPRESS)
    p.add_argument("--nr-images", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--nr-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown or not only:
        p.error(f"--only: unknown benchmark(s) {unknown}; choose from {','.join(BENCHMARKS)}")
    args.only = only
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    s = Settings(quick=args.quick, repeats=args.repeats, warmup=args.warmup, compile=args.compile,
                 profile=args.profile)
    if args.quick:
        s.scaling_sizes, s.scaling_batches, s.nr_images = (64, 128, 256), (1, 4), 4
    overrides = {"dists_batch": args.dists_batch, "dists_size": args.dists_size, "scaling_sizes": args.scaling_sizes,
                 "scaling_batches": args.scaling_batches, "nr_images": args.nr_images, "nr_size": args.nr_size}
    for key, value in overrides.items():
        if value is not None:
            setattr(s, key, value)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub: every weight here is random
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings_from_args(args)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows, meta = run_benchmarks(args.only, args.device, s, log)
    print(f"asymlib.bench  {meta['date']}  commit {meta['git_commit']}  torch {meta['torch_version']}  "
          f"device {meta['primary_device']} ({meta['cuda_device'] or meta['cpu_model']}, "
          f"{meta['torch_threads']} threads)  load average {meta['loadavg_start']} -> {meta['loadavg_end']}  "
          f"{meta['seconds']} s")
    print(format_table(rows))
    if meta.get("scaling"):
        print()
        print(scaling_table(meta["scaling"]))
    csv_path, json_path = write_results(args.output, rows, meta)
    print(f"\nwrote {csv_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
