"""One benchmark run: the chosen rows on the chosen device, and the run's metadata."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .dists import bench_dists
from .metric_train import bench_metric_train
from .nr import bench_nr
from .nr_train import bench_nr_train
from .report import Row
from .scaling import bench_scaling
from .settings import Settings, profile_for
from .sr_data import bench_sr_data
from .sr_step import bench_sr

__all__ = ["BENCHMARKS", "STEP_COST_BENCHMARKS", "run_benchmarks"]

BENCHMARKS = ("dists", "sr", "nr", "scaling", "metric_train", "nr_train", "sr_data")
# --only name -> the step-cost kinds its rows measure
STEP_COST_BENCHMARKS = {"sr": ("sr_stage1", "sr_stage2", "sr_stage2_adv"), "metric_train": ("metric_train",),
                        "nr_train": ("nr_train",)}


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
    """Run the chosen benchmarks (names of :data:`BENCHMARKS`) on ``device`` (``"cpu"``, ``"cuda"`` or
    ``"auto"``); returns the rows and the run's metadata (provenance, device names, load averages, the
    profile whose training workloads were timed, the scaling grid)."""
    from ..provenance import provenance

    cuda_available = torch.cuda.is_available()
    if device == "cuda" and not cuda_available:
        raise SystemExit("asymlib.bench: --device cuda but CUDA is not available")
    primary = torch.device("cuda" if device == "cuda" or (device == "auto" and cuda_available) else "cpu")
    meta = provenance("bench-quick" if s.quick else "bench", seed=0, weights={"all": "random (seeded)"},
                      benchmarks=list(only), device_arg=device, primary_device=str(primary),
                      cuda_device=torch.cuda.get_device_name(0) if cuda_available else None,
                      cpu_model=_cpu_model(), cpu_count=os.cpu_count(), torch_version=torch.__version__,
                      date=_dt.date.today().isoformat(), loadavg_start=_loadavg(),
                      workload_profile=profile_for(primary), settings=dataclasses.asdict(s))
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
    if "sr_data" in only:
        rows += bench_sr_data(s, log)
    if "scaling" in only:
        r, scaling_grid = bench_scaling(primary, s, log)
        rows += r
    if "metric_train" in only:
        rows += bench_metric_train(primary, s, log)
    if "nr_train" in only:
        rows += bench_nr_train(primary, s, log)
    meta.update(loadavg_end=_loadavg(), seconds=round(time.perf_counter() - t0, 1), scaling=scaling_grid)
    return rows, meta
