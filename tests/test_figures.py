"""Notebook 05's module: paper-vs-ours tables, Fig. 3 data, cached analyses and the widget inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from asymlib.config import get_profile
from asymlib.errors import ConfigError, UnknownNameError
from asymlib.experiments.figures import (StudyTables, fig3_x_label, comparison_inputs, fig3_data, figures_config_for,
                                         load_study_tables, paper_tables, run_recovery)
from asymlib.imageio import save_image
from asymlib.reporting import TABLE_TITLES, paper_comparison

SMOKE = get_profile("smoke")


def _metrics() -> pd.DataFrame:
    rows = []
    for display, srcc, plcc in (("VGG-16-R", 0.5, 0.6), ("VGG-16", 0.9, 0.8), ("Swin-T", 0.7, 0.95)):
        for bench in ("Synthetic levels", "Average"):
            rows.append({"display": display, "backbone": "x", "benchmark": bench, "srcc": srcc, "plcc": plcc,
                         "profile": "smoke"})
    return pd.DataFrame(rows)


def _table1() -> pd.DataFrame:
    rows = []
    for setting, offset in (("perceptual", 0.0), ("rec+perceptual+adv", 10.0)):
        for ev in ("PIQE", "Average"):
            for col, v in (("VGG-16-R", 30.0), ("VGG-16", 40.0), ("Swin-T", 35.0), ("Std.", 4.1), ("L1", 20.0),
                           ("Ref.", 60.0)):
                rows.append({"setting": setting, "evaluator": ev, "column": col,
                             "score": v + (offset if col not in ("Std.", "L1", "Ref.") else 0.0)})
    return pd.DataFrame(rows)


def _tables(sr_scores: pd.DataFrame | None = None) -> StudyTables:
    fr = pd.DataFrame([{"paper_backbone": "VGG-16", "init_display": init, "initialization": init.lower(),
                        "backbone": "vgg16", "benchmark": "Average", "srcc": s, "plcc": s, "status": "ok",
                        "profile": "smoke"} for init, s in (("Random", 0.5), ("GAN", 0.6), ("ImageNet", 0.9))])
    t3 = pd.DataFrame([{"head": h, "backbone": b, "variant": b, "evaluator": "Average", "score": s,
                        "status": "finished"}
                       for h, b, s in (("none", "w/o (base)", 50.0), ("vanilla", "VGG-16", 55.0),
                                       ("patch", "VGG-16", 57.0))])
    return StudyTables(metrics=_metrics(), table1=_table1(), sr_scores=sr_scores if sr_scores is not None
                       else pd.DataFrame(columns=["profile"]), fr_init=fr, table3=t3,
                       gan_backbones=pd.DataFrame(columns=["backbone", "head", "lambda3", "seed", "path", "status",
                                                           "step", "profile", "run_id"]),
                       profile="smoke", weights="random")


def test_paper_tables_are_the_reporting_builders_and_keep_smoke_apart():
    comps = paper_tables(_tables())
    assert sorted(comps) == [1, 2, 3, 4]
    assert all(not c.comparable and "delta" not in c.long.columns for c in comps.values())
    assert [c.title for c in comps.values()] == [TABLE_TITLES[n] for n in (1, 2, 3, 4)]
    frames = {1: _tables().table1, 2: _tables().fr_init, 3: _tables().table3, 4: _tables().metrics}
    for n, comp in comps.items():
        pd.testing.assert_frame_equal(comp.long, paper_comparison(n, frames[n], "smoke", "random").long)
    t4 = comps[4].long.set_index(["backbone", "benchmark", "statistic"])
    assert t4.loc[("VGG-16", "Average", "SRCC"), "paper"] == pytest.approx(0.853)
    assert t4.loc[("VGG-16", "Average", "SRCC"), "ours"] == pytest.approx(0.9)
    assert np.isnan(t4.loc[("VGG-16", "TID2013", "SRCC"), "ours"])  # smoke has no TID2013
    assert t4.loc[("VGG-16", "Average", "SRCC"), "ours_rank"] == 1
    # Table 1: our setting keys map onto the paper's labels, so the Average rows meet
    t1 = comps[1].long.set_index(["setting", "evaluator", "column"])
    cell = t1.loc[("reconstruction+perceptual+adversarial", "Average", "VGG-16")]
    assert cell["paper"] == pytest.approx(62.09) and cell["ours"] == pytest.approx(50.0)
    assert np.isnan(t1.loc[("reconstruction+perceptual+adversarial", "Average", "L1"), "ours_rank"])
    t2 = comps[2].long.set_index(["backbone", "initialization", "benchmark", "statistic"])
    assert t2.loc[("VGG-16", "ImageNet", "Average", "SRCC"), "paper"] == pytest.approx(0.853)
    assert t2.loc[("VGG-16", "ImageNet", "Average", "SRCC"), "ours_rank"] == 1
    t3 = comps[3].long.set_index(["head", "backbone", "evaluator"])
    assert t3.loc[("patch", "VGG-16", "Average"), "paper"] == pytest.approx(62.61)
    assert t3.loc[("patch", "VGG-16", "Average"), "ours_rank"] == 1
    assert t3.loc[("none", "w/o (base)", "Average"), "ours_rank"] == 3
    assert t3.loc[("patch", "VGG-16", "Average"), "status"] == "finished"


def test_fig3_data_pairs_iqa_accuracy_with_sr_quality():
    df = fig3_data(_tables(), statistic="plcc")
    assert set(df["setting"]) == {"perceptual", "reconstruction+perceptual+adversarial"}
    row = df[(df["setting"] == "perceptual") & (df["metric"] == "Swin-T")].iloc[0]
    assert row["iqa_srcc"] == pytest.approx(0.95) and row["sr_quality"] == pytest.approx(35.0)
    assert set(df["metric"]) == {"VGG-16-R", "VGG-16", "Swin-T"} and (df["iqa_statistic"] == "plcc").all()
    assert (df["iqa_benchmarks"] == "the benchmarks").all()  # tables without a protocol column
    t = _tables()
    t.metrics["protocol"] = np.where(t.metrics["benchmark"] == "Average", "mean over synthetic levels, pooled",
                                     "global")
    assert fig3_x_label(t, "srcc") == "IQA SRCC: synthetic levels, pooled"
    assert (fig3_data(t)["iqa_benchmarks"] == "synthetic levels, pooled").all()
    with pytest.raises(ConfigError, match="no column 'mos'"):
        fig3_data(_tables(), statistic="mos")
    with pytest.raises(ConfigError, match="no 'LIQE' row"):
        fig3_data(_tables(), evaluator="LIQE")


def test_load_study_tables_names_the_missing_notebook_and_checks_the_profile(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_metric_construction"):
        load_study_tables(tmp_path, SMOKE)
    t = _tables()
    (tmp_path / "tables").mkdir()
    for name, df in (("metric_study_results", t.metrics.assign(profile="paper")), ("table1_sr_nriqa_by_objective", t.table1),
                     ("sr_nriqa_scores", pd.DataFrame({"profile": ["smoke"]})),
                     ("fr_iqa_by_initialization_results", t.fr_init),
                     ("table3_sr_nriqa_by_discriminator", t.table3), ("gan_backbones", t.gan_backbones)):
        df.to_csv(tmp_path / "tables" / f"{name}.csv", index=False)
    with pytest.raises(ConfigError, match="profile.*'paper'"):
        load_study_tables(tmp_path, SMOKE)
    t.metrics.to_csv(tmp_path / "tables" / "metric_study_results.csv", index=False)
    loaded = load_study_tables(tmp_path, SMOKE)
    assert len(loaded.metrics) == len(t.metrics) and "SMOKE" in loaded.banner


def test_figures_config_presets_and_overrides():
    smoke, paper = figures_config_for("smoke"), figures_config_for("paper")
    assert smoke.iqa_statistic == paper.iqa_statistic == "srcc"  # smoke's Average is the pooled synthetic SRCC
    assert figures_config_for("smoke", iqa_statistic="plcc").iqa_statistic == "plcc"
    assert paper.recovery_metrics == ("vgg16", "clip_vit_b16") and paper.texture_metrics[-1] == "dinov2_vitb14"
    assert figures_config_for(SMOKE, recovery_steps=3, ae_steps=None).recovery_steps == 3
    with pytest.raises(UnknownNameError):
        figures_config_for("nope")
    with pytest.raises(ConfigError, match="no field"):
        figures_config_for("smoke", recovery_stepz=3)


def test_comparison_inputs_read_notebook02_images_and_scores(tmp_path):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for column, setting in (("Ref.", None), ("L1", None), ("VGG-16", "perceptual")):
        d = tmp_path / column.replace(".", "")
        for name in ("a", "b"):
            save_image(torch.rand(3, 32, 48, generator=gen), d / f"{name}.png")
            rows.append({"evaluator": "PIQE", "image": name, "column": column, "setting": setting,
                         "images_dir": str(d), "score": 10.0 + len(rows), "profile": "smoke"})
    images, scores, default = comparison_inputs(_tables(pd.DataFrame(rows)), scale=4)
    assert sorted(images) == ["a", "b"]
    assert sorted(images["a"]["runs"]) == ["L1", "perceptual / VGG-16"]
    assert tuple(images["a"]["hr"].shape) == (3, 32, 48) and tuple(images["a"]["lr"].shape) == (3, 8, 12)
    assert scores[("a", "HR")] == {"PIQE": 10.0} and scores[("b", "perceptual / VGG-16")] == {"PIQE": 15.0}
    assert default == ["L1", "perceptual / VGG-16"]


def test_recovery_is_a_cached_run(tmp_path):
    cfg = figures_config_for("smoke", recovery_metrics=["vgg16_r"], recovery_inits=["noise"], recovery_steps=3)
    first = run_recovery(SMOKE, tmp_path, cfg, progress=False)
    res = first["results"]["VGG-16-R / noise"]
    assert len(res.losses) == 4 and res.losses[-1] < res.losses[0]
    assert first["sources"]["VGG-16-R"].startswith("initial")  # VGG-16-R's alpha/beta are never trained
    run_dirs = list((tmp_path / "runs" / "analysis").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "status.json").is_file()
    assert run_dirs[0].name.startswith("recovery-vgg16_r-noise-")
    mtime = (run_dirs[0] / "result.pt").stat().st_mtime_ns
    again = run_recovery(SMOKE, tmp_path, cfg, progress=False)["results"]["VGG-16-R / noise"]
    assert torch.equal(again.image, res.image) and again.losses == res.losses
    assert len(list((tmp_path / "runs" / "analysis").iterdir())) == 1
    assert (run_dirs[0] / "result.pt").stat().st_mtime_ns == mtime
    # a trained metric's recovery depends on notebook 01's run; without training it is left out
    cfg2 = figures_config_for("smoke", recovery_metrics=["vgg16"], recovery_inits=["noise"], recovery_steps=3)
    assert run_recovery(SMOKE, tmp_path, cfg2, progress=False, train_missing=False)["results"] == {}


def test_fig3_draws_the_papers_points_only_beside_comparable_numbers(tmp_path, monkeypatch):
    import dataclasses

    import matplotlib.pyplot as plt

    from asymlib.analysis import correlation_table
    from asymlib.experiments.figures import plot_fig3

    monkeypatch.setenv("ASYMLIB_DATA", str(tmp_path))  # no rehearsal marker
    smoke = _tables()
    paper = dataclasses.replace(smoke, profile="paper", weights="imagenet")
    points = fig3_data(smoke)
    stats = correlation_table(points, n_resamples=50)

    def crosses(fig) -> int:
        return sum(1 for ax in fig.axes for c in ax.collections if c.get_label() == "paper")

    fig = plot_fig3(points, stats, smoke)
    try:
        assert crosses(fig) == 0 and "SMOKE PROFILE" in fig._suptitle.get_text()
        assert fig.axes[0].get_xlabel() == "IQA SRCC: the benchmarks"
    finally:
        plt.close(fig)
    fig = plot_fig3(points, stats, paper)
    try:
        assert crosses(fig) == len(stats) and fig._suptitle.get_color() == "black"
    finally:
        plt.close(fig)
