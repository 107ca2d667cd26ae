"""The paper profile end to end on rehearsal fixtures: all five notebooks through ``python -m asymlib.study
--profile paper``, datasets in their released layouts, stand-in weights in the real caches, shrunk schedules."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asymlib.rehearsal import REHEARSAL_CONFIG, rehearsal_environment, write_datasets, write_rehearsal

REPO = Path(__file__).resolve().parent.parent
SHARED_TABLES = REPO.parent / "shared" / "paper" / "tables"
NOTEBOOKS = ("01_metric_construction", "02_sr_optimization", "03_gan_initialization", "04_discriminator_ablation",
             "05_figures")


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME")}
    env.update(rehearsal_environment(root), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    return env


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The whole paper-profile study on fresh fixtures (one run shared by the tests of this module)."""
    root = tmp_path_factory.mktemp("rehearsal")
    env = write_rehearsal(root)
    out, figs = root / "study", root / "figures"
    cmd = [sys.executable, "-m", "asymlib.study", "--profile", "paper", "--config", str(REHEARSAL_CONFIG),
           "--train-missing", "--output", str(out), "--figures", str(figs)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(root), capture_output=True, text=True, timeout=2400)
    yield {"root": root, "env": env, "out": out, "figs": figs, "proc": proc}
    shutil.rmtree(root, ignore_errors=True)  # a few GB of runs and stand-in weights


def _published(n: int) -> pd.DataFrame:
    from asymlib.reporting import PAPER_TABLES, load_paper_table

    return pd.read_csv(SHARED_TABLES / PAPER_TABLES[n]) if SHARED_TABLES.is_dir() else load_paper_table(n)


@pytest.mark.slow
def test_paper_profile_runs_every_notebook_on_released_layouts(rehearsal):
    proc = rehearsal["proc"]
    assert proc.returncode == 0, f"the paper-profile rehearsal failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    out = rehearsal["out"]
    summary = json.loads((out / "study_summary.json").read_text())
    assert [Path(nb["notebook"]).stem for nb in summary["notebooks"]] == list(NOTEBOOKS)
    assert all(nb["status"] == "ok" for nb in summary["notebooks"])
    for nb in NOTEBOOKS:
        text = (out / "notebooks" / f"{nb}.ipynb").read_text()
        assert "paper profile, rehearsal fixtures" in text, nb
        assert '"output_type": "error"' not in text, nb
        assert "FloatProgressModel" not in text and "it/s]" not in text, f"{nb}: progress bars in the output"
        assert "pkg_resources" not in text, f"{nb}: a library warning in the output"
    # the shrunk schedules of the --config file reached every run (none trained the paper's 100K iterations)
    stage1 = json.loads(next((out / "runs" / "sr").glob("stage1-l1-*/config.json")).read_text())
    assert stage1["identity"]["train"]["iterations"] == 2
    # every run of the graph finished (or collapsed, which the study records), none pending
    from asymlib.config import get_profile, load_overrides
    from asymlib.pipeline import plan

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASYMLIB_DATA", rehearsal["env"]["ASYMLIB_DATA"])
        df = plan(get_profile("paper", **load_overrides(REHEARSAL_CONFIG)), out)
    assert len(df) > 100
    assert set(df["status"]) <= {"finished", "collapsed", "unavailable"}, df[~df.status.isin(["finished"])]
    # the ImageNet weights came from the stand-in files in the real caches, and provenance says which
    prov = json.loads(next((out / "runs" / "metric").glob("clip_vit_b16-*/provenance.json")).read_text())
    assert "timm/vit_base_patch16_clip_224.openai@" in json.dumps(prov)


@pytest.mark.slow
def test_paper_columns_hold_the_published_numbers(rehearsal):
    """Every paper-vs-ours table: the "paper" column equals the published tables, ours sit beside them."""
    assert rehearsal["proc"].returncode == 0
    figs = rehearsal["figs"]
    t1 = pd.read_csv(figs / "table1_paper_vs_ours.csv")
    pub1 = _published(1).rename(columns={"nr_iqa": "evaluator", "score": "published"})
    keys1 = ["setting", "evaluator", "column"]
    m1 = t1.merge(pub1[keys1 + ["published"]], on=keys1, how="inner")
    checks = [(m1, "paper", "published")]
    t2 = pd.read_csv(figs / "table2_paper_vs_ours.csv")
    pub2 = _published(2).melt(["backbone", "initialization", "benchmark"], ["srcc", "plcc"], "statistic",
                              "published")
    pub2["statistic"] = pub2["statistic"].str.upper()
    checks.append((t2.merge(pub2, on=["backbone", "initialization", "benchmark", "statistic"]), "paper", "published"))
    t3 = pd.read_csv(figs / "table3_paper_vs_ours.csv")
    pub3 = _published(3).rename(columns={"nr_iqa": "evaluator", "score": "published"})
    checks.append((t3.merge(pub3, on=["head", "backbone", "evaluator"]), "paper", "published"))
    t4 = pd.read_csv(figs / "table4_paper_vs_ours.csv")
    pub4 = _published(4).melt(["backbone", "benchmark"], ["srcc", "plcc"], "statistic", "published")
    pub4["statistic"] = pub4["statistic"].str.upper()
    checks.append((t4.merge(pub4, on=["backbone", "benchmark", "statistic"]), "paper", "published"))
    for (merged, col, pub), table in zip(checks, (t1, t2, t3, t4)):
        assert len(merged) >= 0.5 * table["paper"].notna().sum() > 0
        np.testing.assert_allclose(merged[col].to_numpy(float), merged[pub].to_numpy(float), atol=1e-9)
        assert table["produced_by"].str.contains("rehearsal fixtures").all()
    # our numbers are there (Table 4: every metric on every benchmark) and never under the paper's name
    assert t4["ours"].notna().sum() >= 6 * 4
    assert t2["ours"].notna().any() and not any(c.startswith("paper") and c != "paper" and "rank" not in c
                                                for c in t2.columns)


@pytest.mark.slow
def test_figures_of_every_notebook_are_written(rehearsal):
    assert rehearsal["proc"].returncode == 0
    figs = rehearsal["figs"]
    for stem in ("fig3_iqa_vs_optimization", "fig7_gan_weight_stability", "fig12_13_image_recovery",
                 "fig14_discriminator_feature_maps", "fig15_texture_synthesis", "fig16_autoencoder",
                 "fig2_qualitative_objectives", "fig4_qualitative_objectives_metrics",
                 "fig6_qualitative_discriminators", "fig9_qualitative_objectives_metrics",
                 "fig10_qualitative_objectives_metrics", "fig11_qualitative_objectives_metrics"):
        assert (figs / f"{stem}.png").stat().st_size > 10_000, stem


def test_check_passes_on_the_fixtures_and_names_what_is_missing(tmp_path, monkeypatch, capsys):
    from asymlib.check import main as check

    write_datasets(tmp_path / "data")
    for k, v in rehearsal_environment(tmp_path).items():
        monkeypatch.setenv(k, v)
    args = ["--profile", "paper", "--config", str(REHEARSAL_CONFIG), "--format", "json"]
    assert check(args) == 1  # no weights yet
    problems = json.loads(capsys.readouterr().out)
    assert {p["kind"] for p in problems} == {"weights", "evaluator"}
    assert {p["name"].split(" ")[0] for p in problems if p["kind"] == "weights"} == {
        "vgg16", "resnet50", "convnext_tiny", "clip_vit_b16", "swin_t", "dinov2_vits14"}
    assert [p["name"] for p in problems if p["kind"] == "evaluator"] == ["DeQA"]
    write_rehearsal(tmp_path)
    assert check(args) == 0
    capsys.readouterr()
    (tmp_path / "data" / "tqd" / "TQD_mos.txt").unlink()
    assert check(args) == 1
    problems = json.loads(capsys.readouterr().out)
    tqd = [p for p in problems if p["kind"] == "dataset"]
    assert len(tqd) == 1 and "TQD_mos.txt" in tqd[0]["detail"]


def test_datasets_are_read_as_released(tmp_path):
    from asymlib.iqa.datasets import create_fr_dataset, create_nr_dataset

    root = write_datasets(tmp_path)
    for name in ("kadid10k", "tid2013", "liu13", "ma17", "tqd"):
        ds = create_fr_dataset(name, root / name)
        ds.validate()
        assert len(ds) == 4 * 2 * 3
        # scores fall with the distortion level, as the fixtures' ratings were made
        q = ds.records["score"].to_numpy()
        assert np.corrcoef(q, np.arange(len(q)) % 3)[0, 1] < -0.8, name
    koniq = create_nr_dataset("koniq10k", root / "koniq10k")
    koniq.validate()
    assert len(koniq) == 4 * 2 * 3 - 4
    assert sorted(p.name for p in (root / "DIV2K" / "DIV2K_valid_HR").iterdir()) == ["0801.png", "0802.png"]


def test_pilot_profile_fits_about_a_gpu_day():
    from asymlib.config import get_profile
    from asymlib.pipeline import plan

    paper, pilot = get_profile("paper"), get_profile("pilot")
    df = plan(pilot, "/nonexistent/asymlib-pilot")
    total = df["gpu_hours"].sum()
    assert 18 <= total <= 30, total
    # the pilot is the paper's study: the same runs (every table and figure), fewer steps
    assert set(plan(paper, "/nonexistent/asymlib-paper")["kind"]) == set(df["kind"])
    assert pilot.sr.metrics == paper.sr.metrics and pilot.sr.evaluators == paper.sr.evaluators
    assert pilot.sr.stage2.batch_size == paper.sr.stage2.batch_size and pilot.sr.stage2.hr_crop == 256
    assert pilot.sr.stage2.milestones == (2625, 5250, 6125, 6562)
