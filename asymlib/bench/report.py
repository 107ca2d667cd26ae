"""Result rows, the printed table, ``bench.csv``/``bench.json`` and the per-step cost table ``step_costs.json``.

``step_costs.json`` (:func:`write_step_costs`, format ``asymlib.step_costs.v1``) holds what one training
iteration (optimizer step) of each kind of study run costs on the machine that ran the benchmark, for GPU-hour
estimates (:mod:`asymlib.pipeline.costs` reads ``seconds_per_step``, ``device`` and ``date``)::

    {
      "format": "asymlib.step_costs.v1",
      "device": "NVIDIA H200",            # CUDA device name, or the CPU model on a CPU-only run
      "device_type": "cuda",              # "cuda" | "cpu": the device the rows ran on
      "profile": "paper",                 # whose workloads were timed: "paper" on CUDA, "smoke" on CPU
      "date": "2026-11-23",               # ISO date of the run
      "torch_version": "2.13.0",
      "git_commit": "f4ee80c...",         # null outside a git checkout
      "seconds_per_step": {               # seconds of one training iteration, per run kind (STEP_COST_KINDS)
        "sr_stage1": 0.21,                # SR stage 1 as train_sr runs it: G update on L1, EMA
        "sr_stage2": 0.42,                # SR stage 2 without discriminator: G update on L1 + DISTS, EMA
        "sr_stage2_adv": 0.61,            # SR stage 2 with it: G update on Eq. 1, D update (real, fake), EMA
        "metric_train": 0.0042,           # one alpha/beta step on cached terms (on the CPU, as the trainer)
        "nr_train": 0.11                  # one NR-IQA step (forward, loss, backward, Adam); mean over backbones
      },
      "seconds_per_item": {               # one-off cost per data item before the iterations, where a kind has one
        "metric_train": 0.0095            # the backbone pass computing one distorted image's texture/structure terms
      },
      "measured_by": {                    # the rows behind each number
        "<kind>": [{"benchmark": "sr_step", "variant": "...", "device": "cuda", "unit": "iteration" | "item",
                    "seconds": 0.61, "repeats": 10, "notes": "..."}]
      }
    }

A run of kind ``k`` with ``n`` iterations over ``m`` data items then takes about
``n * seconds_per_step[k] + m * seconds_per_item.get(k, 0)`` seconds (data loading, validation and
checkpoints not included). Only the kinds whose rows ran (and were not skipped) appear; every number is a
median of repeated timings in seconds (the mean of those medians where several rows measure one kind).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .timing import Timing, ratio

__all__ = ["COLUMNS", "STEP_COSTS_FORMAT", "STEP_COST_KINDS", "Row", "format_table", "row_from_timing", "rows_frame",
           "step_costs", "write_results", "write_step_costs"]

STEP_COST_KINDS = ("sr_stage1", "sr_stage2", "sr_stage2_adv", "metric_train", "nr_train")
STEP_COSTS_FORMAT = "asymlib.step_costs.v1"
_UNITS = ("iteration", "item")


@dataclass
class Row:
    """One line of the result table.

    ``ratio_vs_baseline`` is baseline median / variant median (> 1: faster); ``images_per_s`` counts the
    row's items (images, or image pairs for the metric terms); ``projected_h_400k`` is the hours of the paper's
    400K SR iterations at this median. ``step_cost`` is ``"<kind>/<unit>"`` when the row measures a training
    cost of :data:`STEP_COST_KINDS` (``unit``: ``iteration``, seconds = the median; ``item``, seconds =
    ``1 / images_per_s``), else ``""``.
    """

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
    step_cost: str = ""


COLUMNS = tuple(f.name for f in dataclasses.fields(Row))


def row_from_timing(benchmark: str, device: torch.device, variant: str, baseline: str, t: Timing, base: Timing,
                    **kw: Any) -> Row:
    """A :class:`Row` of ``t`` next to its baseline's timing ``base`` (``t`` itself for a baseline row)."""
    return Row(benchmark, str(device), variant, baseline, repeats=len(t.times_s), median_ms=t.median_ms,
               min_ms=t.min_ms, max_ms=t.max_ms, ratio_vs_baseline=ratio(base.median_ms, t.median_ms),
               peak_mem_mb=t.peak_mem_mb, mem_kind=t.mem_kind, **kw)


def rows_frame(rows: Sequence[Row]) -> Any:
    import pandas as pd

    return pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=list(COLUMNS))


def format_table(rows: Sequence[Row]) -> str:
    """The printed table: one line per row, then the numbered notes and the kinds of peak memory."""
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
    from ..atomic import atomic_write_csv, atomic_write_json

    out = Path(out_dir)
    df = rows_frame(rows)
    for key in ("date", "git_commit", "torch_version", "cpu_model", "cuda_device"):
        df[key] = meta.get(key)
    csv_path = atomic_write_csv(df, out / "bench.csv")
    json_path = atomic_write_json(out / "bench.json", {"meta": dict(meta),
                                                       "rows": [dataclasses.asdict(r) for r in rows]})
    return csv_path, json_path


def _row_seconds(row: Row, unit: str) -> float | None:
    if unit == "iteration":
        return None if row.median_ms is None else row.median_ms / 1e3
    return None if not row.images_per_s else 1.0 / row.images_per_s


def step_costs(rows: Sequence[Row], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The step cost table (format in the module docstring) of the rows that measure one; its
    ``seconds_per_step`` is empty when none did. ``meta``: :func:`~asymlib.bench.runner.run_benchmarks`'
    metadata."""
    seconds: dict[str, dict[str, list[float]]] = {u: {} for u in _UNITS}
    measured_by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if not r.step_cost or r.status != "ok":
            continue
        kind, unit = r.step_cost.split("/")
        s = _row_seconds(r, unit)
        if kind not in STEP_COST_KINDS or unit not in _UNITS or s is None:
            continue
        seconds[unit].setdefault(kind, []).append(s)
        measured_by.setdefault(kind, []).append({"benchmark": r.benchmark, "variant": r.variant, "device": r.device,
                                                 "unit": unit, "seconds": s, "repeats": r.repeats, "notes": r.notes})
    mean = {u: {k: sum(v) / len(v) for k, v in seconds[u].items()} for u in _UNITS}
    cuda = str(meta.get("primary_device", "cpu")).startswith("cuda")
    return {
        "format": STEP_COSTS_FORMAT,
        "device": meta.get("cuda_device") if cuda else meta.get("cpu_model"),
        "device_type": "cuda" if cuda else "cpu",
        "profile": meta.get("workload_profile"),
        "date": meta.get("date"),
        "torch_version": meta.get("torch_version"),
        "git_commit": meta.get("git_commit"),
        "seconds_per_step": {k: mean["iteration"][k] for k in STEP_COST_KINDS if k in mean["iteration"]},
        "seconds_per_item": {k: mean["item"][k] for k in STEP_COST_KINDS if k in mean["item"]},
        "measured_by": {k: measured_by[k] for k in STEP_COST_KINDS if k in measured_by},
    }


def write_step_costs(path: str | Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> Path:
    """Write :func:`step_costs` of ``rows`` atomically to ``path`` (e.g. ``<output>/step_costs.json``)."""
    from ..atomic import atomic_write_json

    return atomic_write_json(Path(path), step_costs(rows, meta))
