"""Notebook 03: do GAN discriminator features transfer to IQA? (paper Sec. 3.3, Table 2, Fig. 5, Fig. 8, App. C)

Each backbone (VGG-16, ResNet-50, DINOv2) is initialized three ways and used for IQA:

* ``random``: the seeded random initialization (paper footnote 3: no pretrained weights);
* ``gan``: the backbone of a discriminator trained adversarially in SR (exported in the
  ``asymlib.backbone.v1`` format, see :func:`gan_backbone_checkpoint`);
* ``imagenet``: ImageNet-pretrained weights from the local cache.

FR-IQA (Table 2): a DISTS-style metric over the (frozen) backbone, trained and evaluated exactly as in
notebook 01 (:func:`asymlib.experiments.metric_construction.run_metric`: same alpha/beta training, same
benchmarks and protocol). The runs are notebook 01's run directories (``runs/metric/``); only the backbone
weights differ, so a run notebook 01 already did (e.g. ImageNet VGG-16) is reused.

NR-IQA (Fig. 5 KADID-10K, Fig. 8 KonIQ-10k): backbone + pooled MLP head (:mod:`asymlib.iqa.nr`), fine-tuned
on a seeded 6:2:2 split by content group (the split is saved as CSV files in each run), best validation SRCC
selects the checkpoint, SRCC/PLCC on test with bootstrap 95% intervals (``runs/nr_iqa/``).

Profiles:
- paper: TID2013/Liu13/Ma17/TQD (FR), KADID-10K and KonIQ-10k (NR); DINOv2 ViT-B/14; ImageNet weights are
  required.
- smoke: the synthetic benchmark of the embedded corpus for FR and NR (labels are synthetic distortion
  levels; NR labels = -level, evaluated within reference x distortion groups), DINOv2 ViT-S/14, a few steps.
  ImageNet rows are reported as "imagenet (not available offline)" unless the weights are in the local cache;
  random weights are never substituted.

GAN checkpoints come from the adversarial SR runs of notebooks 02 and 04 (``runs/sr/*/``): the run's backbone
export ``discriminator_backbone.pt``, written from its ``discriminator.pt`` when missing. When no run has a
discriminator of the wanted backbone, the run notebook 04 trains for that cell of Table 3 is trained here
(:func:`asymlib.experiments.discriminator_ablation.run_discriminator_study` over the SR trainer, same run folder,
so notebook 04 reuses it). Given export files can replace the search (``gan_checkpoints``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_write_csv
from ..backbones import create_feature_extractor, get_backbone_spec
from ..config import Profile, _replace_nested
from ..errors import AsymlibError, CheckpointError, ConfigError, UnknownNameError, WeightsUnavailableError
from ..iqa.nr import (NR_TRAIN_PRESETS, NRTrainConfig, SyntheticNRDataset, create_nr_model, evaluate_nr,
                      predict_nr, train_nr_model)
from ..iqa.splits import group_split
from ..provenance import provenance
from ..reporting import load_paper_table, profile_banner
from ..runs import open_run
from .metric_construction import SYNTHETIC_LABEL, BenchmarkTerms, load_benchmarks, run_metric

__all__ = [
    "GAN_INIT_PRESETS",
    "INITIALIZATIONS",
    "GanCheckpoint",
    "GanInitConfig",
    "GanInitResults",
    "GanSourceConfig",
    "GanUnavailableError",
    "InitSource",
    "find_gan_backbones",
    "gan_backbone_checkpoint",
    "materialize_gan_checkpoint",
    "gan_init_config",
    "load_nr_benchmark",
    "nr_table",
    "plot_fr_initialization",
    "plot_nr_initialization",
    "resolve_gan_checkpoint",
    "resolve_initializations",
    "run_fr_initialization",
    "run_gan_init_study",
    "run_nr",
    "run_nr_initialization",
    "table2_comparison",
    "train_gan_discriminator",
]

INITIALIZATIONS = ("random", "gan", "imagenet")
INIT_DISPLAY = {"random": "Random", "gan": "GAN", "imagenet": "ImageNet"}  # as in the paper's Table 2 CSV
PAPER_BACKBONE = {"vgg16": "VGG-16", "resnet50": "ResNet-50", "dinov2_vits14": "DINOv2", "dinov2_vitb14": "DINOv2"}
NR_FIGURES = {  # dataset -> (figure file stem, paper figure)
    "kadid10k": ("fig5_nr_iqa_kadid10k", "Fig. 5"),
    "koniq10k": ("fig8_nr_iqa_koniq10k", "Fig. 8"),
    "synthetic": ("fig5_fig8_nr_iqa_synthetic", "Fig. 5 / Fig. 8 layout"),
}
SYNTHETIC_NR_NOTE = ("labels are synthetic distortion levels (-level), not MOS; SRCC/PLCC within reference x "
                     "distortion groups")


class GanUnavailableError(AsymlibError):
    """No GAN discriminator backbone can be found or trained for a backbone."""


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GanSourceConfig:
    """Which SR discriminator provides the GAN initialization.

    Among the finished adversarial SR runs whose discriminator has the wanted backbone (notebooks 02 and 04),
    preference goes to ``head``, then the stage-2 ``setting`` and perceptual ``metric`` named here, the
    paper's lambda_3 and the profile's seed. With ``train_if_missing`` the run notebook 04 trains for that
    cell of Table 3 (``rec+perceptual+adv``, ``metric``, ``head``) is trained when none exists. Defaults: the
    paper's full objective (Eq. 1) with the VGG-16 metric and the vanilla head (the patch head leaves
    ResNet-50's ``layer4`` untrained).
    """

    setting: str = "rec+perceptual+adv"
    metric: str = "vgg16"
    head: str = "vanilla"
    train_if_missing: bool = True


@dataclass(frozen=True)
class GanInitConfig:
    """Notebook 03 settings.

    Attributes:
        backbones: backbone names (the paper's DINOv2 is ViT-B/14; smoke uses ViT-S/14).
        initializations: subset of :data:`INITIALIZATIONS`.
        nr_datasets: NR sets (``kadid10k``, ``koniq10k``, or ``synthetic`` for the embedded set).
        nr_train: NR training (:class:`asymlib.iqa.nr.NRTrainConfig`).
        split_fractions: train/val/test fractions of the content groups (paper: 6:2:2).
        n_bootstrap: bootstrap resamples of the NR test intervals.
        require_imagenet: raise when ImageNet weights are not in the cache (else the row is skipped and
            labelled "imagenet (not available offline)").
        gan: where GAN checkpoints come from.
    """

    backbones: tuple[str, ...] = ("vgg16", "resnet50", "dinov2_vitb14")
    initializations: tuple[str, ...] = INITIALIZATIONS
    nr_datasets: tuple[str, ...] = ("kadid10k", "koniq10k")
    nr_train: NRTrainConfig = NR_TRAIN_PRESETS["paper"]
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    n_bootstrap: int = 1000
    require_imagenet: bool = True
    gan: GanSourceConfig = GanSourceConfig()

    def __post_init__(self) -> None:
        bad = [i for i in self.initializations if i not in INITIALIZATIONS]
        if bad:
            raise ConfigError(f"unknown initialization(s) {bad}; available: {list(INITIALIZATIONS)}")
        for name in self.backbones:
            get_backbone_spec(name)
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ConfigError(f"split_fractions must be three fractions summing to 1, got {self.split_fractions}")


GAN_INIT_PRESETS: dict[str, GanInitConfig] = {
    "paper": GanInitConfig(),
    "smoke": GanInitConfig(
        backbones=("vgg16", "resnet50", "dinov2_vits14"),
        nr_datasets=("synthetic",),
        nr_train=NR_TRAIN_PRESETS["smoke"],
        n_bootstrap=200,
        require_imagenet=False,
    ),
}


def gan_init_config(profile: Profile | str, **overrides: Any) -> GanInitConfig:
    """The profile's preset with (dotted) overrides whose value is not None, e.g.
    ``gan_init_config(p, backbones=["vgg16"], **{"nr_train.iterations": 4})``."""
    name = profile if isinstance(profile, str) else profile.name
    if name not in GAN_INIT_PRESETS:
        raise UnknownNameError(f"no GAN-initialization preset for profile {name!r}; available: {sorted(GAN_INIT_PRESETS)}")
    ov = {k: v for k, v in overrides.items() if v is not None}
    return _replace_nested(GAN_INIT_PRESETS[name], ov) if ov else GAN_INIT_PRESETS[name]


# ----------------------------------------------------------------------------------------------
# GAN checkpoints
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GanCheckpoint:
    """An exported discriminator backbone (``asymlib.backbone.v1``) and the SR run it comes from."""

    backbone: str
    path: Path
    source: str
    sr_run: str | None = None
    head: str | None = None
    setting: str | None = None
    metric: str | None = None
    lambda_adv: float | None = None
    step: int | None = None

    @property
    def exported(self) -> bool:
        return self.path.is_file()

    def as_row(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "checkpoint": str(self.path), "source": self.source,
                "sr_run": self.sr_run, "head": self.head, "setting": self.setting, "metric": self.metric,
                "lambda_adv": self.lambda_adv, "step": self.step}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def find_gan_backbones(backbone: str, profile: Profile, runs_dir: str | Path,
                       gan: GanSourceConfig = GanSourceConfig()) -> list[GanCheckpoint]:
    """Discriminators of ``backbone`` in the finished adversarial SR runs ``runs_dir/sr/*/``, best first.

    Only the runs' ``config.json``/``status.json`` are read; nothing is written. A candidate's ``path`` is the
    run's backbone export ``discriminator_backbone.pt`` (notebook 04's
    :func:`~asymlib.experiments.discriminator_ablation.export_discriminator_backbone`), which may not exist
    yet (:func:`materialize_gan_checkpoint` writes it from the run's ``discriminator.pt``). Runs of other
    profiles are ignored. Order: ``gan.head``, ``gan.setting``, ``gan.metric``, the paper's lambda_3, the
    profile's seed, then the run name.
    """
    from ..sr.config import PAPER_LAMBDAS
    from .discriminator_ablation import BACKBONE_EXPORT_NAME

    runs_dir = Path(runs_dir)
    found: list[tuple[tuple, GanCheckpoint]] = []
    for run_dir in sorted(p for p in (runs_dir / "sr").glob("*") if p.is_dir()):
        config, status = _read_json(run_dir / "config.json"), _read_json(run_dir / "status.json")
        train = config.get("train") or {}
        dcfg = train.get("discriminator") or {}
        if (status.get("status") != "finished" or config.get("profile") != profile.name
                or not float(train.get("lambda_adv") or 0) > 0 or dcfg.get("backbone") != backbone):
            continue
        export = run_dir / BACKBONE_EXPORT_NAME
        if not export.is_file() and not (run_dir / "discriminator.pt").is_file():
            continue
        lam = float(train["lambda_adv"])
        ck = GanCheckpoint(backbone, export, f"{'' if export.is_file() else 'to be '}exported from SR run {run_dir.name}",
                           run_dir.name, dcfg.get("head"), config.get("setting"), config.get("metric"), lam,
                           status.get("step"))
        key = (ck.head != gan.head, ck.setting != gan.setting, ck.metric != gan.metric,
               not math.isclose(lam, PAPER_LAMBDAS[2]), "train_seed" in config, run_dir.name)
        found.append((key, ck))
    return [ck for _, ck in sorted(found, key=lambda t: t[0])]


def materialize_gan_checkpoint(ck: GanCheckpoint) -> GanCheckpoint:
    """Make sure the backbone export ``ck.path`` exists (written from the SR run's ``discriminator.pt`` by
    :func:`~asymlib.experiments.discriminator_ablation.export_discriminator_backbone`, once) and that it is
    an export of ``ck.backbone``.

    Raises:
        CheckpointError: the discriminator cannot be rebuilt or the export is of another backbone.
    """
    from ..discriminators import read_backbone_export
    from .discriminator_ablation import export_discriminator_backbone

    if not ck.path.is_file():
        if export_discriminator_backbone(ck.path.parent) is None:
            raise CheckpointError(f"SR run {ck.path.parent} holds no discriminator weights to export")
        ck = dataclasses.replace(ck, source=ck.source.replace("to be exported", "exported"))
    header = read_backbone_export(ck.path)
    if header.get("backbone") != ck.backbone:
        raise CheckpointError(f"{ck.path} holds a {header.get('backbone')!r} backbone, not {ck.backbone!r}")
    return ck


def train_gan_discriminator(backbone: str, profile: Profile, runs_dir: str | Path,
                            gan: GanSourceConfig = GanSourceConfig(), progress: bool = True) -> Path:
    """Train the SR run with a ``backbone`` discriminator that notebook 04 trains for Table 3 (same run folder,
    so notebook 04 reuses it): L1 + the ``gan.metric`` perceptual term + relativistic GAN at the paper's
    weights, head ``gan.head``, from stage 1's EMA weights, notebook 02's schedule and data; the backbone is
    exported as ``discriminator_backbone.pt``. Returns the SR run folder; a finished run is reused.

    ``runs_dir`` must be ``<output>/runs`` (the layout notebooks 02 and 04 share).

    Raises:
        GanUnavailableError: the run collapsed or left no discriminator.
    """
    from .discriminator_ablation import discriminator_study_config_for, run_discriminator_study

    runs_dir = Path(runs_dir)
    if runs_dir.name != "runs":
        raise ConfigError(f"runs_dir must be an output folder's 'runs' directory, got {runs_dir}")
    dcfg = discriminator_study_config_for(profile).replace(backbones=(backbone,), heads=(gan.head,), metric=gan.metric,
                                                           sweep_lambda_adv=(), seeds=1, export_backbones=True)
    res = run_discriminator_study(profile, runs_dir.parent, dcfg, progress=progress, evaluate=False)
    rows = res.runs[(res.runs["head"] == gan.head) & (res.runs["backbone"] == backbone)]
    if rows.empty or rows.iloc[0]["status"] != "finished" or not rows.iloc[0]["export"]:
        detail = "no run" if rows.empty else f"{rows.iloc[0]['status']}: {rows.iloc[0]['reason']}"
        raise GanUnavailableError(f"the SR run with a {gan.head} {backbone} discriminator gave no backbone ({detail})")
    return Path(rows.iloc[0]["run_dir"])


def resolve_gan_checkpoint(backbone: str, profile: Profile, runs_dir: str | Path,
                           gan: GanSourceConfig = GanSourceConfig(), *, train_if_missing: bool | None = None,
                           progress: bool = True) -> GanCheckpoint:
    """The preferred :class:`GanCheckpoint` of ``backbone`` (see :func:`find_gan_backbones`), exported, training
    one (:func:`train_gan_discriminator`) when none exists and ``train_if_missing`` (default
    ``gan.train_if_missing``).

    Raises:
        GanUnavailableError: nothing found and training is off (or it produced no discriminator).
    """
    found = find_gan_backbones(backbone, profile, runs_dir, gan)
    if found:
        return materialize_gan_checkpoint(found[0])
    train = gan.train_if_missing if train_if_missing is None else train_if_missing
    if not train:
        raise GanUnavailableError(f"no finished SR run under {Path(runs_dir) / 'sr'} has a {backbone!r} "
                                  f"discriminator, and training one is off")
    run_dir = train_gan_discriminator(backbone, profile, runs_dir, gan, progress=progress)
    found = [c for c in find_gan_backbones(backbone, profile, runs_dir, gan) if c.sr_run == run_dir.name]
    if not found:
        raise GanUnavailableError(f"SR run {run_dir} finished but holds no {backbone!r} discriminator")
    ck = materialize_gan_checkpoint(found[0])
    return dataclasses.replace(ck, source=ck.source + " (trained for this notebook)")


def gan_backbone_checkpoint(backbone: str, profile: Profile, runs_dir: str | Path,
                            gan: GanSourceConfig = GanSourceConfig()) -> Path:
    """Path of an exported GAN discriminator backbone of ``backbone`` (``asymlib.backbone.v1`` format),
    loadable with ``create_feature_extractor(backbone, weights=path)``; see :func:`resolve_gan_checkpoint`."""
    return resolve_gan_checkpoint(backbone, profile, runs_dir, gan).path


# ----------------------------------------------------------------------------------------------
# Initialization sources
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitSource:
    """How one backbone is initialized: ``weights`` for the factories, or None with the reason in ``note``."""

    backbone: str
    initialization: str
    weights: str | None
    note: str
    gan: GanCheckpoint | None = None
    detail: str = ""

    @property
    def available(self) -> bool:
        return self.weights is not None

    @property
    def status(self) -> str:
        return "ok" if self.available else f"skipped: {self.note}"

    def as_row(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "initialization": self.initialization, "weights": self.weights,
                "available": self.available, "note": self.note, "detail": self.detail}


def _imagenet_source(backbone: str, require: bool) -> InitSource:
    try:
        fx = create_feature_extractor(backbone, weights="imagenet")
    except WeightsUnavailableError as exc:
        if require:
            raise
        return InitSource(backbone, "imagenet", None, "imagenet (not available offline)", detail=str(exc))
    return InitSource(backbone, "imagenet", "imagenet", fx.weights_source)


def resolve_initializations(profile: Profile, runs_dir: str | Path, config: GanInitConfig | None = None,
                            gan_checkpoints: Mapping[str, str | Path] | None = None, progress: bool = True
                            ) -> dict[tuple[str, str], InitSource]:
    """``{(backbone, initialization): InitSource}`` for the configured grid.

    ``gan_checkpoints`` maps backbone names to given export files (used instead of the SR runs; loaded once
    here, so a file of another architecture fails now with :class:`~asymlib.errors.CheckpointError`).
    Unavailable ImageNet weights give a skipped source unless ``config.require_imagenet``; a GAN backbone that
    cannot be found or trained gives a skipped source with the reason.
    """
    cfg = config or gan_init_config(profile)
    given = {k: Path(v) for k, v in (gan_checkpoints or {}).items()}
    out: dict[tuple[str, str], InitSource] = {}
    for bb in cfg.backbones:
        for init in cfg.initializations:
            if init == "random":
                out[bb, init] = InitSource(bb, init, "random", f"random(seed={profile.seed})")
            elif init == "imagenet":
                out[bb, init] = _imagenet_source(bb, cfg.require_imagenet)
            elif bb in given:
                create_feature_extractor(bb, weights=given[bb])  # architecture/key check, fails clearly
                ck = GanCheckpoint(bb, given[bb], "given")
                out[bb, init] = InitSource(bb, init, str(ck.path), ck.source, ck)
            else:
                try:
                    ck = resolve_gan_checkpoint(bb, profile, runs_dir, cfg.gan, progress=progress)
                except GanUnavailableError as exc:
                    out[bb, init] = InitSource(bb, init, None, "gan (no discriminator checkpoint)", detail=str(exc))
                    continue
                out[bb, init] = InitSource(bb, init, str(ck.path), ck.source, ck)
    return out


def _sources_for(profile: Profile, runs_dir: Path, cfg: GanInitConfig,
                 sources: Mapping[tuple[str, str], InitSource] | None) -> Mapping[tuple[str, str], InitSource]:
    return sources if sources is not None else resolve_initializations(profile, runs_dir, cfg)


# ----------------------------------------------------------------------------------------------
# FR-IQA (Table 2)
# ----------------------------------------------------------------------------------------------


def run_fr_initialization(profile: Profile, runs_dir: str | Path, config: GanInitConfig | None = None,
                          sources: Mapping[tuple[str, str], InitSource] | None = None,
                          benchmarks: tuple[BenchmarkTerms | None, list[BenchmarkTerms]] | None = None
                          ) -> pd.DataFrame:
    """DISTS-style metric of every backbone x initialization, trained and evaluated by notebook 01's
    :func:`run_metric` (the profile's weights replaced by the initialization's). Returns tidy rows (one per
    metric x benchmark, plus ``Average``) with ``initialization``, ``init_display``, ``paper_backbone`` and
    ``status``; skipped initializations have NaN statistics and ``status = "skipped: <reason>"``.
    """
    from .metric_construction import _run_cfg_for  # the key notebook 01 files a run under

    cfg = config or gan_init_config(profile)
    runs_dir = Path(runs_dir)
    sources = _sources_for(profile, runs_dir, cfg, sources)
    frames: dict[tuple[str, str], pd.DataFrame] = {}
    for bb in cfg.backbones:
        for init in cfg.initializations:
            src = sources[bb, init]
            if not src.available:
                continue
            prof = profile.replace(weights=src.weights)
            if benchmarks is None and not open_run(runs_dir, "metric", bb, _run_cfg_for(bb, prof)).finished:
                benchmarks = load_benchmarks(profile)  # built once, and only when something must be computed
            frames[bb, init] = run_metric(bb, prof, runs_dir, benchmarks)
    labels = (list(dict.fromkeys(pd.concat(frames.values())["benchmark"])) if frames
              else _benchmark_labels(profile) + ["Average"])
    out = []
    for bb in cfg.backbones:
        for init in cfg.initializations:
            src = sources[bb, init]
            df = frames.get((bb, init))
            if df is None:
                df = pd.DataFrame({"metric": bb, "display": get_backbone_spec(bb).display, "backbone": bb,
                                   "benchmark": labels, "srcc": np.nan, "plcc": np.nan, "weights_source": "none",
                                   "profile": profile.name, "seed": profile.seed})
            df = df.copy()
            df["initialization"] = init
            df["init_display"] = INIT_DISPLAY[init]
            df["paper_backbone"] = PAPER_BACKBONE.get(bb, get_backbone_spec(bb).display)
            df["status"] = src.status
            out.append(df)
    return pd.concat(out, ignore_index=True)


def _benchmark_labels(profile: Profile) -> list[str]:
    ms = profile.metric_study
    if "synthetic" in ms.eval_sets:
        return [SYNTHETIC_LABEL]
    from ..iqa.datasets import create_fr_dataset

    root = profile.resolved_data_root()
    return [create_fr_dataset(name, root / name).name for name in ms.eval_sets]


def table2_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Table 2 layout: one row per backbone x initialization; the paper's SRCC/PLCC beside ours.

    Paper columns: the average and every benchmark we evaluated too; our columns are prefixed with the
    profile name (``smoke SRCC [Synthetic levels]``), never plain ``SRCC``.
    """
    paper = load_paper_table(2).set_index(["backbone", "initialization", "benchmark"])
    profile = str(results["profile"].iloc[0])
    benches = [b for b in dict.fromkeys(results["benchmark"]) if b != "Average"]
    rows = []
    for (bb, init), grp in results.groupby(["backbone", "initialization"], sort=False):
        first = grp.iloc[0]
        pb, pi = first["paper_backbone"], first["init_display"]
        row: dict[str, Any] = {"backbone": first["display"], "initialization": pi}
        for b in ["Average"] + [b for b in benches if (pb, pi, b) in paper.index]:
            if (pb, pi, b) in paper.index:
                tag = "avg" if b == "Average" else b
                row[f"paper SRCC ({tag})"] = paper.loc[(pb, pi, b), "srcc"]
                row[f"paper PLCC ({tag})"] = paper.loc[(pb, pi, b), "plcc"]
        for b in benches:
            r = grp[grp["benchmark"] == b].iloc[0]
            row[f"{profile} SRCC [{b}]"] = r.get("srcc", np.nan)
            lo, hi = r.get("srcc_low", np.nan), r.get("srcc_high", np.nan)
            row[f"{profile} SRCC 95% CI [{b}]"] = "" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
            row[f"{profile} PLCC [{b}]"] = r.get("plcc", np.nan)
        avg = grp[grp["benchmark"] == "Average"].iloc[0]
        row[f"{profile} SRCC (avg)"] = avg.get("srcc", np.nan)
        row[f"{profile} PLCC (avg)"] = avg.get("plcc", np.nan)
        row["backbone weights"] = avg.get("weights_source", "none")
        row["status"] = avg["status"]
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# NR-IQA (Fig. 5, Fig. 8)
# ----------------------------------------------------------------------------------------------


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


def _nr_run_cfg(dataset: str, backbone: str, init: str, weights: str, profile: Profile,
                cfg: GanInitConfig) -> dict[str, Any]:
    return {"study": "gan_initialization", "part": "nr_iqa", "profile": profile.name, "seed": profile.seed,
            "dataset": dataset, "backbone": backbone, "initialization": init, "weights": weights,
            "nr_train": cfg.nr_train, "split_fractions": list(cfg.split_fractions), "n_bootstrap": cfg.n_bootstrap,
            "data": profile.metric_study.synthetic if dataset == "synthetic" else str(profile.resolved_data_root())}


def _write_splits(run_dir: Path, data: Any, parts: Sequence[np.ndarray]) -> None:
    rec = data.records
    for name, idx in zip(("train", "val", "test"), parts):
        cols = [c for c in ("image", "group", "protocol_group", "score") if c in rec.columns]
        df = rec.iloc[idx][cols].copy()
        df.insert(0, "index", idx)
        atomic_write_csv(df, run_dir / f"split_{name}.csv")


def run_nr(dataset: str, source: InitSource, profile: Profile, runs_dir: str | Path,
           config: GanInitConfig | None = None, data: Any | None = None, progress: bool = True) -> pd.DataFrame:
    """Train and test one NR-IQA model (``dataset`` x backbone x initialization); returns one tidy row.

    Run folder ``runs_dir/nr_iqa/<dataset>-<backbone>-<init>-<hash>/`` with ``split_{train,val,test}.csv``
    (item indices, content groups and labels), ``best.pt`` (best validation SRCC), ``log.jsonl`` and
    ``results.csv``. A finished run is reused. An unavailable source gives a ``skipped`` row without a run.
    """
    cfg = config or gan_init_config(profile)
    base = {"dataset": dataset, "backbone": source.backbone, "display": get_backbone_spec(source.backbone).display,
            "paper_backbone": PAPER_BACKBONE.get(source.backbone, get_backbone_spec(source.backbone).display),
            "initialization": source.initialization, "init_display": INIT_DISPLAY[source.initialization],
            "status": source.status, "profile": profile.name, "seed": profile.seed,
            "labels": SYNTHETIC_NR_NOTE if dataset == "synthetic" else "MOS/DMOS"}
    if not source.available:
        return pd.DataFrame([{**base, "weights_source": "none", "srcc": np.nan, "plcc": np.nan}])
    run = open_run(runs_dir, "nr_iqa", f"{dataset}-{source.backbone}-{source.initialization}",
                   _nr_run_cfg(dataset, source.backbone, source.initialization, source.weights, profile, cfg))
    if run.finished:
        return run.read_results()
    t0 = time.perf_counter()
    data = data if data is not None else load_nr_benchmark(dataset, profile)
    parts = group_split(data.records["group"].astype(str).to_numpy(), cfg.split_fractions, seed=profile.seed)
    if any(len(p) == 0 for p in parts):
        raise ConfigError(f"{dataset}: the {cfg.split_fractions} split of {data.records['group'].nunique()} content "
                          f"groups leaves an empty part")
    train, val, test = (data.subset(p) for p in parts)
    tc = cfg.nr_train
    model = create_nr_model(source.backbone, weights=source.weights, seed=profile.seed, head=tc.head,
                            hidden=tc.hidden, dropout=tc.dropout, finetune_backbone=tc.finetune_backbone)
    run.start(provenance(profile.name, profile.seed, weights={source.backbone: model.weights_source},
                         dataset=dataset, initialization=source.initialization, source=source.note))
    _write_splits(run.path, data, parts)
    res = train_nr_model(model, train, val, tc, seed=profile.seed, val_groups=_protocol_groups(val),
                         device=profile.device, log=run.log, checkpoint_path=run.path / "best.pt",
                         desc=f"{model.backbone.display} ({INIT_DISPLAY[source.initialization]}): {dataset}")
    pred = predict_nr(model, test, batch_size=tc.eval_batch_size, resize_short_side=tc.resize_short_side,
                      device=profile.device, desc="test")
    atomic_write_csv(pd.DataFrame({"index": parts[2], "prediction": pred,
                                   "score": test.records["score"].to_numpy()}), run.path / "test_predictions.csv")
    stats = evaluate_nr(model, test, groups=_protocol_groups(test), n_resamples=cfg.n_bootstrap, seed=profile.seed,
                        predictions=pred)
    row = {**base, "weights_source": model.weights_source,
           **{k: stats[k] for k in ("srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high", "plcc",
                                    "plcc_low", "plcc_high", "n", "protocol")},
           "best_iteration": res.best_iteration, "best_val_srcc": res.best_val_srcc,
           "n_train": len(train), "n_val": len(val), "n_test": len(test),
           "seconds": round(time.perf_counter() - t0, 2)}
    run.write_results([row])
    run.finish("finished", seconds=row["seconds"], best_iteration=res.best_iteration)
    return run.read_results()


def run_nr_initialization(profile: Profile, runs_dir: str | Path, config: GanInitConfig | None = None,
                          sources: Mapping[tuple[str, str], InitSource] | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """:func:`run_nr` over every NR dataset x backbone x initialization; datasets are read once, and only
    when some run has to be computed."""
    cfg = config or gan_init_config(profile)
    runs_dir = Path(runs_dir)
    sources = _sources_for(profile, runs_dir, cfg, sources)
    rows = []
    for ds in cfg.nr_datasets:
        data = None
        for bb in cfg.backbones:
            for init in cfg.initializations:
                src = sources[bb, init]
                if data is None and src.available and not open_run(
                        runs_dir, "nr_iqa", f"{ds}-{bb}-{init}",
                        _nr_run_cfg(ds, bb, init, src.weights, profile, cfg)).finished:
                    data = load_nr_benchmark(ds, profile)
                rows.append(run_nr(ds, src, profile, runs_dir, cfg, data, progress))
    return pd.concat(rows, ignore_index=True)


def nr_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x backbone x initialization; our columns prefixed with the profile name.

    The paper reports Fig. 5 and Fig. 8 as bar plots without numbers, so there is no paper column.
    """
    profile = str(results["profile"].iloc[0])

    def ci(r: pd.Series, k: str) -> str:
        lo, hi = r.get(f"{k}_low", np.nan), r.get(f"{k}_high", np.nan)
        return "" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"

    rows = []
    for _, r in results.iterrows():
        rows.append({
            "dataset": r["dataset"], "paper figure": NR_FIGURES.get(r["dataset"], ("", ""))[1],
            "backbone": r["display"], "initialization": r["init_display"],
            f"{profile} SRCC (test)": r.get("srcc", np.nan), f"{profile} SRCC 95% CI": ci(r, "srcc"),
            f"{profile} PLCC (test)": r.get("plcc", np.nan), f"{profile} PLCC 95% CI": ci(r, "plcc"),
            "best val SRCC": r.get("best_val_srcc", np.nan), "best iteration": r.get("best_iteration", np.nan),
            "n test": r.get("n", np.nan), "labels": r["labels"], "backbone weights": r["weights_source"],
            "status": r["status"],
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Whole notebook
# ----------------------------------------------------------------------------------------------


@dataclass
class GanInitResults:
    """Everything notebook 03 shows: initialization sources, FR rows (Table 2), NR rows (Fig. 5/8)."""

    profile: str
    weights: str
    config: GanInitConfig
    sources: pd.DataFrame
    gan: pd.DataFrame
    fr: pd.DataFrame
    nr: pd.DataFrame
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)


def run_gan_init_study(profile: Profile, runs_dir: str | Path, config: GanInitConfig | None = None,
                       gan_checkpoints: Mapping[str, str | Path] | None = None, progress: bool = True
                       ) -> GanInitResults:
    """Resolve the initializations, then run FR (Table 2) and NR (Fig. 5/8); finished runs are reused."""
    t0 = time.perf_counter()
    cfg = config or gan_init_config(profile)
    runs_dir = Path(runs_dir)
    sources = resolve_initializations(profile, runs_dir, cfg, gan_checkpoints, progress)
    fr = run_fr_initialization(profile, runs_dir, cfg, sources)
    nr = run_nr_initialization(profile, runs_dir, cfg, sources, progress)
    src_df = pd.DataFrame([s.as_row() for s in sources.values()])
    gan_df = pd.DataFrame([s.gan.as_row() for s in sources.values() if s.gan is not None],
                          columns=list(GanCheckpoint("", Path(), "").as_row()))
    notes = []
    if "synthetic" in cfg.nr_datasets:
        notes.append(f"NR on the synthetic set: {SYNTHETIC_NR_NOTE}.")
    return GanInitResults(profile.name, profile.weights, cfg, src_df, gan_df, fr, nr,
                          round(time.perf_counter() - t0, 1), notes)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _grouped_bars(ax: Any, df: pd.DataFrame, value: str, inits: Sequence[str], backbones: Sequence[str],
                  colors: Mapping[str, str], with_ci: bool = True) -> None:
    width = 0.8 / max(len(inits), 1)
    for j, init in enumerate(inits):
        for i, bb in enumerate(backbones):
            sel = df[(df["display"] == bb) & (df["init_display"] == init)]
            x = i + (j - (len(inits) - 1) / 2) * width
            v = float(sel[value].iloc[0]) if len(sel) and pd.notna(sel[value].iloc[0]) else math.nan
            if math.isnan(v):
                ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="#666666")
                continue
            ax.bar(x, v, width, color=colors[init], label=init if i == 0 else None, edgecolor="black", lw=0.5)
            lo, hi = (sel.get(f"{value}_low"), sel.get(f"{value}_high"))
            if with_ci and lo is not None and pd.notna(lo.iloc[0]):
                ax.errorbar(x, v, yerr=[[v - float(lo.iloc[0])], [float(hi.iloc[0]) - v]], color="black",
                            capsize=2, lw=0.8)
    ax.set_xticks(range(len(backbones)), backbones)
    ax.axhline(0, color="black", lw=0.5)


_COLORS = {"Random": "#bbbbbb", "GAN": "#dd8452", "ImageNet": "#4c72b0"}


def _banner_title(ax: Any, text: str, profile: str, weights: str) -> None:
    banner = textwrap.fill(profile_banner(profile, weights), 100)
    ax.set_title(f"{text}\n{banner}", fontsize=8, color="#b00020" if profile == "smoke" else "black")


def plot_nr_initialization(results: pd.DataFrame, dataset: str, weights: str = ""):
    """Fig. 5 / Fig. 8 layout: grouped bars (backbone x initialization) of test SRCC and PLCC with bootstrap
    95% intervals; skipped initializations are marked n/a. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    df = results[results["dataset"] == dataset]
    profile = str(df["profile"].iloc[0])
    inits = [i for i in INIT_DISPLAY.values() if i in set(df["init_display"])]
    backbones = list(dict.fromkeys(df["display"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, value in zip(axes, ("srcc", "plcc")):
        _grouped_bars(ax, df, value, inits, backbones, _COLORS)
        ax.set_ylabel(f"test {value.upper()}")
        ax.set_ylim(min(0.0, float(np.nanmin(df[value])) - 0.05) if df[value].notna().any() else 0.0, 1.05)
    stem, fig_name = NR_FIGURES.get(dataset, (dataset, dataset))
    note = f" ({SYNTHETIC_NR_NOTE})" if dataset == "synthetic" else ""
    _banner_title(axes[0], f"{fig_name}: NR-IQA on {dataset} by initialization{note}", profile, weights)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_fr_initialization(results: pd.DataFrame, weights: str = ""):
    """Table 2 as grouped bars: our average SRCC (left) beside the paper's (right). Returns the figure."""
    import matplotlib.pyplot as plt

    ours = results[results["benchmark"] == "Average"].copy()
    profile = str(ours["profile"].iloc[0])
    paper = load_paper_table(2)
    paper = paper[paper["benchmark"] == "Average"].rename(columns={"initialization": "init_display"})
    paper["display"] = paper["backbone"]
    inits = [i for i in INIT_DISPLAY.values() if i in set(ours["init_display"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    single = results[results["benchmark"] != "Average"]["benchmark"].nunique() == 1
    if single:  # the average of one benchmark is that benchmark: its bootstrap interval applies
        bench = results[results["benchmark"] != "Average"]
        ours = ours.drop(columns=[c for c in ("srcc_low", "srcc_high") if c in ours]).merge(
            bench[["backbone", "initialization", "srcc_low", "srcc_high"]], on=["backbone", "initialization"])
    _grouped_bars(axes[0], ours, "srcc", inits, list(dict.fromkeys(ours["display"])), _COLORS, with_ci=single)
    _grouped_bars(axes[1], paper, "srcc", inits, list(dict.fromkeys(paper["display"])), _COLORS, with_ci=False)
    axes[0].set_ylabel("average SRCC")
    axes[0].set_ylim(0, 1.05)
    benches = ", ".join(b for b in dict.fromkeys(results["benchmark"]) if b != "Average")
    _banner_title(axes[0], f"FR-IQA by initialization: ours ({profile}, {benches})", profile, weights)
    axes[1].set_title("paper Table 2 (TID2013/Liu13/Ma17/TQD average)", fontsize=8)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
