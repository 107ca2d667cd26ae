"""Per-step costs behind the plan's GPU-hour estimates.

A cost table maps a run's ``cost`` row (:attr:`~asymlib.pipeline.graph.RunSpec.cost`) to seconds per optimizer
step, or per run for rows without a training loop (``eval``). The plan reads, in order: the file named by
``$ASYMLIB_STEP_COSTS``, ``<output>/step_costs.json`` (``python -m asymlib.bench --write-step-costs`` writes
one from the rows it measures), else :data:`DEFAULT_STEP_COSTS`.

:data:`DEFAULT_STEP_COSTS` are assumptions, not measurements: one paper-size stage-2 step (SwinIR classical x4,
batch 32 of 64x64 LR patches, VGG-16 DISTS loss, relativistic discriminator) is taken as about 0.2 s on one
H100-class GPU under bf16, i.e. roughly a GPU-day per 400K-iteration run; the other rows are scaled from it by
the work they do. The plan prints which source it used.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["StepCosts", "DEFAULT_STEP_COSTS", "load_step_costs"]

DEFAULT_STEP_COSTS: dict[str, float] = {
    "sr_stage1": 0.08,      # generator forward/backward + L1 only
    "sr_stage2": 0.14,      # + the perceptual metric forward/backward
    "sr_stage2_adv": 0.21,  # + discriminator forward/backward (real and fake)
    "metric_train": 0.002,  # alpha/beta on cached texture/structure terms
    "nr_train": 0.12,       # backbone + head fine-tuning, batch 32 of 224-px crops
    "eval": 300.0,          # per run: super-resolve or predict a validation set and score it
}


@dataclass(frozen=True)
class StepCosts:
    """Seconds per step (or per run for ``eval``) and where they come from."""

    seconds: dict[str, float]
    source: str

    def gpu_hours(self, cost: str, iterations: int) -> float:
        """Estimated GPU-hours of a run with cost row ``cost`` and ``iterations`` steps."""
        if not cost:
            return 0.0
        per = float(self.seconds.get(cost, 0.0))
        return (per if cost == "eval" else per * max(int(iterations), 0)) / 3600.0


def load_step_costs(output_dir: str | Path | None = None) -> StepCosts:
    """The step-cost table in force for ``output_dir`` (see the module docstring)."""
    candidates = [os.environ.get("ASYMLIB_STEP_COSTS")]
    if output_dir is not None:
        candidates.append(str(Path(output_dir) / "step_costs.json"))
    for cand in candidates:
        if cand and Path(cand).is_file():
            try:
                data: dict[str, Any] = json.loads(Path(cand).read_text())
            except ValueError as exc:
                from ..errors import ConfigError

                raise ConfigError(f"step-cost file {cand} is not valid JSON: {exc}") from exc
            table = {**DEFAULT_STEP_COSTS, **{k: float(v) for k, v in data.get("seconds_per_step", {}).items()}}
            where = data.get("device", "unknown device")
            return StepCosts(table, f"measured ({cand}, {where}, {data.get('date', 'undated')}); "
                                    f"missing rows from the default assumptions")
    return StepCosts(dict(DEFAULT_STEP_COSTS), "default assumptions (not measured; see asymlib.pipeline.costs)")
