"""The ``scaling`` row: asymlib's DISTS forward + backward against pyiqa's over a grid of image sizes and batch
sizes, printed as a small table (:func:`scaling_table`) so that the growth of the cost is visible."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .dists import dists_step, max_diff, twin_on
from .inputs import distort, image_batch
from .report import Row, row_from_timing
from .settings import Settings
from .timing import measure, ratio

__all__ = ["bench_scaling", "scaling_table"]


def bench_scaling(device: torch.device, s: Settings, log: Callable[[str], None]) -> tuple[list[Row], list[dict]]:
    """The ``scaling`` rows (asymlib and pyiqa per size and batch) and the grid :func:`scaling_table` prints."""
    ours, peer = twin_on(device)
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
        diff = max_diff(mine.result[0], theirs.result[0])
        mpix = size * size * b / 1e6
        grid.append({"size": size, "batch": b, "asymlib_ms": mine.median_ms, "pyiqa_ms": theirs.median_ms,
                     "ratio_vs_pyiqa": ratio(theirs.median_ms, mine.median_ms),
                     "asymlib_ms_per_mpix": mine.median_ms / mpix, "pixels_x": pixels_x,
                     "time_x": mine.median_ms / t_small})
        rows.append(row_from_timing("scaling", device, f"asymlib {size}px b{b}", f"pyiqa {size}px b{b}", mine, theirs,
                                    max_abs_diff=diff, images_per_s=b / (mine.median_ms / 1e3),
                                    notes=f"DISTS fwd+bwd; {pixels_x:g}x the pixels of {small[0]}px b{small[1]}, "
                                          f"{mine.median_ms / t_small:.3g}x its time"))
        rows.append(row_from_timing("scaling", device, f"pyiqa {size}px b{b}", f"pyiqa {size}px b{b}", theirs, theirs,
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
