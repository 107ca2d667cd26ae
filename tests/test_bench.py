"""The benchmark machinery of ``python -m asymlib.bench`` (no timing thresholds: only what it computes)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from asymlib import bench
from asymlib.sr.config import SRTrainConfig


def test_measure_reports_medians_and_ratio_is_baseline_over_variant():
    now = [0.0]
    durations = {"slow": iter([9.0, 3.0, 5.0, 4.0]), "fast": iter([9.0, 1.0, 2.0, 6.0])}  # first: warm-up

    def clock() -> float:
        return now[0]

    def call(name: str):
        def fn():
            now[0] += next(durations[name])
            return name
        return fn

    res = bench.measure({"slow": call("slow"), "fast": call("fast")}, repeats=3, warmup=1, clock=clock)
    assert res["slow"].times_s == [3.0, 5.0, 4.0] and res["fast"].times_s == [1.0, 2.0, 6.0]
    assert res["slow"].median_ms == pytest.approx(4000.0) and res["fast"].median_ms == pytest.approx(2000.0)
    assert (res["fast"].min_ms, res["fast"].max_ms) == (pytest.approx(1000.0), pytest.approx(6000.0))
    assert res["fast"].result == "fast"
    assert res["slow"].peak_mem_mb is not None and res["slow"].peak_mem_mb >= 0 and res["slow"].mem_kind
    assert bench.ratio(res["slow"].median_ms, res["fast"].median_ms) == pytest.approx(2.0)
    assert bench.ratio(100.0, 400.0) == pytest.approx(0.25)
    assert bench.ratio(None, 1.0) is None and bench.ratio(1.0, 0.0) is None


def test_pyiqa_twin_gives_equal_values_and_gradients():
    ours, peer = bench.build_pyiqa_twin()
    assert torch.equal(ours.backbone.body.features[0].weight, getattr(peer.stage1, "0").weight)
    assert torch.equal(ours.backbone.body.features[28].weight, getattr(peer.stage5, "28").weight)
    assert torch.equal(ours.alpha.flatten(), peer.alpha.flatten()) and torch.equal(ours.beta, peer.beta)
    ref = bench.image_batch(2, 64, seed=0)
    x = bench.distort(ref, seed=1)
    d_ours, g_ours = bench.dists_step(ours, x, ref)
    d_peer, g_peer = bench.dists_step(peer, x, ref)
    assert d_ours.shape == d_peer.shape == (2,)
    assert (d_peer > 1e-3).all()  # non-trivial distances
    assert torch.allclose(d_ours, d_peer, atol=1e-5), (d_ours - d_peer).abs().max()
    assert torch.allclose(g_ours, g_peer, atol=1e-7, rtol=1e-3), (g_ours - g_peer).abs().max()
    assert bench.build_pyiqa_twin()[0] is ours  # cached per process
    import pyiqa.utils.download_util as pyiqa_download

    # the temporary TORCH_HOME of the twin must not become pyiqa's cache folder (NR evaluators look there)
    assert "asymlib-bench-" not in pyiqa_download.DEFAULT_CACHE_DIR


def test_sr_step_runs_both_paths_on_cpu():
    spec = bench.SRStepSpec(preset="small", batch=1, lr_size=16, label="tiny")
    for optimized in (False, True):
        step, desc = bench.build_sr_step(spec, "cpu", optimized=optimized)
        loss = step()
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert ("fused Adam" in desc) == optimized and ("channels-last" in desc) == optimized
    l1_only = bench.SRStepSpec(preset="small", batch=1, lr_size=16, label="tiny",
                               config=SRTrainConfig(lambda_rec=1.0, lambda_per=0.0, lambda_adv=0.0))
    step, desc = bench.build_trainer_sr_step(l1_only, "cpu")
    assert torch.isfinite(step()) and desc == "fp32, NCHW (the metric in its own layout), eager, Adam (default)"


def test_nr_train_step_runs_on_cpu():
    from asymlib.iqa.nr import NR_TRAIN_PRESETS

    x = bench.image_batch(2, 64, seed=0)
    step = bench.build_nr_train_step("resnet50", NR_TRAIN_PRESETS["smoke"], torch.device("cpu"), x, torch.randn(2))
    losses = [float(step()) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[0] != losses[1]


def test_main_writes_table_with_expected_columns(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = bench.main(["--quick", "--only", "scaling", "--output", str(out), "--scaling-sizes", "64",
                     "--scaling-batches", "1", "--repeats", "1", "--warmup", "0"])
    assert rc == 0
    df = pd.read_csv(out / "bench.csv")
    assert list(df.columns[:len(bench.COLUMNS)]) == list(bench.COLUMNS)
    assert {"date", "git_commit", "torch_version"} <= set(df.columns)
    assert list(df["variant"]) == ["asymlib 64px b1", "pyiqa 64px b1"]
    assert df.loc[0, "baseline"] == "pyiqa 64px b1" and df.loc[0, "max_abs_diff"] <= 1e-5
    assert df.loc[0, "ratio_vs_baseline"] == pytest.approx(df.loc[1, "median_ms"] / df.loc[0, "median_ms"])
    meta = json.loads((out / "bench.json").read_text())["meta"]
    assert {"git_commit", "torch_version", "date", "device", "scaling"} <= set(meta)
    assert meta["scaling"][0]["size"] == 64
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries
    printed = capsys.readouterr().out
    assert "asymlib 64px b1" in printed and "size \\ batch" in printed


def test_unknown_benchmark_is_rejected():
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "dists,foo"])


def test_step_costs_from_rows_and_flag(tmp_path):
    rows = [bench.Row("sr_step", "cpu", "train_sr stage 2 + adversarial", "eager fp32", repeats=3, median_ms=300.0,
                      step_cost="sr_stage2_adv/iteration"),
            bench.Row("nr_train", "cpu", "a step", "a step", median_ms=100.0, step_cost="nr_train/iteration"),
            bench.Row("nr_train", "cpu", "b step", "b step", median_ms=300.0, step_cost="nr_train/iteration"),
            bench.Row("metric_train", "cpu", "terms pass", "terms pass", median_ms=500.0, images_per_s=4.0,
                      step_cost="metric_train/item"),
            bench.Row("sr_step", "cuda", "train_sr stage 1 (L1)", "x", status="skipped: no CUDA",
                      step_cost="sr_stage1/iteration"),
            bench.Row("sr_step", "cpu", "eager fp32", "eager fp32", median_ms=400.0)]
    meta = {"primary_device": "cpu", "cpu_model": "Some CPU", "cuda_device": None, "date": "2026-11-23",
            "torch_version": "2.13.0", "git_commit": "abc", "workload_profile": "smoke"}
    costs = bench.step_costs(rows, meta)
    assert costs["format"] == bench.STEP_COSTS_FORMAT
    assert (costs["device"], costs["device_type"], costs["profile"], costs["date"], costs["torch_version"]) == (
        "Some CPU", "cpu", "smoke", "2026-11-23", "2.13.0")
    assert costs["seconds_per_step"] == {"sr_stage2_adv": pytest.approx(0.3), "nr_train": pytest.approx(0.2)}
    assert costs["seconds_per_item"] == {"metric_train": pytest.approx(0.25)}
    assert [m["variant"] for m in costs["measured_by"]["nr_train"]] == ["a step", "b step"]
    assert set(costs["seconds_per_step"]) <= set(bench.STEP_COST_KINDS)
    path = bench.write_step_costs(tmp_path / "costs" / "step_costs.json", rows, meta)
    assert json.loads(path.read_text())["seconds_per_step"]["nr_train"] == pytest.approx(0.2)
    args = bench.parse_args(["--only", "sr", "--output", str(tmp_path), "--write-step-costs"])
    assert args.write_step_costs == tmp_path / "step_costs.json"
    assert bench.parse_args(["--write-step-costs", str(tmp_path / "c.json")]).write_step_costs == tmp_path / "c.json"
    assert bench.parse_args([]).write_step_costs is None
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "scaling", "--write-step-costs"])
