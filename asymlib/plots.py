"""Figures of the study (matplotlib/seaborn). Every figure's title carries the profile banner."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget")) else None
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .reporting import load_paper_table, profile_banner  # noqa: E402

__all__ = ["plot_metric_study", "plot_training_curves"]


def _title(ax, text: str, profile: str, weights: str) -> None:
    banner = textwrap.fill(profile_banner(profile, weights), 90)
    ax.set_title(f"{text}\n{banner}", fontsize=9, color="#b00020" if profile == "smoke" else "black")


def plot_metric_study(results: pd.DataFrame):
    """Bar plot of our average SRCC per metric (95% bootstrap CI where defined) beside the paper's."""
    ours = results[results["benchmark"] == "Average"].copy()
    profile = str(ours["profile"].iloc[0])
    weights = ", ".join(sorted(set(ours["weights_source"].str.split("(").str[0])))
    paper = load_paper_table(4)
    paper = paper[paper["benchmark"] == "Average"].set_index("backbone")["srcc"]
    order = list(ours["display"])
    rows = [{"metric": r.display, "source": f"ours ({profile})", "SRCC": r.srcc} for r in ours.itertuples()]
    rows += [{"metric": m, "source": "paper", "SRCC": paper[m]} for m in order if m in paper.index]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 4))
    import seaborn as sns  # the notebooks extra

    sns.barplot(data=df, x="metric", y="SRCC", hue="source", order=order, ax=ax, palette=["#4c72b0", "#bbbbbb"])
    # bootstrap intervals of our single-benchmark averages
    bench = results[results["benchmark"] != "Average"]
    if bench["benchmark"].nunique() == 1:
        for i, m in enumerate(order):
            r = bench[bench["display"] == m].iloc[0]
            ax.errorbar(i - 0.2, r["srcc"], yerr=[[r["srcc"] - r["srcc_low"]], [r["srcc_high"] - r["srcc"]]],
                        color="black", capsize=3, lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("average SRCC")
    benches = ", ".join(bench["benchmark"].unique())
    _title(ax, f"DISTS-style metrics: ours on {benches} vs paper (TID2013/Liu13/Ma17/TQD)", profile, weights)
    ax.legend(loc="lower right", fontsize=8)
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
