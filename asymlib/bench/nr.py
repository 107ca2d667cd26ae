"""The ``nr`` row: scoring throughput (images/s) of every no-reference evaluator of :mod:`asymlib.sr.evaluators`
that is available here, a batch per call against one image per call; unavailable ones are listed as skipped."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .inputs import image_batch
from .report import Row, row_from_timing
from .settings import Settings
from .timing import measure

__all__ = ["bench_nr"]


def bench_nr(device: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    """The ``nr`` rows: every NR evaluator available here, a batch per call against one image per call."""
    from ..sr.evaluators import create_evaluator, evaluator_status, get_evaluator_spec, list_evaluators

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
            rows.append(row_from_timing("nr", device, vname, one, t, res[one],
                                        images_per_s=s.nr_images / (t.median_ms / 1e3),
                                        notes=f"{s.nr_images} images {s.nr_size}x{s.nr_size}; {ev.source}"))
    return rows
