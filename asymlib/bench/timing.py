"""Interleaved repeated timings and peak memory of benchmark variants (:func:`measure`).

Peak memory (:class:`MemoryProbe`): on CUDA ``torch.cuda.max_memory_allocated`` during a call minus the memory
allocated before it; on CPU the growth of the process's resident set during the call, measured after
``malloc_trim`` has handed freed memory back to the OS (``VmHWM`` after resetting it through
``/proc/self/clear_refs``; where that is not possible, the growth of ``ru_maxrss``, which only sees new
process-wide peaks).
"""
from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["MemoryProbe", "Timing", "measure", "ratio", "sync"]


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


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU."""
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
            sync(dev)
            t0 = clock()
            t.result = fns[k]()
            sync(dev)
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
