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
