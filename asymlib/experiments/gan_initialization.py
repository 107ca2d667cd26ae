"""Notebook 03: do GAN discriminator features transfer to IQA? (paper Sec. 3.3, Table 2, Fig. 5, Fig. 8, App. C)

Each backbone (VGG-16, ResNet-50, DINOv2) is initialized three ways and used for IQA:

* ``random``: the seeded random initialization (paper footnote 3: no pretrained weights);
* ``gan``: the backbone of a discriminator trained adversarially in SR (exported in the
  ``asymlib.backbone.v1`` format, see :func:`resolve_initializations`);
* ``imagenet``: ImageNet-pretrained weights from the local cache.

FR-IQA (Table 2): a DISTS-style metric over the (frozen) backbone, trained and evaluated exactly as in
notebook 01 (the same ``metric``/``metric_eval`` runs of the study graph: same alpha/beta training, same
benchmarks and protocol); only the backbone weights differ, so a run notebook 01 already did (e.g. ImageNet
VGG-16) is the same run.

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

GAN checkpoints are the backbone exports (``discriminator_backbone.pt``) of the SR runs the graph declares as
GAN sources (:func:`asymlib.pipeline.declare.gan_source_spec`): notebook 04's Table 3 cell with the
``gan_init.gan`` head and metric at the paper's lambda_3, i.e. the same run folder notebook 04 trains. Given
export files can replace them (``gan_checkpoints``).
"""
from __future__ import annotations

import hashlib
import math
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..backbones import create_feature_extractor, get_backbone_spec
from ..config import INITIALIZATIONS, GanInitConfig, GanSourceConfig, Profile
from ..errors import AsymlibError, WeightsUnavailableError
from ..pipeline import StudyContext, ensure
from ..pipeline.declare import gan_source_spec, metric_train_spec, nr_spec
from ..pipeline.metric_runs import SYNTHETIC_LABEL, SYNTHETIC_POOLED_LABEL, metric_results
from ..pipeline.nr_runs import SYNTHETIC_NR_NOTE, load_nr_benchmark, nr_statistics
from ..pipeline.sr_runs import export_discriminator_backbone
from ..reporting import averaged_benchmarks, load_paper_table, ours_label, profile_banner

__all__ = [
    "INITIALIZATIONS",
    "GanCheckpoint",
    "GanInitConfig",
    "GanInitResults",
    "GanSourceConfig",
    "GanUnavailableError",
    "InitSource",
    "gan_init_config",
    "load_nr_benchmark",
    "nr_table",
    "plot_fr_initialization",
    "plot_nr_initialization",
    "resolve_initializations",
    "run_fr_initialization",
    "run_gan_init_study",
    "run_nr_initialization",
]

INIT_DISPLAY = {"random": "Random", "gan": "GAN", "imagenet": "ImageNet"}  # as in the paper's Table 2 CSV
PAPER_BACKBONE = {"vgg16": "VGG-16", "resnet50": "ResNet-50", "dinov2_vits14": "DINOv2", "dinov2_vitb14": "DINOv2"}
NR_FIGURES = {  # dataset -> (figure file stem, paper figure)
    "kadid10k": ("fig5_nr_iqa_kadid10k", "Fig. 5"),
    "koniq10k": ("fig8_nr_iqa_koniq10k", "Fig. 8"),
    "synthetic": ("fig5_fig8_nr_iqa_synthetic", "Fig. 5 / Fig. 8 layout"),
}


class GanUnavailableError(AsymlibError):
    """No GAN discriminator backbone can be found or trained for a backbone."""


def gan_init_config(profile: Profile | str, **overrides: Any) -> GanInitConfig:
    """The profile's notebook-03 configuration with (dotted) overrides whose value is not None, e.g.
    ``gan_init_config(p, backbones=["vgg16"], **{"nr_train.iterations": 4})``."""
    from ..config import get_profile

    cfg = get_profile(profile).gan_init
    ov = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**ov) if ov else cfg


# ----------------------------------------------------------------------------------------------
# Initialization sources
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GanCheckpoint:
    """An exported discriminator backbone (``asymlib.backbone.v1``) and the SR run it comes from."""

    backbone: str
    path: Path
    source: str
    sr_run: str | None = None
    head: str | None = None
    lambda_adv: float | None = None
    step: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "checkpoint": str(self.path), "source": self.source,
                "sr_run": self.sr_run, "head": self.head, "lambda_adv": self.lambda_adv, "step": self.step}


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


def _gan_source(ctx: StudyContext, backbone: str, train_missing: bool) -> InitSource:
    """The GAN initialization of ``backbone``: the export of the graph's GAN-source SR run."""
    spec = ctx.graph[ctx.graph.add(gan_source_spec(ctx.profile, ctx.graph, backbone))]
    if not ctx.finished(spec):
        if not (train_missing and ctx.profile.gan_init.gan.train_if_missing):
            return InitSource(backbone, "gan", None, "gan (discriminator run not trained)",
                              detail=f"SR run {spec.key} is {ctx.state(spec)}")
        ensure(ctx, spec)
    st = ctx.status(spec)
    if st.get("status") != "finished":
        return InitSource(backbone, "gan", None, "gan (discriminator run collapsed)",
                          detail=f"SR run {spec.key}: {st.get('status')} at step {st.get('step')}: {st.get('reason', '')}")
    path = export_discriminator_backbone(spec.path(ctx.output_dir))
    if path is None:
        return InitSource(backbone, "gan", None, "gan (no discriminator checkpoint)", detail=f"SR run {spec.key}")
    disc = spec.params["train"].discriminator
    ck = GanCheckpoint(backbone, path, f"exported from SR run {spec.key}", spec.key, disc.head,
                       float(spec.params["train"].lambda_adv), st.get("step"))
    return InitSource(backbone, "gan", str(path), ck.source, ck)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def resolve_initializations(profile: Profile, output_dir: str | Path,
                            gan_checkpoints: Mapping[str, str | Path] | None = None, train_missing: bool = True,
                            progress: bool = True) -> dict[tuple[str, str], InitSource]:
    """``{(backbone, initialization): InitSource}`` for ``profile.gan_init``'s grid.

    ``gan_checkpoints`` maps backbone names to given export files (used instead of the graph's GAN-source runs;
    loaded once here, so a file of another architecture fails now with :class:`~asymlib.errors.CheckpointError`).
    Unavailable ImageNet weights give a skipped source unless ``gan_init.require_imagenet``; a GAN backbone whose
    SR run collapsed (or is not trained while ``train_missing`` is off) gives a skipped source with the reason.
    """
    cfg = profile.gan_init
    ctx = StudyContext(profile, output_dir, progress=progress)
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
                ck = GanCheckpoint(bb, given[bb], f"given file (sha256 {_file_digest(given[bb])})")
                out[bb, init] = InitSource(bb, init, str(ck.path), ck.source, ck)
            else:
                out[bb, init] = _gan_source(ctx, bb, train_missing)
    return out


# ----------------------------------------------------------------------------------------------
# FR-IQA (Table 2)
# ----------------------------------------------------------------------------------------------
def _benchmark_labels(profile: Profile) -> list[str]:
    ms = profile.metric_study
    if "synthetic" in ms.eval_sets:
        return [SYNTHETIC_LABEL, SYNTHETIC_POOLED_LABEL]
    from ..iqa.datasets import create_fr_dataset

    root = profile.resolved_data_root()
    return [create_fr_dataset(name, root / name).name for name in ms.eval_sets]


def _metric_spec(ctx: StudyContext, src: InitSource):
    gan = src.gan
    if src.initialization == "gan" and gan is not None and gan.sr_run is None:  # a given export file
        spec = metric_train_spec(ctx.profile, src.backbone, init="gan", notebooks=("03",),
                                 name=f"{src.backbone}-gan-file")
        identity = {**spec.identity, "gan_file": gan.source}
        import dataclasses

        return dataclasses.replace(spec, identity=identity, params={"weights_path": str(gan.path)})
    return metric_train_spec(ctx.profile, src.backbone, init=src.initialization,
                             gan_source=gan.sr_run if gan is not None else None, notebooks=("03",))


def run_fr_initialization(profile: Profile, output_dir: str | Path, sources: Mapping[tuple[str, str], InitSource],
                          train_missing: bool = True, progress: bool = True) -> pd.DataFrame:
    """DISTS-style metric of every backbone x initialization, trained and evaluated as in notebook 01 (the same
    runs of the graph, with the initialization's backbone weights). Returns tidy rows (one per metric x
    benchmark, plus ``Average``) with ``initialization``, ``init_display``, ``paper_backbone`` and ``status``;
    skipped initializations have NaN statistics and ``status = "skipped: <reason>"``.
    """
    cfg = profile.gan_init
    ctx = StudyContext(profile, output_dir, progress=progress)
    frames: dict[tuple[str, str], pd.DataFrame] = {}
    for bb in cfg.backbones:
        for init in cfg.initializations:
            src = sources[bb, init]
            if src.available:
                frames[bb, init] = metric_results(ctx, ctx.graph.add(_metric_spec(ctx, src)), train_missing)
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


# ----------------------------------------------------------------------------------------------
# NR-IQA (Fig. 5, Fig. 8)
# ----------------------------------------------------------------------------------------------
def run_nr_initialization(profile: Profile, output_dir: str | Path, sources: Mapping[tuple[str, str], InitSource],
                          train_missing: bool = True, progress: bool = True) -> pd.DataFrame:
    """The NR run of every dataset x backbone x initialization (trained unless finished); one tidy row each
    with test statistics and bootstrap intervals (``gan_init.n_bootstrap``). Unavailable sources give a
    ``skipped`` row without a run."""
    cfg = profile.gan_init
    ctx = StudyContext(profile, output_dir, progress=progress)
    rows = []
    for ds in cfg.nr_datasets:
        for bb in cfg.backbones:
            for init in cfg.initializations:
                src = sources[bb, init]
                base = {"dataset": ds, "backbone": bb, "display": get_backbone_spec(bb).display,
                        "paper_backbone": PAPER_BACKBONE.get(bb, get_backbone_spec(bb).display),
                        "initialization": init, "init_display": INIT_DISPLAY[init], "status": src.status,
                        "profile": profile.name, "seed": profile.seed,
                        "labels": SYNTHETIC_NR_NOTE if ds == "synthetic" else "MOS/DMOS"}
                gan_run = src.gan.sr_run if src.gan is not None else None
                if not src.available or (init == "gan" and gan_run is None):
                    rows.append({**base, "weights_source": "none", "srcc": np.nan, "plcc": np.nan})
                    continue
                key = ctx.graph.add(nr_spec(profile, ds, bb, init, gan_run))
                if not train_missing and not ctx.finished(key):
                    rows.append({**base, "status": "pending", "weights_source": "", "srcc": np.nan, "plcc": np.nan,
                                 "run_id": key, "run_dir": ctx.graph[key].relpath()})
                    continue
                run = ensure(ctx, key)
                stats = nr_statistics(run.path, cfg.n_bootstrap, profile.seed)
                rows.append({**base, **stats, "run_id": key, "run_dir": ctx.graph[key].relpath()})
    return pd.DataFrame(rows)


def nr_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x backbone x initialization; our columns prefixed ``ours (<profile>)``.

    The paper reports Fig. 5 and Fig. 8 as bar plots without numbers, so there is no paper column.
    """
    ours = ours_label(str(results["profile"].iloc[0]))

    def ci(r: pd.Series, k: str) -> str:
        lo, hi = r.get(f"{k}_low", np.nan), r.get(f"{k}_high", np.nan)
        return "" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"

    rows = []
    for _, r in results.iterrows():
        rows.append({
            "dataset": r["dataset"], "paper figure": NR_FIGURES.get(r["dataset"], ("", ""))[1],
            "backbone": r["display"], "initialization": r["init_display"],
            f"{ours} SRCC (test)": r.get("srcc", np.nan), f"{ours} SRCC 95% CI": ci(r, "srcc"),
            f"{ours} PLCC (test)": r.get("plcc", np.nan), f"{ours} PLCC 95% CI": ci(r, "plcc"),
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


def run_gan_init_study(profile: Profile, output_dir: str | Path,
                       gan_checkpoints: Mapping[str, str | Path] | None = None, train_missing: bool = True,
                       progress: bool = True) -> GanInitResults:
    """Resolve the initializations, then run FR (Table 2) and NR (Fig. 5/8); finished runs are reused."""
    t0 = time.perf_counter()
    cfg = profile.gan_init
    sources = resolve_initializations(profile, output_dir, gan_checkpoints, train_missing, progress)
    fr = run_fr_initialization(profile, output_dir, sources, train_missing, progress)
    nr = run_nr_initialization(profile, output_dir, sources, train_missing, progress)
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


def _fit_ylim(ax: Any, frames: Sequence[pd.DataFrame], values: Sequence[str]) -> None:
    """A y range that holds every bar and every interval of ``values`` (negative correlations and lower bounds
    included); axes that share y get it once, for all their statistics."""
    cols = [f[c] for f in frames for v in values for c in (v, f"{v}_low", f"{v}_high") if c in f.columns]
    vals = pd.to_numeric(pd.concat(cols), errors="coerce").dropna() if cols else pd.Series(dtype=float)
    lo = min(0.0, float(vals.min())) if len(vals) else 0.0
    hi = max(1.0, float(vals.max())) if len(vals) else 1.0
    ax.set_ylim(lo - 0.05 if lo < 0 else 0.0, hi + 0.05)


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
    _fit_ylim(axes[0], [df], ("srcc", "plcc"))
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
    # an average of one benchmark (smoke: the pooled synthetic levels) carries that benchmark's interval
    _grouped_bars(axes[0], ours, "srcc", inits, list(dict.fromkeys(ours["display"])), _COLORS, with_ci=True)
    _grouped_bars(axes[1], paper, "srcc", inits, list(dict.fromkeys(paper["display"])), _COLORS, with_ci=False)
    axes[0].set_ylabel("average SRCC")
    _fit_ylim(axes[0], [ours, paper], ("srcc",))
    _banner_title(axes[0], f"FR-IQA by initialization: ours ({profile}, average over {averaged_benchmarks(results)})",
                  profile, weights)
    axes[1].set_title("paper Table 2 (TID2013/Liu13/Ma17/TQD average)", fontsize=8)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
