"""IQA accuracy vs. optimization quality (paper Fig. 3).

For each objective setting (perceptual, reconstruction+perceptual, perceptual+adversarial, all three), every
perceptual metric is one point: ``x`` = its average IQA SRCC (Table 4), ``y`` = the average NR-IQA score
of the SR model trained with it (Table 1). The question is whether ``x`` predicts ``y``; per panel we report
the Spearman correlation over metrics and a percentile bootstrap interval obtained by resampling metrics
with replacement (with six metrics the interval is wide: that is the point of showing it).

Input is a tidy frame with one row per (setting, metric)::

    setting | metric | iqa_srcc | sr_quality

:func:`paper_correlation_data` builds that frame from the paper's Tables 1 and 4.
"""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..iqa.stats import bootstrap_ci, srcc

__all__ = ["SETTING_ORDER", "correlation_table", "plot_iqa_vs_optimization"]

SETTING_ORDER = ("perceptual", "reconstruction+perceptual", "perceptual+adversarial",
                 "reconstruction+perceptual+adversarial")


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of (B, N) resamples (NaN where a row is constant)."""
    from scipy.stats import rankdata

    rx = rankdata(x, axis=-1)
    ry = rankdata(y, axis=-1)
    rx = rx - rx.mean(-1, keepdims=True)
    ry = ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def correlation_table(data: pd.DataFrame, x: str = "iqa_srcc", y: str = "sr_quality", setting: str = "setting",
                      n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Spearman correlation between ``x`` and ``y`` within each setting, with a bootstrap interval.

    Args:
        data: one row per (setting, metric) with numeric columns ``x`` and ``y``.
        n_resamples, seed, level: percentile bootstrap over metrics (rows of the setting), resamples where
            the correlation is undefined (all-equal ranks) being dropped.

    Returns:
        One row per setting (in :data:`SETTING_ORDER` first, then others): ``setting, n, srcc, ci_low,
        ci_high, pearson, y_std`` (``y_std``: population std of ``y``, the "Std." of Table 1).
    """
    missing = [c for c in (x, y, setting) if c not in data.columns]
    if missing:
        raise ConfigError(f"correlation data lacks column(s) {missing}; has {list(data.columns)}")
    settings = [s for s in SETTING_ORDER if s in set(data[setting])]
    settings += [s for s in dict.fromkeys(data[setting]) if s not in settings]
    rows = []
    for s in settings:
        part = data[data[setting] == s].dropna(subset=[x, y])
        xs, ys = part[x].to_numpy(float), part[y].to_numpy(float)
        rho = srcc(xs, ys)
        if len(xs) >= 3 and math.isfinite(rho):
            lo, hi = bootstrap_ci(_spearman_rows, xs, ys, n_resamples=n_resamples, seed=seed, level=level,
                                  vectorized=True)
        else:
            lo, hi = math.nan, math.nan
        pear = float(np.corrcoef(xs, ys)[0, 1]) if len(xs) >= 2 and xs.std() > 0 and ys.std() > 0 else math.nan
        rows.append({"setting": s, "n": len(xs), "srcc": rho, "ci_low": lo, "ci_high": hi, "pearson": pear,
                     "y_std": float(ys.std()) if len(ys) else math.nan})
    return pd.DataFrame(rows)


def plot_iqa_vs_optimization(data: pd.DataFrame, banner: str = "", x: str = "iqa_srcc",
                             y: str = "sr_quality", setting: str = "setting", metric: str = "metric",
                             stats: pd.DataFrame | None = None, paper: pd.DataFrame | None = None,
                             n_resamples: int = 2000, seed: int = 0, level: float = 0.95, sharey: bool = True,
                             x_label: str = "average IQA SRCC", alert: bool = False):
    """Facet plot of Fig. 3: one panel per setting, one labelled point per metric, Spearman rho and its
    bootstrap interval in the panel title, the profile banner in the figure title.

    Args:
        data: our points (see :func:`correlation_table`).
        banner: the line saying how the numbers were produced (:func:`asymlib.reporting.profile_banner`);
            ``alert`` draws the title in red (numbers that check a pipeline, e.g. smoke).
        stats: precomputed :func:`correlation_table` (computed when None).
        paper: optional paper points (:func:`asymlib.reporting.paper_correlation_data`), drawn as gray crosses;
            pass them only when our numbers are comparable with the paper's.
        sharey: share the y axis across panels (shows the tighter clustering with adversarial loss).
        x_label: label of the x axes (say which IQA statistic ``x`` holds).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    st = correlation_table(data, x, y, setting, n_resamples, seed, level) if stats is None else stats
    settings = list(st["setting"])
    if not settings:
        raise ConfigError("no setting to plot")
    ncols = min(4, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.1 * nrows + 0.9), squeeze=False,
                             sharey=sharey, sharex=True)
    palette = dict(zip(sorted(data[metric].unique()), sns.color_palette("tab10", data[metric].nunique())))
    for i, s in enumerate(settings):
        ax = axes[i // ncols, i % ncols]
        part = data[data[setting] == s]
        for r in part.itertuples():
            xv, yv, name = getattr(r, x), getattr(r, y), getattr(r, metric)
            ax.scatter(xv, yv, color=palette[name], s=36, zorder=3, label=name)
            ax.annotate(str(name), (xv, yv), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if len(part) >= 2 and part[x].std() > 0:
            coef = np.polyfit(part[x].to_numpy(float), part[y].to_numpy(float), 1)
            xx = np.linspace(part[x].min(), part[x].max(), 20)
            ax.plot(xx, np.polyval(coef, xx), color="gray", lw=1, ls="--", zorder=2)
        if paper is not None:
            pp = paper[paper[setting] == s]
            ax.scatter(pp[x], pp[y], marker="x", color="gray", s=24, zorder=2, label="paper")
        row = st[st["setting"] == s].iloc[0]
        ci = (f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if math.isfinite(row["ci_low"]) else "[n/a]")
        rho = f"{row['srcc']:.2f}" if math.isfinite(row["srcc"]) else "n/a"
        name = textwrap.fill(s.replace("+", " + "), 34)
        ax.set_title(f"{name}\nSpearman {rho}, {int(level * 100)}% CI {ci} (n={int(row['n'])})", fontsize=8)
        ax.set_xlabel(x_label, fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel("average SR visual quality", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for j in range(len(settings), nrows * ncols):
        axes[j // ncols, j % ncols].axis("off")
    fig.suptitle(f"IQA accuracy vs. optimization quality (Fig. 3)\n{textwrap.fill(banner, 120)}".strip(), fontsize=9,
                 color="#b00020" if alert else "black")
    fig.tight_layout()
    return fig
