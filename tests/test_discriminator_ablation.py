"""Notebook 04 machinery: presets, run plan shared with notebook 02, backbone export, Table 3 layout, Fig. 7."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from asymlib.atomic import atomic_torch_save, atomic_write_json
from asymlib.backbones import create_feature_extractor
from asymlib.config import get_profile
from asymlib.discriminators import create_discriminator, read_backbone_export
from asymlib.errors import ConfigError, UnknownNameError
from asymlib.experiments import discriminator_ablation as da
from asymlib.pipeline import build_graph
from asymlib.reporting import HEAD_TITLES, paper_comparison
from asymlib.runs import Run, open_run, to_jsonable
from asymlib.sr.config import PAPER_LAMBDAS, DiscriminatorConfig, SRTrainConfig
from asymlib.sr.trainer import CHECKPOINT_FORMAT

torch.set_num_threads(2)


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------
def test_presets_cover_the_paper_grid():
    paper, smoke = get_profile("paper").discriminators, get_profile("smoke").discriminators
    for cfg in (paper, smoke):
        assert cfg.heads == ("vanilla", "patch") and cfg.sweep_head == "patch" and cfg.metric == "vgg16"
        assert tuple(cfg.lambdas) == PAPER_LAMBDAS == (1e-2, 1.0, 5e-3)
        lams = sorted(cfg.sweep_lambda_adv)
        assert len(lams) >= 5 and lams[0] == 1e-3 and lams[-1] == 5e-2 and 5e-3 in lams
        assert cfg.backbones[:2] == ("vgg16", "resnet50")
    assert paper.backbones[2].startswith("dinov2") and smoke.backbones[2] == "dinov2_vits14"
    assert paper.seeds == 3 and 1 <= smoke.seeds <= 2


@pytest.mark.parametrize("changes, error", [
    ({"heads": ("vanilla", "dense")}, UnknownNameError),
    ({"backbones": ("no_such_backbone_xyz",)}, UnknownNameError),
    ({"seeds": 0}, ConfigError),
    ({"sweep_lambda_adv": (0.0, 1e-3)}, ConfigError),
    ({"train_overrides": {"iterationz": 3}}, ConfigError),
])
def test_invalid_configs_are_rejected(changes, error):
    with pytest.raises(error):
        get_profile("smoke").discriminators.replace(**changes)
    with pytest.raises(error):
        get_profile("smoke", **{f"discriminators.{k}": v for k, v in changes.items()})


def _study_runs(prof):
    graph = build_graph(prof)
    return graph, [s for s in graph if s.task == "sr_train" and "04" in s.notebooks]


def test_graph_merges_ablation_and_sweep_cells():
    prof = get_profile("smoke", seed=3, **{"discriminators.seeds": 2})
    cfg = prof.discriminators
    graph, runs = _study_runs(prof)
    stage2 = [s for s in runs if s.params["stage"] == "stage2"]
    n_bb, n_lam = len(cfg.backbones), len(cfg.sweep_lambda_adv)
    # base + vanilla cells + patch sweep (the patch ablation cell is the sweep's lambda=5e-3, first seed)
    assert len(stage2) == 1 + n_bb + n_bb * n_lam * 2
    assert stage2[0].roles == ("base",) and stage2[0].params["train"].lambda_adv == 0
    merged = [s for s in stage2 if set(s.roles) == {"ablation", "sweep"}]
    assert len(merged) == n_bb
    assert {(s.params["train"].discriminator.head, s.params["train"].lambda_adv, s.params["seed"])
            for s in merged} == {("patch", 5e-3, 3)}
    assert {s.params["seed"] for s in stage2 if "sweep" in s.roles} == {3, 4}


def test_runs_share_notebook_02_folders_when_configs_match():
    prof = get_profile("smoke")
    graph, runs = _study_runs(prof)
    nb02 = {s.name: s for s in graph if s.task == "sr_train" and "02" in s.notebooks}
    base = next(s for s in runs if "base" in s.roles)
    assert base is nb02["rec+perceptual-vgg16"] and base.key.startswith("rec_perceptual-vgg16-")
    assert base.params["train"].lambda_rec == 1e-2 and "04" in base.notebooks
    vanilla = [s for s in runs if "ablation" in s.roles and s.params["train"].discriminator.head == "vanilla"
               and s.params["train"].discriminator.backbone == "vgg16"]
    assert vanilla == [nb02["rec+perceptual+adv-vgg16"]]
    patch = next(s for s in runs if s.name == "disc-patch-resnet50-adv2e-03-s0")
    tp = patch.params["train"]
    assert (tp.discriminator.head, tp.lambda_adv, tp.iterations) == ("patch", 2e-3, prof.sr.stage2.iterations)
    stage1 = graph.get("sr/stage1-l1")
    assert patch.deps[0] == stage1.key and patch.identity["train_seed"] == 0
    # every cell of the study is its own folder
    assert len({s.key for s in runs}) == len(runs)


def test_discriminator_config_options_match_the_library():
    from asymlib.discriminators import STAGE_RULES
    from asymlib.sr.config import PATCH_STAGE_CHOICES, RELATIVISTIC_MEAN_CHOICES
    from asymlib.sr.losses import DEFAULT_MEAN_OVER, MEAN_OVER_CHOICES

    dc = DiscriminatorConfig()
    assert (dc.patch_stage, dc.relativistic_mean) == ("last", DEFAULT_MEAN_OVER) == ("last", "all")
    assert set(PATCH_STAGE_CHOICES) == set(STAGE_RULES) and set(RELATIVISTIC_MEAN_CHOICES) == set(MEAN_OVER_CHOICES)
    assert DiscriminatorConfig("resnet50", "patch", patch_stage="stride16").stage == "stride16"
    assert DiscriminatorConfig("resnet50", "vanilla", patch_stage="stride16").stage is None
    for bad in ({"patch_stage": "layer3"}, {"relativistic_mean": "positions"}):
        with pytest.raises(ConfigError):
            DiscriminatorConfig(**bad)


def test_run_keys_change_only_where_patch_stage_and_relativistic_mean_matter():
    """The two options enter the identity of adversarial patch runs only: runs without a discriminator and runs
    with a vanilla head (global logits, last map either way) keep their keys; old patch runs are not reused."""
    from asymlib.pipeline.declare import discriminator_identity

    legacy = {"backbone", "head", "spectral_norm", "lr"}  # the fields keyed before the two options existed
    assert set(discriminator_identity(DiscriminatorConfig("vgg16", "patch"), adversarial=False)) == legacy
    assert set(discriminator_identity(DiscriminatorConfig("vgg16", "vanilla"), adversarial=True)) == legacy
    assert discriminator_identity(DiscriminatorConfig("vgg16", "patch"), adversarial=True) == {
        "backbone": "vgg16", "head": "patch", "spectral_norm": False, "lr": None, "patch_stage": "last",
        "relativistic_mean": "all"}

    def keys(graph):
        return {(s.kind, s.name): s.key for s in graph}

    def is_patch(spec):
        train = spec.params.get("train")
        return spec.task == "sr_train" and train.adversarial and train.discriminator.head == "patch"

    base = build_graph(get_profile("smoke"))
    patch_names = {s.name for s in base if is_patch(s)}
    assert patch_names and any("patch_stage" in s.identity["train"]["discriminator"] for s in base if is_patch(s))
    for s in base:
        if s.task == "sr_train" and not is_patch(s):
            assert set(s.identity["train"]["discriminator"]) == legacy, s.name
    before = keys(base)
    for option in ({"patch_stage": "stride16"}, {"relativistic_mean": "batch"}):
        after = keys(build_graph(get_profile("smoke", **{f"sr.stage2.discriminator.{k}": v
                                                        for k, v in option.items()})))
        assert set(after) == set(before)
        changed = {name for (kind, name), key in before.items() if kind == "sr" and after[(kind, name)] != key}
        assert changed == patch_names, option
        # everything else that changed is an evaluation of a changed run
        others = {(kind, name) for (kind, name), key in before.items() if kind != "sr" and after[(kind, name)] != key}
        assert {kind for kind, _ in others} <= {"sr_eval"} and {name for _, name in others} <= patch_names


# ----------------------------------------------------------------------------------------------
# Backbone export for notebook 03
# ----------------------------------------------------------------------------------------------
def _fake_run(root, name, head, lam, seed, status, *, checkpoint_only=False):
    run = open_run(root, "sr", name, {"n": name}, tensorboard=False)
    disc = create_discriminator("vgg16", head, seed=seed)
    with torch.no_grad():
        for p in disc.parameters():
            p.add_(0.01 * torch.randn_like(p))  # "trained": differs from the seeded init
    train = to_jsonable(SRTrainConfig(iterations=4, lambda_adv=lam, discriminator=DiscriminatorConfig("vgg16", head)))
    atomic_write_json(run.path / "config.json", {"profile": "smoke", "seed": 0, "train_seed": seed, "metric": "vgg16",
                                                 "train": train})
    state = {k: v.clone() for k, v in disc.state_dict().items()}
    if checkpoint_only:
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "generator": {}, "ema": {}, "opt_g": {}, "sched_g": {},
                           "step": 2, "rng": [], "sampler": {}, "discriminator": state}, run.path / "checkpoint.pt")
    else:
        atomic_torch_save({"state_dict": state, "step": 4, "describe": disc.describe()}, run.path / "discriminator.pt")
    run.finish(status, step=2 if checkpoint_only else 4)
    return run, disc


def test_export_loads_in_notebook_03_and_is_listed(tmp_path):
    run, disc = _fake_run(tmp_path, "disc-patch-vgg16", "patch", 1e-2, 1, "finished")
    path = da.export_discriminator_backbone(run.path, {"roles": ["sweep"]})
    assert path == run.path / da.BACKBONE_EXPORT_NAME
    obj = read_backbone_export(path)
    assert obj["format"] == "asymlib.backbone.v1" and obj["weights_origin"] == "gan" and obj["head"] == "patch"
    meta = obj["metadata"]
    assert (meta["backbone"], meta["head"], meta["lambda_adv"], meta["seed"], meta["status"], meta["step"]) == (
        "vgg16", "patch", 1e-2, 1, "finished", 4)
    fx = create_feature_extractor("vgg16", weights=path)
    ref = disc.backbone.backbone_state_dict()
    got = fx.backbone_state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)

    # a collapsed run exports the discriminator of its last checkpoint, labelled as such
    crun, _ = _fake_run(tmp_path, "disc-vanilla-vgg16", "vanilla", 5e-2, 0, "collapsed", checkpoint_only=True)
    da.export_discriminator_backbone(crun.path)
    # a run without a discriminator exports nothing
    base = open_run(tmp_path, "sr", "base", {"b": 1}, tensorboard=False)
    atomic_write_json(base.path / "config.json", {"train": to_jsonable(SRTrainConfig(lambda_adv=0.0))})
    assert da.export_discriminator_backbone(base.path) is None

    gan = da.list_gan_backbones(tmp_path)
    assert list(gan.columns[:5]) == ["backbone", "head", "lambda3", "seed", "path"]
    assert gan[["head", "lambda3", "seed", "status", "step"]].values.tolist() == [
        ["patch", 1e-2, 1, "finished", 4], ["vanilla", 5e-2, 0, "collapsed", 2]]
    assert len(da.list_gan_backbones(tmp_path, include_collapsed=False)) == 1
    assert da.list_gan_backbones(tmp_path / "empty").empty


def test_export_rebuilds_the_patch_stage_a_legacy_run_was_trained_with(tmp_path):
    """A patch run recorded before ``DiscriminatorConfig.patch_stage`` existed read ResNet-50's layer3 (the former
    default); its export rebuilds that network (runs recorded with the field rebuild what it names)."""
    run = open_run(tmp_path, "sr", "legacy", {"n": "legacy"}, tensorboard=False)
    disc = create_discriminator("resnet50", "patch", seed=0, stage="stride16")
    train = to_jsonable(SRTrainConfig(iterations=4, lambda_adv=5e-3,
                                      discriminator=DiscriminatorConfig("resnet50", "patch")))
    for k in ("patch_stage", "relativistic_mean"):
        del train["discriminator"][k]
    atomic_write_json(run.path / "config.json", {"identity": {"train": train, "train_seed": 0}})
    atomic_torch_save({"state_dict": disc.state_dict(), "step": 4}, run.path / "discriminator.pt")
    run.finish("finished", step=4)
    obj = read_backbone_export(da.export_discriminator_backbone(run.path))
    assert (obj["stage"], obj["stage_stride"]) == (3, 16)
    assert len(obj["untrained_keys"]) == 30 and all(".layer4." in k for k in obj["untrained_keys"])


# ----------------------------------------------------------------------------------------------
# Table 3 and figures (synthetic results)
# ----------------------------------------------------------------------------------------------
def _synthetic_result(tmp_path, seeds=2):
    prof = get_profile("smoke", **{"discriminators.seeds": seeds})
    cfg = prof.discriminators
    rng = np.random.default_rng(0)
    runs, summary, curves = [], [], []
    for i, spec in enumerate(da.study_cells(prof)):
        collapsed = spec.backbone == "dinov2_vits14" and spec.lambda_adv == 5e-2
        rid = f"run{i}"
        runs.append({"head": spec.head, "backbone": spec.backbone, "display": da._display_backbone(spec.backbone),
                     "lambda_adv": spec.lambda_adv, "seed": spec.seed, "roles": "+".join(spec.roles),
                     "status": "collapsed" if collapsed else "finished", "step": 2 if collapsed else 4, "reason": "",
                     "run_id": rid, "run_dir": str(tmp_path / rid), "export": ""})
        if not collapsed:
            piqe = 40 + rng.normal()
            summary += [{"run_id": rid, "evaluator": "PIQE", "kind": "nr", "score": piqe},
                        {"run_id": rid, "evaluator": "PSNR", "kind": "fr", "score": 20.0},
                        {"run_id": rid, "evaluator": "Average", "kind": "nr", "score": piqe}]
        if spec.head != "none":
            for step in range(1, (3 if collapsed else 5)):
                curves.append({"run_id": rid, "head": spec.head, "backbone": spec.backbone,
                               "display": da._display_backbone(spec.backbone), "lambda_adv": spec.lambda_adv,
                               "seed": spec.seed, "status": runs[-1]["status"], "step": step,
                               "d_gap": rng.normal(), "grad_norm_g": abs(rng.normal()) + 0.1})
    runs_df, summary_df = pd.DataFrame(runs), pd.DataFrame(summary)
    return da.DiscriminatorStudyResult("smoke", "random", cfg, get_profile("smoke").sr, runs_df, pd.DataFrame(),
                                       summary_df, da.table3(runs_df, summary_df), pd.DataFrame(curves),
                                       pd.DataFrame(), {}, "initial")


def test_table3_layout_labels_every_column(tmp_path):
    res = _synthetic_result(tmp_path)
    t = res.table
    assert set(t["head"]) == {"vanilla", "patch", "none"} and set(t["evaluator"]) == {"PIQE", "PSNR", "Average"}
    assert set(t["backbone"]) == {"VGG-16", "ResNet-50", "DINOv2", "w/o (base)"}
    assert len(t) == 7 * 3  # 6 ablation cells + base, one row per evaluator
    wide = paper_comparison(3, t, "smoke", "random").wide()
    assert list(wide.index) == [("Vanilla", "VGG-16"), ("Vanilla", "ResNet-50"), ("Vanilla", "DINOv2"),
                                ("Patch-level", "VGG-16"), ("Patch-level", "ResNet-50"), ("Patch-level", "DINOv2"),
                                ("w/o", "w/o (base)")]
    assert list(dict.fromkeys(wide.columns.get_level_values("source"))) == ["paper", "ours (smoke)"]
    avg = "Average (paper: MANIQA, LIQE, DeQA, VQ-R1; ours: PIQE)"
    assert list(wide["paper"].columns) == ["MANIQA", "LIQE", "DeQA", "VQ-R1", avg]
    assert list(wide["ours (smoke)"].columns) == [avg, "PIQE", "PSNR", "variant", "status"]
    assert wide.loc[("Patch-level", "ResNet-50"), ("paper", avg)] == pytest.approx(63.92)
    assert wide.loc[("Patch-level", "DINOv2"), ("ours (smoke)", "variant")] == "DINOv2 ViT-S/14"
    mine = t[(t["head"] == "vanilla") & (t["backbone"] == "VGG-16") & (t["evaluator"] == "Average")]["score"].item()
    assert wide.loc[("Vanilla", "VGG-16"), ("ours (smoke)", avg)] == pytest.approx(mine)
    # a collapsed cell keeps its row: no score, its status beside it
    cell = (t["head"] == "patch") & (t["backbone"] == "DINOv2")
    wide = paper_comparison(3, t.assign(status=t["status"].where(~cell, "collapsed"),
                                        score=t["score"].where(~cell)), "smoke", "random").wide()
    row = wide.loc[(HEAD_TITLES["patch"], "DINOv2"), "ours (smoke)"]
    assert row["status"] == "collapsed" and row[[avg, "PIQE", "PSNR"]].isna().all()
    assert wide.loc[(HEAD_TITLES["patch"], "VGG-16"), ("ours (smoke)", "status")] == "finished"


def test_fig7_marks_collapsed_runs_and_shows_seed_spread(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = _synthetic_result(tmp_path, seeds=2)
    sw = res.sweep
    assert len(sw) == 3 * 5 * 2 and sw.loc[sw["status"] == "collapsed", "nr_average"].isna().all()
    fig = da.plot_fig7(res)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    xs = [ln for ln in ax.lines if ln.get_marker() == "x"]
    assert len(xs) == 2  # DINOv2 at lambda3 = 5e-2, both seeds
    assert ax.collections, "seed spread band missing"
    assert any("collapsed (2 runs; at step 2)" in t.get_text() for t in ax.get_legend().get_texts())
    lo, hi = ax.get_ylim()
    assert hi - lo >= 10.0 and lo <= sw["nr_average"].min() and hi >= sw["nr_average"].max()
    assert "SMOKE PROFILE" in fig._suptitle.get_text()
    dyn = da.plot_training_dynamics(res)
    assert len(dyn.axes) >= 2 * 3
    # curves of a lambda_3 outside the configured sweep (the Table 3 runs' 5e-3 when an override leaves it out)
    import dataclasses

    narrow = dataclasses.replace(res, config=dataclasses.replace(res.config, sweep_lambda_adv=(1e-3,)))
    assert set(narrow.curves["lambda_adv"]) - {1e-3}
    assert len(da.plot_training_dynamics(narrow).axes) >= 2 * 3
    plt.close("all")


# ----------------------------------------------------------------------------------------------
# End to end on a tiny schedule: train, export, reuse
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_study_trains_exports_and_reuses_runs(tmp_path):
    prof = get_profile("smoke", **{
        "sr.stage2.iterations": 1, "sr.stage1.iterations": 1, "sr.stage2.checkpoint_every": 1,
        "sr.stage1.checkpoint_every": 1, "sr.data.sample_images": 0, "sr.alpha_beta": "init",
        "discriminators.backbones": ["vgg16"], "discriminators.heads": ["patch"],
        "discriminators.sweep_lambda_adv": [5e-3]})
    res = da.run_discriminator_study(prof, tmp_path, progress=False, evaluate=False)
    assert list(res.runs["roles"]) == ["base", "ablation+sweep"]
    assert (res.runs["status"] == "finished").all() and (res.runs["step"] == 1).all()
    base, patch = res.runs["run_id"]
    assert base.startswith("rec_perceptual-vgg16-") and patch.startswith("disc-patch-vgg16-adv5e-03-s0-")
    assert (tmp_path / "runs" / "sr" / patch / da.BACKBONE_EXPORT_NAME).is_file()
    assert res.runs["export"].iloc[1] == f"runs/sr/{patch}/{da.BACKBONE_EXPORT_NAME}"
    gan = da.list_gan_backbones(tmp_path / "runs")
    assert gan[["backbone", "head", "lambda3", "seed", "status"]].values.tolist() == [
        ["vgg16", "patch", 5e-3, 0, "finished"]]
    cur = res.curves
    assert set(cur["run_id"]) == {patch} and np.isfinite(cur["d_gap"]).all()
    assert cur["grad_norm_g"].gt(0).all()  # recorded through the trainer's on_step callback
    stamps = {r: Run(tmp_path / "runs" / "sr" / r, {}).status for r in res.runs["run_id"]}
    again = da.run_discriminator_study(prof, tmp_path, progress=False, evaluate=False)
    assert list(again.runs["run_id"]) == list(res.runs["run_id"])
    assert {r: Run(tmp_path / "runs" / "sr" / r, {}).status for r in again.runs["run_id"]} == stamps
