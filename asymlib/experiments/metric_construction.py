"""Notebook 01: build every DISTS-style metric of the paper, train its weights, evaluate it on FR-IQA.

One run directory per metric (keyed by its configuration). A finished run is reused: re-executing the
notebook with the same parameters recomputes nothing.

Profiles:
- paper: alpha/beta trained on KADID-10K, evaluated on TID2013, Liu13, Ma17, TQD (global protocol, PLCC
  after the 4-parameter logistic), ImageNet backbones (VGG-16-R: random backbone, random fixed weights).
- smoke: the synthetic benchmark on the embedded corpus (labels are distortion levels, not MOS); the
  references are split 60/20/20 (train+val fit the weights, test is reported), within-group protocol.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_torch_save
from ..config import Profile
from ..iqa.splits import group_split
from ..iqa.stats import evaluate_iqa
from ..iqa.train import PairTerms, compute_terms, metric_scores, train_metric_weights
from ..metrics.registry import get_metric_preset, metric_from_preset
from ..provenance import provenance
from ..runs import Run, open_run

__all__ = ["BenchmarkTerms", "load_benchmarks", "run_metric", "run_metric_study", "SYNTHETIC_LABEL"]

SYNTHETIC_LABEL = "Synthetic levels"


@dataclass
class BenchmarkTerms:
    """A benchmark to compute terms on: dataset + which items train/evaluate + protocol."""

    label: str
    dataset: Any
    grouped: bool
    eval_indices: np.ndarray | None = None  # None: every item
    train_indices: np.ndarray | None = None


def load_benchmarks(profile: Profile) -> tuple[BenchmarkTerms | None, list[BenchmarkTerms]]:
    """(training set, evaluation sets) of the profile; datasets are validated when built."""
    cfg = profile.metric_study
    if cfg.train_set == "synthetic" or "synthetic" in cfg.eval_sets:
        from ..iqa.synthetic import SyntheticFRBenchmark

        sc = cfg.synthetic
        bench = SyntheticFRBenchmark(image_names=sc.images, distortions=sc.distortions, levels=sc.levels,
                                     crop=sc.crop, seed=sc.seed)
        train_idx, val_idx, test_idx = group_split(bench.records["ref"], (0.6, 0.2, 0.2), seed=sc.seed)
        synth = BenchmarkTerms(SYNTHETIC_LABEL, bench, grouped=True, eval_indices=test_idx,
                               train_indices=np.sort(np.concatenate([train_idx, val_idx])))
        return synth, [synth]
    from ..iqa.datasets import create_fr_dataset

    root = profile.resolved_data_root()
    train = create_fr_dataset(cfg.train_set, root / cfg.train_set)
    evals = [create_fr_dataset(name, root / name) for name in cfg.eval_sets]
    return (BenchmarkTerms(train.name, train, grouped=False),
            [BenchmarkTerms(ds.name, ds, grouped=False) for ds in evals])


def _terms_for(metric, bench: BenchmarkTerms, profile: Profile, cache: dict) -> PairTerms:
    key = id(bench)
    if key not in cache:
        cache[key] = compute_terms(metric, bench.dataset, batch_size=profile.metric_study.eval_batch_size,
                                   device=profile.device, use_groups=bench.grouped,
                                   desc=f"{metric.backbone.display}: {bench.label}")
    return cache[key]


def run_metric(key: str, profile: Profile, output_dir: str | Path,
               benchmarks: tuple[BenchmarkTerms | None, list[BenchmarkTerms]] | None = None) -> pd.DataFrame:
    """Build, train and evaluate one metric preset (``vgg16``, ``vgg16_r``...); returns tidy result rows."""
    cfg = profile.metric_study
    preset = get_metric_preset(key)
    run_cfg = _run_cfg_for(key, profile)
    weights = run_cfg["weights"]
    run = open_run(output_dir, "metric", key, run_cfg)
    if run.finished:
        return run.read_results()
    train_bench, eval_benches = benchmarks if benchmarks is not None else load_benchmarks(profile)
    t0 = time.perf_counter()
    metric = metric_from_preset(key, weights=weights, seed=profile.seed)
    run.start(provenance(profile.name, profile.seed, weights={preset.backbone: metric.backbone.weights_source},
                         metric=key))
    cache: dict = {}
    trained = False
    if preset.trainable_weights and train_bench is not None:
        terms = _terms_for(metric, train_bench, profile, cache)
        if train_bench.train_indices is not None:
            terms = terms.subset(train_bench.train_indices)
        train_metric_weights(metric, terms, cfg.train, seed=profile.seed, log=run.log,
                             desc=f"{preset.display}: alpha/beta")
        trained = True
    atomic_torch_save({**metric.weights_state(), "metric": key, "weights_source": metric.backbone.weights_source,
                       "profile": profile.name}, run.path / "metric_weights.pt")
    rows = []
    for bench in eval_benches:
        terms = _terms_for(metric, bench, profile, cache)
        if bench.eval_indices is not None:
            terms = terms.subset(bench.eval_indices)
        scores = metric_scores(metric, terms)
        stats = evaluate_iqa(scores, terms.quality.numpy(), pred_higher_is_better=False,
                             target_higher_is_better=True, groups=terms.groups, n_resamples=cfg.n_bootstrap,
                             seed=profile.seed)
        rows.append({"benchmark": bench.label, **{k: stats[k] for k in (
            "srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high", "plcc", "plcc_low", "plcc_high",
            "n", "protocol")}})
    df = pd.DataFrame(rows)
    avg = {"benchmark": "Average", "protocol": "mean over benchmarks", "n": int(df["n"].sum())}
    for col in ("srcc", "krcc", "plcc"):
        avg[col] = float(df[col].mean())
        avg[f"{col}_low"] = float(df[f"{col}_low"].mean()) if len(df) == 1 else np.nan
        avg[f"{col}_high"] = float(df[f"{col}_high"].mean()) if len(df) == 1 else np.nan
    df = pd.concat([df, pd.DataFrame([avg])], ignore_index=True)
    df.insert(0, "metric", key)
    df.insert(1, "display", preset.display)
    df.insert(2, "backbone", preset.backbone)
    df["weights_source"] = metric.backbone.weights_source
    df["alpha_beta"] = "trained" if trained else "random, fixed"
    df["profile"] = profile.name
    df["seed"] = profile.seed
    df["seconds"] = round(time.perf_counter() - t0, 2)
    run.write_results(df)
    run.finish("finished", seconds=df["seconds"].iloc[0])
    return run.read_results()


def run_metric_study(profile: Profile, output_dir: str | Path, metrics: list[str] | None = None) -> pd.DataFrame:
    """Every metric of the profile (or ``metrics``); finished runs are reused. Returns all tidy rows."""
    keys = list(metrics or profile.metric_study.metrics)
    for k in keys:
        get_metric_preset(k)  # fail fast on an unknown name, before any work
    benchmarks = None
    out = []
    for key in keys:
        if benchmarks is None and not open_run(output_dir, "metric", key, _run_cfg_for(key, profile)).finished:
            benchmarks = load_benchmarks(profile)  # built once, and only when something must be computed
        out.append(run_metric(key, profile, output_dir, benchmarks))
    return pd.concat(out, ignore_index=True)


def _run_cfg_for(key: str, profile: Profile) -> dict[str, Any]:
    preset = get_metric_preset(key)
    weights = "random" if preset.weights == "random" else profile.weights
    return {"study": "metric_construction", "profile": profile.name, "metric": key, "backbone": preset.backbone,
            "weights": weights, "trainable_weights": preset.trainable_weights, "seed": profile.seed,
            "metric_study": profile.metric_study,
            "data_root": None if profile.is_smoke else str(profile.resolved_data_root())}
