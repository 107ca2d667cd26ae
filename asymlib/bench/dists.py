"""The ``dists`` row: DISTS-style VGG-16 metric, forward + backward with respect to the distorted image (a loss).

256x256, batch 8: :class:`asymlib.metrics.DISTSMetric` against pyiqa's DISTS architecture holding *identical*
weights (:func:`build_pyiqa_twin`); ``max_abs_diff`` is the largest difference of the distances (the notes add
the gradients'). On CPU, and on CUDA when present (there also asymlib under bf16 autocast, which is faster but
not equal-valued; its difference is shown). ``--profile`` prints where the time of one step goes.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .inputs import distort, image_batch
from .report import Row, row_from_timing
from .settings import Settings
from .timing import measure, sync

__all__ = ["bench_dists", "build_pyiqa_twin", "dists_step", "max_diff", "seeded_vgg16_state_dict", "twin_on"]

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

        from ..metrics.registry import create_metric

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


def twin_on(device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The twin of :func:`build_pyiqa_twin` on ``device`` (copies off the CPU)."""
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


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two tensors of one shape, in float32."""
    return float((a.float() - b.float()).abs().max())


def bench_dists(devices: Sequence[torch.device], s: Settings, log: Callable[[str], None]) -> list[Row]:
    """The ``dists`` rows of each device: pyiqa DISTS fp32 (baseline), asymlib fp32 (and bf16 autocast on CUDA)."""
    rows: list[Row] = []
    for dev in devices:
        rows += _bench_dists_on(dev, s, log)
    return rows


def _bench_dists_on(dev: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    base_name = "pyiqa DISTS fp32"
    ours, peer = twin_on(dev)
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
            diff = max_diff(d, d_ref)
            notes += f"; max |grad diff| vs pyiqa {max_diff(g, g_ref):.2e}"
            if "bf16" in name:
                notes += "; bf16: not expected to be equal-valued (the 1e-5 goal is for the fp32 rows)"
        else:
            notes += "; pyiqa 0.1.16 dists_arch.DISTS, eager NCHW fp32, same VGG weights and alpha/beta"
        rows.append(row_from_timing("dists", dev, name, base_name, t, res[base_name], max_abs_diff=diff,
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
            sync(dev)
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        log(f"\nprofile of one {name} DISTS step on {dev} (top 15 by self time):")
        log(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=48))
