"""Worker of the 2-process DDP test (imported by name in the spawned processes)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist


def tiny_hr_images() -> dict[str, torch.Tensor]:
    from asymlib.data.corpus import embedded_images

    return {k: v[:, :96, :96].contiguous() for k, v in embedded_images(["astronaut", "chelsea"]).items()}


def worker(rank: int, world_size: int, init_file: str, run_root: str, out_dir: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        from asymlib.runs import open_run
        from asymlib.sr.config import DiscriminatorConfig, SRTrainConfig
        from asymlib.sr.models import create_sr_model
        from asymlib.sr.trainer import train_sr

        # resnet18 has BatchNorm: the real/fake halves of the D loss need separate backward passes under DDP
        cfg = SRTrainConfig(iterations=3, batch_size=2, hr_crop=64, milestones=(2,), lambda_rec=1.0, lambda_per=0.0,
                            lambda_adv=0.1, discriminator=DiscriminatorConfig("resnet18", "vanilla"),
                            checkpoint_every=2, log_every=1, sample_every=100, num_workers=0, ema_decay=0.5)
        run = open_run(run_root, "sr", "ddp", {"test": "ddp", "cfg": cfg})
        torch.manual_seed(0)
        model = create_sr_model(preset="small", depths=(2, 2), num_heads=(6, 6))
        res = train_sr(run, cfg, "ddp", generator=model, train_data=tiny_hr_images(), seed=0, device="cpu",
                       progress=False)
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        torch.save({"status": res.status, "step": res.step, "params": flat}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
