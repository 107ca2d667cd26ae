"""Training and evaluation of DISTS-style metrics on FR-IQA data (backbone frozen).

The texture/structure terms ``l, s`` of a pair do not depend on ``alpha``/``beta``, and the backbone is
frozen, so with deterministic inputs (no random crops) they are computed once per pair
(:func:`compute_terms`) and every training step is a cheap weighted sum: the same optimization the paper
runs, without re-running the backbone 5000 times.

Loss (the DISTS repository publishes no training code): on a batch of predicted qualities ``q = -D`` and
subjective scores ``m`` (oriented so that higher is better),

    L = (1 - PLCC(q, m)) / 2  +  mean_{(i, j): m_i > m_j} softplus(-(z(q)_i - z(q)_j))

the first term fits the linear relation to MOS, the second (a RankNet-style pairwise logistic loss on
batch-standardized predictions) fits the ordering. When labels are only comparable inside groups (the
synthetic benchmark's distortion levels), both terms use within-group pairs only and the PLCC term is
dropped.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from ..progress import tqdm

from ..errors import ConfigError
from ..typecheck import check_fields
from ..metrics.dists import DISTSMetric
from ..runs import run_of


@dataclass(frozen=True)
class MetricTrainConfig:
    """Training of alpha/beta with the backbone frozen (paper Appendix B).

    Paper: Adam, lr 1e-4 halved every 1000 iterations, 5000 iterations, batch 32, stage-0 weights
    projected onto [0.02, 1] after each update. Loss: ``(1 - PLCC)/2`` on the batch plus a pairwise
    logistic ranking loss (see :func:`asymlib.iqa.train.ranking_plcc_loss`).
    """

    iterations: int = 5000
    batch_size: int = 32
    lr: float = 1e-4
    lr_halve_every: int = 1000
    stage0_bounds: tuple[float, float] = (0.02, 1.0)
    log_every: int = 50

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("iterations", "batch_size", "lr_halve_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MetricTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"MetricTrainConfig.lr must be > 0, got {self.lr}")

__all__ = ["MetricTrainConfig", "PairTerms", "compute_terms", "ranking_plcc_loss", "metric_optimizer",
           "metric_train_step", "train_metric_weights", "metric_scores", "resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class PairTerms:
    """Cached ``l`` and ``s`` terms of a dataset: ``(N, sum C_i)`` float32 each, plus labels.

    ``quality`` is the subjective score oriented so that higher is better; ``groups`` (or None) tells
    which items are comparable with each other.
    """

    l: torch.Tensor
    s: torch.Tensor
    quality: torch.Tensor
    groups: np.ndarray | None

    def subset(self, idx: np.ndarray | list[int]) -> "PairTerms":
        idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        g = None if self.groups is None else self.groups[np.asarray(idx)]
        return PairTerms(self.l[idx_t], self.s[idx_t], self.quality[idx_t], g)

    def __len__(self) -> int:
        return int(self.l.shape[0])


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "dist": torch.stack([it["dist"] for it in items]),
        "ref": torch.stack([it["ref"] for it in items]),
        "score": torch.stack([torch.as_tensor(it["score"], dtype=torch.float32) for it in items]),
        "index": torch.tensor([int(it["index"]) for it in items]),
    }


class _RefFeatureCache:
    """Backbone features of recently seen reference images (datasets list many distortions per reference,
    usually consecutively), so each reference goes through the backbone once instead of once per pair."""

    def __init__(self, max_items: int = 8):
        self.max_items = max_items
        self._store: "OrderedDict[str, list[torch.Tensor]]" = OrderedDict()

    def get(self, key: str) -> list[torch.Tensor] | None:
        if key in self._store:
            self._store.move_to_end(key)
            return self._store[key]
        return None

    def put(self, key: str, feats: list[torch.Tensor]) -> None:
        self._store[key] = feats
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)


def _ref_keys(dataset: Dataset) -> list[str] | None:
    """Reference ids per item when the references are deterministic (no random transform), else None."""
    records = getattr(dataset, "records", None)
    if records is None or "ref" not in records or getattr(dataset, "transform", None) is not None:
        return None
    return [str(r) for r in records["ref"]]


@torch.no_grad()
def compute_terms(metric: DISTSMetric, dataset: Dataset, batch_size: int = 16, device: str = "auto",
                  use_groups: bool = False, desc: str | None = None, num_workers: int = 0,
                  amp_dtype: torch.dtype | None = None) -> PairTerms:
    """One backbone pass over every distorted image (and once per distinct reference) of ``dataset``.

    Items of different sizes are fine with ``batch_size=1``. ``amp_dtype=torch.bfloat16`` runs the backbone
    under autocast on CUDA (statistics stay float32).
    """
    dev = resolve_device(device)
    metric = metric.to(dev).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate,
                        num_workers=num_workers)
    keys = _ref_keys(dataset)
    cache = _RefFeatureCache()
    ls, ss, scores = [], [], []
    name = desc or f"{metric.backbone.display}: features"
    for batch in tqdm(loader, desc=name, leave=False):
        x = batch["dist"].to(dev, non_blocking=True)
        y = batch["ref"].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            if keys is None:
                l, s = metric.pair_terms(x, y)
            else:
                x, y = metric.check_inputs(x, y)
                batch_keys = [keys[int(i)] for i in batch["index"]]
                seen: dict[str, list[torch.Tensor]] = {}
                for j, k in enumerate(batch_keys):
                    if k not in seen:
                        feats = cache.get(k)
                        if feats is None:
                            feats = [f.float() for f in metric.features(y[j:j + 1])]
                            cache.put(k, feats)
                        seen[k] = feats
                ref_feats = [torch.cat(fs) for fs in zip(*(seen[k] for k in batch_keys))]
                l, s = metric.similarity_terms(metric.features(x), ref_feats)
        ls.append(l.float().cpu())
        ss.append(s.float().cpu())
        scores.append(batch["score"])
    score = torch.cat(scores)
    quality = score if getattr(dataset, "higher_is_better", True) else -score
    groups = None
    if use_groups:
        groups = np.asarray(dataset.records["group"].astype(str))
    return PairTerms(torch.cat(ls), torch.cat(ss), quality, groups)


def _zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std(unbiased=False) + 1e-8)


def ranking_plcc_loss(quality_pred: torch.Tensor, quality_true: torch.Tensor,
                      groups: np.ndarray | None = None) -> torch.Tensor:
    """Batch loss on predicted vs. subjective quality (both higher = better); shapes ``(B,)``.

    Returns ``(1 - PLCC)/2 + pairwise logistic ranking loss``; with ``groups`` only pairs inside a group
    count and the PLCC term is omitted (labels of different groups are not comparable).
    """
    zq = _zscore(quality_pred)
    diff_pred = zq[:, None] - zq[None, :]
    better = quality_true[:, None] > quality_true[None, :]
    if groups is not None:
        g = np.asarray(groups)
        same = torch.as_tensor(g[:, None] == g[None, :], device=quality_pred.device)
        better = better & same
    if better.any():
        rank = torch.nn.functional.softplus(-diff_pred[better]).mean()
    else:
        rank = quality_pred.sum() * 0.0
    if groups is not None:
        return rank
    plcc = (zq * _zscore(quality_true)).mean()
    return (1.0 - plcc) / 2.0 + rank


def _sample_batch(rng: np.random.Generator, n: int, batch_size: int, groups: np.ndarray | None) -> np.ndarray:
    if groups is None:
        return rng.choice(n, size=min(batch_size, n), replace=False)
    # Whole groups, so that every sampled item has comparable partners in the batch.
    uniq = np.unique(groups)
    rng.shuffle(uniq)
    picked: list[int] = []
    for g in uniq:
        picked.extend(np.flatnonzero(groups == g).tolist())
        if len(picked) >= batch_size:
            break
    return np.asarray(picked[: max(batch_size, 2)])


def metric_optimizer(metric: DISTSMetric, cfg: MetricTrainConfig
                     ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.StepLR]:
    """The optimizer and schedule of :func:`train_metric_weights`: Adam over ``metric.alpha`` and ``metric.beta``
    at ``cfg.lr``, halved every ``cfg.lr_halve_every`` scheduler steps."""
    opt = torch.optim.Adam([metric.alpha, metric.beta], lr=cfg.lr)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_halve_every, gamma=0.5)


def metric_train_step(metric: DISTSMetric, terms: PairTerms, rng: np.random.Generator, opt: torch.optim.Optimizer,
                      sched: torch.optim.lr_scheduler.LRScheduler, cfg: MetricTrainConfig) -> torch.Tensor:
    """One iteration of :func:`train_metric_weights` on cached terms.

    Samples a batch of ``cfg.batch_size`` pairs of ``terms`` with ``rng`` (whole groups when ``terms.groups`` is
    set), computes the predicted quality ``-D`` ``(B,)`` from the terms, the :func:`ranking_plcc_loss`, takes the
    optimizer and scheduler step, then projects the weights (>= 0, stage-0 weights in ``cfg.stage0_bounds``).

    Args:
        metric: on the CPU, like ``terms``.
        opt, sched: from :func:`metric_optimizer`.

    Returns:
        The batch loss before the update (0-d, float32, detached).
    """
    sub = terms.subset(_sample_batch(rng, len(terms), cfg.batch_size, terms.groups))
    loss = ranking_plcc_loss(-metric.distance_from_terms(sub.l, sub.s), sub.quality, sub.groups)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    metric.project_weights_(cfg.stage0_bounds)
    return loss.detach()


def train_metric_weights(metric: DISTSMetric, terms: PairTerms, cfg: MetricTrainConfig, seed: int = 0,
                         log: Callable[..., None] | None = None, desc: str | None = None) -> list[dict[str, float]]:
    """Fit ``alpha``/``beta`` on cached terms with Adam, lr halved every ``cfg.lr_halve_every`` steps, and
    the projection (weights >= 0, stage-0 weights in ``cfg.stage0_bounds``) after every update.

    Args:
        log: called as ``log(step, loss=..., lr=...)`` every ``cfg.log_every`` steps (e.g. ``Run.log``).
            Training always starts at step 1 (there is no resume), so when ``log`` is a run's ``log`` the rows of
            an interrupted earlier attempt are dropped first (:meth:`asymlib.runs.Run.truncate_log`).

    Returns:
        The logged rows.
    """
    if not metric.alpha.requires_grad:
        raise ValueError(f"metric over {metric.backbone.name!r} has fixed alpha/beta; nothing to train")
    if (run := run_of(log)) is not None:
        run.truncate_log(0)
    rng = np.random.default_rng(seed)
    metric = metric.cpu()
    opt, sched = metric_optimizer(metric, cfg)
    rows: list[dict[str, float]] = []
    bar = tqdm(range(1, cfg.iterations + 1), desc=desc or f"{metric.backbone.display}: alpha/beta", leave=False)
    for step in bar:
        loss = metric_train_step(metric, terms, rng, opt, sched, cfg)
        if step % cfg.log_every == 0 or step == cfg.iterations:
            row = {"loss": loss.item(), "lr": float(opt.param_groups[0]["lr"])}
            rows.append({"step": step, **row})
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if log is not None:
                log(step, **row)
    return rows


@torch.no_grad()
def metric_scores(metric: DISTSMetric, terms: PairTerms) -> np.ndarray:
    """Distances ``(N,)`` of cached pairs under the metric's current ``alpha``/``beta`` (lower = better)."""
    return metric.cpu().distance_from_terms(terms.l, terms.s).numpy()
