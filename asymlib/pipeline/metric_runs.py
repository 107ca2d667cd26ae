"""Metric runs: build a DISTS-style metric, train its alpha/beta (``metric_train``), predict quality on the FR
benchmarks (``metric_eval``).

Benchmarks of the profile:
- paper: alpha/beta trained on KADID-10K, evaluated on TID2013, Liu13, Ma17, TQD (global protocol).
- smoke: the synthetic benchmark on the embedded corpus (labels are distortion levels, not MOS); the
  references are split 60/20/20 (train+val fit the weights, test is reported), within-group protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_torch_save
from ..config import Profile
from ..errors import CheckpointError
from ..iqa.splits import group_split
from ..iqa.stats import evaluate_iqa
from ..iqa.train import PairTerms, compute_terms, metric_scores, train_metric_weights
from ..metrics.registry import get_metric_preset, metric_from_preset
from ..provenance import provenance
from ..runs import Run
from .execute import StudyContext, register_executor
from .graph import RunSpec

__all__ = ["BenchmarkTerms", "load_benchmarks", "build_metric", "trained_metric", "metric_statistics",
           "SYNTHETIC_LABEL", "SYNTHETIC_POOLED_LABEL", "METRIC_WEIGHTS_FILE", "metric_results", "backbone_weights", "metric_source", "run_metric"]

SYNTHETIC_LABEL = "Synthetic levels"
# The same predictions correlated over all items at once: distortion types of equal level differ in how much
# they change an image, so metrics disagree here while every one of them orders the levels of one group.
SYNTHETIC_POOLED_LABEL = "synthetic levels, pooled"
METRIC_WEIGHTS_FILE = "metric_weights.pt"
BACKBONE_EXPORT_NAME = "discriminator_backbone.pt"


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


def backbone_weights(ctx: StudyContext, spec: RunSpec) -> str:
    """Backbone weights argument of a ``metric_train`` or ``nr_iqa`` run: ``random``, ``imagenet``, a given file,
    or the backbone export of the discriminator of its ``sr_train`` dependency (``gan``)."""
    if spec.params.get("weights_path"):
        return str(spec.params["weights_path"])
    w = spec.identity["weights"]
    if w != "gan":
        return w
    source = ctx.dep_path(spec, "sr_train")
    if source is None:
        raise CheckpointError(f"run {spec.key} has GAN weights but no SR run to read them from")
    from .sr_runs import export_discriminator_backbone

    path = export_discriminator_backbone(source)
    if path is None:
        raise CheckpointError(f"SR run {source} holds no discriminator weights to export (needed by {spec.key})")
    return str(path)


def build_metric(ctx: StudyContext, spec: RunSpec) -> torch.nn.Module:
    """The metric of a ``metric_train`` run at its initialization, to be trained (cached per run in ``ctx``)."""
    return ctx.cached(("metric-to-train", spec.key), lambda: metric_from_preset(
        spec.identity["metric"], weights=backbone_weights(ctx, spec), seed=ctx.profile.seed))


def trained_metric(ctx: StudyContext, train_key: str) -> torch.nn.Module:
    """The metric of the finished ``metric_train`` run ``train_key`` with its alpha/beta; frozen, eval mode."""
    def load() -> torch.nn.Module:
        spec = ctx.graph[train_key]
        m = metric_from_preset(spec.identity["metric"], weights=backbone_weights(ctx, spec), seed=ctx.profile.seed)
        m.load_weights_file(spec.path(ctx.output_dir) / METRIC_WEIGHTS_FILE)
        return m.requires_grad_(False).eval()
    return ctx.cached(("metric", train_key), load)


def _metric_dependency(ctx: StudyContext, spec: RunSpec) -> str | None:
    return next((d for d in spec.deps if ctx.graph[d].task == "metric_train"), None)


def metric_source(ctx: StudyContext, spec: RunSpec) -> str:
    """Where the alpha/beta of the metric a run uses come from (:func:`run_metric`), for tables and provenance."""
    dep = _metric_dependency(ctx, spec)
    return f"metric run {dep}" if dep else f"initial (seed={ctx.profile.seed})"


def run_metric(ctx: StudyContext, spec: RunSpec) -> torch.nn.Module:
    """The metric a stage-2 or analysis run uses (``identity["metric"]``): its ``metric_train`` dependency's
    trained metric, or the seeded initialization with the profile's backbone weights. Frozen, eval mode."""
    dep = _metric_dependency(ctx, spec)
    if dep is not None:
        return trained_metric(ctx, dep)
    key = spec.identity["metric"]
    return ctx.cached(("metric-init", key), lambda: metric_from_preset(
        key, weights=ctx.profile.weights, seed=ctx.profile.seed).requires_grad_(False).eval())


def _benchmarks(ctx: StudyContext) -> tuple[BenchmarkTerms | None, list[BenchmarkTerms]]:
    return ctx.cached("fr-benchmarks", lambda: load_benchmarks(ctx.profile))


def _terms(ctx: StudyContext, train_key: str, metric: Any, bench: BenchmarkTerms) -> PairTerms:
    """Texture/structure terms of a benchmark (independent of alpha/beta, so shared by training and evaluation)."""
    ms = ctx.profile.metric_study
    return ctx.cached(("terms", train_key, bench.label), lambda: compute_terms(
        metric, bench.dataset, batch_size=ms.eval_batch_size, device=ctx.profile.device, use_groups=bench.grouped,
        desc=f"{metric.backbone.display}: {bench.label}"))


@register_executor("metric_train")
def _train(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    key = spec.identity["metric"]
    preset = get_metric_preset(key)
    metric = build_metric(ctx, spec)
    run.start(provenance(ctx.profile.name, ctx.profile.seed, weights={preset.backbone: metric.backbone.weights_source},
                         metric=key, run_key=spec.key))
    train_bench, _ = _benchmarks(ctx) if preset.trainable_weights else (None, [])
    trained = False
    if preset.trainable_weights and train_bench is not None:
        terms = _terms(ctx, spec.key, metric, train_bench)
        if train_bench.train_indices is not None:
            terms = terms.subset(train_bench.train_indices)
        train_metric_weights(metric, terms, ctx.profile.metric_study.train, seed=ctx.profile.seed, log=run.log,
                             desc=f"{preset.display}: alpha/beta")
        trained = True
    atomic_torch_save({**metric.weights_state(), "metric": key, "weights_source": metric.backbone.weights_source,
                       "profile": ctx.profile.name, "run_key": spec.key}, run.path / METRIC_WEIGHTS_FILE)
    ctx._cache[("metric", spec.key)] = metric.requires_grad_(False).eval()
    run.finish("finished", weights_source=metric.backbone.weights_source,
               alpha_beta="trained" if trained else "random, fixed")


@register_executor("metric_eval")
def _evaluate(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    train_key = spec.deps[0]
    metric = trained_metric(ctx, train_key)
    run.start(provenance(ctx.profile.name, ctx.profile.seed, metric=spec.identity.get("metric"), run_key=spec.key,
                         weights={"metric": metric.backbone.weights_source}))
    frames = []
    for bench in _benchmarks(ctx)[1]:
        terms = _terms(ctx, train_key, metric, bench)
        idx = bench.eval_indices if bench.eval_indices is not None else np.arange(len(terms.quality))
        if bench.eval_indices is not None:
            terms = terms.subset(bench.eval_indices)
        scores = metric_scores(metric, terms)
        groups = terms.groups if terms.groups is not None else [None] * len(idx)
        frames.append(pd.DataFrame({"benchmark": bench.label, "grouped": bench.grouped, "index": idx,
                                    "distance": np.asarray(scores, dtype=float),
                                    "quality": terms.quality.numpy().astype(float), "group": list(groups)}))
    run.write_results(pd.concat(frames, ignore_index=True))
    run.finish("finished", items=int(sum(len(f) for f in frames)))


def _statistics_row(label: str, df: pd.DataFrame, grouped: bool, n_bootstrap: int, seed: int) -> dict[str, Any]:
    stats = evaluate_iqa(df["distance"].to_numpy(), df["quality"].to_numpy(), pred_higher_is_better=False,
                         target_higher_is_better=True,
                         groups=df["group"].astype(str).to_numpy() if grouped else None,
                         n_resamples=n_bootstrap, seed=seed)
    return {"benchmark": label, **{k: stats[k] for k in (
        "srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high", "plcc", "plcc_low", "plcc_high",
        "n", "protocol")}}


def metric_statistics(predictions: pd.DataFrame, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """SRCC/KRCC/PLCC with bootstrap 95% intervals per benchmark of a ``metric_eval`` run's predictions, plus an
    ``Average`` row.

    A grouped benchmark (the synthetic levels, whose labels order only the items of one reference x distortion
    group) gives two rows: the within-group protocol under its own label, and the same items pooled
    (global protocol, levels as the label) under ``"<label>, pooled"``. Within groups every reasonable metric
    reaches SRCC 1, so the ``Average`` (the mean over benchmarks, with intervals only when it averages one)
    leaves the within-group rows out; its ``protocol`` (``"mean over <benchmarks>"``) names what it averages.
    """
    rows = []
    for label, df in predictions.groupby("benchmark", sort=False):
        grouped = bool(df["grouped"].iloc[0])
        rows.append({**_statistics_row(label, df, grouped, n_bootstrap, seed), "averaged": not grouped})
        if grouped:
            pooled = SYNTHETIC_POOLED_LABEL if label == SYNTHETIC_LABEL else f"{label}, pooled"
            rows.append({**_statistics_row(pooled, df, False, n_bootstrap, seed), "averaged": True})
    out = pd.DataFrame(rows)
    used = out[out["averaged"]]  # every benchmark gives one averaged row: its global or its pooled one
    avg: dict[str, Any] = {"benchmark": "Average", "n": int(used["n"].sum()),
                           "protocol": "mean over " + ", ".join(map(str, used["benchmark"]))}
    for col in ("srcc", "krcc", "plcc"):
        avg[col] = float(used[col].mean())
        avg[f"{col}_low"] = float(used[f"{col}_low"].iloc[0]) if len(used) == 1 else np.nan
        avg[f"{col}_high"] = float(used[f"{col}_high"].iloc[0]) if len(used) == 1 else np.nan
    return pd.concat([out.drop(columns="averaged"), pd.DataFrame([avg])], ignore_index=True)


def metric_results(ctx: StudyContext, train_key: str, train_missing: bool = True) -> pd.DataFrame:
    """Tidy rows (one per benchmark plus ``Average``) of the metric run ``train_key`` and its evaluation run.

    With ``train_missing=False`` an unfinished run gives one ``Average`` row with NaN statistics and
    ``status="pending"`` instead of being trained.
    """
    from .declare import metric_eval_spec
    from .execute import ensure

    train = ctx.graph[train_key]
    eval_key = ctx.graph.add(metric_eval_spec(ctx.profile, train))
    preset = get_metric_preset(train.identity["metric"])
    head = {"metric": train.identity["metric"], "display": preset.display, "backbone": preset.backbone}
    tail = {"profile": ctx.profile.name, "seed": ctx.profile.seed, "run_id": train.key, "run_dir": train.relpath()}
    if not train_missing and not (ctx.finished(train_key) and ctx.finished(eval_key)):
        return pd.DataFrame([{**head, "benchmark": "Average", "srcc": np.nan, "krcc": np.nan, "plcc": np.nan,
                              "weights_source": train.identity["weights"], "alpha_beta": "", **tail,
                              "status": "pending"}])
    train_run = ensure(ctx, train_key)
    eval_run = ensure(ctx, eval_key)
    ms = ctx.profile.metric_study
    df = metric_statistics(eval_run.read_results(), ms.n_bootstrap, ctx.profile.seed)
    st = train_run.status or {}
    for i, (k, v) in enumerate(head.items()):
        df.insert(i, k, v)
    df["weights_source"] = st.get("weights_source", train.identity["weights"])
    df["alpha_beta"] = st.get("alpha_beta", "")
    for k, v in tail.items():
        df[k] = v
    df["status"] = "finished"
    return df
