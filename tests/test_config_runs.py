"""Profiles, run directories and the packaged paper tables."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from asymlib.config import get_profile
from asymlib.errors import ConfigError, UnknownNameError
from asymlib.reporting import PAPER_TABLES, load_paper_table, profile_banner
from asymlib.runs import config_hash, open_run

SHARED_TABLES = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables"


def test_paper_profile_holds_the_papers_values():
    p = get_profile("paper")
    t = p.metric_study.train
    assert (t.iterations, t.batch_size, t.lr, t.lr_halve_every, t.stage0_bounds) == (5000, 32, 1e-4, 1000, (0.02, 1.0))
    assert p.weights == "imagenet" and p.metric_study.train_set == "kadid10k"
    assert p.metric_study.eval_sets == ("tid2013", "liu13", "ma17", "tqd")
    assert get_profile("smoke").weights == "random"


def test_overrides_and_errors():
    p = get_profile("smoke", **{"metric_study.train.iterations": 7, "seed": 3, "metric_study.metrics": ["vgg16"]})
    assert p.metric_study.train.iterations == 7 and p.seed == 3 and p.metric_study.metrics == ("vgg16",)
    with pytest.raises(ConfigError, match="no field 'itertions'"):
        get_profile("smoke", **{"metric_study.train.itertions": 7})
    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        get_profile("smoke", **{"metric_study.train.iterations": 0})
    with pytest.raises(UnknownNameError, match="unknown profile 'fast'"):
        get_profile("fast")


def test_run_directory_lifecycle(tmp_path):
    cfg = {"a": 1, "b": [1, 2]}
    assert config_hash(cfg) == config_hash({"b": [1, 2], "a": 1}) != config_hash({"a": 2, "b": [1, 2]})
    run = open_run(tmp_path, "kind", "name", cfg, tensorboard=False)
    assert not run.finished
    run.start({"profile": "smoke"})
    run.log(1, loss=0.5)
    run.log(2, loss=0.25)
    run.write_results([{"x": 1.0}])
    assert not run.finished  # results alone do not make a run finished
    run.finish("finished")
    again = open_run(tmp_path, "kind", "name", cfg)
    assert again.finished and again.path == run.path
    assert list(again.read_log()["loss"]) == [0.5, 0.25]
    assert again.read_results()["run_id"].iloc[0] == run.path.name
    assert not list(run.path.glob(".*.tmp"))


def test_packaged_paper_tables_match_shared_copies():
    for n, name in PAPER_TABLES.items():
        ours = load_paper_table(n)
        assert len(ours) > 0
        if SHARED_TABLES.is_dir():
            pd.testing.assert_frame_equal(ours, pd.read_csv(SHARED_TABLES / name))
    t4 = load_paper_table(4)
    assert t4[(t4.backbone == "VGG-16") & (t4.benchmark == "Average")]["srcc"].item() == pytest.approx(0.853)


def test_smoke_banner_disclaims():
    assert "NOT comparable" in profile_banner("smoke", "random")
    assert "NOT" not in profile_banner("paper", "imagenet")


def test_our_columns_never_take_the_papers_name(tmp_path, monkeypatch):
    """A paper-profile run must not overwrite the published numbers: ours read "ours (paper)"."""
    from asymlib.reporting import ours_label, paper_comparison

    monkeypatch.setenv("ASYMLIB_DATA", str(tmp_path))  # real data, not rehearsal fixtures: comparable
    assert ours_label("paper") == "ours (paper)"
    rows = [{"metric": "vgg16_r", "display": "VGG-16-R", "benchmark": b, "srcc": 0.111, "srcc_low": 0.1,
             "srcc_high": 0.2, "plcc": 0.222, "weights_source": "random", "profile": "paper"}
            for b in ("TID2013", "Average")]
    t4 = paper_comparison(4, pd.DataFrame(rows), "paper", "imagenet")
    assert t4.comparable
    paper4 = load_paper_table(4)
    published = paper4[(paper4.backbone == "VGG-16-R") & (paper4.benchmark == "Average")]
    w4 = t4.wide()
    avg = "Average (paper: TID2013, Liu13, Ma17, TQD; ours: the benchmarks)"
    assert set(w4.columns.get_level_values("source")) == {"paper", "ours (paper)", "delta"}
    assert w4.loc["VGG-16-R", (avg, "SRCC", "paper")] == pytest.approx(published["srcc"].item())
    assert w4.loc["VGG-16-R", (avg, "SRCC", "ours (paper)")] == pytest.approx(0.111)
    assert w4.loc["VGG-16-R", (avg, "PLCC", "delta")] == pytest.approx(0.222 - published["plcc"].item())
    rows2 = [{**r, "backbone": "vgg16", "initialization": "random", "init_display": "Random",
              "paper_backbone": "VGG-16", "status": "ok"} for r in rows]
    w2 = paper_comparison(2, pd.DataFrame(rows2), "paper", "imagenet").wide()
    paper2 = load_paper_table(2)
    pub2 = paper2[(paper2.backbone == "VGG-16") & (paper2.initialization == "Random") & (paper2.benchmark == "Average")]
    assert w2.loc[("VGG-16", "Random"), (avg, "SRCC", "paper")] == pytest.approx(pub2["srcc"].item())
    assert w2.loc[("VGG-16", "Random"), (avg, "SRCC", "ours (paper)")] == pytest.approx(0.111)
    t3 = pd.DataFrame([{"head": "vanilla", "backbone": "VGG-16", "variant": "VGG-16", "evaluator": "Average",
                        "score": 12.5, "status": "finished"}])
    w3 = paper_comparison(3, t3, "paper", "imagenet").wide()
    paper3 = load_paper_table(3)
    pub3 = paper3[(paper3["head"] == "vanilla") & (paper3.backbone == "VGG-16") & (paper3.nr_iqa == "Average")]
    avg = "Average (paper: MANIQA, LIQE, DeQA, VQ-R1; ours: no NR evaluator)"
    assert w3.loc[("Vanilla", "VGG-16"), (avg, "paper")] == pytest.approx(pub3["score"].item())
    assert w3.loc[("Vanilla", "VGG-16"), (avg, "ours (paper)")] == pytest.approx(12.5)
    for wide in (w2, w3, w4):
        assert list(dict.fromkeys(wide.columns.get_level_values("source"))) == ["paper", "ours (paper)", "delta"]


@pytest.mark.parametrize("field, value, message", [
    ("iterations", "3", "must be of type int, got '3'"),
    ("iterations", 3.5, "must be of type int, got 3.5"),
    ("batch_size", True, "must be of type int, got True"),
    ("lr", float("nan"), "must be a finite number"),
    ("lambda_adv", float("inf"), "must be a finite number"),
    ("milestones", [10, 20], "milestones must be of type"),
])
def test_configs_refuse_coercion_and_non_finite_numbers(field, value, message):
    from asymlib.sr.config import SRTrainConfig

    with pytest.raises(ConfigError, match=f"SRTrainConfig.{field}" if field != "milestones" else "milestones"):
        SRTrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SRTrainConfig(**{field: value})
    # the same through the profile's dotted overrides, before anything runs
    with pytest.raises(ConfigError, match=field):
        get_profile("smoke", **{f"sr.stage2.{field}": value if field != "milestones" else "10,20"})
