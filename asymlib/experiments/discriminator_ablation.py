"""Notebook 04: vanilla vs patch-level discriminators, their backbones, and stability in lambda_3 (paper Sec. 3.4).

Pipeline (every step is a cached run under ``<output>/runs``, shared with notebook 02 wherever the configuration
is the same; a finished run is reused):

1. ``sr/stage1-l1-<hash>``: notebook 02's L1 pre-training of the generator.
2. ``sr/rec+perceptual-vgg16-<hash>``: the base without discriminator (``w/o (base)`` row of Table 3), exactly
   notebook 02's "reconstruction + perceptual" run with the VGG-16 metric.
3. Ablation (Table 3): ``{vanilla, patch} x backbones`` with ``L1 + l_VGG-16 + relativistic GAN`` at the paper's
   weights ``lambda = (1e-2, 1, 5e-3)``, starting from stage 1's EMA weights. The vanilla VGG-16 cell *is*
   notebook 02's ``rec+perceptual+adv-vgg16`` run (same configuration, same folder).
4. Stability sweep (Fig. 7): the patch head on every backbone for each ``lambda_3`` of the preset and several
   seeds (the seed moves the discriminator's initialization and the data order; stage 1 and the metric are
   shared). A collapsed run (non-finite loss or exploding discriminator, see :mod:`asymlib.sr.trainer`) is
   recorded ``collapsed`` with its step, the study carries on and the run has no score.
5. Every trained discriminator's backbone is exported next to its run as ``discriminator_backbone.pt``
   (``asymlib.backbone.v1``, readable by ``create_feature_extractor(name, weights=path)``) with a JSON sidecar;
   :func:`list_gan_backbones` lists them for notebook 03.
6. The EMA generators super-resolve the validation images, which notebook 02's evaluators score (its cached
   ``sr_eval`` and ``calibration`` runs are reused); NR scores are rescaled to [1, 100] (Appendix D).

Training curves: ``D(real) - D(fake)`` is read from the trainer's ``d_real``/``d_fake`` logs. The trainer logs
no gradient norms; this module records the generator's gradient norm (total loss, before the optimizer step)
from the trainer's ``on_step`` callback into ``grad_norms.csv``. When a run's ``log.jsonl`` carries
``grad_norm_g`` / ``grad_norm_d`` those are used instead (and ``grad_norm_d`` is plotted when present).
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_write_csv, atomic_write_json
from ..backbones import get_backbone_spec
from ..config import Profile
from ..errors import CheckpointError, ConfigError, UnknownNameError
from ..metrics.registry import get_metric_preset
from ..provenance import provenance
from ..reporting import load_paper_table, profile_banner
from ..runs import Run, open_run, to_jsonable
from ..sr.config import (
    PAPER_LAMBDAS,
    DiscriminatorConfig,
    SRStudyConfig,
    SRTrainConfig,
    get_setting,
)
from ..sr.trainer import TrainResult, train_sr
from . import sr_optimization as sro

__all__ = [
    "BACKBONE_EXPORT_NAME",
    "DiscriminatorRun",
    "DiscriminatorStudyConfig",
    "DiscriminatorStudyResult",
    "discriminator_study_config_for",
    "export_discriminator_backbone",
    "list_discriminator_study_presets",
    "list_gan_backbones",
    "plot_fig7",
    "plot_training_dynamics",
    "register_discriminator_study_preset",
    "run_discriminator_study",
    "table3",
    "table3_comparison",
    "training_curves",
]

BACKBONE_EXPORT_NAME = "discriminator_backbone.pt"
GRAD_NORMS_NAME = "grad_norms.csv"
ADV_SETTING, BASE_SETTING = "rec+perceptual+adv", "rec+perceptual"
AVERAGE, BASE_LABEL = "Average", "w/o (base)"
HEAD_TITLES = {"vanilla": "Vanilla", "patch": "Patch-level", "none": "w/o"}
_PAPER_BACKBONE = {"vgg16": "VGG-16", "resnet50": "ResNet-50", "dinov2_vits14": "DINOv2", "dinov2_vitb14": "DINOv2",
                   "dinov2_vitl14": "DINOv2", "dinov2_vitg14": "DINOv2"}


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscriminatorStudyConfig:
    """Notebook 04: the Table 3 ablation and the Fig. 7 stability sweep.

    Attributes:
        backbones: discriminator backbones (:func:`asymlib.discriminators.create_discriminator` names). The paper
            names "DINOv2" without its size; the paper preset uses ViT-B/14, the smoke preset ViT-S/14.
        heads: heads of the ablation (``vanilla``, ``patch``).
        metric: perceptual loss (``l_VGG-16`` in Sec. 3.4), a :mod:`asymlib.metrics` preset key.
        lambdas: ``(lambda_1, lambda_2, lambda_3)`` of the ablation (Sec. 3.1, as in ESRGAN).
        spectral_norm: spectral normalization in the discriminator (not used in the paper).
        sweep_head: head of the stability sweep (the paper sweeps patch-level discriminators).
        sweep_lambda_adv: the ``lambda_3`` values of the sweep (the paper's values are not stated; log-spaced
            over 1e-3..5e-2 around ESRGAN's 5e-3).
        seeds: seeds per sweep cell (``profile.seed, profile.seed + 1, ...``); the ablation uses ``profile.seed``.
        train_overrides: :class:`~asymlib.sr.config.SRTrainConfig` fields changed from notebook 02's stage-2
            configuration (empty: the runs share notebook 02's configuration, hence its cached runs).
        export_backbones: write ``discriminator_backbone.pt`` for every trained discriminator.
    """

    backbones: tuple[str, ...] = ("vgg16", "resnet50", "dinov2_vitb14")
    heads: tuple[str, ...] = ("vanilla", "patch")
    metric: str = "vgg16"
    lambdas: tuple[float, float, float] = PAPER_LAMBDAS
    spectral_norm: bool = False
    sweep_head: str = "patch"
    sweep_lambda_adv: tuple[float, ...] = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
    seeds: int = 3
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    export_backbones: bool = True

    def __post_init__(self) -> None:
        from ..discriminators import list_heads

        for h in (*self.heads, self.sweep_head):
            if h not in list_heads():
                raise UnknownNameError(f"unknown discriminator head {h!r}; available: {list_heads()}")
        for b in self.backbones:
            get_backbone_spec(b)
        if not self.backbones:
            raise ConfigError("DiscriminatorStudyConfig.backbones is empty")
        if self.seeds < 1:
            raise ConfigError(f"DiscriminatorStudyConfig.seeds must be >= 1, got {self.seeds}")
        if any(not (v > 0) for v in self.sweep_lambda_adv):
            raise ConfigError(f"sweep_lambda_adv values must be > 0, got {list(self.sweep_lambda_adv)}")
        if len(self.lambdas) != 3 or min(self.lambdas) < 0:
            raise ConfigError(f"lambdas must be three weights >= 0, got {self.lambdas}")
        bad = set(self.train_overrides) - {f.name for f in dataclasses.fields(SRTrainConfig)}
        if bad:
            raise ConfigError(f"train_overrides has unknown SRTrainConfig fields {sorted(bad)}")

    def replace(self, **changes: Any) -> DiscriminatorStudyConfig:
        return dataclasses.replace(self, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})


_PRESETS: dict[str, DiscriminatorStudyConfig] = {}


def register_discriminator_study_preset(profile: str, config: DiscriminatorStudyConfig) -> DiscriminatorStudyConfig:
    _PRESETS[profile] = config
    return config


def list_discriminator_study_presets() -> list[str]:
    return sorted(_PRESETS)


def discriminator_study_config_for(profile: Profile | str) -> DiscriminatorStudyConfig:
    """The notebook-04 preset of a profile (or profile name)."""
    name = profile if isinstance(profile, str) else profile.name
    if name not in _PRESETS:
        raise UnknownNameError(f"no discriminator-study preset for profile {name!r}; "
                               f"available: {list_discriminator_study_presets()}")
    return _PRESETS[name]


register_discriminator_study_preset("paper", DiscriminatorStudyConfig())
register_discriminator_study_preset("smoke", DiscriminatorStudyConfig(
    backbones=("vgg16", "resnet50", "dinov2_vits14"),
    sweep_lambda_adv=(1e-3, 2e-3, 5e-3, 1e-2, 5e-2),
    seeds=1,
))


# ----------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscriminatorRun:
    """One training run of the study: ``head="none"`` is the base without discriminator."""

    head: str
    backbone: str | None
    lambda_adv: float
    seed: int
    roles: tuple[str, ...]  # "base", "ablation", "sweep"

    @property
    def adversarial(self) -> bool:
        return self.head != "none"


def _paper_backbone(name: str | None) -> str:
    if name is None:
        return BASE_LABEL
    return _PAPER_BACKBONE.get(name, get_backbone_spec(name).display)


def _display_backbone(name: str | None) -> str:
    return BASE_LABEL if name is None else get_backbone_spec(name).display


def plan_runs(profile: Profile, dcfg: DiscriminatorStudyConfig) -> list[DiscriminatorRun]:
    """Every run of the study once (ablation and sweep cells that coincide are merged, their roles joined)."""
    lam3 = float(dcfg.lambdas[2])
    specs: dict[tuple, set[str]] = {("none", None, 0.0, profile.seed): {"base"}}
    for head in dcfg.heads:
        for bb in dcfg.backbones:
            specs.setdefault((head, bb, lam3, profile.seed), set()).add("ablation")
    for bb in dcfg.backbones:
        for lam in dcfg.sweep_lambda_adv:
            for i in range(dcfg.seeds):
                specs.setdefault((dcfg.sweep_head, bb, float(lam), profile.seed + i), set()).add("sweep")
    order = ("base", "ablation", "sweep")
    return [DiscriminatorRun(h, b, lam, s, tuple(r for r in order if r in roles))
            for (h, b, lam, s), roles in specs.items()]


def _train_cfg(scfg: SRStudyConfig, dcfg: DiscriminatorStudyConfig, spec: DiscriminatorRun) -> SRTrainConfig:
    setting = ADV_SETTING if spec.adversarial else BASE_SETTING
    base = get_setting(setting).apply(scfg.stage2, tuple(dcfg.lambdas))  # type: ignore[arg-type]
    if dcfg.train_overrides:
        base = base.replace(**dict(dcfg.train_overrides))
    if not spec.adversarial:
        return base
    disc = DiscriminatorConfig(backbone=str(spec.backbone), head=spec.head, spectral_norm=dcfg.spectral_norm,
                               lr=scfg.stage2.discriminator.lr)
    return base.replace(lambda_adv=float(spec.lambda_adv), discriminator=disc)


def _run_identity(profile: Profile, scfg: SRStudyConfig, dcfg: DiscriminatorStudyConfig, spec: DiscriminatorRun,
                  stage1: Run, ab_label: str) -> tuple[str, dict[str, Any], SRTrainConfig]:
    """(run name, run configuration, training configuration) with notebook 02's layout.

    A run whose configuration equals notebook 02's (same setting, metric, discriminator, weights, seed) gets
    notebook 02's name and hash, i.e. the same folder.
    """
    setting = ADV_SETTING if spec.adversarial else BASE_SETTING
    tcfg = _train_cfg(scfg, dcfg, spec)
    nb02 = sro._stage2_cfg(profile, scfg, setting, dcfg.metric, stage1.path.name, ab_label)
    run_cfg = {**nb02, "train": tcfg}
    if spec.seed != profile.seed:
        run_cfg["train_seed"] = spec.seed
    if to_jsonable(run_cfg) == to_jsonable(nb02):
        return f"{setting}-{dcfg.metric}", run_cfg, tcfg
    if not spec.adversarial:
        return f"{setting}-{dcfg.metric}-custom", run_cfg, tcfg
    name = f"disc-{spec.head}-{spec.backbone}-adv{spec.lambda_adv:.0e}-s{spec.seed}"
    return name, run_cfg, tcfg


class _GradNormRecorder:
    """``on_step`` callback: L2 norm of the generator's gradient (the step's total loss) every ``every`` steps."""

    def __init__(self, generator: torch.nn.Module, every: int):
        self.params = [p for p in generator.parameters() if p.requires_grad]
        self.every = max(1, int(every))
        self.rows: list[dict[str, float]] = []

    def __call__(self, step: int, scalars: Mapping[str, float]) -> None:
        if step % self.every:
            return
        grads = [p.grad.detach().float() for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else None
        self.rows.append({"step": int(step), "grad_norm_g": float(norm) if norm is not None else float("nan")})

    def save(self, run_dir: Path) -> None:
        if not self.rows:
            return
        path = run_dir / GRAD_NORMS_NAME
        df = pd.DataFrame(self.rows)
        if path.is_file():  # resumed run: keep the steps recorded before the interruption
            old = pd.read_csv(path)
            df = pd.concat([old[old["step"] < df["step"].min()], df], ignore_index=True)
        atomic_write_csv(df, path)


class _Context:
    """Shared state of one study: configs, stage 1, the metric, data (loaded only when something trains)."""

    def __init__(self, profile: Profile, scfg: SRStudyConfig, dcfg: DiscriminatorStudyConfig, runs_dir: Path,
                 progress: bool):
        self.profile, self.scfg, self.dcfg, self.runs_dir, self.progress = profile, scfg, dcfg, runs_dir, progress
        self.metrics = sro._MetricCache(profile, scfg, runs_dir)
        self._data: sro.SRData | None = None
        self.stage1: Run | None = None
        self.alpha_beta = self.metrics.source(dcfg.metric)[1]  # where the metric's alpha/beta come from

    @property
    def data(self) -> sro.SRData:
        if self._data is None:
            self._data = sro.load_sr_data(self.scfg, self.profile)
        return self._data

    def train_stage1(self) -> TrainResult:
        probe = open_run(self.runs_dir, "sr", "stage1-l1", sro._stage1_cfg(self.profile, self.scfg))
        run, res = sro._train_stage1(self.profile, self.scfg, self.runs_dir, None if probe.finished else self.data,
                                     self.progress)
        self.stage1 = run
        return res


class _LazyData:
    """Stands in for :class:`sr_optimization.SRData`; loads the images only if a cached step must be computed."""

    def __init__(self, ctx: _Context):
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx.data, name)


def _train_run(ctx: _Context, spec: DiscriminatorRun) -> tuple[Run, TrainResult]:
    """Train (or reuse) one run; the base is notebook 02's own run, adversarial runs use its layout."""
    assert ctx.stage1 is not None
    profile, scfg, dcfg = ctx.profile, ctx.scfg, ctx.dcfg
    ab_label = ctx.alpha_beta
    name, run_cfg, tcfg = _run_identity(profile, scfg, dcfg, spec, ctx.stage1, ab_label)
    run = open_run(ctx.runs_dir, "sr", name, run_cfg)
    if run.finished:
        return run, TrainResult.from_run(run)
    if not spec.adversarial and name == f"{BASE_SETTING}-{dcfg.metric}":
        return sro._train_stage2(profile, scfg, ctx.runs_dir, BASE_SETTING, dcfg.metric, ctx.stage1, ctx.metrics,
                                 ctx.data, ctx.progress)
    data = ctx.data
    metric = ctx.metrics.get(dcfg.metric)
    generator = sro._new_generator(scfg, profile)
    recorder = _GradNormRecorder(generator, tcfg.log_every)
    prov = provenance(profile.name, profile.seed,
                      weights={get_metric_preset(dcfg.metric).backbone: metric.backbone.weights_source,
                               "discriminator": "random init" if spec.adversarial else "none"},
                      stage="stage2", setting=ADV_SETTING if spec.adversarial else BASE_SETTING, metric=dcfg.metric,
                      alpha_beta=ab_label, init_from=ctx.stage1.path.name, discriminator_head=spec.head,
                      discriminator_backbone=spec.backbone, lambda_adv=spec.lambda_adv, train_seed=spec.seed)
    label = f"D {spec.head}/{_display_backbone(spec.backbone)} lambda3={spec.lambda_adv:g} seed={spec.seed}"
    res = train_sr(run, tcfg, label, generator=generator, train_data=data.train, metric=metric,
                   init_from=ctx.stage1.path / "generator_ema.pt", seed=spec.seed, device=profile.device,
                   provenance=prov, sample_lr=data.sample_lr(scfg.data.sample_images), progress=ctx.progress,
                   on_step=recorder)
    recorder.save(run.path)
    return run, res


# ----------------------------------------------------------------------------------------------
# Backbone export (notebook 03's GAN initialization)
# ----------------------------------------------------------------------------------------------
_EXPORT_MODELS: dict[tuple[str, str, bool, int], torch.nn.Module] = {}  # built discriminators, reused by exports


def export_discriminator_backbone(run_dir: str | Path, metadata: Mapping[str, Any] | None = None,
                                  overwrite: bool = False) -> Path | None:
    """Export the backbone of a run's trained discriminator as ``<run>/discriminator_backbone.pt``.

    Source: ``discriminator.pt`` of a finished run, else the discriminator of the last ``checkpoint.pt`` (a
    collapsed run: the weights before the collapse, labelled ``status="collapsed"``). The file is an
    ``asymlib.backbone.v1`` export (:meth:`asymlib.discriminators.Discriminator.export_backbone`) loadable with
    ``create_feature_extractor(backbone, weights=path)``; ``discriminator_backbone.json`` holds its metadata.
    Returns ``None`` when the run has no discriminator weights.

    Raises:
        CheckpointError: the discriminator weights are unreadable or do not match the configured discriminator.
    """
    from ..discriminators import create_discriminator

    run_dir = Path(run_dir)
    out = run_dir / BACKBONE_EXPORT_NAME
    if out.is_file() and (run_dir / "discriminator_backbone.json").is_file() and not overwrite:
        return out
    cfg = json.loads((run_dir / "config.json").read_text())
    tcfg = cfg.get("train", {})
    if not tcfg.get("lambda_adv"):
        return None
    status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").is_file() else {}
    state, step, source = None, None, None
    if (run_dir / "discriminator.pt").is_file():
        obj = torch.load(run_dir / "discriminator.pt", map_location="cpu", weights_only=True)
        state, step, source = obj["state_dict"], int(obj.get("step", status.get("step", 0))), "discriminator.pt"
    elif (run_dir / "checkpoint.pt").is_file():
        from ..sr.trainer import load_checkpoint

        ck = load_checkpoint(run_dir / "checkpoint.pt")
        if ck.get("discriminator") is not None:
            state, step, source = ck["discriminator"], int(ck["step"]), "checkpoint.pt"
    if state is None:
        return None
    dc = tcfg.get("discriminator", {})
    seed = int(cfg.get("train_seed", cfg.get("seed", 0)))
    key = (dc.get("backbone", "vgg16"), dc.get("head", "vanilla"), bool(dc.get("spectral_norm", False)), seed)
    disc = _EXPORT_MODELS.pop(key, None) or create_discriminator(key[0], key[1], spectral_norm=key[2], seed=seed)
    try:
        disc.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"discriminator weights in {run_dir / source} do not match "
                              f"{dc.get('backbone')}/{dc.get('head')}: {exc}") from exc
    _EXPORT_MODELS[key] = disc  # every parameter and buffer is overwritten by the next load_state_dict
    while len(_EXPORT_MODELS) > 6:  # one per backbone x head of a study
        _EXPORT_MODELS.pop(next(iter(_EXPORT_MODELS)))
    meta = {
        "study": "discriminator_ablation", "profile": cfg.get("profile"), "run_id": run_dir.name,
        "run_dir": str(run_dir), "backbone": disc.backbone_name, "head": disc.head_name,
        "lambda_adv": float(tcfg["lambda_adv"]), "lambda_rec": float(tcfg.get("lambda_rec", 0.0)),
        "lambda_per": float(tcfg.get("lambda_per", 0.0)), "metric": cfg.get("metric"), "seed": seed,
        "step": step, "iterations": int(tcfg.get("iterations", 0)),
        "status": status.get("status", "unfinished"), "weights_file": source,
        **dict(metadata or {}),
    }
    disc.export_backbone(out, metadata=meta)
    atomic_write_json(run_dir / "discriminator_backbone.json", {**meta, "path": str(out)})
    return out


def list_gan_backbones(runs_dir: str | Path, include_collapsed: bool = True) -> pd.DataFrame:
    """Exported discriminator backbones under ``runs_dir`` (notebook 03's GAN initializations).

    Returns one row per export: ``backbone, head, lambda3, seed, path`` plus ``status, step, profile, run_id``,
    sorted by backbone, head, lambda3, seed. Pass ``path`` to ``create_feature_extractor(backbone, weights=path)``.
    """
    rows = []
    for meta_file in sorted(Path(runs_dir).glob(f"sr/*/{Path(BACKBONE_EXPORT_NAME).stem}.json")):
        pt = meta_file.with_suffix(".pt")
        if not pt.is_file():
            continue
        m = json.loads(meta_file.read_text())
        if not include_collapsed and m.get("status") != "finished":
            continue
        rows.append({"backbone": m["backbone"], "head": m["head"], "lambda3": float(m["lambda_adv"]),
                     "seed": int(m["seed"]), "path": str(pt), "status": m.get("status"), "step": m.get("step"),
                     "profile": m.get("profile"), "run_id": m.get("run_id")})
    cols = ["backbone", "head", "lambda3", "seed", "path", "status", "step", "profile", "run_id"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["backbone", "head", "lambda3", "seed"], ignore_index=True) if len(df) else df


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
@dataclass
class DiscriminatorStudyResult:
    """Everything notebook 04 shows.

    Attributes:
        runs: one row per training run: ``head`` (``vanilla``/``patch``/``none``), ``backbone``, ``display``,
            ``lambda_adv``, ``seed``, ``roles`` (``base``/``ablation``/``sweep``, ``+``-joined), ``status``, ``step``,
            ``reason``, ``run_id``, ``run_dir``, ``export`` (backbone export path or empty).
        scores: tidy per-image scores (``run_id``, ``evaluator`` display, ``kind``, ``image``, ``raw``, ``score``:
            rescaled NR / raw FR).
        summary: one row per run and evaluator (mean over images) including the NR ``Average``.
        table: Table 3 in tidy form (``head, backbone, evaluator, score``), see :func:`table3`.
        curves: training logs of the adversarial runs, see :func:`training_curves`.
        availability, rescalings: notebook 02's evaluator pool.
    """

    profile: str
    weights: str
    config: DiscriminatorStudyConfig
    sr_config: SRStudyConfig
    runs: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame
    curves: pd.DataFrame
    availability: pd.DataFrame
    rescalings: dict[str, Any]
    alpha_beta: str
    seconds: float = 0.0

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)

    @property
    def sweep(self) -> pd.DataFrame:
        """Fig. 7 data: one row per sweep run with its NR ``Average`` (NaN when collapsed)."""
        runs = self.runs[self.runs["roles"].str.contains("sweep")]
        avg = self.summary[self.summary["evaluator"] == AVERAGE][["run_id", "score"]]
        return runs.merge(avg, on="run_id", how="left").rename(columns={"score": "nr_average"})


def _summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run and evaluator: mean over images; ``Average``: mean of the NR evaluators' means."""
    cols = ["run_id", "evaluator", "kind", "score"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    per = scores.groupby(["run_id", "evaluator", "kind"], as_index=False, sort=False)["score"].mean()
    nr = per[per["kind"] == "nr"]
    avg = nr.groupby("run_id", as_index=False, sort=False)["score"].mean().assign(evaluator=AVERAGE, kind="nr")
    return pd.concat([per, avg[cols]], ignore_index=True)[cols]


def table3(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Table 3 in tidy form: ``head`` (vanilla/patch/none), ``backbone`` (paper name), ``variant`` (our backbone),
    ``evaluator`` (display or ``Average``), ``score``, ``status``.

    Cells are the ablation runs (and the base) at the profile seed; a collapsed run's scores are NaN.
    """
    sel = runs[runs["roles"].str.contains("ablation|base")]
    evaluators = list(dict.fromkeys(summary["evaluator"])) if len(summary) else [AVERAGE]
    rows = []
    for r in sel.itertuples():
        s = summary[summary["run_id"] == r.run_id].set_index("evaluator")["score"]
        for ev in evaluators:
            rows.append({"head": r.head, "backbone": _paper_backbone(r.backbone if isinstance(r.backbone, str) else None),
                         "variant": r.display, "evaluator": ev, "score": float(s.get(ev, np.nan)),
                         "status": r.status})
    return pd.DataFrame(rows, columns=["head", "backbone", "variant", "evaluator", "score", "status"])


def table3_comparison(table: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 3 layout: rows ``(discriminator, backbone)`` in the paper's order; the paper's columns labelled
    ``paper <evaluator>``, ours ``<profile> <evaluator>`` (a smoke number is never in an unlabelled column).

    ``<profile> backbone`` names our discriminator backbone (e.g. DINOv2 ViT-S/14 in smoke) and
    ``<profile> status`` says whether the run finished or collapsed.
    """
    paper = load_paper_table(3)
    paper_cols = list(dict.fromkeys(paper["nr_iqa"]))
    p_wide = paper.pivot_table(index=["head", "backbone"], columns="nr_iqa", values="score", aggfunc="first")
    p_wide = p_wide[paper_cols].add_prefix("paper ")
    ours_ev = list(dict.fromkeys(table["evaluator"]))
    o_wide = table.pivot_table(index=["head", "backbone"], columns="evaluator", values="score", aggfunc="first",
                               dropna=False)
    o_wide = o_wide.reindex(columns=[e for e in ours_ev if e != AVERAGE] + [AVERAGE]).add_prefix(f"{profile} ")
    info = table.drop_duplicates(["head", "backbone"]).set_index(["head", "backbone"])[["variant", "status"]]
    info.columns = [f"{profile} backbone", f"{profile} status"]
    wide = p_wide.join(o_wide, how="outer").join(info, how="left")
    order = [(h, b) for h in ("vanilla", "patch", "none") for b in
             list(dict.fromkeys(list(paper.loc[paper["head"] == h, "backbone"]) +
                                list(table.loc[table["head"] == h, "backbone"])))]
    wide = wide.reindex([o for o in order if o in wide.index])
    wide.index = pd.MultiIndex.from_tuples([(HEAD_TITLES.get(h, h), b) for h, b in wide.index],
                                           names=["discriminator", "backbone"])
    wide.attrs["banner"] = profile_banner(profile, "")
    return wide


def _read_curve(run_dir: Path) -> pd.DataFrame:
    log_file = run_dir / "log.jsonl"
    if not log_file.is_file():
        return pd.DataFrame()
    log = pd.read_json(log_file, lines=True)
    if log.empty:
        return log
    log = log.drop_duplicates("step", keep="last")  # a resumed run re-logs nothing, but be safe
    gn = run_dir / GRAD_NORMS_NAME
    if "grad_norm_g" not in log.columns and gn.is_file():
        log = log.merge(pd.read_csv(gn), on="step", how="left")
    if {"d_real", "d_fake"} <= set(log.columns):
        log["d_gap"] = log["d_real"] - log["d_fake"]
    return log


def training_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Training logs of the adversarial runs in tidy form.

    Columns: ``run_id, head, backbone, display, lambda_adv, seed, status, step`` and the logged scalars,
    notably ``d_gap = D(real) - D(fake)`` (mean logits), ``d_loss``, ``l_g_adv``, ``grad_norm_g`` and, when the
    trainer logs it, ``grad_norm_d``.
    """
    frames = []
    for r in runs[runs["head"] != "none"].itertuples():
        log = _read_curve(Path(r.run_dir))
        if log.empty:
            continue
        for col in ("run_id", "head", "backbone", "display", "lambda_adv", "seed", "status"):
            log[col] = getattr(r, col)
        frames.append(log)
    if not frames:
        return pd.DataFrame(columns=["run_id", "head", "backbone", "display", "lambda_adv", "seed", "status", "step"])
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------
def run_discriminator_study(profile: Profile, output_dir: str | Path, config: DiscriminatorStudyConfig | None = None,
                            sr_config: SRStudyConfig | None = None, progress: bool = True,
                            evaluate: bool = True) -> DiscriminatorStudyResult:
    """Train (or reuse) every run of the ablation and the sweep, export the backbones, score the outputs.

    Args:
        profile: the study profile (its seed is the ablation's seed and the sweep's first seed).
        output_dir: study output folder; runs go to ``<output_dir>/runs`` (shared with notebook 02).
        config: notebook 04's preset (default: :func:`discriminator_study_config_for`).
        sr_config: notebook 02's SR configuration (default: :func:`sr_optimization.study_config`), which fixes
            stage 1, the stage-2 schedule, data and evaluators.
        progress: tqdm bars while training.
        evaluate: score the outputs (``False``: train and export only; scores, summary and table stay empty).
    """
    t0 = time.perf_counter()
    dcfg = config or discriminator_study_config_for(profile)
    scfg = sr_config or sro.study_config(profile)
    runs_dir = Path(output_dir) / "runs"
    ctx = _Context(profile, scfg, dcfg, runs_dir, progress)
    s1 = ctx.train_stage1()
    if s1.status != "finished":
        raise RuntimeError(f"stage 1 did not finish ({s1.status}: {s1.reason}); stage 2 needs its weights")

    rows = []
    for spec in plan_runs(profile, dcfg):
        run, res = _train_run(ctx, spec)
        export = None
        if spec.adversarial and dcfg.export_backbones:
            export = export_discriminator_backbone(run.path, {"roles": list(spec.roles)})
        rows.append({"head": spec.head, "backbone": spec.backbone, "display": _display_backbone(spec.backbone),
                     "lambda_adv": spec.lambda_adv, "seed": spec.seed, "roles": "+".join(spec.roles),
                     "status": res.status, "step": res.step, "reason": res.reason, "run_id": run.path.name,
                     "run_dir": str(run.path), "export": str(export) if export else ""})
    runs = pd.DataFrame(rows)

    scores = pd.DataFrame(columns=["run_id", "evaluator", "kind", "image", "raw", "score"])
    availability, rescalings = pd.DataFrame(), {}
    if evaluate:
        pool = sro._EvaluatorPool(profile, scfg, runs_dir)
        rescalings = pool.calibrate_all()
        availability = pool.availability()
        frames = []
        for r in runs.itertuples():
            if r.status != "finished":
                continue  # collapsed: no score
            df = sro._evaluate_column(pool, _LazyData(ctx), scfg, profile, runs_dir, r.run_id, None, None,  # type: ignore[arg-type]
                                      Run(Path(r.run_dir), {}))
            frames.append(df.assign(run_id=r.run_id)[["run_id", "evaluator", "image", "raw"]])
        if frames:
            from ..sr.evaluators import get_evaluator_spec

            scores = pd.concat(frames, ignore_index=True)
            scores["kind"] = scores["evaluator"].map(lambda n: get_evaluator_spec(n).kind)
            scores["score"] = [float(rescalings[e](r)[0]) if e in rescalings else float(r)
                               for e, r in zip(scores["evaluator"], scores["raw"])]
            scores["evaluator"] = scores["evaluator"].map(lambda n: get_evaluator_spec(n).display)
            scores = scores[["run_id", "evaluator", "kind", "image", "raw", "score"]]
    summary = _summarize(scores)
    table = table3(runs, summary)
    curves = training_curves(runs)
    return DiscriminatorStudyResult(profile.name, profile.weights, dcfg, scfg, runs, scores, summary, table, curves,
                                    availability, rescalings, ctx.alpha_beta, round(time.perf_counter() - t0, 1))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _suptitle(fig: Any, text: str, profile: str, weights: str) -> None:
    import textwrap

    banner = textwrap.fill(profile_banner(profile, weights), max(40, int(fig.get_figwidth() * 15)))
    fig.suptitle(f"{text}\n{banner}", fontsize=9, color="#b00020" if profile == "smoke" else "black")


def plot_fig7(result: DiscriminatorStudyResult):
    """Fig. 7: NR-IQA ``Average`` of the patch-level discriminators vs ``lambda_3`` (log x), one line per backbone,
    mean over seeds with the seeds' spread (min-max band when there are several); collapsed runs are marked ``x``
    on the lower edge (they have no score)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    sw = result.sweep
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    order = [_display_backbone(b) for b in result.config.backbones]
    palette = dict(zip(order, sns.color_palette("deep", len(order))))
    ok = sw[sw["nr_average"].notna()]
    if len(ok):
        n_seeds = int(ok.groupby(["display", "lambda_adv"])["seed"].nunique().max())
        sns.lineplot(data=ok, x="lambda_adv", y="nr_average", hue="display", hue_order=[o for o in order if o in
                     set(ok["display"])], palette=palette, marker="o", estimator="mean",
                     errorbar=("pi", 100) if n_seeds > 1 else None, err_style="band", ax=ax)
        if n_seeds > 1:
            sns.scatterplot(data=ok, x="lambda_adv", y="nr_average", hue="display", palette=palette, s=12, alpha=0.5,
                            legend=False, ax=ax)
    else:
        ax.text(0.5, 0.5, "no NR-IQA scores (no NR evaluator available, or every run collapsed)",
                ha="center", va="center", transform=ax.transAxes, fontsize=8)
    bad = sw[sw["status"] != "finished"]
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for r in bad.itertuples():
        ax.plot(r.lambda_adv, 0.03, marker="x", ms=9, mew=2, color=palette.get(r.display, "k"), transform=trans,
                clip_on=False)
    ax.set_xscale("log")
    lams = sorted(set(sw["lambda_adv"]))
    ax.set_xticks(lams)
    ax.set_xticklabels([f"{v:g}" for v in lams], fontsize=8)
    ax.minorticks_off()
    ax.axvline(result.config.lambdas[2], color="0.6", ls=":", lw=1)
    ax.set_xlabel(r"adversarial weight $\lambda_3$ (log scale)")
    ax.set_ylabel("NR-IQA average (rescaled to [1, 100])")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="x", ls="", color="0.3", mew=2))
    labels.append(f"collapsed ({len(bad)} run{'s' if len(bad) != 1 else ''})")
    ax.legend(handles, labels, fontsize=8, title=f"patch-level D, seeds: {result.config.seeds}", title_fontsize=8)
    evs = ", ".join(e for e in dict.fromkeys(result.summary.loc[result.summary["kind"] == "nr", "evaluator"])
                    if e != AVERAGE) or "none available"
    _suptitle(fig, f"Fig. 7: impact of the GAN loss weight (NR evaluators: {evs})", result.profile, result.weights)
    fig.tight_layout()
    return fig


def plot_training_dynamics(result: DiscriminatorStudyResult, head: str | None = None):
    """Training curves of the sweep (one column per backbone, colour = ``lambda_3``; mean over seeds with the
    seeds' min-max band): ``D(real) - D(fake)`` (mean logits), the generator's gradient norm and, when logged,
    the discriminator's. Collapsed runs end where they stopped, marked ``x``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    head = head or result.config.sweep_head
    cur = result.curves
    cur = cur[cur["head"] == head] if len(cur) else cur
    panels = [("d_gap", "D(real) - D(fake)"), ("grad_norm_g", "|grad G| (total loss)")]
    if "grad_norm_d" in cur.columns and cur["grad_norm_d"].notna().any():
        panels.append(("grad_norm_d", "|grad D|"))
    order = [_display_backbone(b) for b in result.config.backbones]
    fig, axes = plt.subplots(len(panels), len(order), figsize=(3.6 * len(order), 2.6 * len(panels)), squeeze=False,
                             sharex=True)
    lams = sorted(set(result.config.sweep_lambda_adv))
    palette = dict(zip(lams, sns.color_palette("viridis", len(lams))))
    for j, disp in enumerate(order):
        sub = cur[cur["display"] == disp] if len(cur) else cur
        for i, (col, label) in enumerate(panels):
            ax = axes[i][j]
            if len(sub) and col in sub.columns and sub[col].notna().any():
                data = sub[sub[col].notna()]
                sns.lineplot(data=data, x="step", y=col, hue="lambda_adv", palette=palette, estimator="mean",
                             errorbar=("pi", 100) if data["seed"].nunique() > 1 else None, ax=ax,
                             legend=(i == 0 and j == len(order) - 1))
                ends = data[data["status"] != "finished"].sort_values("step").groupby("run_id").tail(1)
                for r in ends.itertuples():
                    ax.plot(r.step, getattr(r, col), marker="x", ms=8, mew=2, color=palette.get(r.lambda_adv, "k"))
                if col.startswith("grad_norm"):
                    ax.set_yscale("log")
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_ylabel(label if j == 0 else "")
            if i == 0:
                ax.set_title(f"{HEAD_TITLES.get(head, head)} D: {disp}", fontsize=9)
    leg = axes[0][-1].get_legend()
    if leg is not None:
        leg.set_title(r"$\lambda_3$")
        for t in leg.get_texts():
            try:
                t.set_text(f"{float(t.get_text()):g}")
            except ValueError:
                pass
    _suptitle(fig, "Training dynamics of the GAN-weight sweep", result.profile, result.weights)
    fig.tight_layout()
    return fig
