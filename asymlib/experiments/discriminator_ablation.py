"""Notebook 04: vanilla vs patch-level discriminators, their backbones, and stability in lambda_3 (paper Sec. 3.4).

Pipeline (every step is a cached run under ``<output>/runs``, shared with notebook 02 wherever the configuration
is the same; a finished run is reused):

The runs are declared in the study graph (:func:`asymlib.pipeline.declare.discriminator_spec`):

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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..backbones import get_backbone_spec
from ..config import DiscriminatorStudyConfig, Profile
from ..pipeline import StudyContext, ensure
from ..pipeline.declare import discriminator_spec
from ..pipeline.metric_runs import metric_source
from ..pipeline.sr_runs import (BACKBONE_EXPORT_NAME, DISCRIMINATOR_IMAGE_SCORES, GRAD_NORMS_NAME, EvaluatorPool,
                                score_runs, export_discriminator_backbone, list_gan_backbones)
from ..atomic import atomic_write_csv
from ..errors import RunFileError
from ..reporting import HEAD_TITLES, profile_banner
from ..runs import _parse_log, read_csv_file
from ..sr.config import SRStudyConfig

__all__ = [
    "BACKBONE_EXPORT_NAME",
    "DiscriminatorStudyConfig",
    "DiscriminatorStudyResult",
    "export_discriminator_backbone",
    "list_gan_backbones",
    "plot_fig7",
    "plot_training_dynamics",
    "run_discriminator_study",
    "StudyCell",
    "study_cells",
    "table3",
    "training_curves",
]

AVERAGE, BASE_LABEL = "Average", "w/o (base)"
_PAPER_BACKBONE = {"vgg16": "VGG-16", "resnet50": "ResNet-50", "dinov2_vits14": "DINOv2", "dinov2_vitb14": "DINOv2",
                   "dinov2_vitl14": "DINOv2", "dinov2_vitg14": "DINOv2"}


def _paper_backbone(name: str | None) -> str:
    if name is None:
        return BASE_LABEL
    return _PAPER_BACKBONE.get(name, get_backbone_spec(name).display)


def _display_backbone(name: str | None) -> str:
    return BASE_LABEL if name is None else get_backbone_spec(name).display


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
            rescaled NR / raw FR, ``images_dir``: the run's SR outputs, relative to the output folder); also
            written to ``<output>/tables/discriminator_image_scores.csv`` (with ``profile``) for notebook 05.
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


def _read_curve(run_dir: Path) -> pd.DataFrame:
    log_file = run_dir / "log.jsonl"
    if not log_file.is_file():
        return pd.DataFrame()
    try:
        rows, _torn = _parse_log(log_file)  # a torn last line (writer killed mid-line) is skipped
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{log_file}: cannot read the run's log ({exc}); delete the run's status.json to "
                           f"recompute it") from exc
    log = pd.DataFrame(rows)
    if log.empty:
        return log
    log = log.drop_duplicates("step", keep="last")  # a resumed run re-logs nothing, but be safe
    gn = run_dir / GRAD_NORMS_NAME
    if "grad_norm_g" not in log.columns and gn.is_file():
        log = log.merge(read_csv_file(gn), on="step", how="left")
    if {"d_real", "d_fake"} <= set(log.columns):
        log["d_gap"] = log["d_real"] - log["d_fake"]
    return log


def training_curves(runs: pd.DataFrame, output_dir: str | Path = ".") -> pd.DataFrame:
    """Training logs of the adversarial runs in tidy form.

    Columns: ``run_id, head, backbone, display, lambda_adv, seed, status, step`` and the logged scalars,
    notably ``d_gap = D(real) - D(fake)`` (mean logits), ``d_loss``, ``l_g_adv``, ``grad_norm_g`` and, when the
    trainer logs it, ``grad_norm_d``.
    """
    frames = []
    for r in runs[runs["head"] != "none"].itertuples():
        log = _read_curve(Path(output_dir) / r.run_dir)
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
class StudyCell(NamedTuple):
    """One run of the study: ``head="none"`` is the base without discriminator; ``roles`` among ``base``,
    ``ablation`` (Table 3) and ``sweep`` (Fig. 7)."""

    head: str
    backbone: str | None
    lambda_adv: float
    seed: int
    roles: tuple[str, ...]


def study_cells(profile: Profile) -> list[StudyCell]:
    """Every cell of ``profile.discriminators`` once: the base, the ablation (heads x backbones at the paper's
    lambda_3 and the profile's seed) and the sweep (``sweep_head`` x backbones x lambda_3 x seeds); cells that
    coincide are merged and their roles joined."""
    dcfg = profile.discriminators
    lam3 = float(dcfg.lambdas[2])
    cells: dict[tuple, list[str]] = {("none", None, 0.0, profile.seed): ["base"]}
    for h in dcfg.heads:
        for b in dcfg.backbones:
            cells.setdefault((h, b, lam3, profile.seed), []).append("ablation")
    for b in dcfg.backbones:
        for lam in dcfg.sweep_lambda_adv:
            for i in range(dcfg.seeds):
                roles = cells.setdefault((dcfg.sweep_head, b, float(lam), profile.seed + i), [])
                if "sweep" not in roles:
                    roles.append("sweep")
    return [StudyCell(h, b, lam, s, tuple(r)) for (h, b, lam, s), r in cells.items()]


def run_discriminator_study(profile: Profile, output_dir: str | Path, progress: bool = True,
                            evaluate: bool = True, train_missing: bool = True) -> DiscriminatorStudyResult:
    """Train (or reuse) every run of the ablation and the sweep, export the backbones, score the outputs.

    Args:
        profile: the study profile; ``profile.discriminators`` is the study, ``profile.sr`` fixes stage 1, the
            stage-2 schedule, data and evaluators; its seed is the ablation's seed and the sweep's first seed.
        output_dir: study output folder; runs go to ``<output_dir>/runs`` (shared with notebook 02).
        progress: tqdm bars while training.
        evaluate: score the outputs (``False``: train and export only; scores, summary and table stay empty).
        train_missing: train runs that are not finished (``False``: raise :class:`~asymlib.pipeline.RunPending`).
    """
    t0 = time.perf_counter()
    ctx = StudyContext(profile, output_dir, progress=progress)
    dcfg = profile.discriminators
    rows = []
    for cell in study_cells(profile):
        key = ctx.graph.add(discriminator_spec(profile, ctx.graph, cell.head, cell.backbone, cell.lambda_adv,
                                               cell.seed, roles=cell.roles))
        rows.append((key, cell))
    runs_rows = []
    for key, (head, backbone, lam, seed, roles) in rows:
        spec = ctx.graph[key]
        if train_missing:
            ensure(ctx, key)
        st = ctx.status(spec)
        export = ""
        if head != "none" and dcfg.export_backbones and st.get("status") in ("finished", "collapsed"):
            path = export_discriminator_backbone(spec.path(ctx.output_dir), {"roles": list(spec.roles)})
            export = str(path.relative_to(ctx.output_dir)) if path is not None else ""
        runs_rows.append({"head": head, "backbone": backbone, "display": _display_backbone(backbone),
                          "lambda_adv": lam, "seed": seed, "roles": "+".join(roles),
                          "status": st.get("status", ctx.state(spec)), "step": st.get("step"),
                          "reason": st.get("reason", ""), "run_id": key, "run_dir": spec.relpath(),
                          "export": export})
    runs = pd.DataFrame(runs_rows)
    scores = pd.DataFrame(columns=["run_id", "evaluator", "kind", "image", "raw", "score", "images_dir"])
    availability, rescalings = pd.DataFrame(), {}
    if evaluate:
        pool = EvaluatorPool.of(ctx)
        rescalings = pool.rescalings(train_missing)
        availability = pool.availability()
        sources: dict[str, str | None] = {r.run_id: r.run_id for r in runs.itertuples() if r.status == "finished"}
        scored = score_runs(ctx, sources, pool, rescalings, train_missing)
        scores = scored.rename(columns={"label": "run_id"})[["run_id", "evaluator", "kind", "image", "raw", "score",
                                                             "images_dir"]]
        atomic_write_csv(scores.assign(profile=profile.name), Path(output_dir) / "tables" / DISCRIMINATOR_IMAGE_SCORES)
    summary = _summarize(scores)
    table = table3(runs, summary)
    curves = training_curves(runs, ctx.output_dir)
    base_key = rows[0][0]
    return DiscriminatorStudyResult(profile.name, profile.weights, dcfg, profile.sr, runs, scores, summary, table,
                                    curves, availability, rescalings, metric_source(ctx, ctx.graph[base_key]),
                                    round(time.perf_counter() - t0, 1))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _suptitle(fig: Any, text: str, profile: str, weights: str) -> None:
    import textwrap

    banner = textwrap.fill(profile_banner(profile, weights), max(40, int(fig.get_figwidth() * 15)))
    fig.suptitle(f"{text}\n{banner}", fontsize=9, color="#b00020" if profile == "smoke" else "black")


_FIG7_MIN_SPAN = 10.0  # smallest y range of Fig. 7, in points of the rescaled [1, 100] scores


def plot_fig7(result: DiscriminatorStudyResult):
    """Fig. 7: NR-IQA ``Average`` of the patch-level discriminators vs ``lambda_3`` (log x), one line per backbone,
    mean over seeds with the seeds' spread (min-max band when there are several); collapsed runs are marked ``x``
    on the lower edge (they have no score), the steps they collapsed at in the legend. The y range spans at least
    10 points, so that differences within seed noise do not look like a trend."""
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
    if len(ok):  # at least 10 points of the [1, 100] scale, so that seed noise does not look like a trend
        lo, hi = float(ok["nr_average"].min()), float(ok["nr_average"].max())
        half = max(hi - lo, _FIG7_MIN_SPAN) / 2 * 1.1
        ax.set_ylim(max(0.0, (lo + hi) / 2 - half), min(101.0, (lo + hi) / 2 + half))
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
    steps = sorted({int(v) for v in bad["step"].dropna()}) if "step" in bad.columns else []
    at = f"; at step {', '.join(map(str, steps))}" if steps else ""
    labels.append(f"collapsed ({len(bad)} run{'s' if len(bad) != 1 else ''}{at})")
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
    # every lambda_3 in the curves: the sweep's and the Table 3 runs' (the paper's 5e-3 when a sweep leaves it out)
    in_curves = cur["lambda_adv"].dropna().tolist() if len(cur) and "lambda_adv" in cur.columns else []
    lams = sorted(set(result.config.sweep_lambda_adv) | set(in_curves))
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
