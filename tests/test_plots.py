"""Notebook 01's bar chart: smoke bars never stand beside the paper's."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from asymlib.plots import plot_metric_study  # noqa: E402
from asymlib.reporting import load_paper_table  # noqa: E402

OURS = {"VGG-16-R": 0.31, "VGG-16": 0.42, "Swin-T": 0.53}


def _results(profile: str, weights: str = "random(seed=0)") -> pd.DataFrame:
    """Notebook 01's smoke layout: the saturated within-group row, the pooled row, and an Average of the pooled
    row alone (which carries its interval)."""
    rows = []
    for display, srcc in OURS.items():
        rows.append({"display": display, "benchmark": "Synthetic levels", "srcc": 1.0, "srcc_low": 1.0,
                     "srcc_high": 1.0, "protocol": "within-group mean, linear PLCC"})
        for bench, protocol in (("synthetic levels, pooled", "global"),
                                ("Average", "mean over synthetic levels, pooled")):
            rows.append({"display": display, "benchmark": bench, "srcc": srcc, "srcc_low": srcc - 0.1,
                         "srcc_high": srcc + 0.1, "protocol": protocol})
    return pd.DataFrame(rows).assign(weights_source=weights, profile=profile)


def _heights(ax) -> list[list[float]]:
    return [[bar.get_height() for bar in c] for c in ax.containers if isinstance(c, BarContainer)]


def _paper_average() -> pd.Series:
    paper = load_paper_table(4)
    return paper[paper["benchmark"] == "Average"].set_index("backbone")["srcc"]


def test_smoke_bars_and_the_papers_are_drawn_in_separate_panels():
    fig = plot_metric_study(_results("smoke"))
    try:
        assert len(fig.axes) == 2
        ours, paper = fig.axes
        assert _heights(ours) == [pytest.approx(list(OURS.values()))]  # ours only, nothing of the paper's
        assert _heights(paper) == [pytest.approx([_paper_average()[m] for m in OURS])]
        assert [t.get_text() for t in ours.get_xticklabels()] == list(OURS)
        assert [t.get_text() for t in paper.get_xticklabels()] == list(OURS)
        assert "ours (smoke)" in ours.get_title() and "SMOKE PROFILE" in ours.get_title()
        assert "over synthetic levels, pooled" in ours.get_title() and "Synthetic levels," not in ours.get_title()
        assert paper.get_title().startswith("paper") and "not comparable" in paper.get_title()
        # the Average of the pooled row alone carries its bootstrap interval
        segments = [c.lines[2][0].get_segments()[0] for c in ours.containers if isinstance(c, ErrorbarContainer)]
        assert [tuple(seg[:, 0]) for seg in segments] == [(0, 0), (1, 1), (2, 2)]
        np.testing.assert_allclose([seg[:, 1] for seg in segments], [[v - 0.1, v + 0.1] for v in OURS.values()])
        assert not any(isinstance(c, ErrorbarContainer) for c in paper.containers)
    finally:
        plt.close(fig)


def test_comparable_numbers_stand_beside_the_papers(tmp_path, monkeypatch):
    monkeypatch.setenv("ASYMLIB_DATA", str(tmp_path))  # no rehearsal marker: a paper-profile run is comparable
    imagenet = "imagenet(timm/vgg16.tv_in1k@abc/model.safetensors)"
    fig = plot_metric_study(_results("paper", imagenet))
    try:
        assert len(fig.axes) == 1
        ax = fig.axes[0]
        heights = _heights(ax)
        assert heights == [pytest.approx(list(OURS.values())), pytest.approx([_paper_average()[m] for m in OURS])]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours (paper)", "paper"]
    finally:
        plt.close(fig)
    for results, comparable in ((_results("paper", imagenet), False), (_results("paper"), None)):
        fig = plot_metric_study(results, comparable=comparable)  # told so, or random backbones: apart
        try:
            assert len(fig.axes) == 2
        finally:
            plt.close(fig)
    # an Average over several benchmarks has no interval, and none is drawn
    several = _results("paper").assign(srcc_low=np.nan, srcc_high=np.nan)
    fig = plot_metric_study(several, comparable=False)
    try:
        assert not any(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers)
    finally:
        plt.close(fig)
