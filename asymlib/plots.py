"""Figures of the study (matplotlib/seaborn). Every figure's title carries the profile banner."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget")) else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .reporting import (averaged_benchmarks, load_paper_table, numbers_comparable, ours_label,  # noqa: E402
                        profile_banner)

__all__ = ["plot_metric_study", "plot_training_curves"]


def _title(ax, text: str, profile: str, weights: str) -> None:
    banner = textwrap.fill(profile_banner(profile, weights), 90)
    ax.set_title(f"{text}\n{banner}", fontsize=9, color="#b00020" if profile == "smoke" else "black")


def plot_metric_study(results: pd.DataFrame, comparable: bool | None = None):
    """Bar plot of our average SRCC per metric (95% bootstrap CI where defined) and the paper's.

    ``results`` are notebook 01's tidy rows (``display``, ``benchmark`` with an ``Average``, ``srcc``,
    ``srcc_low``, ``srcc_high``, ``weights_source``, ``profile``). With comparable numbers (``comparable``,
    default :func:`~asymlib.reporting.numbers_comparable` of the profile) our bars stand beside the paper's in
    one panel; otherwise ours and the paper's are drawn in two separate panels (ours left). Returns the figure.
    """
    ours = results[results["benchmark"] == "Average"].copy()
    profile = str(ours["profile"].iloc[0])
    weights = ", ".join(sorted(set(ours["weights_source"].str.split("(").str[0])))
    comparable = numbers_comparable(profile, weights) if comparable is None else comparable
    paper = load_paper_table(4)
    paper = paper[paper["benchmark"] == "Average"].set_index("backbone")["srcc"]
    order = list(ours["display"])
    mine = ours_label(profile)
    benches = averaged_benchmarks(results)
    paper_benches = "TID2013/Liu13/Ma17/TQD"

    def intervals(ax: plt.Axes, offset: float) -> None:
        """Bootstrap intervals of our averages where they have one (an average of one benchmark)."""
        for i, r in enumerate(ours.itertuples()):
            low, high = getattr(r, "srcc_low", np.nan), getattr(r, "srcc_high", np.nan)
            if np.isfinite(low) and np.isfinite(high):
                ax.errorbar(i + offset, r.srcc, yerr=[[r.srcc - low], [high - r.srcc]], color="black", capsize=3,
                            lw=1)

    if comparable:
        import seaborn as sns  # the notebooks extra

        rows = [{"metric": r.display, "source": mine, "SRCC": r.srcc} for r in ours.itertuples()]
        rows += [{"metric": m, "source": "paper", "SRCC": paper[m]} for m in order if m in paper.index]
        fig, ax = plt.subplots(figsize=(8, 4))
        sns.barplot(data=pd.DataFrame(rows), x="metric", y="SRCC", hue="source", order=order,
                    hue_order=[mine, "paper"], ax=ax, palette=["#4c72b0", "#bbbbbb"])
        intervals(ax, -0.2)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("average SRCC")
        _title(ax, f"DISTS-style metrics: ours averaged over {benches} vs paper ({paper_benches})", profile, weights)
        ax.legend(loc="lower right", fontsize=8)
    else:
        fig, (ax, ax_paper) = plt.subplots(1, 2, figsize=(12, 4.2))
        ax.bar(range(len(order)), ours["srcc"].to_numpy(float), color="#4c72b0", label=mine)
        intervals(ax, 0.0)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("average SRCC")
        _title(ax, f"{mine}: DISTS-style metrics, average SRCC over {benches}", profile, weights)
        shown = [m for m in order if m in paper.index]
        ax_paper.bar(range(len(shown)), paper[shown].to_numpy(float), color="#bbbbbb", label="paper")
        ax_paper.set_xticks(range(len(shown)), shown, rotation=30, ha="right", fontsize=8)
        ax_paper.set_ylim(0, 1.05)
        ax_paper.set_title(f"paper (Table 4): average SRCC on {paper_benches}\n"
                           f"a separate panel: {mine} numbers are not comparable with the paper's", fontsize=9)
    fig.tight_layout()
    return fig


def plot_training_curves(run_dirs: list[Path], profile: str, weights: str):
    """Loss vs step of each metric's alpha/beta training (from the runs' log.jsonl)."""
    frames = []
    for d in run_dirs:
        log = Path(d) / "log.jsonl"
        if log.is_file():
            df = pd.read_json(log, lines=True)
            df["run"] = Path(d).name.rsplit("-", 1)[0]
            frames.append(df)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if frames:
        import seaborn as sns

        sns.lineplot(data=pd.concat(frames), x="step", y="loss", hue="run", ax=ax)
    _title(ax, "alpha/beta training loss", profile, weights)
    fig.tight_layout()
    return fig
