"""Notebook 05: the paper's tables and figures from the results of notebooks 01-04, plus visual analyses.

Nothing here retrains the study's models. Tables and Fig. 3 are built from the tidy CSV files that notebooks
01-04 write under ``<output>/tables``; the SR outputs of the comparison widget are the PNG files of notebook
02's evaluation runs; the discriminator of Fig. 14 is a backbone exported by notebook 04. The visual analyses
(image recovery, texture synthesis, the autoencoder) optimize images or a small autoencoder with the study's
metrics; each is a run of the study graph under ``<output>/runs/analysis`` so a re-executed notebook reuses it.

- :func:`load_study_tables`: the results of notebooks 01-04 (a missing file names the notebook to run).
- :func:`paper_tables`: Tables 1-4 of the paper beside ours (:func:`asymlib.reporting.paper_comparison`).
- :func:`fig3_data`: one point per (setting, metric): IQA accuracy (Table 4) vs SR quality (Table 1).
- :func:`run_recovery`, :func:`run_texture_synthesis`, :func:`run_autoencoder`, :func:`discriminator_feature_maps`.
- :func:`comparison_inputs`: LR / HR / SR images and scores for :class:`~asymlib.widgets.ComparisonWidget`.
- :func:`qualitative_grids`, :func:`plot_qualitative`: Figs. 2, 4, 6, 9-11, the SR outputs of notebooks 02 and
  04 side by side with a magnified zoom region (:func:`fig2_objectives`, :func:`fig4_objectives_metrics`,
  :func:`fig6_discriminators` build one figure each).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..config import FiguresConfig, Profile
from ..errors import ConfigError, UnknownNameError
from ..imageio import load_image
from ..reporting import (TableComparison, averaged_benchmarks, averaged_evaluators, paper_comparison,
                         profile_banner)
from ..runs import read_csv_file
from ..pipeline import StudyContext, ensure
from ..pipeline.sr_runs import DISCRIMINATOR_IMAGE_SCORES, bicubic_upscale, lr_input
from ..pipeline.analysis_runs import load_result, reference_image
from ..sr.config import SR_SETTINGS

if TYPE_CHECKING:
    from ..analysis import Panel

__all__ = [
    "FiguresConfig", "figures_config_for", "StudyTables", "load_study_tables",
    "paper_tables", "fig3_data", "fig3_x_label", "plot_fig3", "run_recovery",
    "run_texture_synthesis", "run_autoencoder", "discriminator_feature_maps", "comparison_inputs",
    "validation_images", "QUALITATIVE_FIGURES", "QualitativeGrid", "fig2_objectives", "fig4_objectives_metrics",
    "fig6_discriminators", "qualitative_grids", "plot_qualitative",
]


def figures_config_for(profile: Profile | str, **overrides: Any) -> FiguresConfig:
    """The profile's notebook-05 configuration with overrides whose value is not None."""
    from ..config import get_profile

    cfg = get_profile(profile).figures
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


# ----------------------------------------------------------------------------------------------
# Results of notebooks 01-04
# ----------------------------------------------------------------------------------------------
_STUDY_FILES = {  # attribute -> (file under <output>/tables, notebook that writes it)
    "metrics": ("metric_study_results.csv", "01_metric_construction"),
    "table1": ("table1_sr_nriqa_by_objective.csv", "02_sr_optimization"),
    "sr_scores": ("sr_nriqa_scores.csv", "02_sr_optimization"),
    "fr_init": ("fr_iqa_by_initialization_results.csv", "03_gan_initialization"),
    "table3": ("table3_sr_nriqa_by_discriminator.csv", "04_discriminator_ablation"),
    "gan_backbones": ("gan_backbones.csv", "04_discriminator_ablation"),
}


@dataclass
class StudyTables:
    """Tidy results of notebooks 01-04 (see each notebook's tables) and the profile that produced them."""

    metrics: pd.DataFrame
    table1: pd.DataFrame
    sr_scores: pd.DataFrame
    fr_init: pd.DataFrame
    table3: pd.DataFrame
    gan_backbones: pd.DataFrame
    profile: str
    weights: str
    output_dir: Path = Path(".")

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)

    def resolve(self, path: str | Path) -> Path:
        """A path of a table (relative to the output folder) as a usable path."""
        p = Path(path)
        return p if p.is_absolute() else self.output_dir / p


def load_study_tables(output_dir: str | Path, profile: Profile) -> StudyTables:
    """Read the tables notebooks 01-04 wrote under ``output_dir/tables``.

    Raises:
        FileNotFoundError: a table is missing; the message names it and the notebook that writes it.
        ConfigError: a table was produced by another profile than ``profile``.
    """
    folder = Path(output_dir) / "tables"
    frames: dict[str, pd.DataFrame] = {}
    for attr, (name, notebook) in _STUDY_FILES.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run notebook {notebook} with profile {profile.name!r} "
                                    f"and output {output_dir} first (notebook 05 never retrains)")
        frames[attr] = read_csv_file(path, dtype={"image": str})  # image names such as DIV2K's "0801"
    for attr in ("metrics", "sr_scores", "fr_init"):
        found = set(frames[attr]["profile"].dropna().astype(str)) if "profile" in frames[attr] else set()
        if found and found != {profile.name}:
            raise ConfigError(f"{folder / _STUDY_FILES[attr][0]} holds results of profile(s) {sorted(found)}, "
                              f"not {profile.name!r}; use the output folder of a {profile.name} study")
    return StudyTables(**frames, profile=profile.name, weights=profile.weights, output_dir=Path(output_dir))


# ----------------------------------------------------------------------------------------------
# Paper vs ours
# ----------------------------------------------------------------------------------------------
def _setting_label(key: Any) -> Any:
    return SR_SETTINGS[key].paper_label if isinstance(key, str) and key in SR_SETTINGS else key


def paper_tables(tables: StudyTables) -> dict[int, TableComparison]:
    """Tables 1-4 of the paper beside ours: :func:`~asymlib.reporting.paper_comparison` of each table's
    results (Table 1 from notebook 02, 2 from 03's FR rows, 3 from 04, 4 from 01's metric results).

    Our cells use our evaluators and benchmarks; where they are not the paper's (smoke: PIQE, synthetic
    levels) they stand in rows or columns of their own. Smoke and rehearsal numbers get no delta and stand in
    their own block (:func:`~asymlib.reporting.numbers_comparable`).
    """
    frames = {1: tables.table1, 2: tables.fr_init, 3: tables.table3, 4: tables.metrics}
    return {n: paper_comparison(n, frame, tables.profile, tables.weights) for n, frame in frames.items()}


def fig3_x_label(tables: StudyTables, statistic: str = "srcc") -> str:
    """Fig. 3's x-axis label: the statistic and the benchmarks it is averaged over."""
    return f"IQA {statistic.upper()}: {averaged_benchmarks(tables.metrics)}"


def plot_fig3(points: pd.DataFrame, stats: pd.DataFrame, tables: StudyTables, statistic: str = "srcc") -> Any:
    """Fig. 3 from :func:`fig3_data` points and their :func:`~asymlib.analysis.correlation_table`, under the
    profile banner; the paper's points are drawn beside ours only when our numbers are comparable."""
    from ..analysis import plot_iqa_vs_optimization
    from ..reporting import numbers_comparable, paper_correlation_data

    comparable = numbers_comparable(tables.profile, tables.weights)
    return plot_iqa_vs_optimization(points, tables.banner, stats=stats,
                                    paper=paper_correlation_data() if comparable else None,
                                    x_label=fig3_x_label(tables, statistic), alert=tables.profile == "smoke")


def fig3_data(tables: StudyTables, statistic: str = "srcc", evaluator: str = "Average") -> pd.DataFrame:
    """Fig. 3 points from our results: ``setting`` (paper label), ``metric``, ``iqa_srcc`` = the metric's
    average ``statistic`` over notebook 01's benchmarks, ``sr_quality`` = Table 1's ``evaluator`` row.

    The x column keeps the name ``iqa_srcc`` that :mod:`asymlib.analysis.correlation` expects; ``statistic``
    is recorded in the ``iqa_statistic`` column and what the average is over in ``iqa_benchmarks``. Collapsed runs (no score) are left out.
    """
    m = tables.metrics
    if statistic not in m.columns:
        raise ConfigError(f"notebook 01 results have no column {statistic!r}; use one of srcc, krcc, plcc")
    avg = m[m["benchmark"] == "Average"].set_index("display")
    x = avg[statistic]
    benchmarks = averaged_benchmarks(m)
    t1 = tables.table1
    if not (t1["evaluator"] == evaluator).any():
        raise ConfigError(f"Table 1 has no {evaluator!r} row; rows: {sorted(t1['evaluator'].unique())}")
    y = t1[(t1["evaluator"] == evaluator) & t1["column"].isin(x.index)]
    df = pd.DataFrame({"setting": y["setting"].map(_setting_label), "metric": y["column"],
                       "iqa_srcc": y["column"].map(x), "sr_quality": y["score"]})
    df["iqa_statistic"] = statistic
    df["iqa_benchmarks"] = benchmarks
    return df.dropna(subset=["iqa_srcc", "sr_quality"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Cached analyses
# ----------------------------------------------------------------------------------------------
def _analysis_context(profile: Profile, output_dir: str | Path, cfg: FiguresConfig | None,
                      progress: bool) -> StudyContext:
    prof = profile if cfg is None else dataclasses.replace(profile, figures=cfg)
    return StudyContext(prof, output_dir, progress=progress)


def _analysis(ctx: StudyContext, task: str, train_missing: bool, **identity: Any) -> dict[str, Any] | None:
    """``result.pt`` of the graph's ``task`` run with these identity fields (trained unless finished; ``None``
    when it is not finished and ``train_missing`` is False)."""
    (spec,) = ctx.graph.find(task, **identity)
    if not train_missing and not ctx.finished(spec):
        return None
    ensure(ctx, spec)
    return load_result(ctx, spec.key)


def run_recovery(profile: Profile, output_dir: str | Path, cfg: FiguresConfig | None = None, progress: bool = True,
                 train_missing: bool = True) -> dict[str, Any]:
    """Fig. 12-13: recover ``cfg.recovery_image`` with every metric from every start (``analysis`` runs of the
    graph; ``cfg`` replaces the profile's figures configuration).

    Returns ``{"reference": (1,3,H,W), "results": {"<metric display> / <init>": RecoveryResult}, "sources":
    {metric display: alpha/beta source}}``.
    """
    from ..analysis import RecoveryResult
    from ..metrics.registry import get_metric_preset

    ctx = _analysis_context(profile, output_dir, cfg, progress)
    cfg = ctx.profile.figures
    ref = reference_image(cfg.recovery_image, cfg.recovery_size)
    results: dict[str, RecoveryResult] = {}
    sources: dict[str, str] = {}
    for key in cfg.recovery_metrics:
        display = get_metric_preset(key).display
        for init in cfg.recovery_inits:
            d = _analysis(ctx, "recovery", train_missing, metric=key, init=init)
            if d is None:
                continue
            sources[display] = d["source"]
            results[f"{display} / {init}"] = RecoveryResult(image=d["image"], initial=d["initial"], losses=d["losses"],
                                                            gradient=d["gradient"], seconds=d["seconds"],
                                                            label=f"{display} / {init}")
    return {"reference": ref, "results": results, "sources": sources}


def run_texture_synthesis(profile: Profile, output_dir: str | Path, cfg: FiguresConfig | None = None,
                          progress: bool = True, train_missing: bool = True) -> dict[str, dict[str, Any]]:
    """Fig. 15: synthesize every embedded texture with every metric's texture term (``analysis`` runs).

    Returns ``{metric display: {texture: TextureResult}}``.
    """
    from ..analysis import TextureResult, fit_image
    from ..data.corpus import embedded_textures
    from ..metrics.registry import get_metric_preset

    ctx = _analysis_context(profile, output_dir, cfg, progress)
    cfg = ctx.profile.figures
    textures = {k: fit_image(v, cfg.texture_size) for k, v in embedded_textures().items()}
    out: dict[str, dict[str, Any]] = {}
    for key in cfg.texture_metrics:
        display = get_metric_preset(key).display
        out[display] = {}
        for tex, exemplar in textures.items():
            d = _analysis(ctx, "texture", train_missing, metric=key, texture=tex)
            if d is None:
                continue
            out[display][tex] = TextureResult(image=d["image"], exemplar=exemplar, initial=d["initial"],
                                              losses=d["losses"], seconds=d["seconds"], label=f"{display} / {tex}")
    return out


def run_autoencoder(profile: Profile, output_dir: str | Path, cfg: FiguresConfig | None = None, progress: bool = True,
                    train_missing: bool = True) -> dict[str, Any]:
    """Fig. 16: a convolutional autoencoder trained with each objective setting (same lambdas as SR;
    ``analysis`` runs).

    Returns ``{"originals": {image: (3,H,W)}, "reconstructions": {setting display: {image: (3,H,W)}},
    "logs": {setting display: DataFrame}, "status": {setting display: "finished" or "collapsed: why"},
    "summary": one row per objective: its last logged terms and status}``. A collapsed run's reconstructions are
    those at its collapse (none when they are not finite).
    """
    from ..analysis import fit_image, get_objective
    from ..data.corpus import embedded_images

    ctx = _analysis_context(profile, output_dir, cfg, progress)
    cfg = ctx.profile.figures
    originals = {k: fit_image(v, cfg.ae_crop * 2) for k, v in embedded_images(list(cfg.ae_images)).items()}
    recon: dict[str, dict[str, torch.Tensor]] = {}
    logs: dict[str, pd.DataFrame] = {}
    status: dict[str, str] = {}
    for setting in cfg.ae_objectives:
        obj = get_objective(setting)
        d = _analysis(ctx, "autoencoder", train_missing, objective=setting)
        if d is None:
            continue
        if len(d["names"]):
            recon[obj.display] = dict(zip(d["names"], d["images"]))
        logs[obj.display] = pd.DataFrame(d["log"])
        state = str(d.get("status", "finished"))
        status[obj.display] = state if state == "finished" else f"{state}: {d.get('reason', '')}"
    last = {k: (log.iloc[-1] if len(log) else pd.Series(dtype=float)) for k, log in logs.items()}
    summary = pd.DataFrame(last).T.reindex(list(logs)).assign(status=pd.Series(status))
    return {"originals": originals, "reconstructions": recon, "logs": logs, "status": status, "summary": summary}


def discriminator_feature_maps(tables: StudyTables, cfg: FiguresConfig, reduce: str = "topk"
                               ) -> tuple[dict[str, tuple[torch.Tensor, list[torch.Tensor]]], pd.DataFrame]:
    """Fig. 14: feature maps of trained discriminator backbones exported by notebook 04.

    For each backbone of ``cfg.featuremap_backbones`` the export with head ``cfg.featuremap_head``, the
    profile's seed and the weight closest to Table 3's ``lambda_3 = 5e-3`` is loaded. Returns the rows for
    :func:`~asymlib.analysis.plot_feature_maps` and a table of the exports used (or why one is missing).
    """
    from ..analysis import feature_maps
    from ..backbones import create_feature_extractor

    image = reference_image(cfg.featuremap_image, cfg.featuremap_size)
    gan = tables.gan_backbones
    rows: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    used = []
    for bb in cfg.featuremap_backbones:
        cand = gan[(gan["backbone"] == bb) & (gan["head"] == cfg.featuremap_head)]
        if cand.empty:
            used.append({"backbone": bb, "head": cfg.featuremap_head, "export": None,
                         "note": "no export by notebook 04 for this backbone and head"})
            continue
        cand = cand.assign(dist=(np.log(cand["lambda3"].astype(float)) - math.log(5e-3)).abs())
        row = cand.sort_values(["dist", "seed"]).iloc[0]
        fx = create_feature_extractor(bb, weights=tables.resolve(row["path"]))
        label = f"{fx.display} ({cfg.featuremap_head})"
        rows[label] = (image[0], feature_maps(fx, image, reduce=reduce))  # type: ignore[arg-type]
        used.append({"backbone": bb, "head": cfg.featuremap_head, "export": row["run_id"],
                     "note": f"lambda3={row['lambda3']:g}, seed {row['seed']}, status {row['status']}, "
                             f"step {row['step']}"})
    return rows, pd.DataFrame(used)


# ----------------------------------------------------------------------------------------------
# Comparison widget inputs
# ----------------------------------------------------------------------------------------------
def _hr_dir(tables: StudyTables) -> Path:
    """Folder of the HR validation images (notebook 02's ``Ref.`` column)."""
    sc = tables.sr_scores
    hr_dir = sc.loc[sc["column"] == "Ref.", "images_dir"] if "column" in sc else pd.Series(dtype=object)
    if hr_dir.empty:
        raise FileNotFoundError("notebook 02's scores have no Ref. (HR) column; re-run notebook 02")
    return tables.resolve(hr_dir.iloc[0])


def validation_images(tables: StudyTables) -> list[str]:
    """Names of the validation images notebook 02 super-resolved (sorted; the PNG stems of its HR folder)."""
    hr_dir = _hr_dir(tables)
    names = sorted(p.stem for p in hr_dir.glob("*.png"))
    if not names:
        raise FileNotFoundError(f"no HR images in {hr_dir}; re-run notebook 02")
    return names


def comparison_inputs(tables: StudyTables, scale: int = 4, max_images: int | None = None,
                      settings: Sequence[str] | None = None
                      ) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, float]], list[str]]:
    """Images and scores of notebook 02's evaluation runs for :class:`~asymlib.widgets.ComparisonWidget`.

    Returns ``(images, scores, default runs)``: ``images[name] = {"lr", "hr", "runs": {label: path}}`` with
    labels ``L1`` and ``<setting> / <metric>``; the LR image is the HR downscaled by ``scale`` with the same
    MATLAB-style bicubic and 8-bit rounding as the model's input (:func:`~asymlib.pipeline.sr_runs.lr_input`).
    ``scores[(name, label)] = {evaluator: score}`` (HR under ``"HR"``).
    """
    sc = tables.sr_scores
    hr_dir = _hr_dir(tables)
    names = validation_images(tables)[:max_images]
    def label(column: str, setting: Any) -> str:
        if column == "Ref.":
            return "HR"
        return f"{setting} / {column}" if isinstance(setting, str) else column

    labels: dict[str, Path] = {}
    for r in sc.drop_duplicates(["column", "setting", "images_dir"]).itertuples():
        if r.column == "Ref.":
            continue
        if isinstance(r.setting, str) and settings is not None and r.setting not in settings:
            continue
        labels[label(r.column, r.setting)] = tables.resolve(r.images_dir)
    images: dict[str, dict[str, Any]] = {}
    for n in names:
        hr = load_image(hr_dir / f"{n}.png")
        images[n] = {"lr": lr_input(hr, scale), "hr": hr, "runs": {lab: d / f"{n}.png" for lab, d in labels.items()
                                                  if (d / f"{n}.png").is_file()}}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    for r in sc[sc["image"].isin(names)].itertuples():
        scores.setdefault((r.image, label(r.column, r.setting)), {})[r.evaluator] = float(r.score)
    default = [lab for lab in labels if lab == "L1" or lab.endswith("/ VGG-16")][:4]
    return images, scores, default


# ----------------------------------------------------------------------------------------------
# Qualitative comparisons (Figs. 2, 4, 6, 9-11)
# ----------------------------------------------------------------------------------------------
QUALITATIVE_FIGURES = {  # paper figure -> file stem under figures/
    2: "fig2_qualitative_objectives",
    4: "fig4_qualitative_objectives_metrics",
    6: "fig6_qualitative_discriminators",
    9: "fig9_qualitative_objectives_metrics",
    10: "fig10_qualitative_objectives_metrics",
    11: "fig11_qualitative_objectives_metrics",
}
_OBJECTIVE_LABELS = {"perceptual": "{m}", "rec+perceptual": "Rec. + {m}", "perceptual+adv": "{m} + Adv.",
                     "rec+perceptual+adv": "Rec. + {m} + Adv."}
_HEAD_LABELS = {"vanilla": "Vanilla D", "patch": "Patch-level D"}


@dataclass
class QualitativeGrid:
    """The content of one qualitative figure, ready for :func:`plot_qualitative`.

    Attributes:
        number: the paper's figure number; ``stem``: the file name under ``figures/`` (no suffix).
        title: the figure title (names the image, and says so when an image is shown again in another figure).
        image: the validation image shown; ``reference``: its HR version ``(3, H, W)`` in ``[0, 1]``, on which
            the zoom region is chosen.
        rows: rows of :class:`~asymlib.analysis.Panel` (``None`` = blank cell); ``row_labels``: one per row.
        reused: the image is also shown in an earlier figure of the appendix set (fewer images than figures).
    """

    number: int
    stem: str
    title: str
    image: str
    reference: torch.Tensor
    rows: list[list[Panel | None]]
    row_labels: list[str]
    reused: bool = False

    @property
    def panels(self) -> list[Panel]:
        """Every panel, row by row (blank cells left out)."""
        return [p for row in self.rows for p in row if p is not None]


def _objective_label(setting: str, metric: str) -> str:
    return _OBJECTIVE_LABELS.get(setting, f"{setting} / {{m}}").format(m=metric)


def _score_caption(rows: pd.DataFrame, evaluators: Sequence[str] | None) -> str:
    """One line of per-image scores: the named ``evaluators``, or the NR evaluator (their mean, ``NR avg``, when
    there are several; the full-reference ones when there is no NR evaluator)."""
    if rows.empty:
        return ""
    per = rows.groupby("evaluator", sort=False)["score"].first()
    if evaluators is not None:
        return ", ".join(f"{e} {per[e]:.4g}" for e in evaluators if e in per.index and np.isfinite(per[e]))
    nr = [e for e in averaged_evaluators(rows) if e in per.index and np.isfinite(per[e])]
    if len(nr) == 1:
        return f"{nr[0]} {per[nr[0]]:.4g}"
    if nr:
        return f"NR avg {float(np.mean([per[e] for e in nr])):.4g}"
    return ", ".join(f"{e} {v:.4g}" for e, v in per.items() if np.isfinite(v))


class _QualitativeSources:
    """What the qualitative figures read, loaded once: notebook 02's scores and image folders, notebook 04's
    runs and per-image scores, and the run index of the output folder (for the status of runs without output)."""

    def __init__(self, tables: StudyTables, scale: int, evaluators: Sequence[str] | None) -> None:
        self.tables, self.scale, self.evaluators = tables, int(scale), evaluators
        self.sc = tables.sr_scores
        self.hr_dir = _hr_dir(tables)
        self.images = validation_images(tables)
        self._index: pd.DataFrame | None = None
        self._hr: dict[str, torch.Tensor] = {}

    # -- runs ----------------------------------------------------------------------------------------------
    @property
    def index(self) -> pd.DataFrame:
        if self._index is None:
            from ..pipeline.status import run_index

            self._index = run_index(self.tables.output_dir)
        return self._index

    def missing_note(self, names: Sequence[str], notebook: str) -> str:
        """Why a run has no output: the status of the training runs called ``names`` (any hash)."""
        idx = self.index
        found = idx[(idx["kind"] == "sr") & idx["name"].isin(list(names))] if len(idx) else idx
        if found.empty:
            return "no output: not trained"
        collapsed = found[found["status"] == "collapsed"]
        if len(collapsed):
            step = collapsed["step"].iloc[0]
            return f"no output: collapsed at step {int(step)}" if pd.notna(step) else "no output: collapsed"
        if (found["status"] == "finished").any():
            return f"no output: finished but not evaluated (re-run notebook {notebook})"
        return f"no output: run {found['status'].iloc[0]}"

    # -- images ----------------------------------------------------------------------------------------------
    def hr(self, image: str) -> torch.Tensor:
        if image not in self._hr:
            if image not in self.images:
                raise UnknownNameError(f"no validation image {image!r}; available: {self.images}")
            self._hr[image] = load_image(self.hr_dir / f"{image}.png")
        return self._hr[image]

    def references(self, image: str) -> list[Panel]:
        """HR and the model's LR input enlarged by the bicubic baseline (``lr_input``, ``bicubic_upscale``)."""
        from ..analysis import Panel

        hr = self.hr(image)
        bicubic = bicubic_upscale(lr_input(hr, self.scale), self.scale)[:, :hr.shape[1], :hr.shape[2]]
        rows = self.sc[(self.sc["column"] == "Ref.") & (self.sc["image"].astype(str) == image)]
        return [Panel("HR", hr, caption=_score_caption(rows, self.evaluators)),
                Panel(f"Bicubic (LR x{self.scale})", bicubic, caption="input, upsampled")]

    def sr_panel(self, image: str, label: str, column: str, setting: str | None, run_names: Sequence[str]) -> Panel:
        """Notebook 02's output of the column (``L1`` or a metric) and setting, or an empty panel saying why."""
        from ..analysis import Panel

        sc = self.sc
        sel = sc[(sc["column"] == column) & (sc["setting"].isna() if setting is None else sc["setting"] == setting)]
        for d in dict.fromkeys(sel["images_dir"].dropna()):
            path = self.tables.resolve(d) / f"{image}.png"
            if path.is_file():
                rows = sel[sel["image"].astype(str) == image]
                return Panel(label, load_image(path), caption=_score_caption(rows, self.evaluators))
        return Panel(label, None, note=self.missing_note(run_names, "02"))

    # -- notebook 02's grid ----------------------------------------------------------------------------------
    def settings(self) -> list[str]:
        found = list(dict.fromkeys([*self.tables.table1.get("setting", pd.Series(dtype=object)).dropna(),
                                    *self.sc.get("setting", pd.Series(dtype=object)).dropna()]))
        return [s for s in SR_SETTINGS if s in found] + [s for s in found if s not in SR_SETTINGS]

    def metrics(self) -> list[str]:
        """Metric columns (display names) in Table 1's order."""
        t1 = self.tables.table1.get("column", pd.Series(dtype=object))
        cols = list(dict.fromkeys([*t1.dropna(), *self.sc["column"].dropna()]))
        return [c for c in cols if c not in ("Std.", "L1", "Ref.")]

    def metric_key(self, display: str) -> str:
        from ..metrics.registry import PAPER_METRICS

        if "metric" in self.sc:
            keys = self.sc.loc[self.sc["column"] == display, "metric"].dropna()
            if len(keys):
                return str(keys.iloc[0])
        return next((k for k, p in PAPER_METRICS.items() if p.display == display), display)

    def objective_panel(self, image: str, setting: str, metric: str, label: str | None = None) -> Panel:
        return self.sr_panel(image, label or _objective_label(setting, metric), metric, setting,
                             [f"{setting}-{self.metric_key(metric)}"])

    def l1_panel(self, image: str) -> Panel:
        return self.sr_panel(image, "Rec. (L1, stage 1)", "L1", None, ["stage1-l1"])


def _image_for(sources: _QualitativeSources, image: str | None) -> str:
    return sources.images[0] if image is None else str(image)


def fig2_objectives(tables: StudyTables, image: str | None = None, metric: str | None = None,
                    evaluators: Sequence[str] | None = None, scale: int = 4,
                    _sources: _QualitativeSources | None = None) -> QualitativeGrid:
    """Fig. 2: one image's SR outputs across the objectives, one row: HR, bicubic input, the L1 model (stage 1)
    and the four stage-2 objectives with ``metric`` (display name; default VGG-16 as in the paper, else the
    first metric of Table 1).

    Captions give the image's scores (``evaluators``, default: the NR evaluator or ``NR avg``).
    """
    src = _sources or _QualitativeSources(tables, scale, evaluators)
    image = _image_for(src, image)
    metrics = src.metrics()
    if metric is None:
        metric = "VGG-16" if "VGG-16" in metrics or not metrics else metrics[0]
    elif metric not in metrics:
        raise UnknownNameError(f"no metric column {metric!r} in notebook 02's results; available: {metrics}")
    row = [*src.references(image), src.l1_panel(image)]
    row += [src.objective_panel(image, s, metric) for s in src.settings()]
    return QualitativeGrid(2, QUALITATIVE_FIGURES[2], f"Fig. 2: SR outputs per optimization objective "
                           f"({metric} as perceptual metric), image {image}", image, src.hr(image), [row], [""])


def fig4_objectives_metrics(tables: StudyTables, image: str | None = None, number: int = 4, reused: bool = False,
                            evaluators: Sequence[str] | None = None, scale: int = 4,
                            _sources: _QualitativeSources | None = None) -> QualitativeGrid:
    """Fig. 4 (and Figs. 9-11 with ``number``): objectives x perceptual metrics on one image.

    The first row holds the references (HR, bicubic input, L1 model); then one row per objective of Table 1 and
    one column per metric. ``reused`` says in the title that the image is also in an earlier figure.
    """
    src = _sources or _QualitativeSources(tables, scale, evaluators)
    image = _image_for(src, image)
    metrics = src.metrics()
    settings = src.settings()
    rows: list[list[Panel | None]] = [[*src.references(image), src.l1_panel(image)]]
    labels = ["references"]
    for s in settings:
        rows.append([src.objective_panel(image, s, m, label=m) for m in metrics])
        labels.append(_objective_label(s, "Per."))
    again = " (image shown again: fewer validation images than figures)" if reused else ""
    title = f"Fig. {number}: SR outputs per objective (rows) and perceptual metric (columns), image {image}{again}"
    return QualitativeGrid(number, QUALITATIVE_FIGURES.get(number, f"fig{number}_qualitative_objectives_metrics"),
                           title, image, src.hr(image), rows, labels, reused)


def _discriminator_outputs(src: _QualitativeSources, runs: pd.DataFrame
                           ) -> tuple[dict[str, Path], pd.DataFrame]:
    """Image folder of each of ``runs``' run ids and the per-image scores (empty when notebook 04 did not write
    them): from ``tables/discriminator_image_scores.csv``, else from the ``sr_eval`` runs of the output folder."""
    out = src.tables.output_dir
    path = out / "tables" / DISCRIMINATOR_IMAGE_SCORES
    dirs: dict[str, Path] = {}
    scores = pd.DataFrame(columns=["run_id", "evaluator", "kind", "image", "score", "images_dir"])
    if path.is_file():
        scores = read_csv_file(path, dtype={"image": str})
        for r in scores.drop_duplicates(["run_id", "images_dir"]).itertuples():
            dirs.setdefault(str(r.run_id), src.tables.resolve(r.images_dir))
    idx = src.index
    if len(idx):
        evals = idx[(idx["kind"] == "sr_eval") & (idx["status"] == "finished")]
        for r in evals.itertuples():
            deps = list(r.deps) if isinstance(r.deps, (list, tuple)) else []
            if len(deps) == 1 and deps[0] in set(runs["run_id"]):
                dirs.setdefault(str(deps[0]), src.tables.resolve(r.path) / "images")
    return dirs, scores


def fig6_discriminators(tables: StudyTables, image: str | None = None, evaluators: Sequence[str] | None = None,
                        scale: int = 4, _sources: _QualitativeSources | None = None) -> QualitativeGrid:
    """Fig. 6: vanilla vs patch-level discriminators per backbone on one image (notebook 04's Table 3 runs).

    First row: HR, bicubic input and the base without discriminator; then one row per head (vanilla,
    patch-level) and one column per backbone. A collapsed run's panel says at which step it collapsed.

    Raises:
        FileNotFoundError: notebook 04's ``tables/discriminator_runs.csv`` is missing.
    """
    from ..analysis import Panel

    src = _sources or _QualitativeSources(tables, scale, evaluators)
    image = _image_for(src, image)
    path = tables.output_dir / "tables" / "discriminator_runs.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebook 04_discriminator_ablation first")
    runs = read_csv_file(path)
    runs = runs[runs["roles"].astype(str).str.contains("ablation|base")]
    dirs, scores = _discriminator_outputs(src, runs)

    def panel(r: Any, label: str) -> Panel:
        d = dirs.get(str(r.run_id))
        if d is not None and (d / f"{image}.png").is_file():
            rows = scores[(scores["run_id"] == r.run_id) & (scores["image"].astype(str) == image)]
            return Panel(label, load_image(d / f"{image}.png"), caption=_score_caption(rows, src.evaluators))
        if r.status == "collapsed":
            note = f"no output: collapsed at step {int(r.step)}" if pd.notna(r.step) else "no output: collapsed"
        elif r.status == "finished":
            note = "no output: finished but not evaluated (re-run notebook 04)"
        else:
            note = f"no output: run {r.status}"
        return Panel(label, None, note=note)

    base = [panel(r, "w/o D (base)") for r in runs[runs["head"] == "none"].itertuples()][:1]
    rows: list[list[Panel | None]] = [[*src.references(image), *base]]
    labels = ["references"]
    backbones = list(dict.fromkeys(runs.loc[runs["head"] != "none", "display"]))
    for head in [h for h in ("vanilla", "patch") if h in set(runs["head"])] + \
            [h for h in dict.fromkeys(runs["head"]) if h not in ("vanilla", "patch", "none")]:
        sub = runs[runs["head"] == head].drop_duplicates("display").set_index("display", drop=False)
        rows.append([panel(sub.loc[b], b) if b in sub.index else
                     Panel(b, None, note="no output: not in notebook 04's runs") for b in backbones])
        labels.append(_HEAD_LABELS.get(head, f"{head} D"))
    return QualitativeGrid(6, QUALITATIVE_FIGURES[6], f"Fig. 6: vanilla vs patch-level discriminators "
                           f"(columns: backbone), image {image}", image, src.hr(image), rows, labels)


def qualitative_grids(tables: StudyTables, images: Sequence[str] | None = None, metric: str | None = None,
                      evaluators: Sequence[str] | None = None, scale: int = 4) -> dict[int, QualitativeGrid]:
    """Figs. 2, 4, 6, 9, 10 and 11 from the study's SR outputs: ``{figure number: grid}``.

    Figs. 2, 4 and 6 show ``images[0]`` (default: notebook 02's validation images, sorted); Figs. 9, 10, 11
    the Fig. 4 layout on ``images[1]``, ``images[2]``, ``images[3]``, taken cyclically when there are fewer
    images (their titles then say that the image is shown again). ``scale`` is the SR factor of the bicubic
    reference panel.
    """
    src = _QualitativeSources(tables, scale, evaluators)
    names = list(images) if images is not None else src.images
    if not names:
        raise ConfigError("qualitative_grids needs at least one image")
    grids = {2: fig2_objectives(tables, names[0], metric, _sources=src),
             4: fig4_objectives_metrics(tables, names[0], _sources=src),
             6: fig6_discriminators(tables, names[0], _sources=src)}
    for i, number in enumerate((9, 10, 11), start=1):
        grids[number] = fig4_objectives_metrics(tables, names[i % len(names)], number=number,
                                                reused=i >= len(names), _sources=src)
    return grids


def plot_qualitative(grid: QualitativeGrid, tables: StudyTables, box: tuple[int, int, int] | None = None,
                     zoom: str = "below", panel_inches: float = 1.7):
    """Draw a :class:`QualitativeGrid` with :func:`~asymlib.analysis.plot_zoom_grid` under the profile banner
    (red in smoke). ``box = (x, y, size)`` overrides the automatic zoom region (the HR window of highest
    gradient energy). Returns the matplotlib figure."""
    from ..analysis import plot_zoom_grid

    labels = grid.row_labels if any(grid.row_labels) else None
    return plot_zoom_grid(grid.rows, box, reference=grid.reference, row_labels=labels, title=grid.title,
                          banner=tables.banner, title_color="#b00020" if tables.profile == "smoke" else "black",
                          zoom=zoom, panel_inches=panel_inches)  # type: ignore[arg-type]
