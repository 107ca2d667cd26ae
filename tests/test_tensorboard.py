"""TensorBoard logs of a run: grouped scalar names, hyper-parameters, sample images."""
from __future__ import annotations

import torch

from asymlib.runs import flat_hparams, open_run, tensorboard_tag


def _events(folder):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out = []
    for f in sorted(folder.rglob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            for v in ev.summary.value:
                out.append((v.tag, v.metadata.plugin_data.plugin_name, ev.step, v))
    return out


def test_scalar_names_are_grouped():
    assert tensorboard_tag("l_rec") == "loss/l_rec" and tensorboard_tag("l_g_adv") == "loss/l_g_adv"
    assert tensorboard_tag("loss") == "loss/loss"
    assert tensorboard_tag("d_loss") == "d/d_loss" and tensorboard_tag("lr_d") == "d/lr_d"
    assert tensorboard_tag("lr") == "lr/lr" and tensorboard_tag("lr_head") == "lr/lr_head"
    assert tensorboard_tag("val_srcc") == "val/val_srcc" and tensorboard_tag("psnr") == "other/psnr"


def test_flat_hparams():
    flat = flat_hparams({"train": {"lr": 2e-4, "milestones": [1, 2], "amp": "bf16", "compile": False},
                         "setting": None})
    assert flat == {"train.lr": 2e-4, "train.milestones": "[1, 2]", "train.amp": "bf16", "train.compile": False,
                    "setting": "null"}


def test_run_writes_grouped_scalars_images_and_hparams(tmp_path):
    run = open_run(tmp_path, "sr", "demo", {"train": {"lr": 2e-4, "iterations": 3}, "metric": "vgg16"})
    run.start({"profile": "smoke"})
    for step in (1, 2):
        run.log(step, l_rec=0.5 / step, d_loss=0.7, lr=2e-4)
    run.log_image("samples", torch.rand(3, 16, 24), 2)
    run.finish("finished", items=5)
    events = _events(run.path / "tb")
    tags = {t for t, *_ in events}
    assert {"loss/l_rec", "d/d_loss", "lr/lr", "samples"} <= tags
    rec = [(step, v.simple_value if v.HasField("simple_value") else None) for t, _, step, v in events
           if t == "loss/l_rec"]
    if rec[0][1] is None:  # stored as a tensor summary
        rec = [(step, float(torch.tensor(list(v.tensor.float_val))[0])) for t, _, step, v in events
               if t == "loss/l_rec"]
    assert [s for s, _ in rec] == [1, 2] and abs(rec[1][1] - 0.25) < 1e-6
    assert any(plugin == "hparams" for _, plugin, *_ in events)
    hp = [v for t, plugin, _, v in events if plugin == "hparams" and t == "_hparams_/session_start_info"]
    assert hp and b"train.lr" in hp[0].metadata.plugin_data.content and b"metric" in hp[0].metadata.plugin_data.content
    assert "hparam/finished" in tags and "hparam/items" in tags


def test_tensorboard_off_writes_nothing(tmp_path):
    run = open_run(tmp_path, "sr", "demo", {"x": 1}, tensorboard=False)
    run.start({})
    run.log(1, l_rec=1.0)
    run.log_image("samples", torch.rand(3, 8, 8), 1)
    run.finish("finished")
    assert not (run.path / "tb").exists()
