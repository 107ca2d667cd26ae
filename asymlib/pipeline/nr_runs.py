"""NR-IQA runs (``nr_iqa``): a backbone + pooled MLP head fine-tuned on a seeded 6:2:2 split by content group.

The run folder holds ``split_{train,val,test}.csv`` (item indices, content groups and labels), ``best.pt`` (best
validation SRCC), ``log.jsonl``, ``test_predictions.csv`` and ``results.csv`` (training outcome). Test
statistics with bootstrap intervals are computed from ``test_predictions.csv`` when tables are built
(:func:`nr_statistics`), so the bootstrap count is not part of the run.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_csv
from ..config import Profile
from ..errors import ConfigError
from ..iqa.nr import SyntheticNRDataset, create_nr_model, predict_nr, train_nr_model
from ..iqa.splits import group_split
from ..iqa.stats import evaluate_iqa
from ..provenance import provenance
from ..runs import Run, read_csv_file
from .execute import StudyContext, register_executor
from .graph import RunSpec
from .metric_runs import backbone_weights

__all__ = ["load_nr_benchmark", "nr_statistics", "SYNTHETIC_NR_NOTE"]

SYNTHETIC_NR_NOTE = ("labels are synthetic distortion levels (-level), not MOS; SRCC/PLCC within reference x "
                     "distortion groups")


def load_nr_benchmark(name: str, profile: Profile) -> Any:
    """NR set ``name``: ``synthetic`` (the profile's embedded synthetic benchmark, labels -level) or a
    registered NR dataset read from ``data_root/<name>`` (``kadid10k``, ``koniq10k``)."""
    if name == "synthetic":
        from ..iqa.synthetic import SyntheticFRBenchmark

        sc = profile.metric_study.synthetic
        return SyntheticNRDataset(SyntheticFRBenchmark(image_names=sc.images, distortions=sc.distortions,
                                                       levels=sc.levels, crop=sc.crop, seed=sc.seed))
    from ..iqa.datasets import create_nr_dataset

    return create_nr_dataset(name, profile.resolved_data_root() / name)


def _protocol_groups(data: Any) -> np.ndarray | None:
    rec = data.records
    return rec["protocol_group"].astype(str).to_numpy() if "protocol_group" in rec.columns else None


def _write_splits(run_dir: Path, data: Any, parts: Sequence[np.ndarray]) -> None:
    rec = data.records
    for name, idx in zip(("train", "val", "test"), parts):
        cols = [c for c in ("image", "group", "protocol_group", "score") if c in rec.columns]
        df = rec.iloc[idx][cols].copy()
        df.insert(0, "index", idx)
        atomic_write_csv(df, run_dir / f"split_{name}.csv")


@register_executor("nr_iqa")
def _train_nr(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    import time

    idt, profile = spec.identity, ctx.profile
    tc = profile.gan_init.nr_train
    fractions = tuple(profile.gan_init.split_fractions)
    t0 = time.perf_counter()
    data = ctx.cached(("nr-data", idt["dataset"]), lambda: load_nr_benchmark(idt["dataset"], profile))
    parts = group_split(data.records["group"].astype(str).to_numpy(), fractions, seed=profile.seed)
    if any(len(p) == 0 for p in parts):
        raise ConfigError(f"{idt['dataset']}: the {fractions} split of {data.records['group'].nunique()} content "
                          f"groups leaves an empty part")
    train, val, test = (data.subset(p) for p in parts)
    model = create_nr_model(idt["backbone"], weights=backbone_weights(ctx, spec), seed=profile.seed, head=tc.head,
                            hidden=tc.hidden, dropout=tc.dropout, finetune_backbone=tc.finetune_backbone)
    run.start(provenance(profile.name, profile.seed, weights={idt["backbone"]: model.weights_source},
                         dataset=idt["dataset"], initialization=idt["initialization"], run_key=spec.key))
    _write_splits(run.path, data, parts)
    res = train_nr_model(model, train, val, tc, seed=profile.seed, val_groups=_protocol_groups(val),
                         device=profile.device, log=run.log, checkpoint_path=run.path / "best.pt",
                         desc=f"{model.backbone.display} ({idt['initialization']}): {idt['dataset']}")
    pred = predict_nr(model, test, batch_size=tc.eval_batch_size, resize_short_side=tc.resize_short_side,
                      device=profile.device, desc="test")
    groups = _protocol_groups(test)
    score = test.records["score"].to_numpy(dtype=np.float64)
    oriented = score if getattr(test, "higher_is_better", True) else -score
    atomic_write_csv(pd.DataFrame({"index": parts[2], "prediction": pred, "score": score, "target": oriented,
                                   "group": groups if groups is not None else ""}),
                     run.path / "test_predictions.csv")
    row = {"weights_source": model.weights_source, "best_iteration": res.best_iteration,
           "best_val_srcc": res.best_val_srcc, "n_train": len(train), "n_val": len(val), "n_test": len(test),
           "grouped": groups is not None, "seconds": round(time.perf_counter() - t0, 2)}
    run.write_results([row])
    run.finish("finished", seconds=row["seconds"], best_iteration=res.best_iteration)


def nr_statistics(run_dir: Path, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Test SRCC/KRCC/PLCC with bootstrap 95% intervals of a finished NR run, plus its training outcome."""
    info = read_csv_file(run_dir / "results.csv").iloc[0].to_dict()
    pred = read_csv_file(run_dir / "test_predictions.csv", keep_default_na=False)
    groups = pred["group"].astype(str).to_numpy() if bool(info.get("grouped")) else None
    stats = evaluate_iqa(pred["prediction"].to_numpy(dtype=float), pred["target"].to_numpy(dtype=float),
                         pred_higher_is_better=True, target_higher_is_better=True, groups=groups,
                         n_resamples=n_bootstrap, seed=seed)
    return {**info, **{k: stats[k] for k in ("srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high",
                                             "plcc", "plcc_low", "plcc_high", "n", "protocol")}}
