"""GAN-based initialization (notebook 03): GAN checkpoints from the graph's GAN-source SR runs, architecture
checks, NR-IQA model and training, the FR/NR study on a tiny synthetic set, tables and figures."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from asymlib.atomic import atomic_torch_save
from asymlib.backbones import create_feature_extractor
from asymlib.config import get_profile
from asymlib.discriminators import create_discriminator, read_backbone_export
from asymlib.errors import CheckpointError, ConfigError, UnknownNameError, WeightsUnavailableError
from asymlib.experiments.gan_initialization import (
    gan_init_config, nr_table, plot_fr_initialization, plot_nr_initialization, resolve_initializations,
    run_fr_initialization, run_nr_initialization)
from asymlib.pipeline import build_graph
from asymlib.pipeline.declare import gan_source_spec
from asymlib.iqa.nr import (NRTrainConfig, SyntheticNRDataset, create_nr_model, evaluate_nr, load_nr_checkpoint,
                            train_nr_model)
from asymlib.iqa.synthetic import SyntheticFRBenchmark
from asymlib.reporting import paper_comparison, save_figure

SMALL_SYNTH = {"metric_study.synthetic.distortions": ("gaussian_blur", "jpeg"),
               "metric_study.train.iterations": 20, "metric_study.n_bootstrap": 20}


def _gan_discriminator(backbone: str, head: str = "vanilla", seed: int = 0):
    """A discriminator whose weights differ from any random initialization (stands in for a trained one)."""
    disc = create_discriminator(backbone, head=head, seed=seed)
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in disc.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    return disc


def _fake_gan_source(out, prof, backbone: str, *, status: str = "finished"):
    """The graph's GAN-source SR run of ``backbone`` as the trainer leaves it: config.json, status.json and
    discriminator.pt (weights that differ from any random initialization)."""
    graph = build_graph(prof)
    spec = graph[graph.add(gan_source_spec(prof, graph, backbone))]
    run = spec.path(out)
    run.mkdir(parents=True)
    disc = _gan_discriminator(backbone, prof.gan_init.gan.head, prof.seed)
    (run / "config.json").write_text(json.dumps(spec.record()))
    (run / "provenance.json").write_text(json.dumps({"profile": prof.name}))
    atomic_torch_save({"state_dict": {k: v.cpu() for k, v in disc.state_dict().items()}, "step": 4,
                       "describe": disc.describe()}, run / "discriminator.pt")
    (run / "status.json").write_text(json.dumps({"status": status, "step": 4}))
    return run, disc


# ----------------------------------------------------------------------------------------------
# GAN checkpoints
# ----------------------------------------------------------------------------------------------


def test_gan_export_of_another_architecture_fails_clearly(tmp_path):
    path = _gan_discriminator("resnet50").export_backbone(tmp_path / "resnet50_gan.pt", {"step": 1})
    with pytest.raises(CheckpointError, match="resnet50"):
        create_feature_extractor("vgg16", weights=path)
    with pytest.raises(CheckpointError):
        create_nr_model("vgg16", weights=path)
    with pytest.raises(CheckpointError):
        resolve_initializations(get_profile("smoke", **{"gan_init.backbones": ["vgg16"]}), tmp_path / "out",
                                gan_checkpoints={"vgg16": path})
    # same backbone, but key names of another architecture
    sd = read_backbone_export(path)
    sd["backbone"] = "vgg16"
    torch.save(sd, tmp_path / "renamed.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        create_feature_extractor("vgg16", weights=tmp_path / "renamed.pt")


def test_gan_initialization_is_the_export_of_the_graphs_gan_source_run(tmp_path):
    out = tmp_path / "out"
    prof = get_profile("smoke", **{"gan_init.backbones": ["vgg16", "resnet50"], "gan_init.initializations": ["gan"]})
    run, disc = _fake_gan_source(out, prof, "vgg16")
    # a collapsed GAN source gives a skipped initialization with the reason, never another run's discriminator
    _fake_gan_source(out, prof, "resnet50", status="collapsed")
    srcs = resolve_initializations(prof, out, train_missing=False)
    vgg, res = srcs["vgg16", "gan"], srcs["resnet50", "gan"]
    assert vgg.available and vgg.gan is not None and vgg.gan.sr_run == run.name
    path = run / "discriminator_backbone.pt"
    assert vgg.weights == str(path) and path.is_file()
    header = read_backbone_export(path)
    assert header["backbone"] == "vgg16" and header["weights_origin"] == "gan"
    fx = create_feature_extractor("vgg16", weights=path)
    rnd = create_feature_extractor("vgg16", weights="random")
    key = next(iter(fx.backbone_state_dict()))
    torch.testing.assert_close(fx.backbone_state_dict()[key], disc.backbone.backbone_state_dict()[key])
    assert not torch.equal(fx.backbone_state_dict()[key], rnd.backbone_state_dict()[key])
    assert not res.available and "collapsed" in res.status
    # nothing trained and training off: skipped, naming the run that would provide it
    srcs = resolve_initializations(prof.replace(**{"gan_init.backbones": ["dinov2_vits14"]}), out,
                                   train_missing=False)
    src = srcs["dinov2_vits14", "gan"]
    assert not src.available and "not trained" in src.status and "disc-vanilla-dinov2_vits14" in src.detail


def test_imagenet_is_never_replaced_by_random_weights(tmp_path):
    prof = get_profile("smoke", **{"gan_init.backbones": ["vgg16"], "gan_init.initializations": ["random", "imagenet"]})
    srcs = resolve_initializations(prof, tmp_path / "out")
    assert srcs["vgg16", "imagenet"].weights is None
    assert srcs["vgg16", "imagenet"].status == "skipped: imagenet (not available offline)"
    with pytest.raises(WeightsUnavailableError):
        resolve_initializations(prof.replace(**{"gan_init.initializations": ["imagenet"],
                                                "gan_init.require_imagenet": True}), tmp_path / "out")


def test_config_presets_and_validation():
    assert gan_init_config("paper").backbones == ("vgg16", "resnet50", "dinov2_vitb14")
    assert gan_init_config("paper").split_fractions == (0.6, 0.2, 0.2)
    assert gan_init_config("smoke").nr_datasets == ("synthetic",)
    assert gan_init_config("smoke", **{"nr_train.iterations": 3}).nr_train.iterations == 3
    with pytest.raises(ConfigError):
        gan_init_config("smoke", initializations=["pretrained"])
    with pytest.raises(UnknownNameError):
        gan_init_config("nope")
    with pytest.raises(ConfigError):
        NRTrainConfig(loss="huber")
    with pytest.raises(ConfigError):
        NRTrainConfig(crop=224, resize_short_side=128)


# ----------------------------------------------------------------------------------------------
# NR-IQA model
# ----------------------------------------------------------------------------------------------


def test_nr_model_trains_selects_on_val_and_checks_checkpoints(tmp_path):
    bench = SyntheticFRBenchmark(image_names=["astronaut", "chelsea", "coffee"], distortions=["gaussian_blur"],
                                 crop=64)
    data = SyntheticNRDataset(bench)
    assert (data.records["score"] == -bench.records["level"]).all()
    train, val = data.subset(np.arange(0, 10)), data.subset(np.arange(10, 15))
    model = create_nr_model("vgg16", seed=0, hidden=16)
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2,)
    cfg = NRTrainConfig(iterations=3, batch_size=4, crop=64, eval_every=2, hidden=16, log_every=1)
    res = train_nr_model(model, train, val, cfg, seed=0, checkpoint_path=tmp_path / "best.pt")
    assert res.best_iteration in (0, 2, 3)
    assert [h["step"] for h in res.history if "val_srcc" in h] == [0, 2, 3]
    assert float(model.label_mean) == pytest.approx(-3.0) and float(model.label_std) > 0
    meta = load_nr_checkpoint(create_nr_model("vgg16", seed=1, hidden=16), tmp_path / "best.pt")
    assert meta["iteration"] == res.best_iteration
    with pytest.raises(CheckpointError, match="backbone"):
        load_nr_checkpoint(create_nr_model("dinov2_vits14", hidden=16), tmp_path / "best.pt")
    stats = evaluate_nr(model, val, groups=val.records["protocol_group"].to_numpy(), n_resamples=10)
    assert -1 <= stats["srcc"] <= 1 and stats["n"] == 5


# ----------------------------------------------------------------------------------------------
# The study on a tiny synthetic set
# ----------------------------------------------------------------------------------------------


def test_fr_and_nr_study_tables_figures_and_reuse(tmp_path):
    out = tmp_path / "out"
    runs = out / "runs"
    prof = get_profile("smoke", **SMALL_SYNTH, **{
        "gan_init.backbones": ["vgg16"], "gan_init.n_bootstrap": 20, "gan_init.nr_train.iterations": 2,
        "gan_init.nr_train.eval_every": 2, "gan_init.nr_train.hidden": 16})
    _fake_gan_source(out, prof, "vgg16")
    sources = resolve_initializations(prof, out, train_missing=False)
    assert [s.status for s in sources.values()] == ["ok", "ok", "skipped: imagenet (not available offline)"]

    fr = run_fr_initialization(prof, out, sources)
    avg = fr[fr["benchmark"] == "Average"].set_index("initialization")
    assert avg.loc["gan", "weights_source"].startswith("file(") and "discriminator_backbone.pt" in \
        avg.loc["gan", "weights_source"]
    assert avg.loc["random", "weights_source"] == "random(seed=0)"
    assert np.isnan(avg.loc["imagenet", "srcc"]) and avg.loc["imagenet", "weights_source"] == "none"
    assert avg.loc["gan", "srcc"] != avg.loc["random", "srcc"] or avg.loc["gan", "plcc"] != avg.loc["random", "plcc"]
    t2 = paper_comparison(2, fr, "smoke", "random").wide()
    assert list(t2.index[:3]) == [("VGG-16", "Random"), ("VGG-16", "GAN"), ("VGG-16", "ImageNet")]
    # the Average column names what each side averages: the paper's four benchmarks, ours the pooled levels
    a = "Average (paper: TID2013, Liu13, Ma17, TQD; ours: synthetic levels, pooled)"
    assert t2.loc[("VGG-16", "Random"), ("paper", a, "SRCC")] == pytest.approx(0.692)  # the paper's Table 2
    ours = t2["ours (smoke)"]
    assert ours.loc[("VGG-16", "GAN"), (a, "SRCC")] == pytest.approx(avg.loc["gan", "srcc"])
    assert ours.loc[("VGG-16", "ImageNet"), ("status", "")] == "skipped: imagenet (not available offline)"
    assert ours.loc[("VGG-16", "ImageNet")][[(a, "SRCC"), (a, "PLCC")]].isna().all()
    assert "delta" not in t2.columns.get_level_values("source")
    assert "TID2013" not in set(ours.columns.get_level_values(0))  # smoke has only its own benchmarks

    nr = run_nr_initialization(prof, out, sources)
    assert list(nr["initialization"]) == ["random", "gan", "imagenet"]
    done = nr[nr["status"] == "ok"]
    assert done["srcc"].between(-1, 1).all() and (done["n"] == 10).all()
    assert nr["labels"].str.contains("synthetic").all()
    run_dirs = sorted((runs / "nr_iqa").glob("synthetic-vgg16-*"))
    assert len(run_dirs) == 2
    parts = {k: pd.read_csv(run_dirs[0] / f"split_{k}.csv") for k in ("train", "val", "test")}
    assert [parts[k]["group"].nunique() for k in ("train", "val", "test")] == [3, 1, 1]  # 6:2:2 of 5 contents
    groups = [set(p["group"]) for p in parts.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert (run_dirs[0] / "best.pt").is_file() and (run_dirs[0] / "status.json").is_file()

    table = nr_table(nr)
    assert "ours (smoke) SRCC (test)" in table.columns and table["status"].iloc[2].startswith("skipped")
    # finished runs are reused: same numbers, nothing retrained
    mtimes = [(d / "results.csv").stat().st_mtime_ns for d in run_dirs]
    again = run_nr_initialization(prof, out, sources)
    assert [(d / "results.csv").stat().st_mtime_ns for d in run_dirs] == mtimes
    pd.testing.assert_series_equal(again["srcc"], nr["srcc"])

    for fig, stem in ((plot_fr_initialization(fr, prof.weights), "t2"),
                      (plot_nr_initialization(nr, "synthetic", prof.weights), "fig5")):
        assert all(p.is_file() for p in save_figure(fig, tmp_path / "figs", stem, formats=("png",)))


def test_nr_figure_axes_hold_negative_intervals():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"dataset": "koniq10k", "profile": "paper", "display": bb, "init_display": init,
             "srcc": v, "srcc_low": v - 0.3, "srcc_high": v + 0.1, "plcc": v, "plcc_low": v - 0.2, "plcc_high": v}
            for bb, init, v in (("VGG-16", "Random", 0.05), ("VGG-16", "ImageNet", 0.9), ("ResNet-50", "GAN", -0.1))]
    fig = plot_nr_initialization(pd.DataFrame(rows), "koniq10k")
    for ax in fig.axes[:2]:
        lo, hi = ax.get_ylim()
        assert lo <= -0.4 and hi >= 1.0  # the lowest bound (-0.1 - 0.3) and the highest (0.9 + 0.1) are inside
    plt.close("all")
