"""Notebook 02: perceptual optimization of SwinIR with every metric, scored by NR-IQA (paper Sec. 3.1, Table 1).

Pipeline (every step is a cached run under ``<output>/runs``; a finished run is reused):

1. ``sr/stage1-l1-<hash>``: L1-only pre-training of the generator.
2. ``sr/<setting>-<metric>-<hash>``: stage 2 from stage 1's EMA weights for every setting x metric of the
   grid (Eq. 1 with the setting's loss weights; relativistic vanilla VGG-16 discriminator when adversarial).
   A run that collapses is recorded ``collapsed`` and the grid carries on; its cells stay empty.
3. ``calibration/<evaluator>-<hash>``: the Appendix D fit of every available NR evaluator (``rescaling.json``).
4. ``sr_eval/<column>-<hash>``: validation LR images super-resolved by a run's EMA model (or the HR images
   themselves for the ``Ref.`` column), saved as PNG, scored by every available evaluator (8-bit images, as
   stored files would be).

Table 1 is then assembled from the scores: rows evaluator x setting, columns the metrics, ``Std.`` (population
standard deviation across the metric columns), ``L1`` (the stage-1 model) and ``Ref.`` (the HR images).
Scores of NR evaluators are rescaled to [1, 100]; full-reference ones (PSNR, SSIM) stay raw.

The perceptual metric's alpha/beta come from notebook 01's run of the same profile (``alpha_beta="trained"``
requires it; ``"trained_if_available"`` falls back to the seeded initialization and says so in every table).

Command line (one training run, e.g. under torchrun on several GPUs)::

    torchrun --nproc_per_node 4 -m asymlib.experiments.sr_optimization --profile paper --output study_output/paper \\
        --setting rec+perceptual+adv --metric vgg16      # or --stage1
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_write_csv
from ..config import Profile, get_profile
from ..errors import ConfigError, DatasetError, WeightsUnavailableError
from ..imageio import load_image, save_image
from ..metrics.registry import PAPER_METRICS, get_metric_preset, metric_from_preset
from ..provenance import provenance
from ..reporting import load_paper_table, profile_banner
from ..runs import Run, config_hash, open_run, to_jsonable
from ..sr.config import SR_SETTINGS, SRStudyConfig, get_setting, sr_config_for
from ..sr.evaluators import (Evaluator, EvaluatorStatus, Rescaling, calibrate, create_evaluator, evaluator_status,
                             get_evaluator_spec, koniq_calibration_set, score_images, synthetic_calibration_set)
from ..sr.models import create_sr_model
from ..sr.resize import imresize
from ..sr.trainer import TrainResult, dist_info, init_distributed, load_generator_weights, train_sr

__all__ = ["SRData", "SRStudyResult", "comparison_widget", "load_sr_data", "plot_table1", "run_sr_study",
           "run_training", "study_config", "super_resolve", "table1", "table1_comparison", "main"]

L1_COLUMN, REF_COLUMN, STD_COLUMN, AVERAGE_ROW = "L1", "Ref.", "Std.", "Average"


def study_config(profile: Profile, metrics: Sequence[str] | None = None, settings: Sequence[str] | None = None,
                 evaluators: Sequence[str] | None = None, iterations: int | None = None,
                 stage1_iterations: int | None = None) -> SRStudyConfig:
    """The profile's SR study preset with the notebook's overrides (``None`` keeps the preset's value)."""
    cfg = sr_config_for(profile)
    ov: dict[str, Any] = {}
    if metrics is not None:
        ov["metrics"] = tuple(metrics)
    if settings is not None:
        ov["settings"] = tuple(settings)
    if evaluators is not None:
        ov["evaluators"] = tuple(evaluators)
    if iterations is not None:
        ov["stage2.iterations"] = int(iterations)
        ov["stage2.milestones"] = tuple(m for m in cfg.stage2.milestones if m < int(iterations))
    if stage1_iterations is not None:
        ov["stage1.iterations"] = int(stage1_iterations)
        ov["stage1.milestones"] = tuple(m for m in cfg.stage1.milestones if m < int(stage1_iterations))
    cfg = cfg.replace(**ov) if ov else cfg
    for key in cfg.metrics:
        get_metric_preset(key)
    for name in cfg.evaluators:
        get_evaluator_spec(name)
    return cfg


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class SRData:
    """Training source (folder or ``{name: HR}``) and validation pairs ``{name: (lr, hr)}``."""

    train: Path | dict[str, torch.Tensor]
    val: dict[str, tuple[torch.Tensor, torch.Tensor]]
    description: str

    def sample_lr(self, n: int) -> torch.Tensor | None:
        lrs = [lr for lr, _ in list(self.val.values())[:n]]
        if not lrs or any(lr.shape != lrs[0].shape for lr in lrs):
            lrs = lrs[:1]
        return torch.stack(lrs) if lrs else None


def _prepare_val(hr: torch.Tensor, crop: int | None, scale: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    _, h, w = hr.shape
    if crop is not None:
        if h < crop or w < crop:
            raise DatasetError(f"validation image {name!r} is {w}x{h} (WxH), smaller than the {crop}-px crop")
        top, left = (h - crop) // 2, (w - crop) // 2
        hr = hr[:, top:top + crop, left:left + crop]
    else:
        hr = hr[:, : h - h % scale, : w - w % scale]
    hr = hr.contiguous()
    lr = imresize(hr, 1.0 / scale).clamp(0, 1).mul(255).round().div(255)  # stored 8-bit LR, as in DIV2K
    return lr, hr


def load_sr_data(cfg: SRStudyConfig, profile: Profile) -> SRData:
    """Training source and validation pairs of the study; every image problem raises a named DatasetError."""
    d, scale = cfg.data, cfg.scale
    if d.source == "embedded":
        from ..data.corpus import embedded_images

        train_names = [n.strip() for n in d.train.split(",") if n.strip()]
        val_names = [n.strip() for n in d.val.split(",") if n.strip()]
        train: Path | dict[str, torch.Tensor] = embedded_images(train_names)
        val_hr = embedded_images(val_names)
        desc = f"embedded corpus: train {train_names}, validation {val_names}"
    else:
        from ..sr.data import IMAGE_EXTENSIONS

        root = profile.resolved_data_root()
        train = root / d.train
        val_dir = root / d.val
        if not val_dir.is_dir():
            raise DatasetError(f"validation HR folder not found: {val_dir}")
        files = sorted(p for p in val_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"no validation HR images in {val_dir}")
        files = files[: d.max_val_images] if d.max_val_images else files
        val_hr = {p.stem: load_image(p, strict_mode=True) for p in files}
        desc = f"{train} (train), {val_dir} ({len(val_hr)} validation images)"
    if d.max_val_images:
        val_hr = dict(list(val_hr.items())[: d.max_val_images])
    val = {name: _prepare_val(img, d.val_crop, scale, name) for name, img in val_hr.items()}
    return SRData(train, val, desc)


# ----------------------------------------------------------------------------------------------
# Training runs
# ----------------------------------------------------------------------------------------------
def _device(profile: Profile) -> torch.device:
    if profile.device != "auto":
        return torch.device(profile.device)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _stage1_cfg(profile: Profile, cfg: SRStudyConfig) -> dict[str, Any]:
    return {"study": "sr_optimization", "stage": "stage1", "profile": profile.name, "seed": profile.seed,
            "sr_model": cfg.sr_model, "sr_preset": cfg.sr_preset, "train": cfg.stage1,
            "data": {"source": cfg.data.source, "train": cfg.data.train},
            "data_root": None if cfg.data.source == "embedded" else str(profile.resolved_data_root())}


def _metric_weights_file(key: str, profile: Profile, runs_dir: Path) -> Path | None:
    """``metric_weights.pt`` of notebook 01's finished run of this metric and profile, if there is one."""
    from . import metric_construction

    run_cfg = metric_construction._run_cfg_for(key, profile)  # the hash notebook 01 files its run under
    path = Path(runs_dir) / "metric" / f"{key}-{config_hash(run_cfg)}"
    ok = (path / "status.json").is_file() and (path / "metric_weights.pt").is_file()
    return path / "metric_weights.pt" if ok else None


def _alpha_beta_source(key: str, profile: Profile, cfg: SRStudyConfig, runs_dir: Path) -> tuple[Path | None, str]:
    if cfg.alpha_beta == "init":
        return None, f"initial (seed={profile.seed})"
    path = _metric_weights_file(key, profile, runs_dir)
    if path is not None:
        return path, f"notebook 01 run {path.parent.name}"
    if cfg.alpha_beta == "trained":
        raise WeightsUnavailableError(
            f"no finished notebook-01 run of metric {key!r} for profile {profile.name!r} under {runs_dir}/metric; "
            f"run notebook 01 first (or set alpha_beta='trained_if_available')")
    return None, f"initial (seed={profile.seed}); notebook 01 not run"


def _stage2_cfg(profile: Profile, cfg: SRStudyConfig, setting: str, metric: str, stage1_run: str,
                alpha_beta: str) -> dict[str, Any]:
    base = _stage1_cfg(profile, cfg)
    preset = get_metric_preset(metric)
    return {**base, "stage": "stage2", "setting": setting, "metric": metric,
            "metric_backbone_weights": "random" if preset.weights == "random" else profile.weights,
            "alpha_beta": alpha_beta, "init_from": stage1_run,
            "train": get_setting(setting).apply(cfg.stage2)}


def _new_generator(cfg: SRStudyConfig, profile: Profile) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(profile.seed)
        return create_sr_model(cfg.sr_model, scale=cfg.scale, preset=cfg.sr_preset)


class _MetricCache:
    """Metrics built once per study (backbones are large) and shared by the runs that use them."""

    def __init__(self, profile: Profile, cfg: SRStudyConfig, runs_dir: Path):
        self.profile, self.cfg, self.runs_dir = profile, cfg, runs_dir
        self._metrics: dict[str, torch.nn.Module] = {}

    def source(self, key: str) -> tuple[Path | None, str]:
        return _alpha_beta_source(key, self.profile, self.cfg, self.runs_dir)

    def get(self, key: str) -> torch.nn.Module:
        if key not in self._metrics:
            path, _ = self.source(key)
            m = metric_from_preset(key, weights=self.profile.weights, seed=self.profile.seed)
            if path is not None:
                m.load_weights_file(path)
            self._metrics[key] = m.requires_grad_(False).eval()
        return self._metrics[key]


def _train_stage1(profile: Profile, cfg: SRStudyConfig, runs_dir: Path, data: SRData | None,
                  progress: bool) -> tuple[Run, TrainResult]:
    run = open_run(runs_dir, "sr", "stage1-l1", _stage1_cfg(profile, cfg))
    if run.finished:
        return run, TrainResult.from_run(run)
    data = data or load_sr_data(cfg, profile)
    res = train_sr(run, cfg.stage1, "stage1 (L1)", generator=_new_generator(cfg, profile),
                   train_data=data.train, seed=profile.seed, device=profile.device,
                   provenance=provenance(profile.name, profile.seed, stage="stage1", sr_preset=cfg.sr_preset),
                   sample_lr=data.sample_lr(cfg.data.sample_images), progress=progress)
    return run, res


def _train_stage2(profile: Profile, cfg: SRStudyConfig, runs_dir: Path, setting: str, metric: str,
                  stage1: Run, metrics: _MetricCache, data: SRData | None, progress: bool
                  ) -> tuple[Run, TrainResult]:
    _, ab_label = metrics.source(metric)
    run_cfg = _stage2_cfg(profile, cfg, setting, metric, stage1.path.name, ab_label)
    run = open_run(runs_dir, "sr", f"{setting}-{metric}", run_cfg)
    tcfg = get_setting(setting).apply(cfg.stage2)
    if run.finished:
        return run, TrainResult.from_run(run)
    data = data or load_sr_data(cfg, profile)
    m = metrics.get(metric)
    prov = provenance(profile.name, profile.seed,
                      weights={get_metric_preset(metric).backbone: m.backbone.weights_source,
                               "discriminator": "random init" if tcfg.adversarial else "none"},
                      stage="stage2", setting=setting, metric=metric, alpha_beta=ab_label,
                      init_from=stage1.path.name)
    res = train_sr(run, tcfg, f"{setting} / {PAPER_METRICS.get(metric, get_metric_preset(metric)).display}",
                   generator=_new_generator(cfg, profile), train_data=data.train, metric=m,
                   init_from=stage1.path / "generator_ema.pt", seed=profile.seed, device=profile.device,
                   provenance=prov, sample_lr=data.sample_lr(cfg.data.sample_images), progress=progress)
    return run, res


def run_training(profile: Profile, runs_dir: str | Path, cfg: SRStudyConfig | None = None,
                 settings: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """Stage 1, then every requested setting x metric (finished runs are reused).

    Returns one row per training run: ``stage, setting, metric, status, step, reason, run_dir``.
    """
    cfg = cfg or sr_config_for(profile)
    runs_dir = Path(runs_dir)
    settings = list(settings if settings is not None else cfg.settings)
    metrics_keys = list(metrics if metrics is not None else cfg.metrics)
    cache = _MetricCache(profile, cfg, runs_dir)
    data: SRData | None = None

    def data_once() -> SRData:
        nonlocal data
        data = data or load_sr_data(cfg, profile)
        return data

    rows = []
    s1_run = open_run(runs_dir, "sr", "stage1-l1", _stage1_cfg(profile, cfg))
    s1_run, s1 = _train_stage1(profile, cfg, runs_dir, None if s1_run.finished else data_once(), progress)
    rows.append({"stage": "stage1", "setting": None, "metric": None, "status": s1.status, "step": s1.step,
                 "reason": s1.reason, "run_dir": str(s1_run.path)})
    if s1.status != "finished":
        raise RuntimeError(f"stage 1 did not finish ({s1.status}: {s1.reason}); stage 2 needs its weights")
    for setting in settings:
        for key in metrics_keys:
            _, ab = cache.source(key)
            probe = open_run(runs_dir, "sr", f"{setting}-{key}",
                             _stage2_cfg(profile, cfg, setting, key, s1_run.path.name, ab))
            run, res = _train_stage2(profile, cfg, runs_dir, setting, key, s1_run, cache,
                                     None if probe.finished else data_once(), progress)
            rows.append({"stage": "stage2", "setting": setting, "metric": key, "status": res.status,
                         "step": res.step, "reason": res.reason, "run_dir": str(run.path)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Inference and evaluation
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: torch.Tensor, scale: int, tile: int | None = None,
                  overlap: int = 16, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(3, h, w)`` LR in [0, 1] -> ``(3, scale*h, scale*w)`` SR clamped to [0, 1].

    With ``tile``, overlapping ``tile x tile`` LR tiles are super-resolved separately and averaged where they
    overlap (bounded memory for 2K images).
    """
    x = lr[None].to(device)
    _, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return model(x).float().clamp(0, 1)[0].cpu()
    step = max(1, tile - overlap)

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        return sorted(set(list(range(0, n - tile, step)) + [n - tile]))

    out = torch.zeros(1, 3, h * scale, w * scale, device=device)
    weight = torch.zeros_like(out)
    for top in starts(h):
        for left in starts(w):
            patch = x[:, :, top:top + min(tile, h), left:left + min(tile, w)]
            y = model(patch).float()
            out[:, :, top * scale:top * scale + y.shape[2], left * scale:left * scale + y.shape[3]] += y
            weight[:, :, top * scale:top * scale + y.shape[2], left * scale:left * scale + y.shape[3]] += 1
    return (out / weight).clamp(0, 1)[0].cpu()


def _to_8bit(img: torch.Tensor) -> torch.Tensor:
    return img.clamp(0, 1).mul(255).round().div(255)


class _EvaluatorPool:
    """Evaluators built once, with their availability and Appendix D rescaling."""

    def __init__(self, profile: Profile, cfg: SRStudyConfig, runs_dir: Path):
        self.profile, self.cfg, self.runs_dir = profile, cfg, runs_dir
        self.device = _device(profile)
        self.status: dict[str, EvaluatorStatus] = {}
        self._built: dict[str, Evaluator] = {}
        self.rescalings: dict[str, Rescaling] = {}
        for name in cfg.evaluators:
            st = evaluator_status(name)
            if st.available:
                try:
                    self._built[name] = create_evaluator(name, self.device)
                except WeightsUnavailableError as exc:
                    st = EvaluatorStatus(st.name, st.display, st.kind, False, str(exc))
            self.status[name] = st

    @property
    def available(self) -> list[str]:
        return [n for n, st in self.status.items() if st.available]

    def __getitem__(self, name: str) -> Evaluator:
        return self._built[name]

    def availability(self) -> pd.DataFrame:
        rows = [{"evaluator": st.display, "name": st.name, "kind": st.kind.upper(),
                 "paper": get_evaluator_spec(st.name).paper,
                 "status": "available" if st.available else f"unavailable: {st.reason}",
                 "source": getattr(self._built.get(st.name), "source", "")} for st in self.status.values()]
        return pd.DataFrame(rows)

    def calibrate_all(self) -> dict[str, Rescaling]:
        cal = self.cfg.calibration
        calib_set = None
        for name in self.available:
            ev = self._built[name]
            if ev.kind != "nr":
                continue
            run_cfg = {"study": "sr_optimization", "kind": "calibration", "evaluator": name,
                       "calibration": cal, "profile": self.profile.name,
                       "data_root": None if cal.dataset == "synthetic" else str(self.profile.resolved_data_root())}
            run = open_run(self.runs_dir, "calibration", name, run_cfg, tensorboard=False)
            if not run.finished:
                if calib_set is None:
                    calib_set = (synthetic_calibration_set(cal.images, cal.distortions, cal.crop, cal.seed)
                                 if cal.dataset == "synthetic"
                                 else koniq_calibration_set(self.profile.resolved_data_root() / "koniq10k",
                                                            cal.max_images, cal.seed))
                run.start(provenance(self.profile.name, self.profile.seed, evaluator=name,
                                     calibration_set=calib_set.name))
                resc = calibrate(ev, calib_set, batch_size=self.cfg.eval_batch_size)
                resc.save(run.path / "rescaling.json")
                run.finish("finished", success=resc.success, message=resc.message, srcc=resc.srcc)
            self.rescalings[name] = Rescaling.load(run.path / "rescaling.json")
        return self.rescalings


def _evaluate_column(pool: _EvaluatorPool, data: SRData, cfg: SRStudyConfig, profile: Profile, runs_dir: Path,
                     column: str, setting: str | None, metric: str | None, source: Run | None) -> pd.DataFrame:
    """Super-resolve the validation images with ``source``'s EMA model (HR itself when ``None``) and score them."""
    d = cfg.data
    run_cfg = {"study": "sr_optimization", "kind": "evaluation", "profile": profile.name,
               "source": source.path.name if source is not None else "HR",
               "val": {"source": d.source, "val": d.val, "val_crop": d.val_crop, "max_val_images": d.max_val_images,
                       "tile": d.tile, "tile_overlap": d.tile_overlap},
               "evaluators": pool.available}
    label = "HR" if source is None else source.path.name.rsplit("-", 1)[0]
    run = open_run(runs_dir, "sr_eval", label, run_cfg, tensorboard=False)
    if not run.finished:
        run.start(provenance(profile.name, profile.seed, source=run_cfg["source"], evaluators=pool.available))
        outputs: dict[str, torch.Tensor] = {}
        if source is None:
            outputs = {name: hr for name, (_, hr) in data.val.items()}
        else:
            model = create_sr_model(cfg.sr_model, scale=cfg.scale, preset=cfg.sr_preset)
            load_generator_weights(model, source.path / "generator_ema.pt")
            model = model.to(pool.device).eval()
            for name, (lr, _) in data.val.items():
                outputs[name] = _to_8bit(super_resolve(model, lr, cfg.scale, d.tile, d.tile_overlap, pool.device))
        for name, img in outputs.items():
            save_image(img, run.path / "images" / f"{name}.png")
        names = list(outputs)
        rows = []
        for ev_name in pool.available:
            ev = pool[ev_name]
            refs = [data.val[n][1] for n in names] if ev.kind == "fr" else None
            raw = score_images(ev, [outputs[n] for n in names], refs, batch_size=cfg.eval_batch_size)
            rows += [{"evaluator": ev_name, "image": n, "raw": float(r)} for n, r in zip(names, raw)]
        run.write_results(pd.DataFrame(rows, columns=["evaluator", "image", "raw"]))
        run.finish("finished", images=len(names))
    df = run.read_results()
    df["column"], df["setting"], df["metric"], df["images_dir"] = column, setting, metric, str(run.path / "images")
    return df


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------
@dataclass
class SRStudyResult:
    """Everything notebook 02 shows.

    Attributes:
        profile, config, banner: how the numbers were produced.
        runs: one row per training run (``stage, setting, metric, status, step, reason, run_dir``).
        scores: tidy per-image scores: ``column`` (metric display, ``L1`` or ``Ref.``), ``setting``, ``metric``,
            ``evaluator`` (display), ``kind``, ``image``, ``raw``, ``score`` (rescaled NR / raw FR).
        table: our Table 1 in tidy form (``setting, evaluator, column, score``), see :func:`table1`.
        availability: evaluator, kind, status (``available`` / ``unavailable: <why>``), source.
        rescalings: the Appendix D fit of each available NR evaluator.
        alpha_beta: metric key -> where its alpha/beta came from.
    """

    profile: str
    weights: str
    config: SRStudyConfig
    runs: pd.DataFrame
    scores: pd.DataFrame
    table: pd.DataFrame
    availability: pd.DataFrame
    rescalings: dict[str, Rescaling]
    alpha_beta: dict[str, str]
    data_description: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)


def _display(metric: str) -> str:
    return get_metric_preset(metric).display


def table1(scores: pd.DataFrame, settings: Sequence[str], metrics: Sequence[str],
           evaluators: Sequence[str]) -> pd.DataFrame:
    """Our Table 1 in tidy form: ``setting`` (key), ``evaluator`` (display or ``Average``), ``column``, ``score``.

    ``score`` is the mean over validation images; ``Std.`` is the population standard deviation over the metric
    columns (NaN cells of collapsed runs left out); ``Average`` averages the NR evaluators column by column.
    """
    cols = [_display(m) for m in metrics]
    rows = []
    for setting in settings:
        per_eval: dict[str, dict[str, float]] = {}
        kinds: dict[str, str] = {}
        for ev in evaluators:
            spec = get_evaluator_spec(ev)
            sub = scores[scores["evaluator"] == spec.display]
            if sub.empty:
                continue
            kinds[spec.display] = spec.kind
            vals = {}
            for c in cols:
                s = sub[(sub["column"] == c) & (sub["setting"] == setting)]["score"]
                vals[c] = float(s.mean()) if len(s) else np.nan
            for c in (L1_COLUMN, REF_COLUMN):
                s = sub[sub["column"] == c]["score"]
                vals[c] = float(s.mean()) if len(s) else np.nan
            per_eval[spec.display] = vals
        nr = [e for e in per_eval if kinds[e] == "nr"]
        if nr:
            per_eval[AVERAGE_ROW] = {c: float(np.nanmean([per_eval[e][c] for e in nr]))
                                     if any(np.isfinite(per_eval[e][c]) for e in nr) else np.nan
                                     for c in cols + [L1_COLUMN, REF_COLUMN]}
        for ev_display, vals in per_eval.items():
            metric_vals = np.array([vals[c] for c in cols], dtype=float)
            finite = metric_vals[np.isfinite(metric_vals)]
            std = float(np.std(finite)) if finite.size else np.nan
            for c in cols:
                rows.append({"setting": setting, "evaluator": ev_display, "column": c, "score": vals[c]})
            rows.append({"setting": setting, "evaluator": ev_display, "column": STD_COLUMN, "score": std})
            for c in (L1_COLUMN, REF_COLUMN):
                rows.append({"setting": setting, "evaluator": ev_display, "column": c, "score": vals[c]})
    return pd.DataFrame(rows, columns=["setting", "evaluator", "column", "score"])


def table1_comparison(table: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 1 layout with the paper's numbers beside ours.

    Rows: (setting title, evaluator); columns: (Table 1 column, source) with source ``paper`` or ``ours
    (<profile>)``. Paper cells exist only for the paper's evaluators (MANIQA, LIQE, DeQA, VQ-R1, Average);
    smoke numbers are never in a column that could be read as the paper's.
    """
    paper = load_paper_table(1)
    label_to_key = {s.paper_label: s.key for s in SR_SETTINGS.values()}
    paper = paper.assign(setting=paper["setting"].map(label_to_key), source="paper",
                         evaluator=paper["nr_iqa"]).drop(columns="nr_iqa")
    ours = table.assign(source=f"ours ({profile})")
    ours = ours[ours["setting"].notna()]
    keep = set(ours["setting"])
    both = pd.concat([paper[paper["setting"].isin(keep)], ours], ignore_index=True)
    column_order = list(dict.fromkeys(list(ours["column"]) + list(paper["column"])))
    wide = both.pivot_table(index=["setting", "evaluator"], columns=["column", "source"], values="score",
                            aggfunc="first", dropna=False)
    ev_order = list(dict.fromkeys(list(ours["evaluator"]) + list(paper["evaluator"])))
    setting_order = [s for s in SR_SETTINGS if s in keep]
    wide = wide.reindex(pd.MultiIndex.from_product([setting_order, ev_order], names=["setting", "evaluator"]))
    wide = wide.dropna(how="all")
    sources = ["paper", f"ours ({profile})"]
    wide = wide.reindex(columns=pd.MultiIndex.from_product([column_order, sources], names=["column", "source"]))
    wide.index = wide.index.set_levels([SR_SETTINGS[s].title for s in wide.index.levels[0]], level=0)
    return wide


def run_sr_study(profile: Profile, output_dir: str | Path, metrics: Sequence[str] | None = None,
                 settings: Sequence[str] | None = None, evaluators: Sequence[str] | None = None,
                 iterations: int | None = None, stage1_iterations: int | None = None,
                 progress: bool = True) -> SRStudyResult:
    """Train (or reuse) every run of the grid, score the validation outputs and build Table 1.

    ``output_dir`` holds ``runs/``; the notebook passes ``ctx.runs_dir``'s parent. Overrides that are ``None``
    keep the profile's preset.
    """
    t0 = time.perf_counter()
    cfg = study_config(profile, metrics, settings, evaluators, iterations, stage1_iterations)
    runs_dir = Path(output_dir) / "runs"
    runs = run_training(profile, runs_dir, cfg, progress=progress)
    data = load_sr_data(cfg, profile)
    pool = _EvaluatorPool(profile, cfg, runs_dir)
    rescalings = pool.calibrate_all()

    frames = [_evaluate_column(pool, data, cfg, profile, runs_dir, REF_COLUMN, None, None, None)]
    stage1 = Run(Path(runs.iloc[0]["run_dir"]), {})
    frames.append(_evaluate_column(pool, data, cfg, profile, runs_dir, L1_COLUMN, None, None, stage1))
    for r in runs.iloc[1:].itertuples():
        if r.status != "finished":
            continue  # collapsed: its cells stay empty
        frames.append(_evaluate_column(pool, data, cfg, profile, runs_dir, _display(r.metric), r.setting, r.metric,
                                       Run(Path(r.run_dir), {})))
    scores = pd.concat(frames, ignore_index=True)
    if scores.empty:
        scores = pd.DataFrame(columns=["evaluator", "image", "raw", "column", "setting", "metric", "images_dir"])
    kinds = {n: get_evaluator_spec(n).kind for n in cfg.evaluators}
    scores["kind"] = scores["evaluator"].map(kinds)
    scores["score"] = [rescalings[e](r)[0] if e in rescalings else r
                       for e, r in zip(scores["evaluator"], scores["raw"])]
    scores["evaluator"] = scores["evaluator"].map(lambda n: get_evaluator_spec(n).display)
    scores["profile"] = profile.name
    atomic_write_csv(scores, Path(output_dir) / "tables" / "sr_nriqa_scores.csv")

    table = table1(scores, cfg.settings, cfg.metrics, pool.available)
    cache = _MetricCache(profile, cfg, runs_dir)
    alpha_beta = {k: cache.source(k)[1] for k in cfg.metrics}
    return SRStudyResult(profile.name, profile.weights, cfg, runs, scores, table, pool.availability(), rescalings,
                         alpha_beta, data.description, round(time.perf_counter() - t0, 1))


# ----------------------------------------------------------------------------------------------
# Figures and widgets
# ----------------------------------------------------------------------------------------------
def plot_table1(result: SRStudyResult, evaluator: str | None = None):
    """Heat maps settings x columns: the paper's ``Average`` rows beside ours (rescaled NR ``Average``, or the
    first available evaluator). Returns the matplotlib figure."""
    import textwrap

    import matplotlib.pyplot as plt
    import seaborn as sns

    table = result.table
    ev = evaluator or (AVERAGE_ROW if (table["evaluator"] == AVERAGE_ROW).any() else
                       (table["evaluator"].iloc[0] if len(table) else AVERAGE_ROW))
    label_to_key = {s.paper_label: s.key for s in SR_SETTINGS.values()}
    paper = load_paper_table(1)
    paper = paper[paper["nr_iqa"] == AVERAGE_ROW].assign(setting=lambda d: d["setting"].map(label_to_key))
    cols = [c for c in dict.fromkeys(paper["column"]) if c != STD_COLUMN]
    ours = table[(table["evaluator"] == ev) & (table["column"] != STD_COLUMN)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for ax, df, title in ((axes[0], paper, "paper: Average of MANIQA/LIQE/DeQA/VQ-R1"),
                          (axes[1], ours, f"ours ({result.profile}): {ev}")):
        wide = df.pivot_table(index="setting", columns="column", values="score", aggfunc="first", dropna=False)
        wide = wide.reindex(index=[s for s in SR_SETTINGS if s in wide.index],
                            columns=[c for c in cols + list(wide.columns) if c in wide.columns])
        wide = wide.loc[:, ~wide.columns.duplicated()]
        wide.index = [SR_SETTINGS[s].title.replace(" and ", " + ") for s in wide.index]
        if wide.empty:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center")
            ax.set_axis_off()
        else:
            sns.heatmap(wide.astype(float), annot=True, fmt=".1f", cmap="viridis", ax=ax, cbar=False,
                        annot_kws={"fontsize": 7})
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
    banner = textwrap.fill(result.banner, 130)
    fig.suptitle(f"Table 1: NR-IQA of SR outputs per objective (rescaled to [1, 100])\n{banner}", fontsize=9,
                 color="#b00020" if result.profile == "smoke" else "black")
    fig.tight_layout()
    return fig


def comparison_widget(result: SRStudyResult):
    """ipywidgets viewer: pick an image, a setting and a metric; shows HR, the L1 model and that run's output."""
    import ipywidgets as widgets

    sc = result.scores.drop_duplicates(["column", "setting", "images_dir"])
    dirs = {(r.column, r.setting if isinstance(r.setting, str) else None): Path(r.images_dir) for r in sc.itertuples()}
    images = sorted({p.stem for d in dirs.values() for p in d.glob("*.png")})
    settings = [s for s in result.config.settings]
    metrics = [_display(m) for m in result.config.metrics]
    img_dd = widgets.Dropdown(options=images, description="image")
    set_dd = widgets.Dropdown(options=settings, description="setting")
    met_dd = widgets.Dropdown(options=metrics, description="metric")
    panes = [widgets.Image(format="png", width=256) for _ in range(3)]
    labels = [widgets.Label(t) for t in ("HR (Ref.)", "L1 (stage 1)", "stage 2")]

    def png(path: Path | None) -> bytes:
        if path is not None and path.is_file():
            return path.read_bytes()
        buf = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, format="PNG")
        return buf.getvalue()

    def refresh(*_: Any) -> None:
        name = f"{img_dd.value}.png"
        sources = [dirs.get((REF_COLUMN, None)), dirs.get((L1_COLUMN, None)), dirs.get((met_dd.value, set_dd.value))]
        for pane, d in zip(panes, sources):
            pane.value = png(d / name if d is not None else None)
        labels[2].value = f"{set_dd.value} / {met_dd.value}" + ("" if sources[2] else " (no output: collapsed?)")

    for w in (img_dd, set_dd, met_dd):
        w.observe(refresh, names="value")
    if images:
        refresh()
    columns = [widgets.VBox([lab, pane]) for lab, pane in zip(labels, panes)]
    return widgets.VBox([widgets.HBox([img_dd, set_dd, met_dd]), widgets.HBox(columns)])


# ----------------------------------------------------------------------------------------------
# Command line: one training run (DDP under torchrun)
# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.experiments.sr_optimization",
                                 description="Train stage 1 or one stage-2 run of the SR study (torchrun-ready).")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--output", type=Path, required=True, help="study output folder (runs go to <output>/runs)")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--stage1", action="store_true")
    group.add_argument("--setting", choices=list(SR_SETTINGS))
    ap.add_argument("--metric", default=None)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    if args.setting and not args.metric:
        ap.error("--setting needs --metric")
    info = init_distributed()
    profile = get_profile(args.profile, **({"seed": args.seed} if args.seed is not None else {}))
    cfg = study_config(profile, iterations=args.iterations)
    runs_dir = args.output / "runs"
    s1_run, s1 = _train_stage1(profile, cfg, runs_dir, None, progress=info.is_main)
    if not args.stage1:
        if s1.status != "finished":
            print(f"stage 1 is {s1.status}: {s1.reason}", file=sys.stderr)
            return 1
        run, res = _train_stage2(profile, cfg, runs_dir, args.setting, args.metric, s1_run,
                                 _MetricCache(profile, cfg, runs_dir), None, progress=info.is_main)
        s1_run, s1 = run, res
    if info.is_main:
        print(f"{s1_run.path}: {s1.status} at step {s1.step} {s1.reason}".strip())
    if info.enabled:
        torch.distributed.destroy_process_group()
    return 0 if s1.status in ("finished", "collapsed") else 1


if __name__ == "__main__":
    sys.exit(main())
