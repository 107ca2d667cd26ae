"""SR training loop: resume after SIGKILL, DDP on CPU, collapse detection, checkpoint errors, bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from asymlib.errors import CheckpointError, ConfigError, DatasetError, ImageReadError
from asymlib.runs import open_run
from asymlib.sr.config import SR_SETTINGS, DiscriminatorConfig, get_setting, sr_config_for
from asymlib.sr.models import create_sr_model
from asymlib.sr.trainer import load_checkpoint, load_generator_weights, train_sr

from tests._tiny_sr import tiny_cfg, tiny_images, tiny_model

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- presets
def test_paper_and_smoke_presets():
    paper = sr_config_for("paper")
    s1, s2 = paper.stage1, paper.stage2
    assert (s1.iterations, s1.lr, s1.betas, s1.lambda_rec, s1.lambda_per, s1.lambda_adv) == (
        100_000, 2e-4, (0.9, 0.99), 1.0, 0.0, 0.0)
    assert (s2.iterations, s2.lr, s2.milestones, s2.lr_gamma, s2.batch_size, s2.hr_crop, s2.scale) == (
        400_000, 2e-4, (150_000, 300_000, 350_000, 375_000), 0.5, 32, 256, 4)
    assert (s2.lambda_rec, s2.lambda_per, s2.lambda_adv, s2.ema_decay) == (1e-2, 1.0, 5e-3, 0.999)
    assert (s2.discriminator.backbone, s2.discriminator.head, paper.sr_preset) == ("vgg16", "vanilla", "classical")
    assert paper.settings == ("perceptual", "rec+perceptual", "perceptual+adv", "rec+perceptual+adv")
    full = get_setting("rec+perceptual+adv").apply(s2)
    per = get_setting("perceptual").apply(s2)
    assert (full.lambda_rec, full.lambda_per, full.lambda_adv) == (1e-2, 1.0, 5e-3)
    assert (per.lambda_rec, per.lambda_adv, per.adversarial) == (0.0, 0.0, False)
    smoke = sr_config_for("smoke")
    assert smoke.sr_preset == "small" and set(smoke.settings) == set(SR_SETTINGS)
    assert {"vgg16", "vgg16_r"} <= set(smoke.metrics) and {"swin_t", "clip_vit_b16"} & set(smoke.metrics)
    assert smoke.stage2.hr_crop // smoke.stage2.scale == 16


def test_config_errors():
    with pytest.raises(ConfigError, match="multiple of scale"):
        tiny_cfg(hr_crop=30)
    with pytest.raises(ConfigError, match="nothing would be optimized"):
        tiny_cfg(lambda_rec=0.0)
    with pytest.raises(ConfigError, match="amp"):
        tiny_cfg(amp="fp16")


# ---------------------------------------------------------------------------------------------- resume
_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from asymlib.runs import open_run
    from asymlib.sr.config import SRTrainConfig, DiscriminatorConfig
    from asymlib.sr.models import create_sr_model
    from asymlib.sr.trainer import train_sr

    root, mode = sys.argv[1], sys.argv[2]
    cfg = SRTrainConfig(iterations=5, batch_size=2, hr_crop=64, milestones=(3,), lambda_rec=1.0, lambda_per=0.0,
                        lambda_adv=0.1, discriminator=DiscriminatorConfig("vgg16", "vanilla"), checkpoint_every=2,
                        log_every=1, sample_every=100, num_workers=0, ema_decay=0.5)
    g = torch.Generator().manual_seed(0)
    images = {f"img{i}": torch.rand(3, 80, 80, generator=g) for i in range(3)}
    run = open_run(root, "sr", "resume", {"test": "resume"})
    torch.manual_seed(0)
    model = create_sr_model(preset="small", depths=(2, 2), num_heads=(6, 6))

    def on_step(step, scalars):
        if mode == "block" and step == 3:  # checkpoint of step 2 is on disk: wait to be killed
            Path(root, "blocked").write_text("3")
            time.sleep(120)

    res = train_sr(run, cfg, "resume-test", generator=model, train_data=images, seed=0, device="cpu",
                   progress=False, on_step=on_step)
    print(res.status, res.step, res.info.get("resumed_from"))
""")


def _python(script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    ref_root, kill_root = tmp_path / "ref", tmp_path / "kill"
    ref = _python(script, str(ref_root), "normal")
    victim = _python(script, str(kill_root), "block")
    deadline = time.time() + 50
    while not (kill_root / "blocked").exists():
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        assert time.time() < deadline, "the training never reached step 3"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run_dir = next((kill_root / "sr").iterdir())
    assert not (run_dir / "status.json").exists()  # nothing looks finished
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    resumed = _python(script, str(kill_root), "normal")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-2000:]
    assert out.split()[-3:] == ["finished", "5", "2"]
    ref_out, ref_err = ref.communicate(timeout=120)
    assert ref.returncode == 0, ref_err[-2000:]
    ref_dir = next((ref_root / "sr").iterdir())
    for name in ("generator.pt", "generator_ema.pt", "discriminator.pt"):
        a = torch.load(ref_dir / name, weights_only=True)["state_dict"]
        b = torch.load(run_dir / name, weights_only=True)["state_dict"]
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["resumed_from"] == 2
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]  # step 3, logged before the kill, is not repeated after the resume
    assert steps[-1] == 5 and {"d_loss", "d_real", "d_fake", "lr"} <= set(
        json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1]))


# ---------------------------------------------------------------------------------------------- DDP
def test_two_process_ddp_gloo(tmp_path):
    import torch.multiprocessing as mp

    from tests._ddp_worker import worker

    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path / "runs"), str(out)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["status"] == r1["status"] == "finished" and r0["step"] == 3
    torch.testing.assert_close(r0["params"], r1["params"], rtol=0, atol=0)  # ranks stay in sync
    run_dir = next((tmp_path / "runs" / "sr").iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["world_size"] == 2
    ck = load_checkpoint(run_dir / "checkpoint.pt")
    assert ck["step"] == 2 and len(ck["rng"]) == 2 and ck["sampler"]["next_position"] == 4


# ---------------------------------------------------------------------------------------------- collapse
class NaNAfter(nn.Module):
    """Stand-in perceptual metric that turns NaN after ``after`` calls."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        d = (x - y).abs().mean(dim=(1, 2, 3))
        return d * float("nan") if self.calls > self.after else d


def test_nan_loss_is_recorded_as_collapse(tmp_path):
    run = open_run(tmp_path, "sr", "nan", {"t": "nan"}, tensorboard=False)
    model = tiny_model()
    res = train_sr(run, tiny_cfg(lambda_per=1.0, checkpoint_every=100), "nan", generator=model,
                   train_data=tiny_images(), metric=NaNAfter(2), device="cpu", progress=False)
    assert res.status == "collapsed" and res.step == 2 and "non-finite" in res.reason
    assert run.finished and run.status["status"] == "collapsed" and run.status["step"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())  # stopped before the NaN step
    assert not (run.path / "generator.pt").exists()
    again = train_sr(run, tiny_cfg(lambda_per=1.0), "nan", generator=tiny_model(), train_data=tiny_images(),
                     metric=NaNAfter(0), device="cpu", progress=False)
    assert again.status == "collapsed" and again.step == 2  # recorded, not retrained


def test_exploding_discriminator_is_recorded_as_collapse(tmp_path):
    run = open_run(tmp_path, "sr", "explode", {"t": "explode"}, tensorboard=False)
    cfg = tiny_cfg(hr_crop=64, lambda_adv=0.1, max_d_loss=-1.0, collapse_patience=2, iterations=6,
                   checkpoint_every=100, discriminator=DiscriminatorConfig("vgg16", "vanilla"))
    res = train_sr(run, cfg, "explode", generator=tiny_model(), train_data=tiny_images(), device="cpu",
                   progress=False)
    assert res.status == "collapsed" and res.step == 2 and "discriminator exploded" in res.reason


# ---------------------------------------------------------------------------------------------- checkpoints
def test_corrupt_checkpoint_raises_one_clear_error(tmp_path):
    run = open_run(tmp_path, "sr", "corrupt", {"t": "corrupt"}, tensorboard=False)
    ck = run.path / "checkpoint.pt"
    ck.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="checkpoint.pt") as info:
        train_sr(run, tiny_cfg(), "corrupt", generator=tiny_model(), train_data=tiny_images(), device="cpu",
                 progress=False)
    assert "corrupt" in str(info.value) and str(ck) in str(info.value)
    assert not run.finished and run.status["status"] == "failed"

    # a truncated real checkpoint as well
    good = open_run(tmp_path, "sr", "good", {"t": "good"}, tensorboard=False)
    train_sr(good, tiny_cfg(iterations=2), "good", generator=tiny_model(), train_data=tiny_images(), device="cpu",
             progress=False)
    data = (good.path / "checkpoint.pt").read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="do not match"):
        load_generator_weights(create_sr_model(preset="small"), good.path / "generator_ema.pt")


# ---------------------------------------------------------------------------------------------- bad inputs
def _run(tmp_path, name):
    return open_run(tmp_path / "runs", "sr", name, {"t": name}, tensorboard=False)


def test_bad_training_inputs_give_one_clear_error_each(tmp_path):
    kw = dict(generator=nn.Identity(), device="cpu", progress=False)
    # HR smaller than the crop
    run = _run(tmp_path, "small")
    with pytest.raises(DatasetError, match="smaller than the 32x32 HR crop"):
        train_sr(run, tiny_cfg(), "x", train_data={"tiny": torch.rand(3, 20, 40)}, **kw)
    assert not (run.path / "provenance.json").exists() and not run.finished
    # grayscale and RGBA files
    for mode, shape in (("L", (40, 40)), ("RGBA", (40, 40, 4))):
        folder = tmp_path / mode
        folder.mkdir()
        arr = np.zeros(shape, dtype=np.uint8)
        Image.fromarray(arr).save(folder / "img.png")  # 2-D -> L, 4 channels -> RGBA
        with pytest.raises(ImageReadError, match=rf"img\.png.*{mode}"):
            train_sr(_run(tmp_path, mode), tiny_cfg(), "x", train_data=folder, **kw)
    # empty folder and missing folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no HR images"):
        train_sr(_run(tmp_path, "empty"), tiny_cfg(), "x", train_data=empty, **kw)
    with pytest.raises(DatasetError, match="not found"):
        train_sr(_run(tmp_path, "missing"), tiny_cfg(), "x", train_data=tmp_path / "nope", **kw)
    # perceptual weight without a metric
    with pytest.raises(ConfigError, match="no perceptual metric"):
        train_sr(_run(tmp_path, "nometric"), tiny_cfg(lambda_per=1.0), "x", train_data=tiny_images(), **kw)


def test_finished_run_can_drop_its_resume_checkpoint(tmp_path):
    kept = open_run(tmp_path, "sr", "kept", {"t": "kept"}, tensorboard=False)
    train_sr(kept, tiny_cfg(), "kept", generator=tiny_model(), train_data=tiny_images(), device="cpu", progress=False)
    dropped = open_run(tmp_path, "sr", "dropped", {"t": "dropped"}, tensorboard=False)
    res = train_sr(dropped, tiny_cfg(keep_checkpoint=False), "dropped", generator=tiny_model(),
                   train_data=tiny_images(), device="cpu", progress=False)
    assert res.status == "finished" and dropped.finished
    assert (kept.path / "checkpoint.pt").is_file() and not (dropped.path / "checkpoint.pt").exists()
    a = torch.load(kept.path / "generator_ema.pt", weights_only=True)["state_dict"]
    b = torch.load(dropped.path / "generator_ema.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the results are the same
    # the collapsed run keeps it: its last discriminator is exported from it
    nan = open_run(tmp_path, "sr", "nan", {"t": "nan"}, tensorboard=False)
    res = train_sr(nan, tiny_cfg(lambda_per=1.0, checkpoint_every=1, keep_checkpoint=False), "nan",
                   generator=tiny_model(), train_data=tiny_images(), metric=NaNAfter(2), device="cpu", progress=False)
    assert res.status == "collapsed" and (nan.path / "checkpoint.pt").is_file()


def test_nearest_init_reproduces_nearest_upsampling_and_trains():
    """The untrained generator is exactly nearest-neighbour upsampling at x2/x4/x8; one L1 step moves it."""
    import torch.nn.functional as F

    from asymlib.errors import UnknownNameError

    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    for scale in (2, 4, 8):
        m = create_sr_model("swinir", scale=scale, preset="small", init="nearest").eval()
        with torch.no_grad():
            y = m(x)
        torch.testing.assert_close(y, F.interpolate(x, scale_factor=scale, mode="nearest"), atol=1e-6, rtol=0)
    default = create_sr_model("swinir", scale=4, preset="small").eval()
    with torch.no_grad():
        assert (default(x) - F.interpolate(x, scale_factor=4, mode="nearest")).abs().mean() > 0.05
    # every layer still receives gradient: the body's output convolution starts at zero, not frozen
    m = create_sr_model("swinir", scale=4, preset="small", init="nearest").train()
    F.l1_loss(m(x), F.interpolate(x, scale_factor=4, mode="bilinear")).backward()
    assert m.conv_after_body.weight.grad.abs().sum() > 0 and m.conv_last.weight.grad[:, 6:].abs().sum() > 0
    with pytest.raises(UnknownNameError, match="initialization"):
        create_sr_model("swinir", scale=4, preset="small", init="bicubic")
    with pytest.raises(ConfigError, match="pixelshuffle"):
        create_sr_model("swinir", scale=3, preset="small", init="nearest")


@pytest.mark.slow
def test_smoke_stage1_beats_bicubic_upsampling(tmp_path):
    """The smoke profile's stage 1 (its real schedule, about 2.5 min on 2 cores) beats bicubic PSNR on every
    validation image, and its untrained start (nearest neighbour) does not."""
    from asymlib.config import get_profile
    from asymlib.pipeline import StudyContext, ensure
    from asymlib.pipeline.declare import stage1_spec
    from asymlib.pipeline.sr_runs import bicubic_baseline

    prof = get_profile("smoke")
    ctx = StudyContext(prof, tmp_path, progress=False)
    key = ctx.graph.add(stage1_spec(prof))
    ensure(ctx, key)
    base = bicubic_baseline(ctx, key)
    assert set(base["image"]) == set(prof.sr.data.val.split(","))
    assert (base["bicubic_psnr"] > 15).all() and (base["gain_db"] > 0.05).all(), base
    start = StudyContext(get_profile("smoke", **{"sr.stage1.iterations": 1}), tmp_path / "start", progress=False)
    key0 = start.graph.add(stage1_spec(start.profile))
    ensure(start, key0)
    assert (bicubic_baseline(start, key0)["gain_db"] < 0).all()
