"""Notebook 05: the paper's tables and figures from the results of notebooks 01-04, plus visual analyses.

Nothing here retrains the study's models. Tables and Fig. 3 are built from the tidy CSV files that notebooks
01-04 write under ``<output>/tables``; the SR outputs of the comparison widget are the PNG files of notebook
02's evaluation runs; the discriminator of Fig. 14 is a backbone exported by notebook 04. The visual analyses
(image recovery, texture synthesis, the autoencoder) optimize images or a small autoencoder with the study's
metrics; each is a run of the study graph under ``<output>/runs/analysis`` so a re-executed notebook reuses it.

- :func:`load_study_tables`: the results of notebooks 01-04 (a missing file names the notebook to run).
- :func:`paper_tables`: Tables 1-4 as ``paper | ours | delta`` with the paper's best/second marking.
- :func:`fig3_data`: one point per (setting, metric): IQA accuracy (Table 4) vs SR quality (Table 1).
- :func:`run_recovery`, :func:`run_texture_synthesis`, :func:`run_autoencoder`, :func:`discriminator_feature_maps`.
- :func:`comparison_inputs`: LR / HR / SR images and scores for :class:`~asymlib.widgets.ComparisonWidget`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import FiguresConfig, Profile
from ..errors import ConfigError
from ..imageio import load_image
from ..reporting import load_paper_table, profile_banner
from ..runs import read_csv_file
from ..pipeline import StudyContext, ensure
from ..pipeline.analysis_runs import load_result, reference_image
from ..sr.config import SR_SETTINGS

__all__ = [
    "FiguresConfig", "figures_config_for", "StudyTables", "load_study_tables",
    "TableComparison", "compare_with_paper", "paper_tables", "fig3_data", "run_recovery",
    "run_texture_synthesis", "run_autoencoder", "discriminator_feature_maps", "comparison_inputs",
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
        frames[attr] = read_csv_file(path)
    for attr in ("metrics", "sr_scores", "fr_init"):
        found = set(frames[attr]["profile"].dropna().astype(str)) if "profile" in frames[attr] else set()
        if found and found != {profile.name}:
            raise ConfigError(f"{folder / _STUDY_FILES[attr][0]} holds results of profile(s) {sorted(found)}, "
                              f"not {profile.name!r}; use the output folder of a {profile.name} study")
    return StudyTables(**frames, profile=profile.name, weights=profile.weights, output_dir=Path(output_dir))


# ----------------------------------------------------------------------------------------------
# Paper vs ours
# ----------------------------------------------------------------------------------------------
@dataclass
class TableComparison:
    """One of the paper's tables rebuilt from our results.

    ``long`` has one row per cell: the key columns, ``paper``, ``ours``, ``delta`` (ours - paper, where both
    exist) and ``paper_rank`` / ``ours_rank`` (1 = best, 2 = second within the cell's group, as the paper
    bolds and underlines). ``index`` and ``columns`` say how :meth:`wide` lays it out.
    """

    number: int
    title: str
    long: pd.DataFrame
    index: list[str]
    columns: list[str]
    profile: str
    weights: str

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)

    def _sources(self) -> dict[str, str]:
        return {"paper": "paper", "ours": f"ours ({self.profile})", "delta": "delta"}

    def _order(self, keys: list[str]) -> pd.Index:
        """Distinct key combinations in order of appearance (the paper's order first)."""
        combos = self.long[keys].drop_duplicates()
        return pd.MultiIndex.from_frame(combos) if len(keys) > 1 else pd.Index(combos[keys[0]], name=keys[0])

    def _grid(self, value: str) -> pd.DataFrame:
        grid = self.long.pivot_table(index=self.index, columns=self.columns, values=value, aggfunc="first",
                                     dropna=False)
        return grid.reindex(index=self._order(self.index), columns=self._order(self.columns))

    def _assemble(self, grids: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        data = {}
        for col in self._order(self.columns):
            for label, grid in grids.items():
                data[(*col, label) if isinstance(col, tuple) else (col, label)] = grid[col]
        wide = pd.DataFrame(data, index=self._order(self.index))
        wide.columns = pd.MultiIndex.from_tuples(list(data), names=[*self.columns, "source"])
        return wide

    def wide(self) -> pd.DataFrame:
        """Rows ``index``; columns ``(column keys..., source)`` with source ``paper``, ``ours (<profile>)``, ``delta``."""
        return self._assemble({label: self._grid(value) for value, label in self._sources().items()})

    def styled(self, precision: int = 3):
        """The wide table with the paper's marking: best **bold**, second underlined, for paper and ours
        separately; the caption is the profile banner."""
        src = self._sources()
        ranks = {src["paper"]: self._grid("paper_rank"), src["ours"]: self._grid("ours_rank")}
        none = self._grid("paper_rank") * np.nan
        rank_wide = self._assemble({label: ranks.get(label, none) for label in src.values()})
        css = pd.DataFrame(np.where(rank_wide == 1, "font-weight: bold",
                                    np.where(rank_wide == 2, "text-decoration: underline", "")),
                           index=rank_wide.index, columns=rank_wide.columns)
        return (self.wide().style.format(precision=precision, na_rep="-").apply(lambda _: css, axis=None)
                .set_caption(f"Table {self.number}: {self.title}. {self.banner}"))


def compare_with_paper(number: int, title: str, paper: pd.DataFrame, ours: pd.DataFrame, keys: Sequence[str],
                       item: str | Sequence[str], index: Sequence[str], columns: Sequence[str], profile: str,
                       weights: str, unranked: Sequence[str] = (), higher_is_better: bool = True) -> TableComparison:
    """Align the paper's and our values of one table on ``keys`` (outer join; both frames have ``value``).

    Ranks are computed over ``item`` (one key, or several ranked together, e.g. Table 3's head x backbone)
    within each group of the other keys, leaving out rows whose item is in ``unranked`` (e.g. Table 1's
    ``Std.``, ``L1`` and ``Ref.`` columns).
    """
    keys = list(keys)
    for name, df in (("paper", paper), ("ours", ours)):
        missing = [k for k in [*keys, "value"] if k not in df.columns]
        if missing:
            raise ConfigError(f"{name} rows of Table {number} lack column(s) {missing}")
    merged = pd.merge(paper[[*keys, "value"]].rename(columns={"value": "paper"}),
                      ours[[*keys, "value"]].rename(columns={"value": "ours"}), on=keys, how="outer")
    # an outer merge sorts its keys; tables read in the paper's order, then our extra rows
    order = pd.concat([paper[keys], ours[keys]]).drop_duplicates().reset_index(drop=True)
    merged = (order.assign(_pos=np.arange(len(order))).merge(merged, on=keys, how="right")
              .sort_values("_pos", kind="stable").drop(columns="_pos").reset_index(drop=True))
    merged["delta"] = merged["ours"] - merged["paper"]
    items = [item] if isinstance(item, str) else list(item)
    group = [k for k in keys if k not in items]
    rankable = ~merged[items].isin(list(unranked)).any(axis=1)
    for value in ("paper", "ours"):
        ranked = merged[rankable].groupby(group, dropna=False, sort=False)[value].rank(
            ascending=not higher_is_better, method="min")
        merged[f"{value}_rank"] = ranked.reindex(merged.index)
    return TableComparison(number, title, merged, list(index), list(columns), profile, weights)


def _setting_label(key: Any) -> Any:
    return SR_SETTINGS[key].paper_label if isinstance(key, str) and key in SR_SETTINGS else key


def _melt_statistics(df: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    out = df.melt(id_vars=ids, value_vars=["srcc", "plcc"], var_name="statistic", value_name="value")
    out["statistic"] = out["statistic"].str.upper()
    return out


def paper_tables(tables: StudyTables) -> dict[int, TableComparison]:
    """Tables 1-4 of the paper beside ours (see :class:`TableComparison`).

    Our cells use our evaluators and benchmarks; where they are not the paper's (smoke: PIQE, synthetic
    levels) the rows stand apart and only shared cells (e.g. ``Average``) get a delta, under the banner.
    """
    prof, w = tables.profile, tables.weights
    out: dict[int, TableComparison] = {}

    p1 = load_paper_table(1).rename(columns={"nr_iqa": "evaluator", "score": "value"})
    o1 = tables.table1.assign(setting=tables.table1["setting"].map(_setting_label)).rename(columns={"score": "value"})
    out[1] = compare_with_paper(1, "NR-IQA of SR outputs per objective and perceptual metric", p1, o1,
                                ["setting", "evaluator", "column"], "column", ["setting", "evaluator"], ["column"],
                                prof, w, unranked=("Std.", "L1", "Ref."))

    p2 = _melt_statistics(load_paper_table(2), ["backbone", "initialization", "benchmark"])
    fr = tables.fr_init[tables.fr_init["status"].eq("ok")] if "status" in tables.fr_init else tables.fr_init
    o2 = _melt_statistics(pd.DataFrame({"backbone": fr["paper_backbone"], "initialization": fr["init_display"],
                                        "benchmark": fr["benchmark"], "srcc": fr["srcc"], "plcc": fr["plcc"]}),
                          ["backbone", "initialization", "benchmark"])
    out[2] = compare_with_paper(2, "FR-IQA by backbone initialization", p2, o2,
                                ["backbone", "initialization", "benchmark", "statistic"], "initialization",
                                ["backbone", "initialization"], ["benchmark", "statistic"], prof, w)

    p3 = load_paper_table(3).rename(columns={"nr_iqa": "evaluator", "score": "value"})
    t3 = tables.table3[tables.table3["status"].eq("finished")] if "status" in tables.table3 else tables.table3
    o3 = t3.rename(columns={"score": "value"})
    o3 = o3.assign(backbone=np.where(o3["head"].eq("none"), "w/o (base)", o3["backbone"]))
    out[3] = compare_with_paper(3, "NR-IQA of SR outputs per discriminator", p3, o3,
                                ["head", "backbone", "evaluator"], ["head", "backbone"], ["head", "backbone"],
                                ["evaluator"], prof, w)

    p4 = _melt_statistics(load_paper_table(4), ["backbone", "benchmark"])
    m = tables.metrics
    o4 = _melt_statistics(pd.DataFrame({"backbone": m["display"], "benchmark": m["benchmark"], "srcc": m["srcc"],
                                        "plcc": m["plcc"]}), ["backbone", "benchmark"])
    out[4] = compare_with_paper(4, "FR-IQA of the DISTS-style metrics by backbone", p4, o4,
                                ["backbone", "benchmark", "statistic"], "backbone", ["backbone"],
                                ["benchmark", "statistic"], prof, w)
    return out


def fig3_data(tables: StudyTables, statistic: str = "srcc", evaluator: str = "Average") -> pd.DataFrame:
    """Fig. 3 points from our results: ``setting`` (paper label), ``metric``, ``iqa_srcc`` = the metric's
    average ``statistic`` over notebook 01's benchmarks, ``sr_quality`` = Table 1's ``evaluator`` row.

    The x column keeps the name ``iqa_srcc`` that :mod:`asymlib.analysis.correlation` expects; ``statistic``
    is recorded in the ``iqa_statistic`` column. Collapsed runs (no score) are left out.
    """
    m = tables.metrics
    if statistic not in m.columns:
        raise ConfigError(f"notebook 01 results have no column {statistic!r}; use one of srcc, krcc, plcc")
    x = m[m["benchmark"] == "Average"].set_index("display")[statistic]
    t1 = tables.table1
    if not (t1["evaluator"] == evaluator).any():
        raise ConfigError(f"Table 1 has no {evaluator!r} row; rows: {sorted(t1['evaluator'].unique())}")
    y = t1[(t1["evaluator"] == evaluator) & t1["column"].isin(x.index)]
    df = pd.DataFrame({"setting": y["setting"].map(_setting_label), "metric": y["column"],
                       "iqa_srcc": y["column"].map(x), "sr_quality": y["score"]})
    df["iqa_statistic"] = statistic
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
    "logs": {setting display: DataFrame}}``.
    """
    from ..analysis import fit_image, get_objective
    from ..data.corpus import embedded_images

    ctx = _analysis_context(profile, output_dir, cfg, progress)
    cfg = ctx.profile.figures
    originals = {k: fit_image(v, cfg.ae_crop * 2) for k, v in embedded_images(list(cfg.ae_images)).items()}
    recon: dict[str, dict[str, torch.Tensor]] = {}
    logs: dict[str, pd.DataFrame] = {}
    for setting in cfg.ae_objectives:
        obj = get_objective(setting)
        d = _analysis(ctx, "autoencoder", train_missing, objective=setting)
        if d is None:
            continue
        recon[obj.display] = dict(zip(d["names"], d["images"]))
        logs[obj.display] = pd.DataFrame(d["log"])
    return {"originals": originals, "reconstructions": recon, "logs": logs}


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
def comparison_inputs(tables: StudyTables, scale: int = 4, max_images: int | None = None,
                      settings: Sequence[str] | None = None
                      ) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, float]], list[str]]:
    """Images and scores of notebook 02's evaluation runs for :class:`~asymlib.widgets.ComparisonWidget`.

    Returns ``(images, scores, default runs)``: ``images[name] = {"lr", "hr", "runs": {label: path}}`` with
    labels ``L1`` and ``<setting> / <metric>``; the LR image is the HR downscaled by ``scale`` with the same
    MATLAB-style bicubic as training. ``scores[(name, label)] = {evaluator: score}`` (HR under ``"HR"``).
    """
    from ..sr.resize import imresize

    sc = tables.sr_scores
    hr_dir = sc.loc[sc["column"] == "Ref.", "images_dir"]
    if hr_dir.empty:
        raise FileNotFoundError("notebook 02's scores have no Ref. (HR) column; re-run notebook 02")
    hr_dir = tables.resolve(hr_dir.iloc[0])
    names = sorted(p.stem for p in hr_dir.glob("*.png"))[:max_images]
    if not names:
        raise FileNotFoundError(f"no HR images in {hr_dir}; re-run notebook 02")
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
        lr = imresize(hr[None], 1.0 / scale)[0].clamp(0, 1)
        images[n] = {"lr": lr, "hr": hr, "runs": {lab: d / f"{n}.png" for lab, d in labels.items()
                                                  if (d / f"{n}.png").is_file()}}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    for r in sc[sc["image"].isin(names)].itertuples():
        scores.setdefault((r.image, label(r.column, r.setting)), {})[r.evaluator] = float(r.score)
    default = [lab for lab in labels if lab == "L1" or lab.endswith("/ VGG-16")][:4]
    return images, scores, default
