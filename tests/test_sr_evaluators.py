"""NR-IQA evaluators (offline availability, no downloads), Appendix D rescaling, Table 1 assembly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from asymlib.errors import ConfigError, UnknownNameError
from asymlib.experiments.sr_optimization import STD_COLUMN, table1
from asymlib.reporting import paper_comparison
from asymlib.sr.evaluators import (EvaluatorUnavailableError, Rescaling, _offline, calibrate, create_evaluator,
                                   evaluator_status, list_evaluators, parse_vq_r1_answer, score_images,
                                   synthetic_calibration_set)


@pytest.mark.parametrize("name, needle", [
    ("maniqa", "ckpt_koniq10k.pt"),
    ("liqe", "liqe_koniq.pt"),
    ("deqa", "DeQA-Score-Mix3"),
    ("vq_r1", "VisualQuality-R1-7B"),
])
def test_missing_weights_are_reported_not_faked(name, needle):
    st = evaluator_status(name)  # conftest gives every test empty model caches
    assert not st.available and needle in st.reason
    assert str(st).startswith(f"{st.display}: unavailable: ")
    with pytest.raises(EvaluatorUnavailableError, match=f"{st.display} unavailable: .*{needle}"):
        create_evaluator(name)


def test_local_path_without_weights_is_still_unavailable(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("ASYMLIB_DEQA_PATH", str(tmp_path / "absent"))
    assert not evaluator_status("deqa").available


def test_offline_guard_refuses_pyiqa_downloads(tmp_path):
    import huggingface_hub.constants as hf
    from pyiqa.utils import download_util

    before = hf.HF_HUB_OFFLINE
    with _offline():
        assert hf.HF_HUB_OFFLINE is True
        with pytest.raises(EvaluatorUnavailableError, match="not in the local cache"):
            download_util.load_file_from_url("https://example.invalid/weights.pt", model_dir=str(tmp_path))
    assert hf.HF_HUB_OFFLINE == before and download_util.download_url_to_file.__name__ != "refuse"


def test_weight_free_evaluators():
    assert {"maniqa", "liqe", "deqa", "vq_r1", "piqe", "psnr", "ssim"} <= set(list_evaluators())
    with pytest.raises(UnknownNameError, match="unknown evaluator"):
        create_evaluator("nope")
    piqe = create_evaluator("piqe")
    assert piqe.kind == "nr" and piqe.higher_is_better is False  # pyiqa: lower_better
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    assert piqe(x).shape == (2,)
    psnr = create_evaluator("psnr")
    assert psnr.kind == "fr" and psnr.higher_is_better
    with pytest.raises(ConfigError, match="full-reference"):
        psnr(x)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert np.all(psnr(noisy, x) > psnr(torch.rand_like(x), x))
    ssim = create_evaluator("ssim")
    # unequal sizes are scored separately, equal neighbours batched
    imgs = [x[0], x[1], torch.rand(3, 64, 48)]
    assert score_images(ssim, imgs, [i.clone() for i in imgs], batch_size=4) == pytest.approx([1.0, 1.0, 1.0],
                                                                                               abs=1e-6)


def test_parse_vq_r1_answer():
    assert parse_vq_r1_answer("<think>sharp</think> <answer>3.75</answer>") == 3.75
    assert parse_vq_r1_answer("score 4") == 4.0
    assert np.isnan(parse_vq_r1_answer("<answer>n/a</answer>"))


def test_rescaling_fit_is_stored_with_its_data(tmp_path):
    calib = synthetic_calibration_set(["astronaut", "chelsea"], ["gaussian_blur", "gaussian_noise"], crop=48)
    assert calib.target.startswith("pseudo-MOS")
    levels = np.array([int(n.rsplit("|", 1)[1]) for n in calib.names])
    assert np.allclose(calib.mos[levels == 1], 100.0) and np.allclose(calib.mos[levels == 5], 1.0)
    piqe = create_evaluator("piqe")
    resc = calibrate(piqe, calib)
    assert resc.eta["eta1"] == 100.0 and resc.eta["eta2"] == 1.0 and resc.input_sign == -1.0
    assert len(resc.raw) == len(resc.mos) == len(resc.names) == len(calib.mos)
    path = resc.save(tmp_path / "rescaling.json")
    stored = json.loads(path.read_text())
    assert stored["target"] == calib.target and stored["raw"] == resc.raw and stored["eta"] == resc.eta
    again = Rescaling.load(path)
    raw = np.array([10.0, 40.0, 80.0, np.nan])
    out = again(raw)
    assert np.all((out[:3] > 1) & (out[:3] < 100)) and np.isnan(out[3])
    assert out[0] >= out[1] >= out[2]  # lower raw PIQE = better = larger rescaled score
    with pytest.raises(ConfigError, match="full-reference"):
        calibrate(create_evaluator("psnr"), calib)


def _fake_scores() -> pd.DataFrame:
    rows = []
    metric_means = {"VGG-16-R": 50.0, "VGG-16": 54.0, "Swin-T": 46.0}
    for ev, offset in (("PIQE", 0.0), ("MANIQA", 10.0), ("PSNR", -30.0)):
        kind = "fr" if ev == "PSNR" else "nr"
        for img, jitter in (("a", -1.0), ("b", 1.0)):
            for col, m in metric_means.items():
                rows.append({"evaluator": ev, "kind": kind, "column": col, "setting": "perceptual",
                             "image": img, "score": m + offset + jitter})
            rows.append({"evaluator": ev, "kind": kind, "column": "L1", "setting": None, "image": img,
                         "score": 40.0 + offset})
            rows.append({"evaluator": ev, "kind": kind, "column": "Ref.", "setting": None, "image": img,
                         "score": 60.0 + offset})
    return pd.DataFrame(rows)


def test_plot_table1_titles_name_the_evaluators_each_average_averages():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asymlib.config import get_profile
    from asymlib.experiments.sr_optimization import SRStudyResult, plot_table1

    table = table1(_fake_scores(), ["perceptual"], ["vgg16_r", "vgg16", "swin_t"], ["piqe", "maniqa", "psnr"])
    result = SRStudyResult("smoke", "random", get_profile("smoke").sr, pd.DataFrame(), _fake_scores(), table,
                           pd.DataFrame(), {}, {}, "")
    fig = plot_table1(result)
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles == ["paper: Average of MANIQA/LIQE/DeQA/VQ-R1", "ours (smoke): Average of PIQE/MANIQA"]
    finally:
        plt.close(fig)
    fig = plot_table1(result, evaluator="PSNR")
    try:
        assert [ax.get_title() for ax in fig.axes if ax.get_title()][1] == "ours (smoke): PSNR"
    finally:
        plt.close(fig)


def test_table1_std_average_and_paper_comparison():
    table = table1(_fake_scores(), ["perceptual"], ["vgg16_r", "vgg16", "swin_t"], ["piqe", "maniqa", "psnr"])
    cell = table.set_index(["evaluator", "column"])["score"]
    assert cell[("PIQE", STD_COLUMN)] == pytest.approx(np.std([50.0, 54.0, 46.0]))  # population std
    assert cell[("PIQE", "L1")] == 40.0 and cell[("MANIQA", "Ref.")] == 70.0
    assert cell[("Average", "VGG-16")] == pytest.approx(59.0)  # NR evaluators only (PSNR left out)
    assert cell[("Average", STD_COLUMN)] == pytest.approx(np.std([55.0, 59.0, 51.0]))
    avg = "Average (paper: MANIQA, LIQE, DeQA, VQ-R1; ours: PIQE, MANIQA)"  # PSNR is not averaged
    smoke = paper_comparison(1, table, "smoke", "random")
    wide = smoke.wide()
    assert wide.loc[("Perceptual", "MANIQA"), ("paper", "VGG-16")] == 54.03
    assert wide.loc[("Perceptual", "MANIQA"), ("ours (smoke)", "VGG-16")] == pytest.approx(64.0)
    assert wide.loc[("Perceptual", avg), ("ours (smoke)", "VGG-16")] == pytest.approx(59.0)
    assert wide.loc[("Perceptual", avg), ("paper", STD_COLUMN)] == 5.863
    assert np.isnan(wide.loc[("Perceptual", "PIQE"), ("paper", "VGG-16")])
    assert "delta" not in smoke.long.columns and "delta" not in wide.columns.get_level_values("source")
    # the paper's block has the paper's six metrics; ours only the three we trained
    assert [c for s, c in wide.columns if s == "ours (smoke)"] == ["VGG-16-R", "VGG-16", "Swin-T", STD_COLUMN, "L1",
                                                                   "Ref."]
    assert len([c for s, c in wide.columns if s == "paper"]) == 9
    assert "Average" in set(smoke.long["evaluator"])  # the tidy table keeps the key
    # ranks stay within each source; Std., L1 and Ref. are never ranked
    long = smoke.long.set_index(["setting", "evaluator", "column"])
    assert long.loc[("perceptual", "MANIQA", "VGG-16"), "ours_rank"] == 1  # 64 > 60 > 56
    assert long.loc[("perceptual", "MANIQA", "VGG-16"), "paper_rank"] == 2  # ConvNeXt's 54.50 is first
    assert long.loc[("perceptual", "MANIQA", "L1")][["paper_rank", "ours_rank"]].isna().all()
    paper = paper_comparison(1, table, "paper", "imagenet", comparable=True).wide()
    assert paper.loc[("Perceptual", avg), ("VGG-16", "delta")] == pytest.approx(59.0 - 59.37)
    assert paper.loc[("Perceptual", "MANIQA"), ("VGG-16", "ours (paper)")] == pytest.approx(64.0)
