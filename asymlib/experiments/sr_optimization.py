"""Notebook 02: perceptual optimization of SwinIR with every metric, scored by NR-IQA (paper Sec. 3.1, Table 1).

The runs are the study graph's (:mod:`asymlib.pipeline`; a finished run is reused):

1. ``sr/stage1-l1-<hash>``: L1-only pre-training of the generator.
2. ``sr/<setting>-<metric>-<hash>``: stage 2 from stage 1's EMA weights for every setting x metric of the
   grid (Eq. 1 with the setting's loss weights; relativistic vanilla VGG-16 discriminator when adversarial),
   its metric's alpha/beta from notebook 01's ``metric`` run. A run that collapses is recorded ``collapsed``
   and the grid carries on; its cells stay empty.
3. ``calibration/<evaluator>-<hash>``: the Appendix D fit of every available NR evaluator (``rescaling.json``).
4. ``sr_eval/<run>-<hash>``: validation LR images super-resolved by a run's EMA model (or the HR images
   themselves for the ``Ref.`` column), saved as PNG; every available evaluator scores them (8-bit images, as
   stored files would be), its scores cached beside them.

Table 1 is then assembled from the scores: rows evaluator x setting, columns the metrics, ``Std.`` (population
standard deviation across the metric columns), ``L1`` (the stage-1 model) and ``Ref.`` (the HR images).
Scores of NR evaluators are rescaled to [1, 100]; full-reference ones (PSNR, SSIM) stay raw.

One run on the command line (DDP under torchrun): ``python -m asymlib.runs train KEY_OR_NAME --profile P``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_csv
from ..config import Profile
from ..metrics.registry import get_metric_preset
from ..pipeline import StudyContext, ensure
from ..pipeline.declare import stage1_spec, stage2_spec
from ..pipeline.metric_runs import metric_source
from ..pipeline.sr_runs import EvaluatorPool, bicubic_baseline, score_runs, sr_data
from ..reporting import averaged_evaluators, load_paper_table, paper_averaged_evaluators, profile_banner
from ..sr.config import SR_SETTINGS, SRStudyConfig
from ..sr.evaluators import Rescaling, get_evaluator_spec

__all__ = ["SRStudyResult", "plot_table1", "run_sr_study", "run_training", "table1",
           "L1_COLUMN", "REF_COLUMN", "STD_COLUMN", "AVERAGE_ROW"]

L1_COLUMN, REF_COLUMN, STD_COLUMN, AVERAGE_ROW = "L1", "Ref.", "Std.", "Average"


def _run_row(ctx: StudyContext, key: str, **extra: Any) -> dict[str, Any]:
    spec = ctx.graph[key]
    st = ctx.status(spec)
    return {**extra, "status": st.get("status", ctx.state(spec)), "step": st.get("step"),
            "reason": st.get("reason", ""), "run_id": spec.key, "run_dir": spec.relpath()}


def run_training(ctx: StudyContext, train_missing: bool = True) -> pd.DataFrame:
    """Stage 1, then every setting x metric of the profile (finished runs are reused; with
    ``train_missing=False`` unfinished runs are listed with their status instead of being trained).

    Returns one row per training run: ``stage, setting, metric, status, step, reason, run_id, run_dir``.
    """
    cfg = ctx.profile.sr
    s1 = ctx.graph.add(stage1_spec(ctx.profile))
    if train_missing:
        ensure(ctx, s1)
    rows = [_run_row(ctx, s1, stage="stage1", setting=None, metric=None)]
    if train_missing and rows[0]["status"] != "finished":
        raise RuntimeError(f"stage 1 did not finish ({rows[0]['status']}: {rows[0]['reason']}); stage 2 needs it")
    for setting in cfg.settings:
        for metric in cfg.metrics:
            key = ctx.graph.add(stage2_spec(ctx.profile, ctx.graph, setting, metric))
            if train_missing:
                ensure(ctx, key)
            rows.append(_run_row(ctx, key, stage="stage2", setting=setting, metric=metric))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------
@dataclass
class SRStudyResult:
    """Everything notebook 02 shows.

    Attributes:
        profile, config, banner: how the numbers were produced.
        runs: one row per training run (``stage, setting, metric, status, step, reason, run_id, run_dir``;
            ``run_dir`` relative to the output folder).
        scores: tidy per-image scores: ``column`` (metric display, ``L1`` or ``Ref.``), ``setting``, ``metric``,
            ``evaluator`` (display), ``kind``, ``image``, ``raw``, ``score`` (rescaled NR / raw FR).
        table: our Table 1 in tidy form (``setting, evaluator, column, score``), see :func:`table1`.
        availability: evaluator, kind, status (``available`` / ``unavailable: <why>``), source.
        rescalings: the Appendix D fit of each available NR evaluator.
        alpha_beta: metric key -> where its alpha/beta came from.
        baseline: the stage-1 model against bicubic upsampling, PSNR per validation image
            (:func:`~asymlib.pipeline.sr_runs.bicubic_baseline`; empty while stage 1 is not finished).
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
    baseline: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)

    @property
    def stage1_beats_bicubic(self) -> bool | None:
        """Whether the stage-1 model has a higher PSNR than bicubic upsampling on every validation image
        (None while stage 1 is not finished)."""
        return None if self.baseline.empty else bool((self.baseline["gain_db"] > 0).all())


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


def run_sr_study(profile: Profile, output_dir: str | Path, progress: bool = True,
                 train_missing: bool = True) -> SRStudyResult:
    """Train (or reuse) every run of the profile's SR grid, score the validation outputs and build Table 1.

    ``output_dir`` is the study output folder (runs in ``<output_dir>/runs``). Settings, metrics, schedules and
    evaluators come from ``profile.sr`` (override them on the profile: ``sr.metrics``, ``sr.stage2.iterations``...).
    """
    t0 = time.perf_counter()
    ctx = StudyContext(profile, output_dir, progress=progress)
    cfg = profile.sr
    runs = run_training(ctx, train_missing)
    pool = EvaluatorPool.of(ctx)
    rescalings = pool.rescalings(train_missing)
    sources: dict[str, str | None] = {REF_COLUMN: None}
    if runs.iloc[0]["status"] == "finished":
        sources[L1_COLUMN] = runs.iloc[0]["run_id"]
    meta = {REF_COLUMN: (None, None), L1_COLUMN: (None, None)}
    for r in runs.iloc[1:].itertuples():
        if r.status != "finished":
            continue  # collapsed or not trained yet: its cells stay empty
        label = f"{r.setting}|{r.metric}"
        sources[label] = r.run_id
        meta[label] = (r.setting, r.metric)
    scores = score_runs(ctx, sources, pool, rescalings, train_missing)
    labels = list(scores["label"])
    scores["setting"] = [meta[lab][0] for lab in labels]
    scores["metric"] = [meta[lab][1] for lab in labels]
    scores["column"] = [lab if meta[lab][1] is None else _display(meta[lab][1]) for lab in labels]
    scores = scores.drop(columns="label")
    scores["profile"] = profile.name
    atomic_write_csv(scores, Path(output_dir) / "tables" / "sr_nriqa_scores.csv")
    table = table1(scores, cfg.settings, cfg.metrics, pool.scorable(rescalings))
    s2 = {r.metric: r.run_id for r in runs.iloc[1:].itertuples()}
    alpha_beta = {m: metric_source(ctx, ctx.graph[s2[m]]) for m in cfg.metrics if m in s2}
    baseline = pd.DataFrame()
    if L1_COLUMN in sources:
        baseline = bicubic_baseline(ctx, str(sources[L1_COLUMN])).assign(profile=profile.name)
        atomic_write_csv(baseline, Path(output_dir) / "tables" / "sr_stage1_vs_bicubic.csv")
    return SRStudyResult(profile.name, profile.weights, cfg, runs, scores, table, pool.availability(), rescalings,
                         alpha_beta, sr_data(ctx).description, round(time.perf_counter() - t0, 1),
                         extra={"output_dir": str(Path(output_dir))}, baseline=baseline)


# ----------------------------------------------------------------------------------------------
# Figures
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
    ours_title = f"ours ({result.profile}): {ev}"
    if ev == AVERAGE_ROW:
        ours_title += f" of {'/'.join(averaged_evaluators(table)) or 'no NR evaluator'}"
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for ax, df, title in ((axes[0], paper, f"paper: Average of {'/'.join(paper_averaged_evaluators(1))}"),
                          (axes[1], ours, ours_title)):
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
