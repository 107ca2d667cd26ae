"""Notebook 01: build every DISTS-style metric of the paper, train its weights, evaluate it on FR-IQA.

Each metric is two runs of the study's graph (:mod:`asymlib.pipeline`): ``metric_train`` (alpha/beta) and
``metric_eval`` (quality predictions on the benchmarks); statistics with bootstrap intervals are computed here
from the predictions. A finished run is reused: re-executing the notebook with the same settings trains
nothing.

Profiles:
- paper: alpha/beta trained on KADID-10K, evaluated on TID2013, Liu13, Ma17, TQD (global protocol, PLCC
  after the 4-parameter logistic), ImageNet backbones (VGG-16-R: random backbone, random fixed weights).
- smoke: the synthetic benchmark on the embedded corpus (labels are distortion levels, not MOS); the
  references are split 60/20/20 (train+val fit the weights, test is reported), within-group protocol.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Profile
from ..metrics.registry import get_metric_preset
from ..pipeline import StudyContext
from ..pipeline.declare import metric_train_spec
from ..pipeline.metric_runs import SYNTHETIC_LABEL, metric_results

__all__ = ["run_metric_study", "SYNTHETIC_LABEL"]


def run_metric_study(profile: Profile, output_dir: str | Path, metrics: list[str] | None = None,
                     train_missing: bool = True, progress: bool = True) -> pd.DataFrame:
    """Every metric of the profile (or ``metrics``) in the study output folder ``output_dir``; finished runs are
    reused, missing ones trained unless ``train_missing`` is False. Returns all tidy rows."""
    keys = list(metrics or profile.metric_study.metrics)
    for k in keys:
        get_metric_preset(k)  # fail fast on an unknown name, before any work
    ctx = StudyContext(profile, output_dir, progress=progress)
    out = [metric_results(ctx, ctx.graph.add(metric_train_spec(profile, k)), train_missing) for k in keys]
    return pd.concat(out, ignore_index=True)
