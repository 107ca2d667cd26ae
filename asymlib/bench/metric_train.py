"""The ``metric_train`` rows: the two costs of training a DISTS-style metric's alpha/beta (:mod:`asymlib.iqa.train`).

``terms pass``
    One call of the backbone pass that computes the texture/structure terms of distorted images once per pair,
    before training (:func:`asymlib.iqa.train.compute_terms` with the reference's features cached, as for the
    datasets' many distortions per reference); its pairs/s give the ``metric_train`` cost per item.
``alpha/beta step``
    One iteration of :func:`asymlib.iqa.train.train_metric_weights` on cached terms, the trainer's own
    :func:`asymlib.iqa.train.metric_train_step` (sample a batch, distances, ranking + PLCC loss, Adam, projection
    of the weights), on the CPU as the trainer runs it; the ``metric_train`` cost per iteration.

Workloads of the device's profile: VGG-16 DISTS (random weights); paper (CUDA): KADID-10K's 384x512 images,
``metric_study.eval_batch_size`` (1) per call; smoke (CPU): the synthetic benchmark's 64-px crops, 32 per call.
Both use ``metric_study.train.batch_size`` pairs per step (32).
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import numpy as np
import torch

from .inputs import distort, image_batch
from .report import Row, row_from_timing
from .settings import Settings, profile_for
from .timing import measure

__all__ = ["PAPER_FR_SIZE", "bench_metric_train"]

PAPER_FR_SIZE = (384, 512)  # KADID-10K, the paper's alpha/beta training set
_CACHED_PAIRS = 8  # cached terms per training pair of a batch (the sampling pool of the step)


def bench_metric_train(device: torch.device, s: Settings, log: Callable[[str], None]) -> list[Row]:
    """The ``metric_train`` rows of the device's profile: the terms pass on ``device``, the alpha/beta step on CPU."""
    from ..config import get_profile
    from ..iqa.train import PairTerms, metric_optimizer, metric_train_step
    from ..metrics.registry import create_metric

    name = profile_for(device)
    study = get_profile(name).metric_study
    tcfg = study.train
    size = PAPER_FR_SIZE if name == "paper" else (study.synthetic.crop, study.synthetic.crop)
    batch = study.eval_batch_size
    metric = create_metric("dists", backbone="vgg16", weights="random", seed=0).eval()
    net = copy.deepcopy(metric).to(device)
    ref = image_batch(1, size, seed=5).to(device)
    x = distort(image_batch(batch, size, seed=5), seed=6).to(device)
    with torch.no_grad():
        ref_feats = [f.float() for f in net.features(ref)]

    @torch.no_grad()
    def terms_pass() -> tuple[torch.Tensor, torch.Tensor]:
        l, s_ = net.similarity_terms(net.features(x), [torch.cat([f] * batch) for f in ref_feats])
        return l.float().cpu(), s_.float().cpu()

    l0, _ = terms_pass()
    n = _CACHED_PAIRS * tcfg.batch_size
    gen = torch.Generator().manual_seed(7)
    terms = PairTerms(torch.rand(n, l0.shape[1], generator=gen), torch.rand(n, l0.shape[1], generator=gen),
                      torch.rand(n, generator=gen), None)
    opt, sched = metric_optimizer(metric, tcfg)
    alpha_beta_step = functools.partial(metric_train_step, metric, terms, np.random.default_rng(0), opt, sched, tcfg)

    h, w = size
    pass_name = f"terms pass, {batch} pair(s) {h}x{w}"
    step_name = f"alpha/beta step, batch {tcfg.batch_size}"
    log(f"metric_train on {device}: {name} profile, VGG-16 DISTS; {pass_name} ({s.reps(10, 3)} repeats), "
        f"{step_name} on cpu ({s.reps(50, 20)} repeats)")
    t_pass = measure({pass_name: terms_pass}, repeats=s.reps(10, 3), warmup=s.warmup, device=device)[pass_name]
    t_step = measure({step_name: alpha_beta_step}, repeats=s.reps(50, 20), warmup=s.warmup, device="cpu")[step_name]
    return [
        row_from_timing("metric_train", device, pass_name, pass_name, t_pass, t_pass,
                        images_per_s=batch / (t_pass.median_ms / 1e3), step_cost="metric_train/item",
                        notes=f"{name} profile: VGG-16 DISTS backbone pass over the distorted images, reference "
                              "features cached (compute_terms), once per pair before training; images_per_s = pairs/s"),
        row_from_timing("metric_train", torch.device("cpu"), step_name, step_name, t_step, t_step,
                        images_per_s=tcfg.batch_size / (t_step.median_ms / 1e3), step_cost="metric_train/iteration",
                        notes=f"{name} profile: train_metric_weights' iteration on cached terms (batch of "
                              f"{tcfg.batch_size} pairs, {l0.shape[1]} terms each), on the CPU as the trainer"),
    ]
